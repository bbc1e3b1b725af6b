//! End to end over real ptys: the soft-modem pair, a "client" typing AT commands on
//! DIR/client0, and our modem-control driver ([`ModemLine`]) on DIR/nas0.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pptp_nas::io::line::{open_serial, LineEvent, ModemLine};
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::control::{
    AnswerMode, ControlConfig, Direction, Event, Failure, Framing, HangupCause, HangupMethod,
};
use pptp_nas::modem::sim::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_serial::SerialStream;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pptp-nas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn softmodem(name: &str, sim: SimConfig) -> Softmodem {
    Softmodem::start(&SoftmodemOptions {
        dir: tempdir(name),
        lines: 1,
        sim,
    })
    .unwrap()
}

fn nas_config() -> ControlConfig {
    ControlConfig {
        init: vec!["AT&FE0V1Q0X4&C1&D2S0=0S7=2S12=10".into()],
        caller_id: Some("AT+VCID=1".into()),
        answer: AnswerMode::OnRing(1),
        hangup: HangupMethod::Dtr,
        guard: Duration::from_millis(300),
        command_timeout: Duration::from_secs(2),
        answer_timeout: Duration::from_secs(5),
        dial_timeout: Duration::from_secs(5),
        ..ControlConfig::default()
    }
}

/// Reads from the client device until `want` appears; returns everything read.
async fn expect(dev: &mut SerialStream, want: &str, within: Duration) -> String {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 512];
    loop {
        if String::from_utf8_lossy(&got).contains(want) {
            return String::from_utf8_lossy(&got).into_owned();
        }
        match tokio::time::timeout_at(deadline, dev.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "waiting for {want:?}: {other:?}, got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

async fn at(dev: &mut SerialStream, cmd: &str, want: &str) -> String {
    dev.write_all(cmd.as_bytes()).await.unwrap();
    dev.write_all(b"\r").await.unwrap();
    expect(dev, want, Duration::from_secs(3)).await
}

/// The next modem event from the NAS line (data is collected into `data`).
async fn next_event(
    nas: &mut ModemLine<SerialStream>,
    data: &mut Vec<u8>,
    within: Duration,
) -> Event {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, nas.next()).await {
            Ok(Ok(LineEvent::Modem(e))) => return e,
            Ok(Ok(LineEvent::Data(d))) => data.extend_from_slice(&d),
            other => panic!("no modem event: {other:?}"),
        }
    }
}

async fn nas_read_data(nas: &mut ModemLine<SerialStream>, n: usize) -> Vec<u8> {
    let mut data = Vec::new();
    while data.len() < n {
        match timeout(Duration::from_secs(5), nas.next()).await {
            Ok(Ok(LineEvent::Data(d))) => data.extend_from_slice(&d),
            other => panic!("expected data: {other:?}"),
        }
    }
    data
}

