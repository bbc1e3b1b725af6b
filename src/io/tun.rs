//! IP delivery to a kernel TUN device (tokio driver over `tun-rs`).
//!
//! A PPP link's network layer can go to the built-in responder (src/responder.rs) or, with
//! `--tun NAME`, to a TUN interface: once IPCP is up the interface is created with the
//! negotiated point-to-point addresses (our address locally, the peer's as the destination,
//! so the kernel routes the peer's /32 into the interface) and an MTU derived from the peer's
//! MRU. Packets the kernel writes to the TUN go to `Session::send_ip`; IP the session hands
//! us is written to the TUN. Creating a TUN needs root or CAP_NET_ADMIN.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::net::Ipv4Addr;

/// Octets MPPE adds inside the PPP information field: the 2-octet coherency header and the
/// encrypted 2-octet protocol field (RFC 3078 section 3).
pub const MPPE_OVERHEAD: u16 = 4;

/// Smallest MTU we configure: RFC 791 "Every internet module must be able to forward a
/// datagram of 68 octets without further fragmentation."
pub const MIN_MTU: u16 = 68;

/// Errors of the TUN driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunError {
    /// The process may not create TUN interfaces.
    #[error("TUN {name}: TUN needs root or CAP_NET_ADMIN ({source})")]
    Permission {
        /// Interface name asked for.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Any other failure creating or configuring the interface.
    #[error("TUN {name}: {source}")]
    Setup {
        /// Interface name asked for.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The name is not a valid Linux interface name.
    #[error("TUN name {0:?}: 1 to 15 characters, no '/', ':' or whitespace")]
    BadName(String),
}

/// Checks a Linux interface name (IFNAMSIZ is 16 including the NUL); `%d` is allowed and
/// expanded by the kernel.
pub fn check_name(name: &str) -> Result<(), TunError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(TunError::BadName(name.to_string()))
    }
}

/// The MTU for a link whose peer accepts `peer_mru` octets of information field.
pub fn mtu_for(peer_mru: u16, mppe: bool) -> u16 {
    let overhead = if mppe { MPPE_OVERHEAD } else { 0 };
    peer_mru.saturating_sub(overhead).max(MIN_MTU)
}

/// One TUN interface carrying a PPP link's IPv4.
pub struct Tun {
    dev: tun_rs::AsyncDevice,
    name: String,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).finish()
    }
}

impl Tun {
    /// Creates (or attaches to) TUN `name` (`%d` picks the next free number), with `local`
    /// as its address, `peer` as the point-to-point destination and `mtu`, and brings it up.
    pub fn open(name: &str, local: Ipv4Addr, peer: Ipv4Addr, mtu: u16) -> Result<Tun, TunError> {
        check_name(name)?;
        let map = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::PermissionDenied
                || source.raw_os_error() == Some(1)
            {
                TunError::Permission {
                    name: name.to_string(),
                    source,
                }
            } else {
                TunError::Setup {
                    name: name.to_string(),
                    source,
                }
            }
        };
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .ipv4(local, 32u8, Some(peer))
            .build_async()
            .map_err(map)?;
        let actual = dev.name().unwrap_or_else(|_| name.to_string());
        Ok(Tun { dev, name: actual })
    }

    /// The interface name the kernel gave.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the next IP packet the kernel sends into the interface.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.dev.recv(buf).await
    }

    /// Hands one IP packet to the kernel without waiting (a full queue is an error).
    pub fn try_send(&self, pkt: &[u8]) -> std::io::Result<usize> {
        self.dev.try_send(pkt)
    }

    /// Hands one IP packet to the kernel (errors such as a full queue are the caller's to
    /// count; IP is lossy).
    pub async fn send(&self, pkt: &[u8]) -> std::io::Result<usize> {
        self.dev.send(pkt).await
    }
}

/// Waits on an optional TUN: pending forever when there is none, so that it can sit in a
/// `select!` next to the line.
pub async fn recv_opt(tun: Option<&Tun>, buf: &mut [u8]) -> std::io::Result<usize> {
    match tun {
        Some(t) => t.recv(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("pnt0").is_ok());
        assert!(check_name("ppp%d").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("0123456789abcdef").is_err());
        assert!(check_name("0123456789abcde").is_ok());
    }

    #[test]
    fn mtu() {
        assert_eq!(mtu_for(1500, false), 1500);
        assert_eq!(mtu_for(1500, true), 1496);
        assert_eq!(mtu_for(10, true), MIN_MTU);
    }
}
