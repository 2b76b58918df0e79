//! `turnstile usage`: the ledger's rows grouped by session, principal, realm or period, printed
//! as a table, CSV or one JSON array. Sums are exact: they add up the cycles' counters, which
//! add up to what the clients sent and received.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Map, Value};
use turnstile_core::calendar::{civil_from_days, days_from_civil};

use super::LedgerRow;

pub use super::store::Filter;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// One line per session.
    Session,
    /// One line per authid.
    Authid,
    /// One line per authrole.
    Authrole,
    /// One line per realm.
    Realm,
    /// One line per hour (UTC) in which cycles started.
    Hour,
    /// One line per day (UTC).
    Day,
    /// One line per month (UTC).
    Month,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
}

/// The columns of a `--group-by session` report, in order.
const SESSION_COLUMNS: [&str; 13] = [
    "node",
    "realm",
    "session",
    "authid",
    "authrole",
    "cycles",
    "messages",
    "bytes",
    "rated_messages",
    "started",
    "ended",
    "complete",
    "ended_by",
];

/// The sums of every other grouping, after its key column.
const SUM_COLUMNS: [&str; 5] = ["sessions", "cycles", "messages", "bytes", "rated_messages"];

/// A report: its columns and one object per line (keys = columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The column names, in order.
    pub columns: Vec<&'static str>,
    /// The lines, each with every column as a key.
    pub lines: Vec<Map<String, Value>>,
}

/// Reads the rows `filter` selects from `ledger` (PostgreSQL on a runtime of its own: call
/// outside of one).
pub fn read(
    ledger: &turnstile_config::LedgerStore,
    filter: &Filter,
) -> Result<Vec<LedgerRow>, super::LedgerError> {
    match ledger {
        turnstile_config::LedgerStore::Sqlite { path } => super::store::read_sqlite(path, filter),
        turnstile_config::LedgerStore::Postgresql { dsn } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| super::LedgerError::Task(e.to_string()))?;
            runtime.block_on(super::store::read_postgresql(dsn.expose(), filter))
        }
    }
}

/// `--ledger`: `sqlite:PATH` or a `postgresql://` (`postgres://`) URL.
pub fn parse_ledger(text: &str) -> Result<turnstile_config::LedgerStore, String> {
    if let Some(path) = text.strip_prefix("sqlite:") {
        if path.is_empty() {
            return Err("sqlite: needs a path, e.g. sqlite:.crossbar/usage.sqlite".to_owned());
        }
        Ok(turnstile_config::LedgerStore::Sqlite { path: path.into() })
    } else if text.starts_with("postgresql://") || text.starts_with("postgres://") {
        Ok(turnstile_config::LedgerStore::Postgresql {
            dsn: turnstile_config::Secret::new(text),
        })
    } else {
        Err("expects sqlite:PATH or a postgresql:// URL".to_owned())
    }
}

/// Groups `rows` (sorted by node, realm, session and cycle, as the stores read them).
pub fn group(rows: &[LedgerRow], by: GroupBy) -> Report {
    match by {
        GroupBy::Session => by_session(rows),
        _ => by_key(rows, by),
    }
}

fn by_session(rows: &[LedgerRow]) -> Report {
    let mut lines = Vec::new();
    for session in
        rows.chunk_by(|a, b| (&a.node, &a.realm, a.session) == (&b.node, &b.realm, b.session))
    {
        let first = &session[0];
        let sum = |f: fn(&LedgerRow) -> u64| session.iter().map(f).sum::<u64>();
        let complete = session.iter().any(|r| r.last);
        let ended_by = session.iter().rev().find_map(|r| r.ended.clone());
        let end = session.iter().map(|r| r.started + r.duration).max();
        let ended = if complete || ended_by.is_some() {
            json!(end)
        } else {
            Value::Null
        };
        let line = json!({
            "node": first.node,
            "realm": first.realm,
            "session": first.session,
            "authid": first.authid,
            "authrole": first.authrole,
            "cycles": session.len(),
            "messages": sum(|r| r.messages),
            "bytes": sum(|r| r.bytes),
            "rated_messages": sum(|r| r.rated_messages),
            "started": session.iter().map(|r| r.started).min(),
            "ended": ended,
            "complete": complete,
            "ended_by": ended_by,
        });
        if let Value::Object(map) = line {
            lines.push(map);
        }
    }
    Report {
        columns: SESSION_COLUMNS.to_vec(),
        lines,
    }
}

