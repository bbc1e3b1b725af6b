//! GRE transports behind one trait: a raw IPv4 protocol-47 socket ([`RawGreSocket`], root or
//! CAP_NET_RAW) and an in-process network ([`InProcessNet`], for tests and unprivileged lab
//! runs), plus the demultiplexer ([`GreDemux`]) that maps a received packet to its call by peer
//! address and Call ID, dropping and counting everything else (PPTP filtering).
//!
//! A transport moves GRE packets (header and payload, no IP header) to and from peers. Receive
//! is batched: [`GreTransport::recv_batch`] fills a [`RecvBatch`] with as many datagrams as are
//! ready (the raw socket uses `recvmmsg(2)` when batching is on).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use crate::pptp::gre::{GreError, GreRepr};
use crate::pptp::ipv4::Ipv4Header;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// Largest datagram a batch slot holds (IPv4 header + GRE + a PPP frame of MRU 1500 + slack).
pub const SLOT_LEN: usize = 2048;

/// Datagrams received in one call, each with its source and the GRE bytes.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Vec<u8>,
    entries: Vec<(Ipv4Addr, Range<usize>)>,
    capacity: usize,
    /// Datagrams the transport dropped before GRE (bad IPv4 header, wrong protocol).
    pub malformed_ip: u64,
}

impl RecvBatch {
    /// A batch of up to `capacity` datagrams.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RecvBatch {
            buf: vec![0; capacity * SLOT_LEN],
            entries: Vec::with_capacity(capacity),
            capacity,
            malformed_ip: 0,
        }
    }

    /// How many datagrams one call may return.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of datagrams held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`-th datagram: its source and its GRE bytes.
    pub fn get(&self, i: usize) -> Option<(Ipv4Addr, &[u8])> {
        let (src, range) = self.entries.get(i)?;
        Some((*src, self.buf.get(range.clone())?))
    }

    /// Iterates over the datagrams.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, &[u8])> + '_ {
        (0..self.entries.len()).filter_map(|i| self.get(i))
    }

    fn clear(&mut self) {
        self.entries.clear();
    }

    fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.buf.get_mut(i * SLOT_LEN..(i + 1) * SLOT_LEN)
    }

    /// Records slot `i` holding a raw IPv4 datagram of `len` octets.
    fn push_raw(&mut self, i: usize, len: usize) {
        let start = i * SLOT_LEN;
        let Some(dgram) = self.buf.get(start..start + len.min(SLOT_LEN)) else {
            return;
        };
        match Ipv4Header::parse(dgram) {
            Ok((ip, gre)) => {
                let offset = gre.as_ptr() as usize - dgram.as_ptr() as usize;
                let gre_start = start + offset;
                self.entries
                    .push((ip.src, gre_start..gre_start + gre.len()));
            }
            Err(_) => self.malformed_ip += 1,
        }
    }
}

/// A GRE transport: sends GRE packets to peers and receives them in batches.
pub trait GreTransport: Send + Sync {
    /// The local address packets are sent from and received on.
    fn local_addr(&self) -> Ipv4Addr;

