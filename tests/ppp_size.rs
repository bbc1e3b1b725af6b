//! Measures the memory of one PPP engine (issue 3 target: <= 4 KiB per call without
//! compression state): the struct itself plus every live heap byte it owns after a full
//! MS-CHAPv2 + MPPE + IPCP negotiation, counted by a global allocator that wraps the system one.
//!
//! Run: `cargo test --test ppp_size -- --nocapture` (prints the numbers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pptp_nas::ppp::auth::{ClientCredentials, StaticCredentials};
use pptp_nas::ppp::ccp::MppeMode;
use pptp_nas::ppp::engine::{Engine, Policy};
use pptp_nas::ppp::ipcp::IpcpConfig;
use pptp_nas::ppp::lcp::AuthMethod;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only counts
// sizes, so the GlobalAlloc contract is the system allocator's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn engine_fits_in_4_kib() {
    let now = Instant::now();
    // Policies and the store are shared by every call (Arc), so they are built first.
    let mut server_policy = Policy::server(
        vec![AuthMethod::MsChapV2],
        IpcpConfig {
            local: Some(Ipv4Addr::new(10, 0, 0, 1)),
            assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
            dns: [Some(Ipv4Addr::new(10, 0, 0, 53)), None],
            request_dns: false,
        },
    );
    server_policy.ccp.mppe = MppeMode::Required;
    let server_policy = Arc::new(server_policy);
    let client_policy = Arc::new(Policy::client(ClientCredentials::new("alice", "pw")));
    let store = Arc::new(StaticCredentials::new().with_password("alice", "pw"));
    let mut client = Engine::new(client_policy, None, [1; 32]);
    client.open(now);

    let before = LIVE.load(Ordering::SeqCst);
    let mut server = Box::new(Engine::new(server_policy, Some(store), [2; 32]));
    server.open(now);
    for _ in 0..50 {
        while let Some(f) = client.poll_transmit() {
            let _ = server.handle_frame(now, &f);
        }
        while let Some(f) = server.poll_transmit() {
            let _ = client.handle_frame(now, &f);
        }
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
    }
    assert!(server.network_open() && client.network_open());
    let live = LIVE.load(Ordering::SeqCst) - before;
    let inline = std::mem::size_of::<Engine>();
    println!(
        "ppp engine (server, MS-CHAPv2 + MPPE-128 + IPCP, opened): size_of = {inline} B, \
         total live heap incl. the boxed struct = {live} B"
    );
    assert!(live > inline as isize, "the measurement saw the engine");
    assert!(live <= 4096, "engine uses {live} B");
}
