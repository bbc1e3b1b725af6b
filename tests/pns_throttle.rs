//! Process-level test of the PNS authentication throttle (issue 8): a minimal PAC built in the
//! test (sans-IO control core, PAC role) and a PPP client [`Session`] call `pptp-nas pns` over
//! loopback TCP and raw GRE with a wrong MS-CHAPv2 password, again and again at once. The 3rd,
//! 4th and 5th attempts must be answered later and later (the daemon holds its answer for the
//! exponential delay), the 5th locks the user out (the right password is then refused), and
//! after the (short, `--lockout 3`) lockout the right password succeeds. The daemon's log names
//! the lockout and never a password. Needs root or CAP_NET_RAW (raw GRE); without it the test
//! fails saying so (CI runs as root).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pptp_nas::io::gre_transport::{GreTransport, RawGreSocket, RecvBatch};
use pptp_nas::pns::session::Session;
use pptp_nas::ppp::auth::ClientCredentials;
use pptp_nas::ppp::engine::{Event as PppEvent, Policy};
use pptp_nas::ppp::lcp::AuthMethod;
use pptp_nas::pptp::control::{Config, Connection, CtrlState, Event, IncomingCall, Open, Role};
use pptp_nas::pptp::gre::{GreRepr, SeqNumber};
use pptp_nas::pptp::message::{BearerType, FramingType, TextField};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Per-process loopback addresses (PNS, PAC), so parallel test processes do not meet.
fn addrs() -> (Ipv4Addr, Ipv4Addr) {
    let pid = std::process::id();
    let a = 100 + (pid % 100) as u8;
    let b = ((pid / 100) % 250) as u8;
    (Ipv4Addr::new(127, a, b, 1), Ipv4Addr::new(127, a, b, 2))
}

/// One call with `password`: whether it authenticated, and how long the answer took: from the
/// client's (first) MS-CHAPv2 Response to the outcome.
/// (Not from CallUp: a first GRE packet that beats the ICCN to the daemon costs an LCP restart.)
async fn one_call(
    pns: Ipv4Addr,
    pac: Ipv4Addr,
    port: u16,
    password: &str,
    gre: &RawGreSocket,
    n: u16,
    status: Option<&std::path::Path>,
) -> (bool, Duration, Option<String>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((pac, 0))).unwrap();
    let mut tcp = sock
        .connect(SocketAddr::from((pns, port)))
        .await
        .expect("connect to pns");
    let mut cfg = Config::new(Role::Pac);
    cfg.first_call_id = 0x2000 + n;
    let t0 = Instant::now();
    let mut ctrl = Connection::new(cfg, Open::Active, t0);
    let mut out = Vec::new();
    let mut rbuf = vec![0u8; 4096];
    let mut batch = RecvBatch::new(32);
    let mut session: Option<(Session, u16, u16)> = None;
    let mut seq = 0u32;
    let mut requested = false;
    let mut last_tx = t0;
    let mut responded = false;
    let mut send_at = t0;
    let deadline = t0 + Duration::from_secs(20);
    loop {
        let now = Instant::now();
        assert!(now < deadline, "call {n} did not finish in time");
        if ctrl.state() == CtrlState::Established && !requested {
            requested = true;
            ctrl.incoming_call(
                now,
                IncomingCall {
                    bearer: BearerType::Analog,
                    physical_channel_id: 0,
                    dialed: TextField::new(b"100").unwrap(),
                    dialing: TextField::new(b"5550001").unwrap(),
                    subaddress: TextField::default(),
                },
            )
            .unwrap();
        }
        while let Some(ev) = ctrl.poll_event() {
            match ev {
                Event::AnswerCall { call_id } => {
                    ctrl.answer_connected(now, call_id, 33_600, FramingType::Async)
                        .unwrap();
                }
                Event::CallUp(info) => {
                    let mut p = Policy::client(ClientCredentials::new("alice", password));
                    p.lcp.accept_auth = vec![AuthMethod::MsChapV2];
                    let mut s = Session::new(Arc::new(p), None, [n as u8; 32]);
                    s.open(now);
                    session = Some((s, info.call_id, info.peer_call_id));
                    // Give the daemon time to take the ICCN before our first GRE packet (it
                    // routes GRE per call only after the ICCN; a lost Configure-Request
                    // costs a 3 s LCP restart, which would blur the timing measured here).
                    send_at = now + Duration::from_millis(150);
                }
                Event::CallDown { .. } | Event::Closed(_) => return (false, now - last_tx, None),
                _ => {}
            }
        }
        while ctrl.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            tcp.write_all(&out).await.unwrap();
            out.clear();
        }
        if let Some((s, _, peer_id)) = session.as_mut() {
            while let Some(ev) = s.poll_event() {
                match ev {
                    PppEvent::IpUp(_) => {
                        // While the call is up: what `pptp-nas status --json` says.
                        let st = status.map(|p| query_status(p, true));
                        return (true, now - last_tx, st);
                    }
                    PppEvent::LinkDown(r) => {
                        eprintln!("call {n}: {r}");
                        return (false, now - last_tx, None);
                    }
                    _ => {}
                }
            }
            while let Some(frame) = (now >= send_at).then(|| s.poll_transmit()).flatten() {
                let g = GreRepr::data(*peer_id, frame.len() as u16, SeqNumber(seq), None);
                seq += 1;
                let mut pkt = Vec::new();
                g.emit_with_payload(&frame, &mut pkt);
                gre.send_to(pns, &pkt).await.unwrap();
                // CHAP (0xc223) Response (code 2), with or without address and control.
                let body = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(&frame);
                // The first one: the peer resends it on its own timer while the answer is held.
                if body.starts_with(&[0xc2, 0x23, 0x02]) && !responded {
                    responded = true;
                    last_tx = Instant::now();
                }
            }
        }
        let mut wake = Instant::now() + Duration::from_millis(20);
        if let Some(t) = session.as_ref().and_then(|s| s.0.poll_timeout()) {
            wake = wake.min(t);
        }
        tokio::select! {
            r = tcp.read(&mut rbuf) => {
                let n = r.unwrap();
                if n == 0 {
                    return (false, Instant::now() - last_tx, None);
                }
                ctrl.handle_bytes(Instant::now(), &rbuf[..n]);
            }
            r = gre.recv_batch(&mut batch) => {
                r.unwrap();
                let now = Instant::now();
                for (src, pkt) in batch.iter() {
                    let Ok((g, payload)) = GreRepr::parse_bytes(pkt) else { continue };
                    let Some((s, my_id, _)) = session.as_mut() else { continue };
                    if src != pns || g.call_id != *my_id || payload.is_empty() { continue; }
                    let _ = s.handle_frame(now, payload);
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                ctrl.handle_timeout(now);
                if let Some((s, _, _)) = session.as_mut() {
                    if s.poll_timeout().is_some_and(|t| t <= now) { s.handle_timeout(now); }
                }
            }
        }
    }
}