    /// Sends one GRE packet to `peer`.
    fn send_to(&self, peer: Ipv4Addr, gre: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Waits for at least one datagram, then takes as many as are ready (up to the batch's
    /// capacity). Returns how many the batch holds (datagrams dropped below GRE are counted in
    /// [`RecvBatch::malformed_ip`], not returned).
    fn recv_batch(&self, batch: &mut RecvBatch) -> impl Future<Output = io::Result<usize>> + Send;
}

// ----- raw IPv4 protocol 47 -----

/// A raw IPv4 socket for IP protocol 47 bound to one local address. Needs root or
/// CAP_NET_RAW. The kernel delivers every GRE datagram addressed to the bound address, IPv4
/// header included; sending lets the kernel build the IPv4 header.
#[derive(Debug)]
pub struct RawGreSocket {
    fd: AsyncFd<Socket>,
    local: Ipv4Addr,
    batching: bool,
}

impl RawGreSocket {
    /// Opens and binds the socket (non-blocking, registered with the tokio reactor). With
    /// `batching`, receives use `recvmmsg(2)`; without, one `recv(2)` per datagram.
    pub fn bind(local: Ipv4Addr, batching: bool) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47)))?;
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))?;
        // Room for bursts: a few hundred packets of full size.
        let _ = socket.set_recv_buffer_size(4 << 20);
        let _ = socket.set_send_buffer_size(4 << 20);
        Ok(RawGreSocket {
            fd: register(socket)?,
            local,
            batching,
        })
    }

    /// Whether receives are batched with `recvmmsg(2)`.
    pub fn batching(&self) -> bool {
        self.batching
    }

    fn try_recv(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.clear();
        if self.batching {
            let n = recvmmsg(self.fd.get_ref(), batch)?;
            return Ok(n);
        }
        // One datagram per system call; keep reading until the socket is empty or the batch
        // is full, so both modes hand the same amount of work to the caller.
        let mut got = 0;
        for i in 0..batch.capacity {
            let Some(slot) = batch.slot_mut(i) else {
                break;
            };
            match self.fd.get_ref().recv_into(slot) {
                Ok(len) => {
                    batch.push_raw(i, len);
                    got += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// Sends up to 64 packets to their peers in one `sendmmsg(2)` call; returns how many the
    /// kernel took (the rest: call again).
    pub async fn send_batch(&self, packets: &[(Ipv4Addr, &[u8])]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| sendmmsg(s.get_ref(), packets)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Registers the socket with the tokio reactor.
#[allow(unsafe_code)]
fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its file descriptor: it is valid and open from creation until the
    // `Socket` is dropped, and `as_raw_fd` always returns that same descriptor. The `AsyncFd`
    // takes ownership of the `Socket`, so the descriptor outlives the registration.
    Ok(unsafe { AsyncFd::register(socket) }?)
}

trait RecvInto {
    fn recv_into(self, buf: &mut [u8]) -> io::Result<usize>;
}

impl RecvInto for &Socket {
    fn recv_into(self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        let mut s = self;
        s.read(buf)
    }
}

impl GreTransport for RawGreSocket {
    fn local_addr(&self) -> Ipv4Addr {
        self.local
    }

    async fn send_to(&self, peer: Ipv4Addr, gre: &[u8]) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddrV4::new(peer, 0));
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().send_to(gre, &addr)) {
                Ok(r) => return r.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|_| self.try_recv(batch)) {
                Ok(Ok(_)) if batch.is_empty() => continue, // only malformed datagrams
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// `recvmmsg(2)` into the batch's slots, non-blocking.
#[allow(unsafe_code)]
fn recvmmsg(socket: &Socket, batch: &mut RecvBatch) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = batch.capacity.min(1024);
    let base = batch.buf.as_mut_ptr();
    let mut iovecs: Vec<libc::iovec> = (0..n)
        .map(|i| libc::iovec {
            // In bounds: `buf` holds `capacity * SLOT_LEN` octets and i < capacity.
            iov_base: base.wrapping_add(i * SLOT_LEN).cast(),
            iov_len: SLOT_LEN,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value (null
            // name, no control data, zero lengths).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(0);
    // SAFETY: `msgs` holds `vlen` initialised headers, each pointing at one iovec in `iovecs`
    // which points at a distinct SLOT_LEN-octet region of `batch.buf`; all three outlive the
    // call and nothing else aliases them meanwhile. The fd is a valid open socket owned by
    // `socket`. MSG_DONTWAIT makes the call non-blocking; a null timeout is allowed.
    let r = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = usize::try_from(r).unwrap_or(0);
    for (i, m) in msgs.iter().take(got).enumerate() {
        batch.push_raw(i, m.msg_len as usize);
    }
    Ok(got)
}

/// `sendmmsg(2)` of up to 64 packets, non-blocking.
#[allow(unsafe_code)]
fn sendmmsg(socket: &Socket, packets: &[(Ipv4Addr, &[u8])]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let packets = packets.get(..packets.len().min(64)).unwrap_or_default();
    let mut addrs: Vec<libc::sockaddr_in> = packets
        .iter()
        .map(|(peer, _)| {
            // SAFETY: sockaddr_in is a plain C struct; all-zero is valid.
            let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_addr.s_addr = u32::from(*peer).to_be();
            a
        })
        .collect();
    let mut iovecs: Vec<libc::iovec> = packets
        .iter()
        .map(|(_, data)| libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .zip(addrs.iter_mut())
        .map(|(iov, addr)| {
            // SAFETY: as above, all-zero is a valid mmsghdr.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(0);
    // SAFETY: every header points at a live sockaddr_in in `addrs` and a live iovec in
    // `iovecs`, which points at the caller's packet (only read by the kernel despite the
    // `*mut` the C type demands). All outlive the call. The fd is a valid open socket.
    let r = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(r).unwrap_or(0))
}

// ----- in-process -----

type Datagram = (Ipv4Addr, Vec<u8>);

/// An in-process "network" of GRE transports, one per address. Packets to an address nobody
/// holds are dropped (and counted); each receive queue is bounded and drops when full, like a
/// socket buffer.
#[derive(Debug, Clone, Default)]
pub struct InProcessNet {
    inner: Arc<Mutex<NetInner>>,
}

#[derive(Debug, Default)]
struct NetInner {
    hosts: HashMap<Ipv4Addr, mpsc::Sender<Datagram>>,
    dropped: u64,
}

impl InProcessNet {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport at `addr` with a receive queue of `queue` datagrams.
    pub fn bind(&self, addr: Ipv4Addr, queue: usize) -> InProcessTransport {
        let (tx, rx) = mpsc::channel(queue.max(1));
        if let Ok(mut inner) = self.inner.lock() {
            inner.hosts.insert(addr, tx);
        }
        InProcessTransport {
            net: self.clone(),
            local: addr,
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    /// Datagrams dropped (no such host, or its queue full).
    pub fn dropped(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.dropped)
    }
}

/// One host on an [`InProcessNet`].
#[derive(Debug)]
pub struct InProcessTransport {
    net: InProcessNet,
    local: Ipv4Addr,
    rx: tokio::sync::Mutex<mpsc::Receiver<Datagram>>,
}

impl GreTransport for InProcessTransport {
    fn local_addr(&self) -> Ipv4Addr {
        self.local
    }

    async fn send_to(&self, peer: Ipv4Addr, gre: &[u8]) -> io::Result<()> {
        let Ok(mut inner) = self.net.inner.lock() else {
            return Err(io::Error::other("in-process net poisoned"));
        };
        let delivered = inner
            .hosts
            .get(&peer)
            .is_some_and(|tx| tx.try_send((self.local, gre.to_vec())).is_ok());
        if !delivered {
            inner.dropped += 1;
        }
        Ok(())
    }

    async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.clear();
        let mut rx = self.rx.lock().await;
        let Some(first) = rx.recv().await else {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "net gone"));
        };
        let mut next = Some(first);
        let mut i = 0;
        while let Some((src, data)) = next.take() {
            let len = data.len().min(SLOT_LEN);
            if let (Some(slot), Some(src_bytes)) = (batch.slot_mut(i), data.get(..len)) {
                if let Some(dst) = slot.get_mut(..len) {
                    dst.copy_from_slice(src_bytes);
                }
                let start = i * SLOT_LEN;
                batch.entries.push((src, start..start + len));
            }
            i += 1;
            if i < batch.capacity {
                next = rx.try_recv().ok();
            }
        }
        Ok(batch.len())
    }
}

// ----- demultiplexing -----

/// Why a received datagram was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a valid PPTP GRE packet.
    #[error("malformed GRE: {0}")]
    Malformed(GreError),
    /// No call with this peer at all.
    #[error("unknown peer")]
    UnknownPeer,
    /// The peer is known but the Call ID is not one of its calls.
    #[error("unknown call ID")]
    UnknownCall,
}

/// Counters of the demultiplexer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Packets handed to a call.
    pub delivered: u64,
    /// Malformed GRE.
    pub malformed: u64,
    /// From a peer with no calls.
    pub unknown_peer: u64,
    /// From a known peer for a Call ID it does not have.
    pub unknown_call: u64,
}

/// Maps (peer address, our Call ID) to a call handle `H`. Everything else is dropped and
/// counted: "GRE from an unknown peer or for an unknown call ID is dropped and counted, never
/// delivered".
#[derive(Debug, Clone)]
pub struct GreDemux<H> {
    calls: HashMap<(Ipv4Addr, u16), H>,
    peers: HashMap<Ipv4Addr, usize>,
    stats: DemuxStats,
}

impl<H> Default for GreDemux<H> {
    fn default() -> Self {
        GreDemux {
            calls: HashMap::new(),
            peers: HashMap::new(),
            stats: DemuxStats::default(),
        }
    }
}

impl<H: Copy> GreDemux<H> {
    /// An empty demultiplexer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers call `call_id` (ours: the Key the peer sends) with `peer`.
    pub fn insert(&mut self, peer: Ipv4Addr, call_id: u16, handle: H) {
        if self.calls.insert((peer, call_id), handle).is_none() {
            *self.peers.entry(peer).or_default() += 1;
        }
    }

    /// Removes a call.
    pub fn remove(&mut self, peer: Ipv4Addr, call_id: u16) -> Option<H> {
        let h = self.calls.remove(&(peer, call_id))?;
        if let Some(n) = self.peers.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.peers.remove(&peer);
            }
        }
        Some(h)
    }

    /// Counters.
    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// Classifies one datagram: the call handle, the GRE header and the payload, or why it was
    /// dropped (counted).
    pub fn classify<'a>(
        &mut self,
        src: Ipv4Addr,
        gre: &'a [u8],
    ) -> Result<(H, GreRepr, &'a [u8]), DropReason> {
        let (repr, payload) = match GreRepr::parse_bytes(gre) {
            Ok(x) => x,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(DropReason::Malformed(e));
            }
        };
        match self.calls.get(&(src, repr.call_id)) {
            Some(h) => {
                self.stats.delivered += 1;
                Ok((*h, repr, payload))
            }
            None if self.peers.contains_key(&src) => {
                self.stats.unknown_call += 1;
                Err(DropReason::UnknownCall)
            }
            None => {
                self.stats.unknown_peer += 1;
                Err(DropReason::UnknownPeer)
            }
        }
    }
}

