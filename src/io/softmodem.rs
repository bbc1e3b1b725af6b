//! `pptp-nas softmodem`: linked pty pairs that behave like two Hayes modems on a phone line.
//!
//! Each line is two pty pairs joined by a [`LinePair`]: `DIR/clientN` is the device a dial-in
//! client (minicom, pppd, the lab's dialer) opens, `DIR/nasN` is the device the PAC's modem
//! control opens. One tokio task per line moves bytes between the two pty masters and the
//! sans-IO pair and keeps one timer armed to the pair's next deadline, so an idle line costs no
//! CPU: its task sleeps in two reads.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::pty::{pty_pair, remove_symlink, symlink, PtyPair};
use crate::modem::at::Personality;
use crate::modem::sim::{LinePair, Side, SimConfig};

/// Settings for a set of soft-modem lines.
#[derive(Debug, Clone)]
pub struct SoftmodemOptions {
    /// Where the `clientN` / `nasN` symlinks go.
    pub dir: PathBuf,
    /// How many lines.
    pub lines: usize,
    /// Line simulation for every line (its seed is varied per line).
    pub sim: SimConfig,
}

impl Default for SoftmodemOptions {
    fn default() -> Self {
        SoftmodemOptions {
            dir: PathBuf::from("/tmp/pptp-nas-softmodem"),
            lines: 1,
            sim: SimConfig::default(),
        }
    }
}

/// One running line.
#[derive(Debug)]
pub struct LineHandle {
    /// The client-side device symlink.
    pub client: PathBuf,
    /// The NAS-side device symlink.
    pub nas: PathBuf,
    drop: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Running soft-modem lines; dropping it stops them and removes the symlinks.
#[derive(Debug)]
pub struct Softmodem {
    lines: Vec<LineHandle>,
}

impl Softmodem {
    /// Creates the pty pairs and symlinks and starts one task per line.
    pub fn start(opts: &SoftmodemOptions) -> io::Result<Softmodem> {
        std::fs::create_dir_all(&opts.dir)?;
        let mut sm = Softmodem { lines: Vec::new() };
        for i in 0..opts.lines {
            let client = pty_pair()?;
            let nas = pty_pair()?;
            let client_link = opts.dir.join(format!("client{i}"));
            let nas_link = opts.dir.join(format!("nas{i}"));
            symlink(&client.path, &client_link)?;
            if let Err(e) = symlink(&nas.path, &nas_link) {
                remove_symlink(&client_link);
                return Err(e);
            }
            let mut sim = opts.sim.clone();
            sim.seed = sim
                .seed
                .wrapping_add(u64::try_from(i).unwrap_or(0).wrapping_mul(0x9e37_79b9));
            let drop = Arc::new(Notify::new());
            let span = tracing::info_span!("line", line = i, client = %client.path.display(), nas = %nas.path.display());
            let task = tokio::spawn(
                run_line(client, nas, LinePair::new(sim), drop.clone()).instrument(span),
            );
            sm.lines.push(LineHandle {
                client: client_link,
                nas: nas_link,
                drop,
                task,
            });
        }
        Ok(sm)
    }

    /// The running lines.
    pub fn lines(&self) -> &[LineHandle] {
        &self.lines
    }

    /// Drops carrier on one line (both ends see NO CARRIER).
    pub fn drop_carrier(&self, line: usize) {
        if let Some(l) = self.lines.get(line) {
            l.drop.notify_one();
        }
    }

    /// Drops carrier on every line.
    pub fn drop_all(&self) {
        for l in &self.lines {
            l.drop.notify_one();
        }
    }
}

impl Drop for Softmodem {
    fn drop(&mut self) {
        for l in &self.lines {
            l.task.abort();
            remove_symlink(&l.client);
            remove_symlink(&l.nas);
        }
    }
}

async fn run_line(client: PtyPair, nas: PtyPair, mut sim: LinePair, drop: Arc<Notify>) {
    if let Err(e) = line_loop(client, nas, &mut sim, &drop).await {
        tracing::warn!(error = %e, "soft-modem line stopped");
    }
}

async fn line_loop(
    client: PtyPair,
    nas: PtyPair,
    sim: &mut LinePair,
    drop: &Notify,
) -> io::Result<()> {
    // The slave handles stay alive in these bindings for as long as the loop runs.
    let PtyPair {
        master: mut cm,
        slave: _client_slave,
        ..
    } = client;
    let PtyPair {
        master: mut nm,
        slave: _nas_slave,
        ..
    } = nas;
    let mut cbuf = [0u8; 1024];
    let mut nbuf = [0u8; 1024];
    let mut was_connected = false;
    loop {
        while let Some(out) = sim.poll_dte(Side::Client) {
            cm.write_all(&out).await?;
        }
        while let Some(out) = sim.poll_dte(Side::Nas) {
            nm.write_all(&out).await?;
        }
        if sim.is_connected() != was_connected {
            was_connected = sim.is_connected();
            tracing::info!(connected = was_connected, stats = ?sim.stats(), "line state");
        }
        let deadline = sim.poll_timeout().map(Instant::from_std);
        let (c_ok, n_ok) = (sim.can_accept(Side::Client), sim.can_accept(Side::Nas));
        tokio::select! {
            r = cm.read(&mut cbuf), if c_ok => {
                let n = read_len(r)?;
                if n > 0 {
                    let (d, t) = utc_stamp(SystemTime::now());
                    sim.set_date_time(d, t);
                    sim.handle_dte(Side::Client, Instant::now().into_std(), cbuf.get(..n).unwrap_or_default());
                }
            }
            r = nm.read(&mut nbuf), if n_ok => {
                let n = read_len(r)?;
                if n > 0 {
                    sim.handle_dte(Side::Nas, Instant::now().into_std(), nbuf.get(..n).unwrap_or_default());
                }
            }
            () = sleep_until_opt(deadline) => {
                sim.handle_timeout(Instant::now().into_std());
            }
            () = drop.notified() => {
                tracing::info!("carrier drop requested");
                sim.drop_carrier(Instant::now().into_std());
            }
        }
    }
}

fn read_len(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Ok(n) => Ok(n),
        // EIO on a master whose slave is momentarily closed; we hold the slave, so rare.
        Err(e) if e.raw_os_error() == Some(5) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `MMDD` and `HHMM` (UTC) for caller-ID data.
pub fn utc_stamp(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        format!("{month:02}{day:02}"),
        format!("{:02}{:02}", rem / 3600, rem % 3600 / 60),
    )
}

/// Runs `pptp-nas softmodem` until Ctrl-C or SIGTERM; SIGUSR1 drops carrier on every line.
pub async fn run(opts: SoftmodemOptions) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let sm = Softmodem::start(&opts)?;
    for l in sm.lines() {
        println!("{} {}", l.client.display(), l.nas.display());
    }
    let personality = match opts.sim.personality {
        Personality::Analog => "analog",
        Personality::IsdnTa => "isdn",
    };
    tracing::info!(
        lines = opts.lines,
        speed = opts.sim.speed,
        personality,
        "soft-modem running"
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = usr1.recv() => sm.drop_all(),
        }
    }
    drop(sm);
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn utc_stamp_known_dates() {
        let at = |s: u64| utc_stamp(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), ("0101".into(), "0000".into()));
        // 2000-02-29 12:34 UTC
        assert_eq!(at(951_827_640), ("0229".into(), "1234".into()));
        // 2026-11-24 10:30 UTC
        assert_eq!(at(1_795_516_200), ("1124".into(), "1030".into()));
    }
}