#[derive(Default)]
struct Sums {
    sessions: BTreeSet<(String, String, u64)>,
    cycles: u64,
    messages: u64,
    bytes: u64,
    rated_messages: u64,
}

fn by_key(rows: &[LedgerRow], by: GroupBy) -> Report {
    let (column, key): (&'static str, fn(&LedgerRow) -> String) = match by {
        GroupBy::Authid => ("authid", |r| r.authid.clone()),
        GroupBy::Authrole => ("authrole", |r| r.authrole.clone()),
        GroupBy::Realm => ("realm", |r| r.realm.clone()),
        GroupBy::Hour => ("hour", |r| period(r.started, 13)),
        GroupBy::Day => ("day", |r| period(r.started, 10)),
        GroupBy::Month => ("month", |r| period(r.started, 7)),
        GroupBy::Session => unreachable!("grouped by by_session"),
    };
    let mut groups: BTreeMap<String, Sums> = BTreeMap::new();
    for r in rows {
        let g = groups.entry(key(r)).or_default();
        g.sessions
            .insert((r.node.clone(), r.realm.clone(), r.session));
        g.cycles += 1;
        g.messages += r.messages;
        g.bytes += r.bytes;
        g.rated_messages += r.rated_messages;
    }
    let lines = groups
        .into_iter()
        .filter_map(|(k, g)| {
            let mut line = json!({
                "sessions": g.sessions.len(),
                "cycles": g.cycles,
                "messages": g.messages,
                "bytes": g.bytes,
                "rated_messages": g.rated_messages,
            });
            line[column] = Value::String(k);
            match line {
                Value::Object(map) => Some(map),
                _ => None,
            }
        })
        .collect();
    let mut columns = vec![column];
    columns.extend(SUM_COLUMNS);
    Report { columns, lines }
}

/// The UTC period of `ns` as the first `len` characters of `YYYY-MM-DDTHH` (13: hour, 10: day,
/// 7: month).
fn period(ns: u64, len: usize) -> String {
    let secs = ns / 1_000_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let hour = (secs % 86_400) / 3600;
    let full = format!("{y:04}-{m:02}-{d:02}T{hour:02}");
    full[..len].to_owned()
}

