//! The built-in IPv4 responder the PNS answers with when there is no TUN device, and the traffic
//! generator the dial-in client and the lab drive it with.
//!
//! [`Responder`] answers ICMP Echo Request (RFC 792) with Echo Reply, echoes UDP sent to port 7
//! (RFC 862) and silently counts UDP sent to port 9 (RFC 863). [`Pinger`] builds Echo Requests
//! and matches replies to measure round-trip times; [`BulkStream`] builds UDP datagrams to the
//! discard port for a throughput run. All of it is sans-IO: the caller passes `now` in and moves
//! the packets.
//!
//! Every packet taken from the link goes through [`Ipv4Header::parse_any`] (version, IHL, Total
//! Length, header checksum, no fragments) and the ICMP/UDP checksums are verified before a
//! reply is made, so a corrupted packet is counted and dropped, never answered.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::pptp::ipv4::{checksum, Ipv4Header, HEADER_LEN};
use crate::wire::Reader;

/// IP protocol number of ICMP.
pub const IP_PROTOCOL_ICMP: u8 = 1;
/// IP protocol number of UDP.
pub const IP_PROTOCOL_UDP: u8 = 17;
/// UDP echo port (RFC 862).
pub const PORT_ECHO: u16 = 7;
/// UDP discard port (RFC 863).
pub const PORT_DISCARD: u16 = 9;

enum_with_unknown! {
    /// ICMP message types this module knows.
    pub enum IcmpType(u8) {
        /// Echo Reply.
        EchoReply = 0,
        /// Destination Unreachable.
        DestUnreachable = 3,
        /// Echo Request.
        EchoRequest = 8,
        /// Time Exceeded.
        TimeExceeded = 11,
    }
}

/// Why a packet was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponderError {
    /// The IPv4 header is malformed.
    #[error("IPv4: {0}")]
    Ip(#[from] crate::pptp::ipv4::Ipv4Error),
    /// The ICMP or UDP message is truncated or inconsistent.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// The ICMP or UDP checksum does not verify.
    #[error("bad {0} checksum")]
    Checksum(&'static str),
}

/// An ICMP Echo Request or Reply (RFC 792).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpEchoRepr<'a> {
    /// Echo Request or Echo Reply.
    pub kind: IcmpType,
    /// Identifier.
    pub ident: u16,
    /// Sequence Number.
    pub seq: u16,
    /// Data, echoed back verbatim.
    pub data: &'a [u8],
}

impl<'a> IcmpEchoRepr<'a> {
    /// Length of the ICMP echo header.
    pub const HEADER_LEN: usize = 8;

    /// Parses an ICMP message; `Ok(None)` for a valid message that is not an echo.
    ///
    /// RFC 792: "The checksum is the 16-bit ones's complement of the one's complement sum of
    /// the ICMP message starting with the ICMP Type." A message whose checksum does not verify
    /// is refused.
    pub fn parse(msg: &'a [u8]) -> Result<Option<Self>, ResponderError> {
        let mut r = Reader::new(msg);
        let kind = IcmpType::from(r.u8().map_err(|_| ResponderError::Malformed("ICMP"))?);
        let _code = r.u8().map_err(|_| ResponderError::Malformed("ICMP"))?;
        let _sum = r.u16().map_err(|_| ResponderError::Malformed("ICMP"))?;
        if !cfg!(fuzzing) && checksum(msg) != 0 {
            return Err(ResponderError::Checksum("ICMP"));
        }
        if !matches!(kind, IcmpType::EchoRequest | IcmpType::EchoReply) {
            return Ok(None);
        }
        let ident = r.u16().map_err(|_| ResponderError::Malformed("ICMP"))?;
        let seq = r.u16().map_err(|_| ResponderError::Malformed("ICMP"))?;
        Ok(Some(IcmpEchoRepr {
            kind,
            ident,
            seq,
            data: r.rest(),
        }))
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.data.len()
    }

    /// Appends the message, checksum filled in.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(u8::from(self.kind));
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.ident.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.data);
        let sum = checksum(out.get(start..).unwrap_or_default()).to_be_bytes();
        if let Some(dst) = out.get_mut(start + 2..start + 4) {
            dst.copy_from_slice(&sum);
        }
    }
}

