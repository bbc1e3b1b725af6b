//! Per-call packet captures (`pptp-nas pac --pcap DIR`).
//!
//! Each tunnelled call gets two files in `DIR`:
//! - `LINE-CALLID-UNIXTIME-line.pcap`: the line side, linktype 204 (`LINKTYPE_PPP_WITH_DIR`),
//!   one record per PPP frame after HDLC deframing (no flags, escapes or FCS); direction
//!   "received" for frames from the caller, "sent" for frames to the caller;
//! - `LINE-CALLID-UNIXTIME-gre.pcap`: the GRE side, linktype 101 (raw IPv4), each GRE packet
//!   wrapped in an IPv4 header (protocol 47) between the PAC's and the PNS's addresses.
//!
//! The line side is captured from the octets read from and written to the line, deframed by
//! two decoders of the capture's own (ACCM 0: control characters the peer did not escape are
//! kept), so the capture shows what really crossed the line. Every record is flushed at once:
//! a capture is a debugging aid, and a crash must not lose its tail.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::hdlc::{Decoder, DecoderConfig};
use crate::pcap::{gre_in_ipv4, Direction, LinkType, PcapWriter};

/// The two capture files of one call.
#[derive(Debug)]
pub struct CallCapture {
    line: PcapWriter<BufWriter<File>>,
    gre: PcapWriter<BufWriter<File>>,
    from_line: Decoder,
    to_line: Decoder,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    ident: u16,
    paths: [PathBuf; 2],
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl CallCapture {
    /// Creates `DIR/LINE-CALLID-TIME-{line,gre}.pcap`. `local` and `peer` are the IPv4
    /// addresses written around GRE packets (the PAC's, or 0.0.0.0 when unknown, and the PNS's).
    pub fn create(
        dir: &Path,
        line: &str,
        call_id: u16,
        local: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> io::Result<CallCapture> {
        std::fs::create_dir_all(dir)?;
        let stamp = now().as_secs();
        let safe: String = line
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = format!("{safe}-{call_id}-{stamp}");
        let line_path = dir.join(format!("{base}-line.pcap"));
        let gre_path = dir.join(format!("{base}-gre.pcap"));
        let line_w = PcapWriter::new(
            BufWriter::new(File::create(&line_path)?),
            LinkType::PppWithDir,
        )?;
        let gre_w = PcapWriter::new(BufWriter::new(File::create(&gre_path)?), LinkType::Raw)?;
        let dec = || {
            let mut d = Decoder::new(DecoderConfig::default());
            d.set_accm(0);
            d
        };
        let mut c = CallCapture {
            line: line_w,
            gre: gre_w,
            from_line: dec(),
            to_line: dec(),
            local,
            peer,
            ident: 0,
            paths: [line_path, gre_path],
        };
        c.line.flush()?;
        c.gre.flush()?;
        Ok(c)
    }

    /// The line-side and GRE-side file paths.
    pub fn paths(&self) -> &[PathBuf; 2] {
        &self.paths
    }

    /// Octets read from the line (frames from the caller).
    pub fn line_in(&mut self, mut data: &[u8]) {
        let ts = now();
        while let Some(r) = self.from_line.decode(&mut data) {
            if let Ok(frame) = r {
                let _ = self.line.write_ppp(ts, Direction::Received, frame);
            }
        }
        let _ = self.line.flush();
    }

    /// Octets written to the line (frames to the caller).
    pub fn line_out(&mut self, mut data: &[u8]) {
        let ts = now();
        while let Some(r) = self.to_line.decode(&mut data) {
            if let Ok(frame) = r {
                let _ = self.line.write_ppp(ts, Direction::Sent, frame);
            }
        }
        let _ = self.line.flush();
    }

    /// A GRE packet from the PNS.
    pub fn gre_in(&mut self, packet: &[u8]) {
        self.gre_record(self.peer, self.local, packet);
    }

    /// A GRE packet to the PNS.
    pub fn gre_out(&mut self, packet: &[u8]) {
        self.gre_record(self.local, self.peer, packet);
    }

    fn gre_record(&mut self, src: Ipv4Addr, dst: Ipv4Addr, packet: &[u8]) {
        self.ident = self.ident.wrapping_add(1);
        if let Ok(ip) = gre_in_ipv4(src, dst, self.ident, packet) {
            let _ = self.gre.write_packet(now(), &ip);
            let _ = self.gre.flush();
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::hdlc::{Encoder, EncoderConfig};
    use crate::pptp::{GreRepr, SeqNumber};

    #[test]
    fn writes_both_files() {
        let dir = std::env::temp_dir().join(format!("pptp-nas-cap-unit-{}", std::process::id()));
        let mut c = CallCapture::create(
            &dir,
            "sm/0",
            7,
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 2),
        )
        .unwrap();
        let lcp = [0xFF, 0x03, 0xC0, 0x21, 0x01, 0x01, 0x00, 0x04];
        let mut wire = Vec::new();
        Encoder::new(EncoderConfig::default())
            .encode(&lcp, &mut wire)
            .unwrap();
        // Split across reads: still one record.
        c.line_in(&wire[..3]);
        c.line_in(&wire[3..]);
        c.line_out(&wire);
        let mut pkt = Vec::new();
        GreRepr::data(9, lcp.len() as u16, SeqNumber(0), None).emit(&mut pkt);
        pkt.extend_from_slice(&lcp);
        c.gre_out(&pkt);
        c.gre_in(&pkt);
        let [l, g] = c.paths().clone();
        assert!(l
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sm_0-7-"));
        drop(c);
        let line = std::fs::read(&l).unwrap();
        // Header (24) + 2 records of 16 + 1 + 8.
        assert_eq!(line.len(), 24 + 2 * (16 + 1 + lcp.len()));
        assert_eq!(u32::from_le_bytes(line[20..24].try_into().unwrap()), 204);
        assert_eq!(line[24 + 16], 0, "first record received");
        assert_eq!(&line[24 + 17..24 + 17 + 8], &lcp);
        assert_eq!(line[24 + 25 + 16], 1, "second record sent");
        let gre = std::fs::read(&g).unwrap();
        assert_eq!(u32::from_le_bytes(gre[20..24].try_into().unwrap()), 101);
        assert_eq!(gre.len(), 24 + 2 * (16 + 20 + pkt.len()));
        // IPv4 protocol 47, src 127.0.0.1 for the outgoing packet.
        assert_eq!(gre[24 + 16 + 9], 47);
        assert_eq!(&gre[24 + 16 + 12..24 + 16 + 16], &[127, 0, 0, 1]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
