//! A small classic-libpcap writer, and IPv4/TCP/GRE wrappers for raw-IP records.
//!
//! The daemons' `--pcap` option writes through this module: PPP frames on the line side as
//! linktype 204 (`LINKTYPE_PPP_WITH_DIR`, one direction octet then the PPP frame without HDLC
//! flags, escapes or FCS), GRE and TUN traffic as linktype 101 (`LINKTYPE_RAW`, bare IPv4), and
//! plain PPP as linktype 9. PPTP control messages, which the daemons see as a TCP byte stream,
//! are written as raw-IP records through [`TcpFlow`], which builds IPv4+TCP headers with
//! correct checksums and consistent sequence numbers per direction, so Wireshark reassembles
//! and decodes them as it would a capture from the wire.
//!
//! Timestamps are always passed in (as a [`Duration`] since the Unix epoch or a
//! [`SystemTime`]); nothing here reads the clock.
//!
//! File format (libpcap "classic", as documented in pcap-savefile(5)): a 24-octet global
//! header (magic `0xa1b2c3d4`, version 2.4, thiszone 0, sigfigs 0, snaplen, linktype), then per
//! record a 16-octet header (ts_sec, ts_usec, incl_len, orig_len) and `incl_len` octets. All
//! fields are written little-endian; readers detect the byte order from the magic.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::pptp::ipv4::{checksum, Ipv4Header};

/// The classic pcap magic number (microsecond timestamps).
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// Major version of the file format.
pub const VERSION_MAJOR: u16 = 2;
/// Minor version of the file format.
pub const VERSION_MINOR: u16 = 4;
/// Default snapshot length: large enough that no PPP or IP packet is cut.
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// The PPTP control connection's TCP port (RFC 2637 section 1.3).
pub const PPTP_PORT: u16 = 1723;

enum_with_unknown! {
    /// pcap link-layer header types (tcpdump.org LINKTYPE_ values).
    pub enum LinkType(u32) {
        /// `LINKTYPE_PPP`: a PPP frame, with or without FF 03.
        Ppp = 9,
        /// `LINKTYPE_RAW`: a bare IPv4 or IPv6 packet.
        Raw = 101,
        /// `LINKTYPE_PPP_WITH_DIR`: one direction octet (0 received, 1 sent), then PPP.
        PppWithDir = 204,
    }
}

/// The direction octet of a `LINKTYPE_PPP_WITH_DIR` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the capturing host (octet 0).
    Received,
    /// Sent by the capturing host (octet 1).
    Sent,
}

impl Direction {
    /// The octet written before the frame.
    pub fn octet(self) -> u8 {
        match self {
            Direction::Received => 0,
            Direction::Sent => 1,
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Writes a classic pcap file to any [`Write`].
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    linktype: LinkType,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header with [`DEFAULT_SNAPLEN`].
    pub fn new(out: W, linktype: LinkType) -> io::Result<Self> {
        Self::with_snaplen(out, linktype, DEFAULT_SNAPLEN)
    }

    /// Writes the global header; records longer than `snaplen` are cut to it.
    pub fn with_snaplen(mut out: W, linktype: LinkType, snaplen: u32) -> io::Result<Self> {
        let mut h = [0u8; 24];
        let fields: [&[u8]; 7] = [
            &MAGIC.to_le_bytes(),
            &VERSION_MAJOR.to_le_bytes(),
            &VERSION_MINOR.to_le_bytes(),
            &0i32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &snaplen.to_le_bytes(),
            &u32::from(linktype).to_le_bytes(),
        ];
        for (dst, src) in h.iter_mut().zip(fields.into_iter().flatten()) {
            *dst = *src;
        }
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            linktype,
            snaplen,
        })
    }

    /// The link type of every record in this file.
    pub fn linktype(&self) -> LinkType {
        self.linktype
    }

    /// Writes one record stamped `ts` after the Unix epoch.
    pub fn write_packet(&mut self, ts: Duration, data: &[u8]) -> io::Result<()> {
        self.write_parts(ts, &[data])
    }

