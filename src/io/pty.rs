//! Pseudo-terminal pairs for the soft-modem and for tests.
//!
//! A pair is opened with `tokio_serial::SerialStream::pair` (posix_openpt + grantpt + unlockpt,
//! no `unsafe` here). The slave side is made non-exclusive so another process (a terminal
//! program, pppd, the PAC) can open it by path; we keep our own slave descriptor open for the
//! pair's lifetime so the master never sees EIO while nobody else has the slave open.

use std::io;
use std::path::{Path, PathBuf};

use tokio_serial::{SerialPort, SerialStream};

/// One pty pair: the master (ours) and the slave (the device a program opens by `path`).
#[derive(Debug)]
pub struct PtyPair {
    /// The master side, read and written by the soft-modem.
    pub master: SerialStream,
    /// Our handle on the slave side (kept open; see the module documentation).
    pub slave: SerialStream,
    /// The slave's device path, e.g. `/dev/pts/7`.
    pub path: PathBuf,
}

/// Opens a new pty pair with a raw (cfmakeraw) slave.
pub fn pty_pair() -> io::Result<PtyPair> {
    // The slave is opened without TIOCEXCL or flock, so a program can open it by path (even
    // exclusively, as `open_serial` does) while we hold it.
    let (master, slave) = SerialStream::pair().map_err(io::Error::from)?;
    let path = slave
        .name()
        .map(PathBuf::from)
        .ok_or_else(|| io::Error::other("pty slave has no name"))?;
    Ok(PtyPair {
        master,
        slave,
        path,
    })
}

/// Creates (or replaces) the symlink `link` -> `target`. An existing non-symlink at `link` is
/// left alone and reported as an error.
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a symlink", link.display()),
            ))
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link)
}

/// Removes `link` if it is a symlink; anything else is left alone.
pub fn remove_symlink(link: &Path) {
    if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        let _ = std::fs::remove_file(link);
    }
}
