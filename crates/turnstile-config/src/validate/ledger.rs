//! The `ledger` section of a router worker, a Turnstile extension: the usage ledger's database
//! (`sqlite` or `postgresql`), how long a row may wait before it is committed, and how many
//! rows may wait in memory before they spill to disk.

use std::time::Duration;

use crate::cursor::{Keys, Node, VResult};
use crate::error::Problem;
use crate::load::resolve;
use crate::model::{LedgerConfig, LedgerStore, Secret};

const SQLITE: Keys = Keys {
    what: "an SQLite usage ledger",
    allowed: &["type", "path", "flush_interval", "buffer"],
    unsupported: &[],
};

const POSTGRESQL: Keys = Keys {
    what: "a PostgreSQL usage ledger",
    allowed: &["type", "dsn", "flush_interval", "buffer"],
    unsupported: &[],
};

/// The SQLite file when `path` is not given (in the node directory).
const DEFAULT_SQLITE_PATH: &str = "usage.sqlite";
/// The spill file of a PostgreSQL ledger (in the node directory).
const POSTGRESQL_SPILL_FILE: &str = "usage.spill";
/// The longest `flush_interval`, in seconds (one hour).
const MAX_FLUSH_INTERVAL_SECS: u64 = 3600;
/// The most rows `buffer` may hold in memory.
const MAX_BUFFER_ROWS: u64 = 10_000_000;