/// Runs `pptp-nas status --socket PATH [--json]`.
fn query_status(path: &std::path::Path, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pptp-nas"));
    cmd.args(["status", "--socket"]).arg(path);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "status: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_answered_later_and_later_then_locked_then_accepted() {
    let (pns, pac) = addrs();
    let gre = match RawGreSocket::bind(pac, false) {
        Ok(g) => g,
        Err(e) => panic!("raw socket: {e}: needs root or CAP_NET_RAW for raw GRE sockets; run the tests as root, as .ci/run does"),
    };
    let port = std::net::TcpListener::bind((pns, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!("pns_throttle_{}.log", std::process::id()));
    let sock = std::env::temp_dir().join(format!("pns_throttle_{}.sock", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
        .args([
            "pns",
            "--listen",
            &format!("{pns}:{port}"),
            "--user",
            "alice:Right-Pass",
            "--auth",
            "mschapv2",
            "--mppe",
            "none",
            "--mppc",
            "off",
            "--lockout",
            "3",
            "--status-socket",
        ])
        .arg(&sock)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _child = Kill(child);
    let t = Instant::now();
    while std::net::TcpStream::connect((pns, port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "pns did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut took = Vec::new();
    for i in 0..5u16 {
        let (ok, d, _) = one_call(pns, pac, port, "Wrong-Guess", &gre, i, None).await;
        assert!(!ok, "wrong password {i} refused");
        took.push(d);
    }
    // Default delays: none for the 1st and 2nd, then 1 s, 2 s, 4 s before the answer.
    let ms: Vec<u128> = took.iter().map(Duration::as_millis).collect();
    assert!(ms[0] < 800 && ms[1] < 800, "no delay at first: {ms:?} ms");
    assert!(ms[2] >= 800, "3rd answer held about 1 s: {ms:?} ms");
    assert!(ms[3] >= ms[2] + 700, "4th held longer (2 s): {ms:?} ms");
    assert!(ms[4] >= ms[3] + 1500, "5th held longer (4 s): {ms:?} ms");
    let locked_at = Instant::now();

    // Locked out: even the right password is refused, without delay.
    let (ok, d, _) = one_call(pns, pac, port, "Right-Pass", &gre, 10, None).await;
    assert!(!ok, "right password refused during the lockout");
    assert!(d < Duration::from_millis(800), "refused at once: {d:?}");

    // Status shows the throttle table: alice and our source locked out, no password.
    let text = query_status(&sock, false);
    assert!(text.contains("AUTH THROTTLE (lockouts=2"), "{text}");
    assert!(text.contains("user   alice"), "{text}");
    assert!(text.contains(&format!("source {pac}")), "{text}");
    let json = query_status(&sock, true);
    assert!(json.contains("\"failures\": 6"), "{json}");
    assert!(json.contains("\"locked_s\": "), "{json}");
    for out in [&text, &json] {
        assert!(
            !out.contains("Wrong-Guess") && !out.contains("Right-Pass"),
            "{out}"
        );
    }

    // After the 3 s lockout the right password works.
    tokio::time::sleep(
        (locked_at + Duration::from_millis(3300)).saturating_duration_since(Instant::now()),
    )
    .await;
    let (ok, _, st) = one_call(pns, pac, port, "Right-Pass", &gre, 11, Some(&sock)).await;
    assert!(ok, "right password accepted after the lockout ({ms:?} ms)");
    // The live call in status: peer, user, authentication, address; the success cleared the
    // throttle records.
    let st = st.unwrap();
    assert!(st.contains(&format!("\"peer\": \"{pac}\"")), "{st}");
    assert!(st.contains("\"user\": \"alice\""), "{st}");
    assert!(st.contains("\"auth\": \"MsChapV2\""), "{st}");
    assert!(st.contains("\"ip\": \"192.168.77.10\""), "{st}");
    assert!(st.contains("\"throttle\": []"), "{st}");
    assert!(!st.contains("Right-Pass"), "{st}");

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("locked out"), "lockout logged: {text}");
    assert!(
        text.contains("authentication answer held"),
        "delay logged: {text}"
    );
    assert!(
        !text.contains("Wrong-Guess") && !text.contains("Right-Pass"),
        "no password in the log: {text}"
    );
}