    /// Writes one record stamped with a wall-clock time (times before 1970 become 0).
    pub fn write_packet_at(&mut self, ts: SystemTime, data: &[u8]) -> io::Result<()> {
        self.write_packet(ts.duration_since(UNIX_EPOCH).unwrap_or_default(), data)
    }

    /// Writes a PPP frame (without HDLC framing) with its direction; the file must be
    /// [`LinkType::PppWithDir`].
    pub fn write_ppp(
        &mut self,
        ts: Duration,
        direction: Direction,
        frame: &[u8],
    ) -> io::Result<()> {
        if self.linktype != LinkType::PppWithDir {
            return Err(invalid("write_ppp needs a LINKTYPE_PPP_WITH_DIR file"));
        }
        self.write_parts(ts, &[&[direction.octet()], frame])
    }

    /// Writes one record whose data is the concatenation of `parts`.
    fn write_parts(&mut self, ts: Duration, parts: &[&[u8]]) -> io::Result<()> {
        let orig: usize = parts.iter().map(|p| p.len()).sum();
        let orig_len = u32::try_from(orig).map_err(|_| invalid("record too long"))?;
        let incl_len = orig_len.min(self.snaplen);
        let ts_sec = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
        let mut h = [0u8; 16];
        let fields: [[u8; 4]; 4] = [
            ts_sec.to_le_bytes(),
            ts.subsec_micros().to_le_bytes(),
            incl_len.to_le_bytes(),
            orig_len.to_le_bytes(),
        ];
        for (dst, src) in h.iter_mut().zip(fields.iter().flatten()) {
            *dst = *src;
        }
        self.out.write_all(&h)?;
        let mut left = usize::try_from(incl_len).unwrap_or(usize::MAX);
        for part in parts {
            let n = part.len().min(left);
            self.out.write_all(part.get(..n).unwrap_or_default())?;
            left -= n;
        }
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Size of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Size of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// Builds an IPv4 packet (no options, DF set, TTL 64) around `payload`.
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    identification: u16,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let payload_len = u16::try_from(payload.len()).map_err(|_| invalid("IPv4 payload too long"))?;
    if usize::from(payload_len) + IPV4_HEADER_LEN > usize::from(u16::MAX) {
        return Err(invalid("IPv4 payload too long"));
    }
    let header = Ipv4Header {
        tos: 0,
        ident: identification,
        dont_fragment: true,
        ttl: 64,
        protocol,
        src,
        dst,
        payload_len,
    };
    let mut p = Vec::with_capacity(header.buffer_len());
    header.emit(&mut p);
    p.extend_from_slice(payload);
    Ok(p)
}

/// Wraps an encoded GRE packet (header and payload) in IPv4 protocol 47.
pub fn gre_in_ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    identification: u16,
    gre: &[u8],
) -> io::Result<Vec<u8>> {
    ipv4_packet(src, dst, IPPROTO_GRE, identification, gre)
}

/// TCP header flags.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Which end of a [`TcpFlow`] sends a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The side that opened the connection (the PAC, or a PPTP client).
    Client,
    /// The side that listens on port 1723.
    Server,
}

/// Builds the IPv4+TCP packets of one TCP connection for a raw-IP pcap, keeping each
/// direction's sequence number so that every segment acknowledges what the other side sent.
#[derive(Debug, Clone)]
pub struct TcpFlow {
    client: SocketAddrV4,
    server: SocketAddrV4,
    client_next: u32,
    server_next: u32,
    client_ip_id: u16,
    server_ip_id: u16,
    window: u16,
}

impl TcpFlow {
    /// A flow whose first segments (the SYNs, if [`handshake`](Self::handshake) is used)
    /// carry the initial sequence numbers `client_isn` and `server_isn`.
    pub fn new(
        client: SocketAddrV4,
        server: SocketAddrV4,
        client_isn: u32,
        server_isn: u32,
    ) -> Self {
        TcpFlow {
            client,
            server,
            client_next: client_isn,
            server_next: server_isn,
            client_ip_id: 0,
            server_ip_id: 0,
            window: 65535,
        }
    }

    /// The next sequence number `from` will send.
    pub fn next_seq(&self, from: Endpoint) -> u32 {
        match from {
            Endpoint::Client => self.client_next,
            Endpoint::Server => self.server_next,
        }
    }

