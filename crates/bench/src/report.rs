//! Results: one [`RunReport`] per measured run, their [`Summaries`] (median and spread), the
//! [`ScenarioReport`] written as JSON, and the terminal table.

use serde::Serialize;

use crate::conn::Target;
use crate::stats::{Latency, Summary};
use crate::{Budget, Config, DrivenRuns, RunOutcome};

/// The router process measured.
#[derive(Debug, Clone, Serialize)]
pub struct RouterInfo {
    pub pid: Option<u32>,
    /// Its command name (`/proc/PID/comm`).
    pub name: Option<String>,
    /// `"listening port"` or `"--router-pid"`.
    pub found_by: Option<String>,
    pub warning: Option<String>,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub ops: u64,
    pub elapsed_s: f64,
    /// Operations per second.
    pub rate: f64,
    /// The router's CPU time (user + system) during the run.
    pub router_cpu_s: Option<f64>,
    /// Router CPU per operation, microseconds.
    pub router_cpu_us_per_op: Option<f64>,
    /// Router CPU per WAMP message it received or sent, microseconds.
    pub router_cpu_us_per_message: Option<f64>,
    /// Router CPU time / elapsed time: how many cores it kept busy.
    pub router_cpu_cores: Option<f64>,
    pub router_rss_kib: Option<u64>,
    pub latency: Option<Latency>,
    pub kib_per_session: Option<f64>,
}

impl RunReport {
    pub fn new(
        outcome: &RunOutcome,
        router_cpu: Option<std::time::Duration>,
        router_rss_kib: Option<u64>,
        messages_per_op: f64,
    ) -> RunReport {
        let elapsed = outcome.elapsed.as_secs_f64().max(1e-9);
        let ops = outcome.ops;
        let cpu = router_cpu.map(|d| d.as_secs_f64());
        let per_op = cpu.filter(|_| ops > 0).map(|c| c * 1e6 / ops as f64);
        let mut latencies = outcome.latencies_ns.clone();
        RunReport {
            ops,
            elapsed_s: elapsed,
            rate: ops as f64 / elapsed,
            router_cpu_s: cpu,
            router_cpu_us_per_op: per_op,
            router_cpu_us_per_message: per_op.map(|p| p / messages_per_op),
            router_cpu_cores: cpu.map(|c| c / elapsed),
            router_rss_kib,
            latency: Latency::from_nanos(&mut latencies),
            kib_per_session: outcome.kib_per_session,
        }
    }

    /// A one-line description for the progress output.
    pub fn describe(&self, op: &str) -> String {
        let ops = plural(op);
        let mut s = format!(
            "{} {ops} in {:.2} s: {} {ops}/s",
            thousands(self.ops as f64),
            self.elapsed_s,
            thousands(self.rate)
        );
        if let Some(c) = self.router_cpu_us_per_op {
            s += &format!(", router CPU {c:.2} µs/{op}");
        }
        if let Some(c) = self.router_cpu_cores {
            s += &format!(" ({c:.2} cores)");
        }
        if let Some(l) = &self.latency {
            s += &format!(", round trip p50 {:.0} µs p99 {:.0} µs", l.p50_us, l.p99_us);
        }
        if let Some(k) = self.kib_per_session {
            s += &format!(", {k:.1} KiB/session");
        }
        s
    }
}

/// Median and spread over the measured runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summaries {
    pub rate: Option<Summary>,
    pub router_cpu_us_per_op: Option<Summary>,
    pub router_cpu_us_per_message: Option<Summary>,
    pub router_cpu_cores: Option<Summary>,
    pub router_rss_kib: Option<Summary>,
    pub kib_per_session: Option<Summary>,
    /// Round trips of all measured runs together.
    pub latency: Option<Latency>,
}

/// The parameters a result depends on.
#[derive(Debug, Clone, Serialize)]
pub struct Parameters {
    pub count: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_s: f64,
    pub repeats: usize,
    pub subscribers: Option<usize>,
    pub window: Option<usize>,
    pub backlog: Option<u64>,
    pub sessions: Option<usize>,
}

/// Everything one invocation measured (the `--json` file).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub tool: String,
    pub scenario: crate::Scenario,
    pub url: String,
    pub transport: String,
    pub realm: String,
    pub serializer: String,
    pub parameters: Parameters,
    /// What one operation is: event, delivery, call or session.
    pub op: String,
    /// The unit of `rate`.
    pub unit: String,
    pub messages_per_op: f64,
    pub router: RouterInfo,
    pub summary: Summaries,
    pub runs: Vec<RunReport>,
}

