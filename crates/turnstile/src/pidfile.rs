//! The router's PID file: `node.pid` in the node directory (`--cbdir`), as Crossbar.io writes
//! it, or `FILE.pid` next to a `--config FILE` (one directory may hold several configurations,
//! each run by its own router). A JSON object whose `pid` is the router's process id (as in
//! Crossbar's), with `argv` and Turnstile's `config`: the file the router reloads.
//! `turnstile start` writes it and removes it when it stops; `turnstile reload` reads it to find
//! the router to signal.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

/// The file name in a node directory, Crossbar's.
pub(crate) const PID_FILE: &str = "node.pid";

/// The PID file of a router started with `--config file`: `file.pid`.
pub(crate) fn next_to(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

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
    #[error("no router is running from here: {} does not exist", .file.display())]
    Missing { file: PathBuf },
    /// The file cannot be read or is not a PID file.
    #[error("cannot read {}: {why}", .file.display())]
    Unreadable { file: PathBuf, why: String },
    /// The process it names is gone (the router did not stop cleanly).
    #[error(
        "no router is running from here: {} is stale (process {pid} does not exist or is not turnstile)",
        .file.display()
    )]
    Stale { file: PathBuf, pid: i32 },
}

/// Why `turnstile start` did not write its PID file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    /// Another router runs from the same place: starting a second one is refused.
    #[error("a router is already running from here (PID {pid}, {})", .file.display())]
    AlreadyRunning { file: PathBuf, pid: i32 },
    /// The file cannot be written (the router can run without it).
    #[error("cannot write {}: {source}", .file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The PID file of a running router: removed when dropped (at stop), if it is still ours.
#[derive(Debug)]
pub(crate) struct PidFile {
    file: PathBuf,
}

impl PidFile {
    /// Writes the PID file `file` for this process, which loaded `config`. Fails if another
    /// router runs from there (the file names a live turnstile process); a stale file is
    /// replaced.
    pub(crate) fn create(file: &Path, config: &Path) -> Result<PidFile, CreateError> {
        if let Ok(other) = read(file) {
            if other.pid as u32 != std::process::id() && is_running(other.pid) {
                return Err(CreateError::AlreadyRunning {
                    file: file.to_owned(),
                    pid: other.pid,
                });
            }
        }
        let config = std::path::absolute(config).unwrap_or_else(|_| config.to_owned());
        let data = json!({
            "pid": std::process::id(),
            "argv": std::env::args().collect::<Vec<_>>(),
            "config": config,
        });
        let text = serde_json::to_string_pretty(&data).unwrap_or_default() + "\n";
        std::fs::write(file, text).map_err(|source| CreateError::Write {
            file: file.to_owned(),
            source,
        })?;
        Ok(PidFile {
            file: file.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a second router may have replaced a file it found stale.
        if read(&self.file).is_ok_and(|p| p.pid as u32 == std::process::id()) {
            let _ = std::fs::remove_file(&self.file);
        }
    }
}

/// Reads the PID file `file`.
pub(crate) fn read(file: &Path) -> Result<PidInfo, PidError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PidError::Missing {
                file: file.to_owned(),
            })
        }
        Err(e) => {
            return Err(PidError::Unreadable {
                file: file.to_owned(),
                why: e.to_string(),
            })
        }
    };
    let unreadable = |why: &str| PidError::Unreadable {
        file: file.to_owned(),
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

/// The running router of the PID file `file`, if the process it names is alive and turnstile.
pub(crate) fn running(file: &Path) -> Result<PidInfo, PidError> {
    let info = read(file)?;
    if is_running(info.pid) {
        Ok(info)
    } else {
        Err(PidError::Stale {
            file: file.to_owned(),
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
