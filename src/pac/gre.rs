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

use crate::io::gre_transport::{GreTransport, RawGreSocket, RecvBatch};

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

/// Packets handed to `sendmmsg(2)` at most per call, and received per `recvmmsg(2)`.
const BATCH: usize = 64;
/// Size of the buffer received packets are carved from.
const RX_POOL: usize = 256 * 1024;

/// Opens a raw IPv4 GRE socket bound to `local` (or any address) and returns the channel the
/// PAC uses. Received packets whose source is not in `peers` are dropped (a raw socket sees
/// every GRE packet for the host). Needs CAP_NET_RAW. The two relay tasks end when the
/// channel's other halves are dropped.
///
/// Both directions are batched ([`RawGreSocket`]): the sender takes every packet queued (up
/// to 64) and hands them to one `sendmmsg(2)`; the receiver takes every datagram ready with
/// one `recvmmsg(2)` and carves the packets out of a large buffer (a reference count per
/// packet, no allocation).
pub fn raw(local: Option<Ipv4Addr>, peers: Vec<Ipv4Addr>) -> io::Result<GreChannel> {
    let sock = std::sync::Arc::new(RawGreSocket::bind(
        local.unwrap_or(Ipv4Addr::UNSPECIFIED),
        true,
    )?);
    let (out_tx, mut out_rx) = mpsc::channel::<GreDatagram>(1024);
    let (in_tx, in_rx) = mpsc::channel::<GreDatagram>(1024);
    let send_sock = sock.clone();
    tokio::spawn(async move {
        let mut queue: Vec<GreDatagram> = Vec::with_capacity(BATCH);
        loop {
            match out_rx.recv().await {
                Some(d) => queue.push(d),
                None => return,
            }
            while queue.len() < BATCH {
                match out_rx.try_recv() {
                    Ok(d) => queue.push(d),
                    Err(_) => break,
                }
            }
            let mut done = 0;
            while done < queue.len() {
                let rest = queue.get(done..).unwrap_or_default();
                let batch: Vec<(Ipv4Addr, &[u8])> =
                    rest.iter().map(|d| (d.peer, &d.packet[..])).collect();
                match send_sock.send_batch(&batch).await {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) => {
                        // The first packet failed (e.g. no route): skip it, send the rest.
                        tracing::debug!(error = %e, peer = %queue.get(done).map_or(Ipv4Addr::UNSPECIFIED, |d| d.peer), "gre send failed");
                        done += 1;
                    }
                }
            }
            queue.clear();
        }
    });
    tokio::spawn(async move {
        let mut batch = RecvBatch::new(BATCH);
        let mut pool = BytesMut::with_capacity(RX_POOL);
        let me = sock.local_addr();
        loop {
            if let Err(e) = sock.recv_batch(&mut batch).await {
                tracing::debug!(error = %e, "gre receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            for (src, gre) in batch.iter() {
                if !peers.contains(&src) {
                    continue;
                }
                if pool.capacity() - pool.len() < gre.len() {
                    pool = BytesMut::with_capacity(RX_POOL.max(gre.len()));
                }
                pool.extend_from_slice(gre);
                let d = GreDatagram {
                    peer: src,
                    local: me,
                    packet: pool.split().freeze(),
                };
                if in_tx.send(d).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(GreChannel {
        tx: out_tx,
        rx: in_rx,
    })
}