pub(crate) fn build(
    cfg: &Config,
    target: &Target,
    router: RouterInfo,
    mut driven: DrivenRuns,
) -> ScenarioReport {
    use crate::Scenario::*;
    let summary = crate::summarize(&driven.runs, &mut driven.latencies_ns);
    let s = cfg.scenario;
    ScenarioReport {
        tool: format!("turnstile-bench {}", env!("CARGO_PKG_VERSION")),
        scenario: s,
        url: cfg.url.clone(),
        transport: match s {
            TcpBaseline => "tcp, no router".into(),
            _ => target.framing().into(),
        },
        realm: cfg.realm.clone(),
        serializer: cfg.serializer.name().into(),
        parameters: Parameters {
            count: match (s, cfg.budget) {
                (Sessions, _) => None,
                (_, Budget::Count(n)) => Some(n),
                _ => None,
            },
            duration_s: match (s, cfg.budget) {
                (Sessions, _) => None,
                (_, Budget::Time(d)) => Some(d.as_secs_f64()),
                _ => None,
            },
            warmup_s: cfg.warmup.as_secs_f64(),
            repeats: cfg.repeats,
            subscribers: (s == Fanout).then_some(cfg.subscribers),
            window: matches!(s, PubsubAck | RpcPar).then_some(cfg.window),
            backlog: matches!(s, Pubsub | PubsubAck | Fanout).then_some(cfg.backlog),
            sessions: (s == Sessions).then_some(cfg.sessions),
        },
        op: driven.op.into(),
        unit: format!("{}/s", plural(driven.op)),
        messages_per_op: driven.messages_per_op,
        router: router.clone(),
        summary,
        runs: driven.runs,
    }
}

/// `event` -> `events`, `delivery` -> `deliveries`.
pub fn plural(op: &str) -> String {
    match op.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{op}s"),
    }
}

/// `1234567.8` -> `1,234,568`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// The terminal table for some reports.
pub fn table(reports: &[ScenarioReport]) -> String {
    let header = [
        "scenario",
        "serializer",
        "transport",
        "runs",
        "rate (median)",
        "min … max",
        "router CPU µs/op",
        "router cores",
        "router RSS MiB",
        "p50/p90/p99 µs",
        "KiB/session",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in reports {
        let s = &r.summary;
        let name = match r.parameters.subscribers {
            Some(n) => format!("{} ({n} subs)", r.scenario_name()),
            None => r.scenario_name().to_owned(),
        };
        rows.push(vec![
            name,
            r.serializer.clone(),
            r.transport.clone(),
            r.runs.len().to_string(),
            s.rate
                .map(|x| format!("{} {}", thousands(x.median), r.unit))
                .unwrap_or_else(|| "-".into()),
            s.rate
                .map(|x| format!("{} … {}", thousands(x.min), thousands(x.max)))
                .unwrap_or_else(|| "-".into()),
            s.router_cpu_us_per_op
                .map(|x| format!("{:.2} /{}", x.median, r.op))
                .unwrap_or_else(|| "-".into()),
            opt(s.router_cpu_cores.map(|x| x.median), 2),
            opt(s.router_rss_kib.map(|x| x.median / 1024.0), 1),
            s.latency
                .map(|l| format!("{:.0}/{:.0}/{:.0}", l.p50_us, l.p90_us, l.p99_us))
                .unwrap_or_else(|| "-".into()),
            opt(s.kib_per_session.map(|x| x.median), 1),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w - cell.chars().count();
                if c >= 3 {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                }
            })
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out += &"-".repeat(total);
            out.push('\n');
        }
    }
    for r in reports {
        if let Some(w) = &r.router.warning {
            out += &format!("note: {w}\n");
        }
    }
    out
}

impl ScenarioReport {
    pub fn scenario_name(&self) -> &'static str {
        self.scenario.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural("event"), "events");
        assert_eq!(plural("delivery"), "deliveries");
        assert_eq!(plural("call"), "calls");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(thousands(f64::NAN), "-");
    }

    #[test]
    fn run_report_arithmetic() {
        let outcome = RunOutcome {
            ops: 1_000_000,
            elapsed: std::time::Duration::from_secs(2),
            latencies_ns: vec![1000, 2000, 3000],
            ..Default::default()
        };
        let r = RunReport::new(
            &outcome,
            Some(std::time::Duration::from_millis(1500)),
            Some(2048),
            2.0,
        );
        assert_eq!(r.rate, 500_000.0);
        assert!((r.router_cpu_us_per_op.unwrap() - 1.5).abs() < 1e-9);
        assert!((r.router_cpu_us_per_message.unwrap() - 0.75).abs() < 1e-9);
        assert!((r.router_cpu_cores.unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(r.latency.unwrap().p50_us, 2.0);
        let none = RunReport::new(&outcome, None, None, 2.0);
        assert!(none.router_cpu_us_per_op.is_none());
    }
}