/// A UDP datagram (RFC 768).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload.
    pub payload: &'a [u8],
}

/// RFC 768 pseudo-header sum + data, folded and complemented.
fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + udp.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, IP_PROTOCOL_UDP]);
    pseudo.extend_from_slice(&u16::try_from(udp.len()).unwrap_or(u16::MAX).to_be_bytes());
    pseudo.extend_from_slice(udp);
    checksum(&pseudo)
}

impl<'a> UdpRepr<'a> {
    /// Length of the UDP header.
    pub const HEADER_LEN: usize = 8;

    /// Parses a UDP datagram carried between `src` and `dst`.
    ///
    /// RFC 768: "An all zero transmitted checksum value means that the transmitter generated no
    /// checksum". Any other value must verify over the pseudo-header.
    pub fn parse(src: Ipv4Addr, dst: Ipv4Addr, msg: &'a [u8]) -> Result<Self, ResponderError> {
        let mut r = Reader::new(msg);
        let bad = |_| ResponderError::Malformed("UDP");
        let src_port = r.u16().map_err(bad)?;
        let dst_port = r.u16().map_err(bad)?;
        let len = usize::from(r.u16().map_err(bad)?);
        let sum = r.u16().map_err(bad)?;
        if len < Self::HEADER_LEN || len > msg.len() {
            return Err(ResponderError::Malformed("UDP"));
        }
        let datagram = msg.get(..len).unwrap_or_default();
        if !cfg!(fuzzing) && sum != 0 && udp_checksum(src, dst, datagram) != 0 {
            return Err(ResponderError::Checksum("UDP"));
        }
        Ok(UdpRepr {
            src_port,
            dst_port,
            payload: datagram.get(Self::HEADER_LEN..).unwrap_or_default(),
        })
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.payload.len()
    }

    /// Appends the datagram with its checksum (RFC 768: a computed zero is sent as all ones).
    pub fn emit(&self, src: Ipv4Addr, dst: Ipv4Addr, out: &mut Vec<u8>) {
        let start = out.len();
        let len = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(self.payload);
        let mut sum = udp_checksum(src, dst, out.get(start..).unwrap_or_default());
        if sum == 0 {
            sum = 0xffff;
        }
        if let Some(dst) = out.get_mut(start + 6..start + 8) {
            dst.copy_from_slice(&sum.to_be_bytes());
        }
    }
}

/// Builds a whole IPv4 datagram around an ICMP or UDP body written by `body`.
fn ip_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
    body: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut payload = Vec::new();
    body(&mut payload);
    let header = Ipv4Header {
        tos: 0,
        ident,
        dont_fragment: false,
        ttl: 64,
        protocol,
        src,
        dst,
        payload_len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    header.emit(&mut out);
    out.extend_from_slice(&payload);
    out
}

/// What the responder did with one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send this IPv4 datagram back to the caller.
    Reply(Vec<u8>),
    /// Accepted and consumed (UDP discard).
    Discarded,
    /// Valid but nothing here answers it (other protocols, ports, ICMP types).
    Ignored,
}

/// Counters kept by the [`Responder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponderStats {
    /// Echo Requests answered.
    pub icmp_echo: u64,
    /// UDP echo datagrams answered.
    pub udp_echo: u64,
    /// UDP discard datagrams taken.
    pub udp_discard: u64,
    /// Payload octets taken by the discard service.
    pub discard_octets: u64,
    /// Packets refused as malformed or with bad checksums.
    pub malformed: u64,
    /// Valid packets nothing answers.
    pub ignored: u64,
}

/// Answers ICMP echo, UDP echo and discard for the addresses it serves.
#[derive(Debug, Clone, Default)]
pub struct Responder {
    ident: u16,
    stats: ResponderStats,
}

impl Responder {
    /// A responder that answers packets to any destination address (the PNS hands it only the
    /// packets a caller sends into the tunnel).
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> ResponderStats {
        self.stats
    }

