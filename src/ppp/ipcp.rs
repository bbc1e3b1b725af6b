//! IPCP (RFC 1332) with the DNS extensions of RFC 1877: IP-Address, primary and secondary
//! DNS. The server assigns the peer an address (taken by the shell from an [`Ipv4Pool`]);
//! the client asks with 0.0.0.0 and takes the Nak'ed address. IP-Compression-Protocol (VJ)
//! is not implemented, so it is rejected.

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

use super::fsm::{BadOptions, Negotiator, Reply};
use super::packet::{EmitOption, IpcpOption, IpcpOptionType, Options};

/// IPCP policy for one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcpConfig {
    /// Our address (0.0.0.0: ask the peer to assign one).
    pub local: Option<Ipv4Addr>,
    /// The address we assign to the peer (server role); `None` accepts the peer's choice.
    pub assign_peer: Option<Ipv4Addr>,
    /// DNS servers we hand out when asked (server role).
    pub dns: [Option<Ipv4Addr>; 2],
    /// Ask the peer for DNS servers (client role).
    pub request_dns: bool,
}

/// The outcome of IPCP, meaningful once Opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcpResult {
    /// Our address.
    pub local: Ipv4Addr,
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// Primary and secondary DNS (client role: as assigned; server role: as handed out).
    pub dns: [Option<Ipv4Addr>; 2],
}

/// The IPCP option half of the automaton.
#[derive(Debug)]
pub struct IpcpNegotiator {
    config: IpcpConfig,
    want_local: Option<Ipv4Addr>,
    want_dns: [Option<Ipv4Addr>; 2],
    peer_addr: Ipv4Addr,
    acked_local: Ipv4Addr,
    acked_dns: [Option<Ipv4Addr>; 2],
    given_dns: [Option<Ipv4Addr>; 2],
}

const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

impl IpcpNegotiator {
    /// A negotiator for `config`.
    pub fn new(config: IpcpConfig) -> Self {
        let mut n = IpcpNegotiator {
            config,
            want_local: None,
            want_dns: [None; 2],
            peer_addr: UNSPECIFIED,
            acked_local: UNSPECIFIED,
            acked_dns: [None; 2],
            given_dns: [None; 2],
        };
        n.restart();
        n
    }

    /// The addresses agreed.
    pub fn result(&self) -> IpcpResult {
        let dns = if self.config.request_dns {
            self.acked_dns
        } else {
            self.given_dns
        };
        IpcpResult {
            local: self.acked_local,
            peer: self.peer_addr,
            dns,
        }
    }
}

fn put(out: &mut Vec<u8>, opt: &impl EmitOption) {
    if let Ok(bytes) = opt.to_vec() {
        out.extend_from_slice(&bytes);
    }
}

impl Negotiator for IpcpNegotiator {
    const NAME: &'static str = "IPCP";

    fn restart(&mut self) {
        self.want_local = Some(self.config.local.unwrap_or(UNSPECIFIED));
        self.want_dns = if self.config.request_dns {
            [Some(UNSPECIFIED); 2]
        } else {
            [None; 2]
        };
        self.peer_addr = UNSPECIFIED;
        self.acked_local = UNSPECIFIED;
        self.acked_dns = [None; 2];
        self.given_dns = [None; 2];
    }

    fn own_request(&mut self, out: &mut Vec<u8>) {
        if let Some(a) = self.want_local {
            put(out, &IpcpOption::IpAddress(a));
        }
        if let Some(a) = self.want_dns[0] {
            put(out, &IpcpOption::PrimaryDns(a));
        }
        if let Some(a) = self.want_dns[1] {
            put(out, &IpcpOption::SecondaryDns(a));
        }
    }

    fn own_acked(&mut self, _options: &[u8]) {
        self.acked_local = self.want_local.unwrap_or(UNSPECIFIED);
        self.acked_dns = self.want_dns;
    }