/// `workers[i].ledger`. Relative paths resolve against `base_dir` (the node directory).
pub(super) fn ledger(node: &Node, base_dir: &std::path::Path) -> VResult<LedgerConfig> {
    let (type_node, ty) = node.tagged("a usage ledger")?;
    let keys = match ty {
        "sqlite" => &SQLITE,
        "postgresql" => &POSTGRESQL,
        _ => return Err(type_node.invalid("\"sqlite\" or \"postgresql\"")),
    };
    let obj = node.object(keys)?;
    let flush_interval = obj.opt("flush_interval", 1, |n| {
        n.int_in(
            0,
            MAX_FLUSH_INTERVAL_SECS,
            &format!("an integer between 0 and {MAX_FLUSH_INTERVAL_SECS} (seconds)"),
        )
    })?;
    let buffer_rows = obj.opt("buffer", LedgerConfig::DEFAULT_BUFFER_ROWS as u64, |n| {
        n.int_in(
            1,
            MAX_BUFFER_ROWS,
            &format!("an integer between 1 and {MAX_BUFFER_ROWS} (rows held in memory)"),
        )
    })?;
    let (store, spill_file) = if ty == "sqlite" {
        let path = obj.opt("path", DEFAULT_SQLITE_PATH, |n| {
            n.non_empty_str("the SQLite database file")
        })?;
        let path = resolve(base_dir, path);
        let mut spill = path.clone().into_os_string();
        spill.push(".spill");
        (LedgerStore::Sqlite { path }, spill.into())
    } else {
        let dsn_node = obj.required(
            "dsn",
            "the PostgreSQL connection URL, \"postgresql://user:password@host:port/database\"",
        )?;
        let dsn = dsn_node.str("a PostgreSQL connection URL")?;
        if !(dsn.starts_with("postgresql://") || dsn.starts_with("postgres://")) {
            // The value may hold a password: it is not repeated in the message.
            return Err(dsn_node.fail(Problem::Invalid {
                found: "a string (not shown: it may hold a password)".to_owned(),
                expected: "a URL starting with \"postgresql://\" or \"postgres://\"".to_owned(),
            }));
        }
        let store = LedgerStore::Postgresql {
            dsn: Secret::new(dsn),
        };
        (store, base_dir.join(POSTGRESQL_SPILL_FILE))
    };
    Ok(LedgerConfig {
        store,
        flush_interval: Duration::from_secs(flush_interval),
        buffer_rows: buffer_rows as usize,
        spill_file,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::{load_str, Format, LedgerConfig, LedgerStore};

    fn load(ledgers: &[&str]) -> Result<crate::NodeConfig, String> {
        let workers: Vec<String> = ledgers
            .iter()
            .map(|l| format!(r#"{{"type": "router", "ledger": {l}}}"#))
            .collect();
        let text = format!(r#"{{"version": 2, "workers": [{}]}}"#, workers.join(","));
        load_str(&text, Format::Json, Path::new("/srv/node/config.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn sqlite_defaults_and_relative_path() {
        let config = load(&[r#"{"type": "sqlite"}"#]).unwrap();
        let ledger = config.ledger().unwrap();
        assert_eq!(
            ledger,
            &LedgerConfig {
                store: LedgerStore::Sqlite {
                    path: PathBuf::from("/srv/node/usage.sqlite")
                },
                flush_interval: std::time::Duration::from_secs(1),
                buffer_rows: LedgerConfig::DEFAULT_BUFFER_ROWS,
                spill_file: PathBuf::from("/srv/node/usage.sqlite.spill"),
            }
        );
        let config =
            load(&[r#"{"type": "sqlite", "path": "db/u.db", "flush_interval": 0, "buffer": 5}"#])
                .unwrap();
        let ledger = config.ledger().unwrap();
        assert_eq!(
            ledger.store,
            LedgerStore::Sqlite {
                path: PathBuf::from("/srv/node/db/u.db")
            }
        );
        assert_eq!(
            (ledger.flush_interval.as_secs(), ledger.buffer_rows),
            (0, 5)
        );
    }

    #[test]
    fn postgresql_needs_a_url_and_hides_it() {
        let config = load(&[r#"{"type": "postgresql", "dsn": "postgresql://u:pw@h/db"}"#]).unwrap();
        let ledger = config.ledger().unwrap();
        assert_eq!(ledger.spill_file, PathBuf::from("/srv/node/usage.spill"));
        assert!(!format!("{ledger:?}").contains("pw"), "the DSN is a secret");
        let e = load(&[r#"{"type": "postgresql", "dsn": "host=h password=pw"}"#]).unwrap_err();
        assert_eq!(
            e,
            "config error in /srv/node/config.json at workers[0].ledger.dsn: found a string (not \
             shown: it may hold a password), expected a URL starting with \"postgresql://\" or \
             \"postgres://\""
        );
        let e = load(&[r#"{"type": "postgresql"}"#]).unwrap_err();
        assert!(
            e.contains("at workers[0].ledger.dsn: missing required key"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                r#"{"type": "mysql"}"#,
                "at workers[0].ledger.type: found \"mysql\", expected \"sqlite\" or \"postgresql\"",
            ),
            (
                r#"{"type": "sqlite", "dsn": "postgresql://x"}"#,
                "at workers[0].ledger.dsn: unknown key, allowed keys here: type, path, \
                 flush_interval, buffer",
            ),
            (
                r#"{"type": "sqlite", "flush_interval": 3601}"#,
                "at workers[0].ledger.flush_interval: found 3601, expected an integer between 0 \
                 and 3600 (seconds)",
            ),
            (
                r#"{"type": "sqlite", "buffer": 0}"#,
                "at workers[0].ledger.buffer: found 0, expected an integer between 1 and \
                 10000000 (rows held in memory)",
            ),
            (
                r#"{"type": "sqlite", "path": ""}"#,
                "at workers[0].ledger.path: found \"\", expected a non-empty string (the SQLite \
                 database file)",
            ),
        ];
        for (ledger, expected) in cases {
            let e = load(&[ledger]).unwrap_err();
            assert!(e.ends_with(expected), "{ledger}: {e}");
        }
        let e = load(&[r#"{"type": "sqlite"}"#, r#"{"type": "sqlite"}"#]).unwrap_err();
        assert!(
            e.contains("at workers[1].ledger: found")
                && e.contains("also given at workers[0].ledger"),
            "{e}"
        );
    }
}