    /// Handles one IPv4 datagram from a caller.
    pub fn handle_packet(&mut self, packet: &[u8]) -> Result<Verdict, ResponderError> {
        let verdict = self.handle_inner(packet);
        match &verdict {
            Ok(Verdict::Ignored) => self.stats.ignored += 1,
            Err(_) => self.stats.malformed += 1,
            Ok(_) => {}
        }
        verdict
    }

    fn handle_inner(&mut self, packet: &[u8]) -> Result<Verdict, ResponderError> {
        let (ip, body) = Ipv4Header::parse_any(packet)?;
        self.ident = self.ident.wrapping_add(1);
        match ip.protocol {
            IP_PROTOCOL_ICMP => {
                let Some(echo) = IcmpEchoRepr::parse(body)? else {
                    return Ok(Verdict::Ignored);
                };
                if echo.kind != IcmpType::EchoRequest {
                    return Ok(Verdict::Ignored);
                }
                // RFC 792: "To form an echo reply message, the source and destination addresses
                // are simply reversed, the type code changed to 0, and the checksum recomputed."
                let reply = IcmpEchoRepr {
                    kind: IcmpType::EchoReply,
                    ..echo
                };
                self.stats.icmp_echo += 1;
                Ok(Verdict::Reply(ip_packet(
                    ip.dst,
                    ip.src,
                    IP_PROTOCOL_ICMP,
                    self.ident,
                    |out| reply.emit(out),
                )))
            }
            IP_PROTOCOL_UDP => {
                let udp = UdpRepr::parse(ip.src, ip.dst, body)?;
                match udp.dst_port {
                    // RFC 862: "Once a datagram is received, the data from it is sent back in an
                    // answering datagram."
                    PORT_ECHO => {
                        let reply = UdpRepr {
                            src_port: udp.dst_port,
                            dst_port: udp.src_port,
                            payload: udp.payload,
                        };
                        self.stats.udp_echo += 1;
                        Ok(Verdict::Reply(ip_packet(
                            ip.dst,
                            ip.src,
                            IP_PROTOCOL_UDP,
                            self.ident,
                            |out| reply.emit(ip.dst, ip.src, out),
                        )))
                    }
                    // RFC 863: "Once a datagram is received, it is thrown away. No response is
                    // sent."
                    PORT_DISCARD => {
                        self.stats.udp_discard += 1;
                        self.stats.discard_octets += u64::try_from(udp.payload.len()).unwrap_or(0);
                        Ok(Verdict::Discarded)
                    }
                    _ => Ok(Verdict::Ignored),
                }
            }
            _ => Ok(Verdict::Ignored),
        }
    }
}

/// Round-trip results of a [`Pinger`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingStats {
    /// Echo Requests built.
    pub sent: u32,
    /// Matching Echo Replies seen (duplicates not counted twice).
    pub received: u32,
    /// Round-trip times of the replies, in arrival order.
    pub rtts: Vec<Duration>,
}

impl PingStats {
    /// Median round-trip time, if any reply came back.
    pub fn median(&self) -> Option<Duration> {
        let mut v = self.rtts.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }
}

/// Builds ICMP Echo Requests and matches their replies.
#[derive(Debug, Clone)]
pub struct Pinger {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    payload_len: usize,
    next_seq: u16,
    outstanding: VecDeque<(u16, Instant)>,
    stats: PingStats,
}

