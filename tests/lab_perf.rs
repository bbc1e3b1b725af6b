//! What a call costs the PAC and the PNS, measured on separate processes (`pptp-nas
//! softmodem`, `pptp-nas pac`, `pptp-nas pns` on raw GRE between two loopback addresses) with
//! `pptp-nas dial`'s library function as the clients in this process: peak RSS with 1 and with
//! N calls moving bulk data (MPPE-128 + MPPC), CPU time per relayed megabyte. (The setup time
//! per call comes from `pptp-nas lab`, which sees the PNS's events.)
//!
//! On demand (root, a few tens of seconds; numbers in docs/PERFORMANCE.md, Lab section):
//!
//!     cargo test --release --test lab_perf -- --ignored --nocapture

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pptp_nas::dial::{self, DialArgs};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pptp-nas")
}

/// (VmHWM KiB, utime + stime seconds) of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    (hwm, ticks / 100.0)
}

struct Run {
    call_mean: f64,
    call_max: f64,
    pac: (u64, f64),
    pns: (u64, f64),
    pac_idle: u64,
    pns_idle: u64,
    bulk_octets: u64,
}

fn run(n: usize, duration: Duration) -> Run {
    let pid = std::process::id();
    let (a, b) = (100 + (pid % 100) as u8, ((pid / 100) % 250) as u8 + 1);
    let (pac_ip, pns_ip) = (Ipv4Addr::new(127, a, b, 101), Ipv4Addr::new(127, a, b, 102));
    let dir = std::env::temp_dir().join(format!("pptp-nas-lab-perf-{pid}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut sm = Command::new(bin())
        .args([
            "softmodem",
            "--ring-interval",
            "200",
            "--caller-id",
            "5550000",
        ])
        .arg("--dir")
        .arg(&dir)
        .args(["--lines", &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(sm.stdout.take().unwrap());
    let _sm = Kill(sm);
    for _ in 0..n {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
    }
    let pns = Kill(
        Command::new(bin())
            .args(["pns", "--user", "alice:secret", "--responder"])
            .args(["--listen", &format!("{pns_ip}:1723")])
            .args(["--pool", "192.168.77.10-192.168.77.250"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let hw: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
    let mut yaml = format!(
        "pac: {{host_name: perf, hardware_dir: {}, local_address: {pac_ip}, status_socket: {}}}\n\
         pns:\n  - {{name: p, address: {pns_ip}, mode: incoming-call, reconnect_min_s: 1, reconnect_max_s: 1}}\n\
         default: {{pns: [p]}}\nlines:\n",
        hw.display(),
        dir.join("pac.sock").display()
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{id: l{i}, device: {}, type: modem, profile: softmodem, offer_on_ring: 2}}\n",
            dir.join(format!("nas{i}")).display()
        ));
    }
    std::fs::write(dir.join("pac.yaml"), yaml).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pac = Kill(
        Command::new(bin())
            .arg("pac")
            .arg("--config")
            .arg(dir.join("pac.yaml"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Modems initialised, control connection up.
    std::thread::sleep(Duration::from_secs(3));
    let (pac_idle, pac_cpu0) = usage(pac.0.id());
    let (pns_idle, pns_cpu0) = usage(pns.0.id());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reports = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let mut init = dial::script::default_init();
            init.push("ATS12=10".into());
            let args = DialArgs {
                config: None,
                device: Some(dir.join(format!("client{i}"))),
                baud: None,
                rtscts: false,
                number: Some("5551234".into()),
                init,
                dial_command: None,
                dial_timeout: Some(30.0),
                user: Some("alice:secret".into()),
                auth: Some("mschapv2".into()),
                mppe: Some("128".into()),
                stateless: false,
                mppc: Some("on".into()),
                ping: Some(2),
                throughput: Some(duration.as_secs_f64()),
                connect_timeout: Some(30.0),
                tun: None,
                json: false,
            };
            let mut o = dial::options(&args).unwrap();
            o.script.guard = Duration::from_millis(300);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                let t = std::time::Instant::now();
                let r = dial::run(&o).await;
                (r, t.elapsed())
            }));
        }
        let mut r = Vec::new();
        for t in tasks {
            r.push(t.await.unwrap());
        }
        r
    });
    let (pac_hwm, pac_cpu1) = usage(pac.0.id());
    let (pns_hwm, pns_cpu1) = usage(pns.0.id());
    for (i, (r, _)) in reports.iter().enumerate() {
        assert_eq!(r.code, 0, "client {i}: {:?}", r.error);
        let l = r.link.as_ref().unwrap();
        assert_eq!(l.mppe_bits, 128);
        assert!(l.mppc);
    }
    // Whole call (dial, PPP, pings, throughput run, hang-up); the setup time per call is what
    // `pptp-nas lab` reports (dial start to the PNS's IPCP up, in one process).
    let calls: Vec<f64> = reports.iter().map(|(_, d)| d.as_secs_f64()).collect();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        call_mean: calls.iter().sum::<f64>() / n as f64,
        call_max: calls.iter().cloned().fold(0.0, f64::max),
        pac: (pac_hwm, pac_cpu1 - pac_cpu0),
        pns: (pns_hwm, pns_cpu1 - pns_cpu0),
        pac_idle,
        pns_idle,
        bulk_octets: reports
            .iter()
            .filter_map(|(r, _)| r.link.as_ref().and_then(|l| l.bulk).map(|b| b.0))
            .sum(),
    }
}

#[test]
#[ignore = "needs root (raw GRE) and ~1 min; numbers for docs/PERFORMANCE.md"]
fn pac_and_pns_cost_per_call() {
    let n = 50;
    let one = run(1, Duration::from_secs(10));
    let many = run(n, Duration::from_secs(10));
    for (name, r) in [("1 call", &one), ("50 calls", &many)] {
        let mb = r.bulk_octets as f64 / 1e6;
        eprintln!(
            "{name}: whole call mean {:.2} s max {:.2} s; PAC peak RSS {} KiB (idle {}), {:.2} s CPU; \
             PNS peak RSS {} KiB (idle {}), {:.2} s CPU; {:.2} MB of IP relayed: PAC {:.1} ms/MB, \
             PNS {:.1} ms/MB",
            r.call_mean,
            r.call_max,
            r.pac.0,
            r.pac_idle,
            r.pac.1,
            r.pns.0,
            r.pns_idle,
            r.pns.1,
            mb,
            r.pac.1 * 1000.0 / mb,
            r.pns.1 * 1000.0 / mb
        );
    }
    let per = |a: u64, b: u64| (b as f64 - a as f64) / (n - 1) as f64;
    eprintln!(
        "per call (peak RSS, {n} vs 1 calls): PAC {:.1} KiB, PNS {:.1} KiB",
        per(one.pac.0, many.pac.0),
        per(one.pns.0, many.pns.0)
    );
    assert!(many.bulk_octets > 0);
}