/// A `SocketAddr` for logs.
pub fn peer_label(peer: Ipv4Addr) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(peer, 0))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::pptp::gre::SeqNumber;

    fn packet(call_id: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        GreRepr::data(call_id, payload.len() as u16, SeqNumber(seq), None)
            .emit_with_payload(payload, &mut v);
        v
    }

    #[test]
    fn demux_filters_by_peer_and_call_id() {
        let a = Ipv4Addr::new(127, 0, 0, 1);
        let b = Ipv4Addr::new(127, 0, 0, 2);
        let mut d = GreDemux::new();
        d.insert(a, 10, 'x');
        assert_eq!(d.classify(a, &packet(10, 0, b"hi")).map(|r| r.0), Ok('x'));
        assert_eq!(
            d.classify(a, &packet(11, 0, b"hi")).map(|r| r.0),
            Err(DropReason::UnknownCall)
        );
        assert_eq!(
            d.classify(b, &packet(10, 0, b"hi")).map(|r| r.0),
            Err(DropReason::UnknownPeer)
        );
        assert!(matches!(
            d.classify(a, &[0x30]),
            Err(DropReason::Malformed(_))
        ));
        assert_eq!(
            d.stats(),
            DemuxStats {
                delivered: 1,
                malformed: 1,
                unknown_peer: 1,
                unknown_call: 1
            }
        );
        assert_eq!(d.remove(a, 10), Some('x'));
        assert_eq!(
            d.classify(a, &packet(10, 0, b"hi")).map(|r| r.0),
            Err(DropReason::UnknownPeer)
        );
    }

    #[tokio::test]
    async fn in_process_round_trip_and_drops() {
        let net = InProcessNet::new();
        let a = net.bind(Ipv4Addr::new(127, 0, 0, 1), 4);
        let b = net.bind(Ipv4Addr::new(127, 0, 0, 2), 4);
        for i in 0..6u32 {
            a.send_to(b.local_addr(), &packet(1, i, b"x"))
                .await
                .unwrap();
        }
        a.send_to(Ipv4Addr::new(127, 0, 0, 9), b"nobody")
            .await
            .unwrap();
        assert_eq!(net.dropped(), 3, "2 over the queue bound, 1 to nobody");
        let mut batch = RecvBatch::new(8);
        assert_eq!(b.recv_batch(&mut batch).await.unwrap(), 4);
        let (src, gre) = batch.get(3).unwrap();
        assert_eq!(src, a.local_addr());
        assert_eq!(GreRepr::parse_bytes(gre).unwrap().0.seq, Some(SeqNumber(3)));
    }

    #[test]
    fn raw_batch_slots_parse_ipv4() {
        let mut batch = RecvBatch::new(2);
        let gre = packet(5, 1, b"abc");
        let mut dgram = Vec::new();
        Ipv4Header::gre(
            Ipv4Addr::new(127, 0, 0, 3),
            Ipv4Addr::new(127, 0, 0, 2),
            gre.len() as u16,
        )
        .emit(&mut dgram);
        dgram.extend_from_slice(&gre);
        batch.slot_mut(1).unwrap()[..dgram.len()].copy_from_slice(&dgram);
        batch.push_raw(1, dgram.len());
        batch.push_raw(0, 3);
        assert_eq!(batch.malformed_ip, 1);
        assert_eq!(batch.get(0), Some((Ipv4Addr::new(127, 0, 0, 3), &gre[..])));
    }
}