    fn own_nacked(&mut self, options: &[u8], rejected: bool) -> Result<(), BadOptions> {
        let options = Options::parse(options).map_err(|_| BadOptions)?;
        for raw in options.iter() {
            let kind = IpcpOptionType::from(raw.kind);
            if rejected {
                match kind {
                    IpcpOptionType::IpAddress if self.want_local.is_some() => {
                        self.want_local = None
                    }
                    IpcpOptionType::PrimaryDns if self.want_dns[0].is_some() => {
                        self.want_dns[0] = None
                    }
                    IpcpOptionType::SecondaryDns if self.want_dns[1].is_some() => {
                        self.want_dns[1] = None
                    }
                    _ => return Err(BadOptions),
                }
                continue;
            }
            match IpcpOption::parse(raw) {
                // RFC 1332 3.3: a Nak of IP-Address carries the address the peer wants us
                // to use; a client with no address of its own takes it.
                Ok(IpcpOption::IpAddress(a))
                    if a != UNSPECIFIED
                        && (self.config.local.is_none()
                            || self.want_local == Some(UNSPECIFIED)) =>
                {
                    self.want_local = Some(a);
                }
                Ok(IpcpOption::PrimaryDns(a)) if self.config.request_dns => {
                    self.want_dns[0] = Some(a)
                }
                Ok(IpcpOption::SecondaryDns(a)) if self.config.request_dns => {
                    self.want_dns[1] = Some(a)
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn peer_request(&mut self, options: &[u8], reply: &mut Reply) -> Result<(), BadOptions> {
        let options = Options::parse(options).map_err(|_| BadOptions)?;
        let mut saw_address = false;
        let mut seen = [false; 256];
        let mut given = [None; 2];
        let mut peer_addr = UNSPECIFIED;
        for raw in options.iter() {
            let slot = seen.get_mut(usize::from(raw.kind));
            if slot.as_deref() == Some(&true) {
                reply.reject(raw.kind, raw.data);
                continue;
            }
            if let Some(s) = slot {
                *s = true;
            }
            let Ok(opt) = IpcpOption::parse(raw) else {
                reply.reject(raw.kind, raw.data);
                continue;
            };
            match opt {
                IpcpOption::IpAddress(a) => {
                    saw_address = true;
                    match self.config.assign_peer {
                        Some(assigned) if a != assigned => {
                            reply.nak(raw.kind, raw.data, &assigned.octets())
                        }
                        None if a == UNSPECIFIED => {
                            // We have no address to give: the option cannot be agreed.
                            reply.reject(raw.kind, raw.data)
                        }
                        _ => peer_addr = a,
                    }
                }
                IpcpOption::PrimaryDns(a) | IpcpOption::SecondaryDns(a) => {
                    let i = usize::from(raw.kind == u8::from(IpcpOptionType::SecondaryDns));
                    match self.config.dns.get(i).copied().flatten() {
                        Some(ours) if ours != a => reply.nak(raw.kind, raw.data, &ours.octets()),
                        Some(ours) => {
                            if let Some(g) = given.get_mut(i) {
                                *g = Some(ours);
                            }
                        }
                        // RFC 1877: with no server to give, the option is rejected.
                        None => reply.reject(raw.kind, raw.data),
                    }
                }
                // IP-Compression-Protocol (VJ) is not implemented; IP-Addresses is
                // deprecated; NBNS not offered; unknown options: all rejected exactly.
                _ => reply.reject(raw.kind, raw.data),
            }
        }
        if !saw_address {
            if let Some(assigned) = self.config.assign_peer {
                // The peer did not ask for an address: offer the one it must use.
                reply.nak_missing(u8::from(IpcpOptionType::IpAddress), &assigned.octets());
            }
        }
        self.peer_addr = peer_addr;
        self.given_dns = given;
        Ok(())
    }
}

/// A simple pool of IPv4 addresses for the server role: the shell takes one per call.
#[derive(Debug, Clone)]
pub struct Ipv4Pool {
    first: u32,
    size: u32,
    used: Vec<bool>,
}

impl Ipv4Pool {
    /// A pool of `size` consecutive addresses from `first`.
    pub fn new(first: Ipv4Addr, size: u32) -> Self {
        Ipv4Pool {
            first: u32::from(first),
            size,
            used: vec![false; usize::try_from(size).unwrap_or(0)],
        }
    }

    /// Takes a free address.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let i = self.used.iter().position(|u| !u)?;
        if let Some(u) = self.used.get_mut(i) {
            *u = true;
        }
        let i = u32::try_from(i).ok()?;
        Some(Ipv4Addr::from(self.first.wrapping_add(i)))
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, addr: Ipv4Addr) {
        let i = u32::from(addr).wrapping_sub(self.first);
        if i < self.size {
            if let Some(u) = usize::try_from(i).ok().and_then(|i| self.used.get_mut(i)) {
                *u = false;
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::super::fsm::{build_packet, Fsm, FsmConfig, CONFIGURE_REQUEST};
    use super::*;
    use std::time::Instant;

    fn server() -> IpcpConfig {
        IpcpConfig {
            local: Some(Ipv4Addr::new(10, 0, 0, 1)),
            assign_peer: Some(Ipv4Addr::new(10, 0, 0, 100)),
            dns: [Some(Ipv4Addr::new(10, 0, 0, 53)), None],
            request_dns: false,
        }
    }

    fn client() -> IpcpConfig {
        IpcpConfig {
            request_dns: true,
            ..IpcpConfig::default()
        }
    }

    fn pair(a: IpcpConfig, b: IpcpConfig) -> (Fsm<IpcpNegotiator>, Fsm<IpcpNegotiator>) {
        let now = Instant::now();
        let mut x = Fsm::new(IpcpNegotiator::new(a), FsmConfig::default());
        let mut y = Fsm::new(IpcpNegotiator::new(b), FsmConfig::default());
        for f in [&mut x, &mut y] {
            f.up(now);
            f.open(now);
        }
        for _ in 0..20 {
            while let Some(p) = x.poll_transmit() {
                let _ = y.handle_packet(now, &p);
            }
            while let Some(p) = y.poll_transmit() {
                let _ = x.handle_packet(now, &p);
            }
        }
        (x, y)
    }

    #[test]
    fn client_takes_assigned_address_and_dns() {
        let (s, c) = pair(server(), client());
        assert!(s.is_opened() && c.is_opened());
        let cr = c.negotiator().result();
        assert_eq!(cr.local, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(cr.peer, Ipv4Addr::new(10, 0, 0, 1));
        // Secondary DNS was rejected (none configured), primary assigned.
        assert_eq!(cr.dns, [Some(Ipv4Addr::new(10, 0, 0, 53)), None]);
        let sr = s.negotiator().result();
        assert_eq!(sr.peer, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(sr.local, Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn vj_compression_is_rejected_exactly() {
        let now = Instant::now();
        let mut s = Fsm::new(IpcpNegotiator::new(server()), FsmConfig::default());
        s.up(now);
        s.open(now);
        let _ = s.poll_transmit();
        // A pppd-style request: VJ (002d, max slot 15, comp slot 1), address 10.0.0.100.
        let opts = [2, 6, 0x00, 0x2d, 0x0f, 0x01, 3, 6, 10, 0, 0, 100];
        let _ = s.handle_packet(now, &build_packet(CONFIGURE_REQUEST, 1, &opts));
        let reply = s.poll_transmit().unwrap();
        assert_eq!(reply, build_packet(4, 1, &[2, 6, 0x00, 0x2d, 0x0f, 0x01]));
    }

    #[test]
    fn pool_allocates_and_releases() {
        let mut p = Ipv4Pool::new(Ipv4Addr::new(192, 0, 2, 10), 2);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11))
        );
        assert_eq!(p.allocate(), None);
        p.release(a);
        assert_eq!(p.allocate(), Some(a));
    }
}
