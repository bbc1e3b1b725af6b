//! How the PAC exchanges GRE packets: a pair of channels, whatever is at the other end.
//!
//! [`GreChannel`] is what [`Pac::start`](super::Pac::start) takes: `tx` carries packets the
//! PAC sends (GRE header + PPP frame, no IP header) with the PNS address, `rx` brings packets
//! received from PNS addresses. [`pair`] joins two channels back to back for in-process use
//! (tests, `pptp-nas lab`); [`raw`] connects a channel to a raw IPv4 protocol-47 socket (needs
//! CAP_NET_RAW) for the daemon.
//!
//! Packets are [`Bytes`]: the PAC carves them out of large reused buffers, so a packet costs a
//! reference count, not an allocation.

use std::io;
use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::pptp::Ipv4Header;

/// One GRE packet and the address at the other end (destination when sending, source when
/// received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreDatagram {
    /// The PNS address.
    pub peer: Ipv4Addr,
    /// The local address the packet was sent to (received packets; `UNSPECIFIED` if unknown).
    pub local: Ipv4Addr,
    /// GRE header and payload.
    pub packet: Bytes,
}

/// The PAC's side of a GRE transport.
#[derive(Debug)]
pub struct GreChannel {
    /// Packets to send.
    pub tx: mpsc::Sender<GreDatagram>,
    /// Packets received.
    pub rx: mpsc::Receiver<GreDatagram>,
}

/// Two channels back to back: what one sends the other receives. `capacity` packets may be in
/// flight each way; beyond that senders drop (like a full socket buffer).
pub fn pair(capacity: usize) -> (GreChannel, GreChannel) {
    let (a_tx, b_rx) = mpsc::channel(capacity.max(1));
    let (b_tx, a_rx) = mpsc::channel(capacity.max(1));
    (
        GreChannel { tx: a_tx, rx: a_rx },
        GreChannel { tx: b_tx, rx: b_rx },
    )
}

/// Opens a raw IPv4 GRE socket bound to `local` (or any address) and returns the channel the
/// PAC uses. Received packets whose source is not in `peers` are dropped (a raw socket sees
/// every GRE packet for the host). Needs CAP_NET_RAW. The two relay tasks end when the
/// channel's other halves are dropped.
pub fn raw(local: Option<Ipv4Addr>, peers: Vec<Ipv4Addr>) -> io::Result<GreChannel> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let sock = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(crate::pptp::gre::IP_PROTOCOL_GRE))),
    )?;
    sock.set_nonblocking(true)?;
    if let Some(a) = local {
        sock.bind(&SockAddr::from(std::net::SocketAddrV4::new(a, 0)))?;
    }
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    // `AsyncFd::new` is deprecated for types that might close their fd while registered; a
    // `socket2::Socket` owns its fd and keeps it until it is dropped together with the AsyncFd.
    #[allow(deprecated)]
    let fd = std::sync::Arc::new(tokio::io::unix::AsyncFd::new(sock)?);
    let (out_tx, mut out_rx) = mpsc::channel::<GreDatagram>(1024);
    let (in_tx, in_rx) = mpsc::channel::<GreDatagram>(1024);
    let send_fd = fd.clone();
    tokio::spawn(async move {
        while let Some(d) = out_rx.recv().await {
            let to = SockAddr::from(std::net::SocketAddrV4::new(d.peer, 0));
            loop {
                let Ok(mut guard) = send_fd.writable().await else {
                    return;
                };
                match guard.try_io(|s| s.get_ref().send_to(&d.packet, &to)) {
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, peer = %d.peer, "gre send failed");
                        break;
                    }
                    Err(_would_block) => continue,
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut pool = BytesMut::with_capacity(256 * 1024);
        loop {
            if pool.capacity() < 4096 {
                pool = BytesMut::with_capacity(256 * 1024);
            }
            pool.resize(pool.capacity().min(65_536), 0);
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            let n = match guard.try_io(|s| {
                use std::io::Read;
                let mut r: &Socket = s.get_ref();
                r.read(&mut pool)
            }) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "gre receive failed");
                    pool.clear();
                    continue;
                }
                Err(_would_block) => {
                    pool.clear();
                    continue;
                }
            };
            pool.truncate(n);
            let mut pkt = pool.split();
            let Ok((ip, rest)) = Ipv4Header::parse(&pkt) else {
                continue;
            };
            if !peers.contains(&ip.src) || local.is_some_and(|l| l != ip.dst) {
                continue;
            }
            let header = n - rest.len();
            let (src, dst) = (ip.src, ip.dst);
            let _ = pkt.split_to(header);
            let d = GreDatagram {
                peer: src,
                local: dst,
                packet: pkt.freeze(),
            };
            if in_tx.send(d).await.is_err() {
                return;
            }
        }
    });
    Ok(GreChannel {
        tx: out_tx,
        rx: in_rx,
    })
}