async fn client_read_exact(dev: &mut SerialStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    timeout(Duration::from_secs(5), dev.read_exact(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    // All 256 octet values, including 7E/7D/CR/LF/'+'.
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn setup(name: &str, sim: SimConfig) -> (Softmodem, SerialStream, ModemLine<SerialStream>) {
    let sm = softmodem(name, sim);
    let line = &sm.lines()[0];
    let mut client = open_serial(&line.client, 115_200, false).unwrap();
    let nas_dev = open_serial(&line.nas, 115_200, false).unwrap();
    let mut nas = ModemLine::new(nas_dev, nas_config());
    let mut data = Vec::new();
    assert_eq!(
        next_event(&mut nas, &mut data, Duration::from_secs(5)).await,
        Event::Ready
    );
    at(&mut client, "ATE0", "OK").await;
    at(&mut client, "ATS12=10", "OK").await;
    (sm, client, nas)
}

async fn call(client: &mut SerialStream, nas: &mut ModemLine<SerialStream>) {
    client.write_all(b"ATDT5551234\r").await.unwrap();
    let mut data = Vec::new();
    let ring = next_event(nas, &mut data, Duration::from_secs(5)).await;
    assert!(matches!(ring, Event::Ring { count: 1, .. }), "{ring:?}");
    match next_event(nas, &mut data, Duration::from_secs(5)).await {
        Event::Connected {
            info,
            caller,
            framing,
            direction,
        } => {
            assert_eq!(info.speed, Some(33_600));
            assert_eq!(caller.number.as_deref(), Some("5551234"));
            assert!(caller.date.is_some() && caller.time.is_some());
            assert_eq!(framing, Framing::Async);
            assert_eq!(direction, Direction::Incoming);
        }
        other => panic!("{other:?}"),
    }
    assert!(data.is_empty());
    expect(client, "CONNECT 33600\r\n", Duration::from_secs(3)).await;
}

#[tokio::test]
async fn call_data_and_hangups_over_ptys() {
    let (sm, mut client, mut nas) = setup(
        "call",
        SimConfig {
            caller_id: Some("5551234".into()),
            ..SimConfig::default()
        },
    )
    .await;
    assert!(PathBuf::from(&sm.lines()[0].client).exists());

    // Call 1: data both ways, unchanged; then the client hangs up (+++ with guard, ATH).
    call(&mut client, &mut nas).await;
    let up = pattern(1500, 1);
    client.write_all(&up).await.unwrap();
    assert_eq!(nas_read_data(&mut nas, up.len()).await, up);
    let down = pattern(1500, 7);
    nas.send_data(&down).await.unwrap();
    assert_eq!(client_read_exact(&mut client, down.len()).await, down);

    tokio::time::sleep(Duration::from_millis(300)).await;
    client.write_all(b"+++").await.unwrap();
    let got = expect(&mut client, "OK\r\n", Duration::from_secs(2)).await;
    assert_eq!(got, "\r\nOK\r\n");
    let t = Instant::now();
    client.write_all(b"ATH0\r").await.unwrap();
    let mut data = Vec::new();
    let ev = next_event(&mut nas, &mut data, Duration::from_secs(1)).await;
    assert_eq!(ev, Event::HungUp(HangupCause::CarrierLost));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    eprintln!("client hang-up seen by the NAS after {:?}", t.elapsed());
    // The +++ reached the NAS as data (a real modem sends it too); nothing else did.
    assert_eq!(data, b"+++");
    expect(&mut client, "OK", Duration::from_secs(2)).await;
    assert_eq!(
        next_event(&mut nas, &mut data, Duration::from_secs(3)).await,
        Event::Ready,
        "re-initialised after the call"
    );

    // Call 2: the NAS hangs up (no DTR on a pty: local mode, escape method).
    call(&mut client, &mut nas).await;
    let t = Instant::now();
    nas.hangup();
    assert_eq!(
        next_event(&mut nas, &mut data, Duration::from_secs(1)).await,
        Event::HungUp(HangupCause::Local)
    );
    // Drive the NAS line (its escape hang-up and re-init) while the client waits.
    let client_side = async {
        expect(&mut client, "NO CARRIER", Duration::from_secs(1)).await;
        t.elapsed()
    };
    let nas_side = next_event(&mut nas, &mut data, Duration::from_secs(3));
    let (elapsed, ev) = tokio::join!(client_side, nas_side);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    eprintln!("NAS hang-up seen by the client after {elapsed:?}");
    assert_eq!(ev, Event::Ready);
    assert!(nas.is_local());
    drop(sm);
}

#[tokio::test]
async fn busy_no_answer_no_carrier_paths() {
    let (_sm, mut client, mut nas) = setup("paths", SimConfig::default()).await;
    let mut data = Vec::new();
    // BUSY: the client's line is off hook.
    at(&mut client, "ATH1", "OK").await;
    nas.dial("5550000").unwrap();
    assert_eq!(
        next_event(&mut nas, &mut data, Duration::from_secs(3)).await,
        Event::CallFailed(Failure::Busy)
    );
    assert_eq!(
        next_event(&mut nas, &mut data, Duration::from_secs(3)).await,
        Event::Ready
    );
    // NO ANSWER: the client's modem rings but nobody answers within S7 (set to 1 s).
    at(&mut client, "ATH0", "OK").await;
    nas.dial("5550000").unwrap();
    let ev = next_event(&mut nas, &mut data, Duration::from_secs(4)).await;
    assert_eq!(ev, Event::CallFailed(Failure::NoAnswer));
    let _ = expect(&mut client, "RING", Duration::from_secs(1)).await;
}

#[tokio::test]
async fn guard_time_escape_and_throughput() {
    let (_sm, mut client, mut nas) = setup(
        "escape",
        SimConfig {
            caller_id: Some("5551234".into()),
            ..SimConfig::default()
        },
    )
    .await;
    call(&mut client, &mut nas).await;
    // "+++" inside data with no pause: no escape, everything is data.
    client.write_all(b"abc+++def").await.unwrap();
    assert_eq!(nas_read_data(&mut nas, 9).await, b"abc+++def");
    let mut buf = [0u8; 64];
    let r = timeout(Duration::from_millis(600), client.read(&mut buf)).await;
    assert!(r.is_err(), "no OK without guard times: {r:?}");

    // Throughput: 2 s worth at 33600 bit/s, measured at the NAS end.
    let total = 33_600 / 8 * 2;
    let payload = vec![0x55u8; total];
    let start = Instant::now();
    let (w, r) = tokio::join!(client.write_all(&payload), nas_read_data(&mut nas, total));
    w.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r.len(), total);
    let bps = (total * 8) as f64 / secs;
    eprintln!("throughput at 33600: {bps:.0} bit/s over {secs:.3} s");
    assert!((bps - 33_600.0).abs() / 33_600.0 < 0.05, "{bps}");

    // With the guard times: escape.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.write_all(b"+++").await.unwrap();
    expect(&mut client, "\r\nOK\r\n", Duration::from_secs(2)).await;
    at(&mut client, "ATO", "CONNECT 33600").await;
    client.write_all(b"back").await.unwrap();
    let got = nas_read_data(&mut nas, 7).await;
    assert_eq!(got, b"+++back");
}

#[tokio::test]
async fn isdn_ta_personality() {
    let sm = softmodem(
        "isdn",
        SimConfig {
            personality: pptp_nas::modem::at::Personality::IsdnTa,
            speed: 64_000,
            caller_id: Some("0301234".into()),
            ..SimConfig::default()
        },
    );
    let line = &sm.lines()[0];
    let mut client = open_serial(&line.client, 115_200, false).unwrap();
    let profile = pptp_nas::modem::profile::Profile::from_yaml(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/softmodem-isdn.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let cfg = profile.control_config();
    assert!(cfg.isdn);
    let mut nas = ModemLine::new(open_serial(&line.nas, 115_200, false).unwrap(), cfg);
    let mut data = Vec::new();
    assert_eq!(
        next_event(&mut nas, &mut data, Duration::from_secs(5)).await,
        Event::Ready
    );
    at(&mut client, "ATE0", "OK").await;
    client.write_all(b"ATD4711\r").await.unwrap();
    assert!(matches!(
        next_event(&mut nas, &mut data, Duration::from_secs(5)).await,
        Event::Ring { count: 1, .. }
    ));
    match next_event(&mut nas, &mut data, Duration::from_secs(5)).await {
        Event::Connected {
            info,
            caller,
            framing,
            ..
        } => {
            assert_eq!(framing, Framing::Sync);
            assert_eq!(info.speed, Some(64_000));
            assert_eq!(info.protocol.as_deref(), Some("X.75"));
            assert_eq!(caller.number.as_deref(), Some("0301234"));
            assert_eq!(caller.called.as_deref(), Some("4711"));
        }
        other => panic!("{other:?}"),
    }
    expect(&mut client, "CONNECT 64000/X.75", Duration::from_secs(2)).await;
}