/// Prints `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    let cell = |line: &Map<String, Value>, column: &str| match line.get(column) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match format {
        Format::Json => {
            let array = Value::Array(report.lines.iter().cloned().map(Value::Object).collect());
            format!("{array}\n")
        }
        Format::Csv => {
            let mut out = report.columns.join(",");
            out.push('\n');
            for line in &report.lines {
                let cells: Vec<String> = report
                    .columns
                    .iter()
                    .map(|c| csv_field(&cell(line, c)))
                    .collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            out
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = report
                .lines
                .iter()
                .map(|line| report.columns.iter().map(|c| cell(line, c)).collect())
                .collect();
            let widths: Vec<usize> = report
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|row| row[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut out = String::new();
            let mut row = |values: Vec<&str>| {
                let padded: Vec<String> = values
                    .iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect();
                let _ = writeln!(out, "{}", padded.join("  ").trim_end());
            };
            row(report.columns.clone());
            for line in &cells {
                row(line.iter().map(String::as_str).collect());
            }
            out
        }
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Parses `--since`/`--until`: an RFC 3339 time (`2026-12-03T10:00:00Z`,
/// `2026-12-03T11:00:00.5+01:00`) or a date (`2026-12-03`, its start in UTC), as ns since the
/// Unix epoch.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a time: expected an RFC 3339 time such as 2026-12-03T10:00:00Z or a \
             date such as 2026-12-03 (UTC)"
        )
    };
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    let days = days_from_civil(y, m as u32, d as u32);
    if civil_from_days(days) != (y, m as u32, d as u32) {
        return Err(bad());
    }
    let mut ns = i128::from(days) * 86_400 * 1_000_000_000;
    if let Some(time) = time {
        let (clock, offset_secs) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
            (t, 0i64)
        } else {
            let i = time.rfind(['+', '-']).ok_or_else(bad)?;
            let (t, off) = time.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let hm: Vec<&str> = off[1..].split(':').collect();
            let [h, mi] = hm.as_slice() else {
                return Err(bad());
            };
            (t, sign * (num(h)? * 3600 + num(mi)? * 60))
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((hms, frac)) => (hms, frac),
            None => (clock, ""),
        };
        let hms: Vec<&str> = hms.split(':').collect();
        let [h, mi, s] = hms.as_slice() else {
            return Err(bad());
        };
        let (h, mi, s) = (num(h)?, num(mi)?, num(s)?);
        if h > 23 || mi > 59 || s > 60 || frac.len() > 9 {
            return Err(bad());
        }
        let frac_ns = if frac.is_empty() {
            0
        } else {
            num(frac)? * 10i64.pow(9 - frac.len() as u32)
        };
        ns += i128::from((h * 3600 + mi * 60 + s - offset_secs) * 1_000_000_000 + frac_ns);
    }
    u64::try_from(ns).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(session: u64, cycle: u64, started: u64, last: bool) -> LedgerRow {
        LedgerRow {
            node: "n".into(),
            realm: "realm1".into(),
            session,
            cycle,
            authid: format!("a{}", session % 2),
            authrole: "anonymous".into(),
            authmethod: "anonymous".into(),
            serializer: "json".into(),
            transport: "websocket".into(),
            peer: "tcp4:127.0.0.1:1".into(),
            started,
            duration: 10,
            messages: 2,
            bytes: 100,
            rated_messages: 3,
            first: cycle == 1,
            last,
            ended: last.then(|| "goodbye".to_owned()),
        }
    }

    #[test]
    fn times_parse_as_utc_nanoseconds() {
        let day = 1_796_256_000_000_000_000; // 2026-12-03T00:00:00Z
        assert_eq!(parse_time("2026-12-03"), Ok(day));
        assert_eq!(parse_time("2026-12-03T00:00:00Z"), Ok(day));
        assert_eq!(
            parse_time("2026-12-03T01:00:00.5+01:00"),
            Ok(day + 500_000_000)
        );
        assert_eq!(
            parse_time("2026-12-02T23:00:00-01:00"),
            Ok(day),
            "negative offsets"
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-12-03T10:00",
            "1969-12-31",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(period(day + 3_600_000_000_000 * 5, 13), "2026-12-03T05");
        assert_eq!(period(day, 7), "2026-12");
    }

    #[test]
    fn sessions_and_groups_sum_exactly() {
        let rows = vec![
            row(1, 1, 100, false),
            row(1, 2, 110, true),
            row(2, 1, 200, false),
        ];
        let report = group(&rows, GroupBy::Session);
        assert_eq!(report.lines.len(), 2);
        let s1 = &report.lines[0];
        assert_eq!(
            (
                s1["cycles"].clone(),
                s1["bytes"].clone(),
                s1["ended"].clone()
            ),
            (json!(2), json!(200), json!(120))
        );
        assert_eq!(s1["complete"], json!(true));
        let s2 = &report.lines[1];
        assert_eq!(
            (s2["ended"].clone(), s2["complete"].clone()),
            (Value::Null, json!(false))
        );
        let by_authid = group(&rows, GroupBy::Authid);
        assert_eq!(by_authid.columns[0], "authid");
        assert_eq!(by_authid.lines[0]["authid"], json!("a0"));
        assert_eq!(by_authid.lines[1]["sessions"], json!(1));
        assert_eq!(by_authid.lines[1]["rated_messages"], json!(6));
        let csv = render(&group(&rows, GroupBy::Realm), Format::Csv);
        assert_eq!(
            csv,
            "realm,sessions,cycles,messages,bytes,rated_messages\nrealm1,2,3,6,300,9\n"
        );
        let table = render(&group(&rows, GroupBy::Realm), Format::Table);
        assert_eq!(
            table,
            "realm   sessions  cycles  messages  bytes  rated_messages\n\
             realm1  2         3       6         300    9\n"
        );
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