    /// The three packets of the opening handshake: SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> io::Result<[Vec<u8>; 3]> {
        let syn = self.packet(Endpoint::Client, tcp_flags::SYN, &[])?;
        self.client_next = self.client_next.wrapping_add(1);
        let syn_ack = self.packet(Endpoint::Server, tcp_flags::SYN | tcp_flags::ACK, &[])?;
        self.server_next = self.server_next.wrapping_add(1);
        let ack = self.packet(Endpoint::Client, tcp_flags::ACK, &[])?;
        Ok([syn, syn_ack, ack])
    }

    /// A data segment (PSH, ACK) from `from`, acknowledging everything the other side sent.
    pub fn segment(&mut self, from: Endpoint, payload: &[u8]) -> io::Result<Vec<u8>> {
        let p = self.packet(from, tcp_flags::PSH | tcp_flags::ACK, payload)?;
        let advance = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        match from {
            Endpoint::Client => self.client_next = self.client_next.wrapping_add(advance),
            Endpoint::Server => self.server_next = self.server_next.wrapping_add(advance),
        }
        Ok(p)
    }

    /// A bare acknowledgement from `from`.
    pub fn ack(&mut self, from: Endpoint) -> io::Result<Vec<u8>> {
        self.packet(from, tcp_flags::ACK, &[])
    }

    /// A FIN (with ACK) from `from`; it consumes one sequence number.
    pub fn fin(&mut self, from: Endpoint) -> io::Result<Vec<u8>> {
        let p = self.packet(from, tcp_flags::FIN | tcp_flags::ACK, &[])?;
        match from {
            Endpoint::Client => self.client_next = self.client_next.wrapping_add(1),
            Endpoint::Server => self.server_next = self.server_next.wrapping_add(1),
        }
        Ok(p)
    }

    /// Builds one IPv4+TCP packet from `from` with the current sequence numbers.
    fn packet(&mut self, from: Endpoint, flags: u8, payload: &[u8]) -> io::Result<Vec<u8>> {
        let (src, dst, seq, ack, id) = match from {
            Endpoint::Client => {
                self.client_ip_id = self.client_ip_id.wrapping_add(1);
                (
                    self.client,
                    self.server,
                    self.client_next,
                    self.server_next,
                    self.client_ip_id,
                )
            }
            Endpoint::Server => {
                self.server_ip_id = self.server_ip_id.wrapping_add(1);
                (
                    self.server,
                    self.client,
                    self.server_next,
                    self.client_next,
                    self.server_ip_id,
                )
            }
        };
        // A SYN without ACK carries an acknowledgement number of zero.
        let ack = if flags & tcp_flags::ACK != 0 { ack } else { 0 };
        let tcp_len = u16::try_from(TCP_HEADER_LEN + payload.len())
            .map_err(|_| invalid("TCP payload too long"))?;
        let mut seg = Vec::with_capacity(usize::from(tcp_len));
        seg.extend_from_slice(&src.port().to_be_bytes());
        seg.extend_from_slice(&dst.port().to_be_bytes());
        seg.extend_from_slice(&seq.to_be_bytes());
        seg.extend_from_slice(&ack.to_be_bytes());
        // Data offset 5 words, no options.
        seg.push(0x50);
        seg.push(flags);
        seg.extend_from_slice(&self.window.to_be_bytes());
        seg.extend_from_slice(&[0, 0, 0, 0]);
        seg.extend_from_slice(payload);
        // Checksum over the pseudo-header (RFC 793 section 3.1) and the segment.
        let mut pseudo = [0u8; 12];
        for (d, s) in pseudo.iter_mut().zip(
            src.ip()
                .octets()
                .into_iter()
                .chain(dst.ip().octets())
                .chain([0, IPPROTO_TCP])
                .chain(tcp_len.to_be_bytes()),
        ) {
            *d = s;
        }
        // The pseudo-header is 12 octets (even), so summing it in front of the segment is the
        // same as the RFC 793 incremental sum. Not a hot path: pcap records only.
        let sum = checksum(&[&pseudo[..], &seg[..]].concat());
        if let Some(c) = seg.get_mut(16..18) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
        ipv4_packet(*src.ip(), *dst.ip(), IPPROTO_TCP, id, &seg)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn global_and_record_headers() {
        let mut w = PcapWriter::with_snaplen(Vec::new(), LinkType::PppWithDir, 6).unwrap();
        w.write_ppp(
            Duration::new(1_700_000_000, 123_456_789),
            Direction::Sent,
            &[0xff, 0x03, 0xc0, 0x21, 1, 2, 3],
        )
        .unwrap();
        let out = w.into_inner();
        assert_eq!(
            &out[..24],
            &[
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 204, 0, 0,
                0
            ]
        );
        let rec = &out[24..];
        assert_eq!(&rec[0..4], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&rec[4..8], &123_456u32.to_le_bytes());
        assert_eq!(&rec[8..12], &6u32.to_le_bytes()); // cut to snaplen
        assert_eq!(&rec[12..16], &8u32.to_le_bytes()); // direction octet + 7
        assert_eq!(&rec[16..], &[1, 0xff, 0x03, 0xc0, 0x21, 1]);
    }

    #[test]
    fn write_ppp_needs_the_right_linktype() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Raw).unwrap();
        assert!(w
            .write_ppp(Duration::ZERO, Direction::Received, &[])
            .is_err());
        w.write_packet_at(UNIX_EPOCH + Duration::from_secs(5), &[0x45])
            .unwrap();
        assert_eq!(&w.into_inner()[24..28], &5u32.to_le_bytes());
    }

    #[test]
    fn ipv4_header_checksum() {
        // RFC 1071-style check: the checksum over a header including its checksum is zero.
        let p = ipv4_packet(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 7),
            IPPROTO_GRE,
            0x1234,
            &[1, 2, 3],
        )
        .unwrap();
        assert_eq!(p.len(), 23);
        assert_eq!(&p[2..4], &23u16.to_be_bytes());
        assert_eq!(p[9], 47);
        assert_eq!(checksum(&p[..20]), 0);
        // A known header: the example from Wikipedia's "IPv4 header checksum" article.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        assert!(ipv4_packet(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 6, 0, &[0; 65516]).is_err());
    }

    #[test]
    fn tcp_flow_sequence_numbers() {
        let c = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
        let s = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), PPTP_PORT);
        let mut f = TcpFlow::new(c, s, 1000, 5000);
        let [syn, syn_ack, ack] = f.handshake().unwrap();
        let seq = |p: &[u8]| u32::from_be_bytes(p[24..28].try_into().unwrap());
        let acknum = |p: &[u8]| u32::from_be_bytes(p[28..32].try_into().unwrap());
        assert_eq!(
            (seq(&syn), acknum(&syn), syn[33]),
            (1000, 0, tcp_flags::SYN)
        );
        assert_eq!((seq(&syn_ack), acknum(&syn_ack)), (5000, 1001));
        assert_eq!((seq(&ack), acknum(&ack)), (1001, 5001));
        let a = f.segment(Endpoint::Client, &[0; 156]).unwrap();
        assert_eq!((seq(&a), acknum(&a)), (1001, 5001));
        let b = f.segment(Endpoint::Server, &[0; 156]).unwrap();
        assert_eq!((seq(&b), acknum(&b)), (5001, 1157));
        assert_eq!(&b[20..22], &PPTP_PORT.to_be_bytes());
        assert_eq!(f.next_seq(Endpoint::Client), 1157);
        assert_eq!(f.next_seq(Endpoint::Server), 5157);
        let fin = f.fin(Endpoint::Client).unwrap();
        assert_eq!(fin[33], tcp_flags::FIN | tcp_flags::ACK);
        assert_eq!(f.next_seq(Endpoint::Client), 1158);
        // TCP checksum verifies: pseudo-header + segment sums to zero.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&b[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&u16::try_from(b.len() - 20).unwrap().to_be_bytes());
        assert_eq!(checksum(&[&pseudo[..], &b[20..]].concat()), 0);
        assert_eq!(checksum(&b[..20]), 0);
    }
}
