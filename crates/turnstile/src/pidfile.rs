//! The node's PID file, `node.pid` in the node directory, as Crossbar.io writes it: a JSON
//! object whose `pid` is the router's process id (with `argv`, and Turnstile's `config`: the
//! configuration file the router reloads). `turnstile start` writes it and removes it when it
//! stops; `turnstile reload` reads it to find the router to signal.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

/// The file name, Crossbar's.
pub(crate) const PID_FILE: &str = "node.pid";

/// What a PID file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidInfo {
    pub pid: i32,
    /// The configuration file the router loaded (absent in Crossbar's own files).
    pub config: Option<PathBuf>,
}

/// Why there is no running router to signal.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PidError {
    /// No PID file.
    #[error("no router is running from node directory {} (no {PID_FILE} there)", .dir.display())]
    Missing { dir: PathBuf },
    /// The file cannot be read or is not a PID file.
    #[error("cannot read {}: {why}", .file.display())]
    Unreadable { file: PathBuf, why: String },
    /// The process it names is gone (the router did not stop cleanly).
    #[error(
        "no router is running from node directory {} (stale {PID_FILE}: process {pid} does not exist or is not turnstile)",
        .dir.display()
    )]
    Stale { dir: PathBuf, pid: i32 },
}

/// The PID file of a running router: removed when dropped (at stop), if it is still ours.
#[derive(Debug)]
pub(crate) struct PidFile {
    file: PathBuf,
}

impl PidFile {
    /// Writes `dir/node.pid` for this process, which loaded `config`. Fails if another router
    /// runs from `dir` (its PID file names a live turnstile process); a stale file is replaced.
    pub(crate) fn create(dir: &Path, config: &Path) -> Result<PidFile, String> {
        let file = dir.join(PID_FILE);
        match read(dir) {
            Ok(other) if other.pid as u32 != std::process::id() && is_running(other.pid) => {
                return Err(format!(
                    "a router is already running from node directory {} (PID {})",
                    dir.display(),
                    other.pid
                ));
            }
            _ => {}
        }
        let config = std::path::absolute(config).unwrap_or_else(|_| config.to_owned());
        let data = json!({
            "pid": std::process::id(),
            "argv": std::env::args().collect::<Vec<_>>(),
            "config": config,
        });
        let text = serde_json::to_string_pretty(&data).unwrap_or_default() + "\n";
        std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(PidFile { file })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a second router may have replaced a file it found stale.
        let dir = self.file.parent().unwrap_or(Path::new("."));
        if read(dir).is_ok_and(|p| p.pid as u32 == std::process::id()) {
            let _ = std::fs::remove_file(&self.file);
        }
    }
}

/// Reads `dir/node.pid`.
pub(crate) fn read(dir: &Path) -> Result<PidInfo, PidError> {
    let file = dir.join(PID_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PidError::Missing {
                dir: dir.to_owned(),
            })
        }
        Err(e) => {
            return Err(PidError::Unreadable {
                file,
                why: e.to_string(),
            })
        }
    };
    let unreadable = |why: &str| PidError::Unreadable {
        file: file.clone(),
        why: why.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| unreadable(&e.to_string()))?;
    let pid = value
        .get("pid")
        .and_then(serde_json::Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| unreadable("no positive integer \"pid\""))?;
    let config = value
        .get("config")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from);
    Ok(PidInfo { pid, config })
}

/// The running router of `dir`: its PID file, if the process it names is alive and turnstile.
pub(crate) fn running(dir: &Path) -> Result<PidInfo, PidError> {
    let info = read(dir)?;
    if is_running(info.pid) {
        Ok(info)
    } else {
        Err(PidError::Stale {
            dir: dir.to_owned(),
            pid: info.pid,
        })
    }
}

/// Sends SIGHUP to `pid`.
pub(crate) fn send_hangup(pid: i32) -> io::Result<()> {
    // SAFETY: kill has no memory effects; a wrong pid is reported as an error.
    if unsafe { libc::kill(pid, libc::SIGHUP) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `pid` is a live process running turnstile (so that a stale file whose PID was
/// reused by something else is not taken for a router, as Crossbar checks too).
fn is_running(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("turnstile"),
        // No /proc (not Linux): trust the process table.
        Err(_) => true,
    }
}