impl Pinger {
    /// Pings from `src` to `dst` with ICMP identifier `ident` and `payload_len` data octets.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, payload_len: usize) -> Self {
        Pinger {
            src,
            dst,
            ident,
            payload_len: payload_len.min(1400),
            next_seq: 1,
            outstanding: VecDeque::new(),
            stats: PingStats::default(),
        }
    }

    /// Builds the next Echo Request, sent at `now`.
    pub fn next_request(&mut self, now: Instant) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let data: Vec<u8> = (0..self.payload_len)
            .map(|i| (i as u8).wrapping_add(0x20))
            .collect();
        let req = IcmpEchoRepr {
            kind: IcmpType::EchoRequest,
            ident: self.ident,
            seq,
            data: &data,
        };
        self.outstanding.push_back((seq, now));
        // Keep the table bounded: the oldest request is given up after 1024 more.
        if self.outstanding.len() > 1024 {
            self.outstanding.pop_front();
        }
        self.stats.sent += 1;
        ip_packet(self.src, self.dst, IP_PROTOCOL_ICMP, seq, |out| {
            req.emit(out)
        })
    }

    /// Offers a packet received at `now`; returns the round-trip time when it is a reply to an
    /// outstanding request of this pinger.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) -> Option<Duration> {
        let (ip, body) = Ipv4Header::parse_any(packet).ok()?;
        if ip.protocol != IP_PROTOCOL_ICMP || ip.src != self.dst || ip.dst != self.src {
            return None;
        }
        let echo = IcmpEchoRepr::parse(body).ok()??;
        if echo.kind != IcmpType::EchoReply || echo.ident != self.ident {
            return None;
        }
        let pos = self.outstanding.iter().position(|(s, _)| *s == echo.seq)?;
        let (_, sent) = self.outstanding.remove(pos)?;
        let rtt = now.saturating_duration_since(sent);
        self.stats.received += 1;
        self.stats.rtts.push(rtt);
        Some(rtt)
    }

    /// Requests still unanswered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Results so far.
    pub fn stats(&self) -> &PingStats {
        &self.stats
    }
}

/// A bulk UDP stream to the discard port for throughput runs.
///
/// The payload is text-like (repeating words with a counter), so MPPC has something to
/// compress, as a file transfer of documents would.
#[derive(Debug, Clone)]
pub struct BulkStream {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
    counter: u32,
    sent_octets: u64,
    sent_packets: u64,
}

impl BulkStream {
    /// A stream from `src` to `dst`:9 with `payload_len` octets per datagram.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> Self {
        BulkStream {
            src,
            dst,
            payload_len: payload_len.clamp(1, 1400),
            counter: 0,
            sent_octets: 0,
            sent_packets: 0,
        }
    }

    /// Builds the next datagram.
    pub fn next_packet(&mut self) -> Vec<u8> {
        // A vocabulary of 32 words picked by a xorshift generator seeded from the counter: text
        // that MPPC compresses about as well as ordinary English documents (roughly 2:1), not
        // the 30:1 of a repeating pattern.
        const WORDS: [&str; 32] = [
            "the ",
            "modem ",
            "tunnel ",
            "carries ",
            "PPP ",
            "frames ",
            "over ",
            "GRE ",
            "and ",
            "server ",
            "client ",
            "line ",
            "call ",
            "answer ",
            "ring ",
            "a ",
            "to ",
            "of ",
            "encrypted ",
            "compressed ",
            "network ",
            "access ",
            "concentrator ",
            "with ",
            "in ",
            "data ",
            "packet ",
            "window ",
            "sequence ",
            "control ",
            "connection ",
            "speed ",
        ];
        let mut payload = format!("{:08} ", self.counter).into_bytes();
        let mut x = u64::from(self.counter).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        while payload.len() < self.payload_len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = WORDS.get((x % 32) as usize).copied().unwrap_or("x ");
            payload.extend_from_slice(w.as_bytes());
            if x % 11 == 0 {
                // Numbers and punctuation, as in real text.
                payload.extend_from_slice(format!("{}. ", (x >> 20) % 10_000).as_bytes());
            }
        }
        payload.truncate(self.payload_len);
        self.counter = self.counter.wrapping_add(1);
        let udp = UdpRepr {
            src_port: 40000,
            dst_port: PORT_DISCARD,
            payload: &payload,
        };
        let (src, dst) = (self.src, self.dst);
        let packet = ip_packet(src, dst, IP_PROTOCOL_UDP, self.counter as u16, |out| {
            udp.emit(src, dst, out)
        });
        self.sent_octets += u64::try_from(packet.len()).unwrap_or(0);
        self.sent_packets += 1;
        packet
    }

    /// IP octets built so far.
    pub fn sent_octets(&self) -> u64 {
        self.sent_octets
    }

    /// Datagrams built so far.
    pub fn sent_packets(&self) -> u64 {
        self.sent_packets
    }
}

