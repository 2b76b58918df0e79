//! The ledger's databases: the table, and writing, recovering and reading rows in SQLite (on a
//! blocking thread) or PostgreSQL. Both stores hold the same table; the unique key
//! `(node, realm, session, cycle)` makes storing a row twice impossible
//! (`INSERT … ON CONFLICT DO NOTHING`), so a batch may be written again after any failure.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::OpenFlags;
use turnstile_config::LedgerStore;

use super::{LedgerError, LedgerRow};

/// The table of the SQLite ledger (and of PostgreSQL, with `BIGINT` and `BOOLEAN`).
const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_cycles (
    node TEXT NOT NULL, realm TEXT NOT NULL, session INTEGER NOT NULL, cycle INTEGER NOT NULL,
    authid TEXT NOT NULL, authrole TEXT NOT NULL, authmethod TEXT NOT NULL,
    serializer TEXT NOT NULL, transport TEXT NOT NULL, peer TEXT NOT NULL,
    started INTEGER NOT NULL, duration INTEGER NOT NULL,
    messages INTEGER NOT NULL, bytes INTEGER NOT NULL, rated_messages INTEGER NOT NULL,
    first BOOLEAN NOT NULL, last BOOLEAN NOT NULL, ended TEXT,
    PRIMARY KEY (node, realm, session, cycle)
);
CREATE INDEX IF NOT EXISTS usage_cycles_started ON usage_cycles (started);
CREATE TABLE IF NOT EXISTS ledger_nodes (node TEXT PRIMARY KEY, running BOOLEAN NOT NULL);
";

const POSTGRESQL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_cycles (
    node TEXT NOT NULL, realm TEXT NOT NULL, session BIGINT NOT NULL, cycle BIGINT NOT NULL,
    authid TEXT NOT NULL, authrole TEXT NOT NULL, authmethod TEXT NOT NULL,
    serializer TEXT NOT NULL, transport TEXT NOT NULL, peer TEXT NOT NULL,
    started BIGINT NOT NULL, duration BIGINT NOT NULL,
    messages BIGINT NOT NULL, bytes BIGINT NOT NULL, rated_messages BIGINT NOT NULL,
    first BOOLEAN NOT NULL, last BOOLEAN NOT NULL, ended TEXT,
    PRIMARY KEY (node, realm, session, cycle)
);
CREATE INDEX IF NOT EXISTS usage_cycles_started ON usage_cycles (started);
CREATE TABLE IF NOT EXISTS ledger_nodes (node TEXT PRIMARY KEY, running BOOLEAN NOT NULL);
";

const COLUMNS: &str = "node, realm, session, cycle, authid, authrole, authmethod, serializer, \
                       transport, peer, started, duration, messages, bytes, rated_messages, \
                       first, last, ended";

/// Marks the last row of every session of a node that has neither a final row nor an end as
/// ended uncleanly (`$1`/`?1`: the node). Run at the first connection after a run of the node
/// that did not stop cleanly.
const CLOSE_UNCLEAN: &str = "
UPDATE usage_cycles SET ended = 'unclean'
WHERE node = $1 AND (realm, session, cycle) IN (
    SELECT realm, session, MAX(cycle) FROM usage_cycles WHERE node = $1
    GROUP BY realm, session
    HAVING MAX(CASE WHEN last THEN 1 ELSE 0 END) = 0
       AND MAX(CASE WHEN ended IS NULL THEN 0 ELSE 1 END) = 0
)";

/// A row value as SQLite and PostgreSQL store it: counters and ids are `u64` in the core but
/// never reach 2^63 (ids are below 2^53, nanoseconds since 1970 below 2^63 until 2262).
fn int(v: u64) -> i64 {
    v as i64
}

/// A connection to the ledger's database, opened at the first write (and again after an
/// error), so that the router starts while the database is away.
pub(super) enum Store {
    /// SQLite: the connection is used on a blocking thread.
    Sqlite {
        path: PathBuf,
        conn: Option<Arc<Mutex<rusqlite::Connection>>>,
    },
    /// PostgreSQL through tokio-postgres.
    Postgresql {
        dsn: String,
        client: Option<tokio_postgres::Client>,
    },
}

