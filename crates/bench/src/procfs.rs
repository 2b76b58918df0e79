//! The router's CPU time and memory, from Linux's `/proc`: CPU time (user + system, all threads)
//! from `/proc/PID/stat`, resident memory from `/proc/PID/status`, and the process listening on
//! a TCP port, found through `/proc/net/tcp{,6}` (socket inode) and `/proc/*/fd` (which process
//! holds it).

use std::path::Path;
use std::time::Duration;

/// User and system CPU time of a process, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The second field (the command name) is in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`: utime and stime are fields 14 and 15.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let utime = fields.get(14 - 3)?.parse().ok()?;
    let stime = fields.get(15 - 3)?.parse().ok()?;
    Some((utime, stime))
}

/// `VmRSS` in KiB, from the text of `/proc/PID/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix("VmRSS:")?;
        let mut parts = value.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(n),
            _ => None,
        }
    })
}

/// The inodes of the sockets listening on TCP `port`, from the text of `/proc/net/tcp` or
/// `/proc/net/tcp6` (state `0A` is LISTEN; the local address is `HEXADDR:HEXPORT`).
pub fn parse_listening_inodes(net_tcp: &str, port: u16) -> Vec<u64> {
    net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (_, hex_port) = f[1].rsplit_once(':')?;
            if u16::from_str_radix(hex_port, 16).ok()? != port {
                return None;
            }
            f[9].parse().ok().filter(|&inode| inode != 0)
        })
        .collect()
}

/// The inode of a `socket:[N]` fd link target.
pub fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The processes that hold a socket listening on TCP `port` (IPv4 or IPv6), found by scanning
/// `/proc/*/fd`. Processes we may not look into are skipped.
pub fn pids_listening_on(port: u16) -> Vec<u32> {
    let mut inodes = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            inodes.extend(parse_listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut pids = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().and_then(parse_socket_link))
                .is_some_and(|inode| inodes.contains(&inode))
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// Clock ticks per second of `/proc/PID/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

/// One reading of a process's CPU time and resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User + system CPU time (all threads).
    pub cpu: Duration,
    pub rss_kib: u64,
}

/// Reads a process's CPU time and memory.
#[derive(Debug, Clone)]
pub struct Probe {
    pid: u32,
    ticks_per_second: u64,
}

impl Probe {
    /// A probe of `pid`; fails if the process cannot be read.
    pub fn new(pid: u32) -> anyhow::Result<Probe> {
        let probe = Probe {
            pid,
            ticks_per_second: clock_ticks_per_second(),
        };
        probe.sample()?;
        Ok(probe)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process's command name (`/proc/PID/comm`).
    pub fn name(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    pub fn sample(&self) -> anyhow::Result<Sample> {
        use anyhow::Context;
        let dir = Path::new("/proc").join(self.pid.to_string());
        let stat = std::fs::read_to_string(dir.join("stat")).with_context(|| {
            format!(
                "cannot read /proc/{}/stat (has the router exited?)",
                self.pid
            )
        })?;
        let (utime, stime) = parse_stat_cpu_ticks(&stat)
            .with_context(|| format!("cannot parse /proc/{}/stat", self.pid))?;
        let status = std::fs::read_to_string(dir.join("status"))
            .with_context(|| format!("cannot read /proc/{}/status", self.pid))?;
        let rss_kib = parse_status_rss_kib(&status)
            .with_context(|| format!("no VmRSS in /proc/{}/status", self.pid))?;
        let ticks = utime + stime;
        Ok(Sample {
            cpu: Duration::from_secs_f64(ticks as f64 / self.ticks_per_second as f64),
            rss_kib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks() {
        let stat = "24539 (crossbar-worker) S 24522 24522 24522 0 -1 4194560 39011 0 0 0 \
                    1234 567 0 0 20 0 3 0 1866 480231424 21412 18446744073709551615 1 1 0 0 0 0 \
                    0 16781312 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((1234, 567)));
        // A command name with spaces and parentheses.
        let stat = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 42 8 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((42, 8)));
        assert_eq!(parse_stat_cpu_ticks("7 (x) R 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_rss() {
        let status =
            "Name:\tturnstile\nVmPeak:\t  123456 kB\nVmRSS:\t   20480 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_status_rss_kib(status), Some(20480));
        assert_eq!(parse_status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn listening_inodes() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98765 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98766 1 0000000000000000 100 0 0 10 0\n\
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 55555 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(parse_listening_inodes(tcp, 8080), vec![98765]);
        assert_eq!(parse_listening_inodes(tcp, 8081), vec![98766]);
        assert!(parse_listening_inodes(tcp, 9999).is_empty());
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(parse_listening_inodes(tcp6, 8080), vec![4242]);
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[98765]"), Some(98765));
        assert_eq!(parse_socket_link("pipe:[1]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }

    #[test]
    fn finds_our_own_listener_and_reads_ourselves() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pids_listening_on(port), vec![std::process::id()]);
        let probe = Probe::new(std::process::id()).unwrap();
        let s = probe.sample().unwrap();
        assert!(s.rss_kib > 0);
        assert!(clock_ticks_per_second() > 0);
    }
}