/// kbit/s for `octets` moved in `elapsed` (0 when no time passed).
pub fn kbps(octets: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        octets as f64 * 8.0 / 1000.0 / secs
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);

    /// An ICMP echo request shaped like Linux ping's (10.0.0.2 -> 10.0.0.1, id 0x1c46, seq 1,
    /// 8 data octets), IPv4 header included; built by hand, both checksums computed offline.
    static PING_REQUEST: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x66, 0xd6, 0x0a, 0x00, 0x00,
        0x02, 0x0a, 0x00, 0x00, 0x01, 0x08, 0x00, 0x4a, 0x23, 0x1c, 0x46, 0x00, 0x01, 0x61, 0x62,
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    #[test]
    fn static_ping_request_is_valid() {
        let (ip, body) = Ipv4Header::parse_any(&PING_REQUEST).unwrap();
        assert_eq!(ip.protocol, IP_PROTOCOL_ICMP);
        let echo = IcmpEchoRepr::parse(body).unwrap().unwrap();
        assert_eq!(echo.kind, IcmpType::EchoRequest);
        assert_eq!((echo.ident, echo.seq), (0x1c46, 1));
        assert_eq!(echo.data, b"abcdefgh");
        let mut out = Vec::new();
        echo.emit(&mut out);
        assert_eq!(out, &PING_REQUEST[20..], "emit(parse(x)) == x");
    }

    #[test]
    fn answers_echo_request() {
        let mut r = Responder::new();
        let Verdict::Reply(reply) = r.handle_packet(&PING_REQUEST).unwrap() else {
            panic!("no reply");
        };
        let (ip, body) = Ipv4Header::parse_any(&reply).unwrap();
        assert_eq!(ip.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip.dst, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(checksum(body), 0);
        let echo = IcmpEchoRepr::parse(body).unwrap().unwrap();
        assert_eq!(echo.kind, IcmpType::EchoReply);
        assert_eq!(
            (echo.ident, echo.seq, echo.data),
            (0x1c46, 1, &b"abcdefgh"[..])
        );
        assert_eq!(r.stats().icmp_echo, 1);
    }

    #[test]
    fn bad_checksums_are_refused() {
        let mut r = Responder::new();
        let mut b = PING_REQUEST;
        b[30] ^= 1; // data octet: ICMP checksum breaks
        assert_eq!(r.handle_packet(&b), Err(ResponderError::Checksum("ICMP")));
        let mut b = PING_REQUEST;
        b[8] ^= 1; // TTL: IP header checksum breaks
        assert!(matches!(r.handle_packet(&b), Err(ResponderError::Ip(_))));
        assert_eq!(r.stats().malformed, 2);
        assert_eq!(r.stats().icmp_echo, 0);
    }

    #[test]
    fn echo_reply_and_other_types_are_ignored() {
        let mut r = Responder::new();
        let reply = IcmpEchoRepr {
            kind: IcmpType::EchoReply,
            ident: 1,
            seq: 1,
            data: b"x",
        };
        let p = ip_packet(CLIENT, SERVER, IP_PROTOCOL_ICMP, 1, |o| reply.emit(o));
        assert_eq!(r.handle_packet(&p), Ok(Verdict::Ignored));
        let p = ip_packet(CLIENT, SERVER, 6, 1, |o| o.extend_from_slice(&[0; 20]));
        assert_eq!(r.handle_packet(&p), Ok(Verdict::Ignored));
        assert_eq!(r.stats().ignored, 2);
    }

    #[test]
    fn udp_echo_and_discard() {
        let mut r = Responder::new();
        let udp = UdpRepr {
            src_port: 5555,
            dst_port: PORT_ECHO,
            payload: b"hello",
        };
        let p = ip_packet(CLIENT, SERVER, IP_PROTOCOL_UDP, 9, |o| {
            udp.emit(CLIENT, SERVER, o)
        });
        let Verdict::Reply(reply) = r.handle_packet(&p).unwrap() else {
            panic!("no echo");
        };
        let (ip, body) = Ipv4Header::parse_any(&reply).unwrap();
        assert_eq!((ip.src, ip.dst), (SERVER, CLIENT));
        let back = UdpRepr::parse(ip.src, ip.dst, body).unwrap();
        assert_eq!((back.src_port, back.dst_port), (PORT_ECHO, 5555));
        assert_eq!(back.payload, b"hello");

        let mut bulk = BulkStream::new(CLIENT, SERVER, 500);
        for _ in 0..3 {
            assert_eq!(r.handle_packet(&bulk.next_packet()), Ok(Verdict::Discarded));
        }
        assert_eq!(r.stats().udp_discard, 3);
        assert_eq!(r.stats().discard_octets, 1500);
        assert_eq!(bulk.sent_octets(), 3 * 528);

        // A corrupted UDP payload fails the pseudo-header checksum.
        let mut bad = bulk.next_packet();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert_eq!(r.handle_packet(&bad), Err(ResponderError::Checksum("UDP")));
    }

    #[test]
    fn udp_zero_checksum_means_none_and_length_is_checked() {
        let mut b = Vec::new();
        UdpRepr {
            src_port: 1,
            dst_port: PORT_DISCARD,
            payload: b"abc",
        }
        .emit(CLIENT, SERVER, &mut b);
        b[6] = 0;
        b[7] = 0;
        assert_eq!(UdpRepr::parse(CLIENT, SERVER, &b).unwrap().payload, b"abc");
        b[5] = 40; // length beyond the datagram
        assert_eq!(
            UdpRepr::parse(CLIENT, SERVER, &b),
            Err(ResponderError::Malformed("UDP"))
        );
        assert_eq!(
            UdpRepr::parse(CLIENT, SERVER, &b[..5]),
            Err(ResponderError::Malformed("UDP"))
        );
    }

    #[test]
    fn pinger_measures_rtt_through_responder() {
        let t0 = Instant::now();
        let mut pinger = Pinger::new(CLIENT, SERVER, 0x4242, 56);
        let mut r = Responder::new();
        let mut replies = Vec::new();
        for i in 0..5u64 {
            let req = pinger.next_request(t0 + Duration::from_millis(i * 100));
            if let Verdict::Reply(p) = r.handle_packet(&req).unwrap() {
                replies.push(p);
            }
        }
        assert_eq!(pinger.outstanding(), 5);
        for (i, p) in replies.iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64 * 100 + 10 + i as u64);
            assert_eq!(
                pinger.handle_packet(now, p),
                Some(Duration::from_millis(10 + i as u64))
            );
        }
        // A duplicate reply is not counted twice.
        assert_eq!(pinger.handle_packet(t0, &replies[0]), None);
        let s = pinger.stats();
        assert_eq!((s.sent, s.received), (5, 5));
        assert_eq!(s.median(), Some(Duration::from_millis(12)));
        assert_eq!(pinger.outstanding(), 0);
    }

    #[test]
    fn pinger_ignores_foreign_replies() {
        let t0 = Instant::now();
        let mut a = Pinger::new(CLIENT, SERVER, 1, 8);
        let mut b = Pinger::new(CLIENT, SERVER, 2, 8);
        let mut r = Responder::new();
        let req = a.next_request(t0);
        let _ = b.next_request(t0);
        let Ok(Verdict::Reply(reply)) = r.handle_packet(&req) else {
            panic!("no reply");
        };
        assert_eq!(b.handle_packet(t0, &reply), None);
        assert!(a.handle_packet(t0, &reply).is_some());
        assert_eq!(a.handle_packet(t0, &[0x45, 0, 0]), None);
    }

    #[test]
    fn kbps_math() {
        assert_eq!(kbps(1000, Duration::from_secs(1)), 8.0);
        assert_eq!(kbps(1000, Duration::ZERO), 0.0);
    }

    #[test]
    fn responder_never_panics_on_junk() {
        let mut r = Responder::new();
        let mut seed = 0x1234_5678u32;
        for len in 0..200 {
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = r.handle_packet(&buf);
            if buf.len() > 20 {
                buf[0] = 0x45;
                let _ = r.handle_packet(&buf);
            }
        }
    }
}