impl Store {
    pub(super) fn new(config: &LedgerStore) -> Store {
        match config {
            LedgerStore::Sqlite { path } => Store::Sqlite {
                path: path.clone(),
                conn: None,
            },
            LedgerStore::Postgresql { dsn } => Store::Postgresql {
                dsn: dsn.expose().to_owned(),
                client: None,
            },
        }
    }

    /// Connects (creating the table) if not connected.
    async fn connect(&mut self) -> Result<(), LedgerError> {
        match self {
            Store::Sqlite { path, conn } => {
                if conn.is_none() {
                    let path = path.clone();
                    let opened = blocking(move || open_sqlite(&path, true)).await?;
                    *conn = Some(Arc::new(Mutex::new(opened)));
                }
            }
            Store::Postgresql { dsn, client } => {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    let opened = connect_postgresql(dsn).await?;
                    opened.batch_execute(POSTGRESQL_SCHEMA).await?;
                    *client = Some(opened);
                }
            }
        }
        Ok(())
    }

    /// Connects if needed; with `recover` (until it has succeeded once in this process), closes
    /// the sessions a run of `node` that died left open, and marks `node` running. Returns how
    /// many sessions it closed.
    pub(super) async fn ready(&mut self, node: &str, recover: bool) -> Result<u64, LedgerError> {
        self.connect().await?;
        if !recover {
            return Ok(0);
        }
        let node = node.to_owned();
        let result = match self {
            Store::Sqlite { conn, .. } => {
                let conn = conn.clone().ok_or(LedgerError::NotConnected)?;
                blocking(move || {
                    let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
                    let tx = c.transaction()?;
                    let crashed: bool = tx
                        .query_row(
                            "SELECT running FROM ledger_nodes WHERE node = ?1",
                            [&node],
                            |r| r.get(0),
                        )
                        .unwrap_or(false);
                    let closed = if crashed {
                        tx.execute(&CLOSE_UNCLEAN.replace("$1", "?1"), [&node])? as u64
                    } else {
                        0
                    };
                    tx.execute(
                        "INSERT INTO ledger_nodes (node, running) VALUES (?1, 1) \
                         ON CONFLICT (node) DO UPDATE SET running = 1",
                        [&node],
                    )?;
                    tx.commit()?;
                    Ok(closed)
                })
                .await
            }
            Store::Postgresql { client, .. } => {
                let client = client.as_mut().ok_or(LedgerError::NotConnected)?;
                let tx = client.transaction().await?;
                let crashed = tx
                    .query_opt("SELECT running FROM ledger_nodes WHERE node = $1", &[&node])
                    .await?
                    .is_some_and(|r| r.get::<_, bool>(0));
                let closed = if crashed {
                    tx.execute(CLOSE_UNCLEAN, &[&node]).await?
                } else {
                    0
                };
                tx.execute(
                    "INSERT INTO ledger_nodes (node, running) VALUES ($1, true) \
                     ON CONFLICT (node) DO UPDATE SET running = true",
                    &[&node],
                )
                .await?;
                tx.commit().await?;
                Ok(closed)
            }
        };
        if result.is_err() {
            self.disconnect();
        }
        result
    }

    /// Records that `node` stopped cleanly: the next start closes none of its sessions.
    pub(super) async fn stopped(&mut self, node: &str) -> Result<(), LedgerError> {
        let node = node.to_owned();
        match self {
            Store::Sqlite { conn, .. } => {
                let conn = conn.clone().ok_or(LedgerError::NotConnected)?;
                blocking(move || {
                    let c = conn.lock().unwrap_or_else(|e| e.into_inner());
                    c.execute(
                        "UPDATE ledger_nodes SET running = 0 WHERE node = ?1",
                        [&node],
                    )?;
                    Ok(())
                })
                .await
            }
            Store::Postgresql { client, .. } => {
                let client = client.as_ref().ok_or(LedgerError::NotConnected)?;
                client
                    .execute(
                        "UPDATE ledger_nodes SET running = false WHERE node = $1",
                        &[&node],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Writes `rows` in one transaction (rows already stored are skipped). On an error the
    /// connection is dropped (opened again at the next write).
    pub(super) async fn write(&mut self, rows: Arc<Vec<LedgerRow>>) -> Result<(), LedgerError> {
        let result = match self {
            Store::Sqlite { conn, .. } => {
                let conn = conn.clone().ok_or(LedgerError::NotConnected)?;
                blocking(move || {
                    let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
                    insert_sqlite(&mut c, &rows)
                })
                .await
            }
            Store::Postgresql { client, .. } => {
                let client = client.as_mut().ok_or(LedgerError::NotConnected)?;
                insert_postgresql(client, &rows).await
            }
        };
        if result.is_err() {
            self.disconnect();
        }
        result
    }

    fn disconnect(&mut self) {
        match self {
            Store::Sqlite { conn, .. } => *conn = None,
            Store::Postgresql { client, .. } => *client = None,
        }
    }
}

/// Runs `f` on a blocking thread (SQLite calls block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LedgerError::Task(e.to_string()))?
}

/// Opens the SQLite ledger at `path`; with `create`, creates the file, its directory and the
/// table, in WAL mode (readers such as `turnstile usage` do not block the writer).
pub(super) fn open_sqlite(path: &Path, create: bool) -> Result<rusqlite::Connection, LedgerError> {
    let conn = if create {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        rusqlite::Connection::open(path)?
    } else {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        rusqlite::Connection::open_with_flags(path, flags).map_err(|e| {
            LedgerError::Open(format!("cannot open the ledger {}: {e}", path.display()))
        })?
    };
    // A reader and the writer may briefly hold the lock at once.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if create {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // With WAL, NORMAL loses no committed transaction when the process dies (only on a
        // power failure, the last ones), and commits without an fsync each.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SQLITE_SCHEMA)?;
    }
    Ok(conn)
}

fn insert_sqlite(conn: &mut rusqlite::Connection, rows: &[LedgerRow]) -> Result<(), LedgerError> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO usage_cycles ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
             ON CONFLICT DO NOTHING"
        ))?;
        for r in rows {
            insert.execute(rusqlite::params![
                r.node,
                r.realm,
                int(r.session),
                int(r.cycle),
                r.authid,
                r.authrole,
                r.authmethod,
                r.serializer,
                r.transport,
                r.peer,
                int(r.started),
                int(r.duration),
                int(r.messages),
                int(r.bytes),
                int(r.rated_messages),
                r.first,
                r.last,
                r.ended,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Connects to PostgreSQL (without TLS) and runs the connection on its own task.
pub(super) async fn connect_postgresql(dsn: &str) -> Result<tokio_postgres::Client, LedgerError> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("usage ledger: PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

async fn insert_postgresql(
    client: &mut tokio_postgres::Client,
    rows: &[LedgerRow],
) -> Result<(), LedgerError> {
    let tx = client.transaction().await?;
    let insert = tx
        .prepare(&format!(
            "INSERT INTO usage_cycles ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             ON CONFLICT DO NOTHING"
        ))
        .await?;
    for r in rows {
        tx.execute(
            &insert,
            &[
                &r.node,
                &r.realm,
                &int(r.session),
                &int(r.cycle),
                &r.authid,
                &r.authrole,
                &r.authmethod,
                &r.serializer,
                &r.transport,
                &r.peer,
                &int(r.started),
                &int(r.duration),
                &int(r.messages),
                &int(r.bytes),
                &int(r.rated_messages),
                &r.first,
                &r.last,
                &r.ended,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

// ===== reading =====

/// Which rows a report reads: equality filters and a time window on the cycles' start (ns).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this realm.
    pub realm: Option<String>,
    /// Only this authid.
    pub authid: Option<String>,
    /// Only this authrole.
    pub authrole: Option<String>,
    /// Only cycles that started at or after this time (ns since the Unix epoch).
    pub since: Option<u64>,
    /// Only cycles that started before this time (ns since the Unix epoch).
    pub until: Option<u64>,
}

impl Filter {
    /// The `WHERE` clause with numbered placeholders (`?n` for SQLite, `$n` for PostgreSQL),
    /// and the text values in order (the times come after them).
    fn clause(&self, mark: char) -> (String, Vec<String>, Vec<i64>) {
        let mut parts = Vec::new();
        let mut texts = Vec::new();
        let mut n = 0;
        for (column, value) in [
            ("realm", &self.realm),
            ("authid", &self.authid),
            ("authrole", &self.authrole),
        ] {
            if let Some(v) = value {
                n += 1;
                parts.push(format!("{column} = {mark}{n}"));
                texts.push(v.clone());
            }
        }
        let mut times = Vec::new();
        for (op, value) in [(">=", self.since), ("<", self.until)] {
            if let Some(v) = value {
                n += 1;
                parts.push(format!("started {op} {mark}{n}"));
                times.push(int(v));
            }
        }
        let clause = if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        };
        (clause, texts, times)
    }
}

/// The rows matching `filter` from the SQLite ledger at `path`, by session and cycle.
pub(crate) fn read_sqlite(path: &Path, filter: &Filter) -> Result<Vec<LedgerRow>, LedgerError> {
    if !path.is_file() {
        return Err(LedgerError::Open(format!(
            "no ledger at {} (the router creates it when it starts with a ledger)",
            path.display()
        )));
    }
    let conn = open_sqlite(path, false)?;
    let (clause, texts, times) = filter.clause('?');
    let sql =
        format!("SELECT {COLUMNS} FROM usage_cycles{clause} ORDER BY node, realm, session, cycle");
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
    params.extend(texts.iter().map(|t| t as &dyn rusqlite::ToSql));
    params.extend(times.iter().map(|t| t as &dyn rusqlite::ToSql));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params.as_slice(), |r| {
        Ok(LedgerRow {
            node: r.get(0)?,
            realm: r.get(1)?,
            session: r.get::<_, i64>(2)? as u64,
            cycle: r.get::<_, i64>(3)? as u64,
            authid: r.get(4)?,
            authrole: r.get(5)?,
            authmethod: r.get(6)?,
            serializer: r.get(7)?,
            transport: r.get(8)?,
            peer: r.get(9)?,
            started: r.get::<_, i64>(10)? as u64,
            duration: r.get::<_, i64>(11)? as u64,
            messages: r.get::<_, i64>(12)? as u64,
            bytes: r.get::<_, i64>(13)? as u64,
            rated_messages: r.get::<_, i64>(14)? as u64,
            first: r.get(15)?,
            last: r.get(16)?,
            ended: r.get(17)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The rows matching `filter` from the PostgreSQL ledger at `dsn`, by session and cycle.
pub(crate) async fn read_postgresql(
    dsn: &str,
    filter: &Filter,
) -> Result<Vec<LedgerRow>, LedgerError> {
    let client = connect_postgresql(dsn).await?;
    let (clause, texts, times) = filter.clause('$');
    let sql =
        format!("SELECT {COLUMNS} FROM usage_cycles{clause} ORDER BY node, realm, session, cycle");
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    params.extend(
        texts
            .iter()
            .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync)),
    );
    params.extend(
        times
            .iter()
            .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync)),
    );
    let rows = client.query(&sql, &params).await?;
    Ok(rows
        .iter()
        .map(|r| LedgerRow {
            node: r.get(0),
            realm: r.get(1),
            session: r.get::<_, i64>(2) as u64,
            cycle: r.get::<_, i64>(3) as u64,
            authid: r.get(4),
            authrole: r.get(5),
            authmethod: r.get(6),
            serializer: r.get(7),
            transport: r.get(8),
            peer: r.get(9),
            started: r.get::<_, i64>(10) as u64,
            duration: r.get::<_, i64>(11) as u64,
            messages: r.get::<_, i64>(12) as u64,
            bytes: r.get::<_, i64>(13) as u64,
            rated_messages: r.get::<_, i64>(14) as u64,
            first: r.get(15),
            last: r.get(16),
            ended: r.get(17),
        })
        .collect())
}
