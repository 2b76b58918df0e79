//! The spill file: an append-only file of rows (one JSON object a line) that could not wait in
//! memory, or whose write failed, replayed into the database when it is back. Rows are
//! appended with one `write` each batch, so a killed process leaves them in the file; a row
//! replayed twice is harmless (the ledger's key refuses duplicates).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{LedgerError, LedgerRow};

/// The spill file and how far it has been replayed.
pub(super) struct Spill {
    path: PathBuf,
    /// Bytes of the file (everything appended).
    len: u64,
    /// Bytes whose rows are committed to the database.
    committed: u64,
    /// Bytes handed out for replay (a batch in flight ends here).
    replayed: u64,
    /// Rows in the file not yet committed (an estimate across restarts: counted when read).
    pub(super) rows: u64,
}

impl Spill {
    /// The spill file at `path`, with what a previous run left in it to replay.
    pub(super) fn open(path: &Path) -> Result<Spill, LedgerError> {
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if len > 0
            && !ends_with_newline(path).map_err(|source| LedgerError::Io {
                path: path.to_owned(),
                source,
            })?
        {
            // A line cut short by a crash: end it, so that the next row starts a line of its own.
            let mut file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|source| LedgerError::Io {
                    path: path.to_owned(),
                    source,
                })?;
            file.write_all(b"\n").map_err(|source| LedgerError::Io {
                path: path.to_owned(),
                source,
            })?;
            return Spill::open(path);
        }
        let rows = if len > 0 {
            let file = File::open(path).map_err(|source| LedgerError::Io {
                path: path.to_owned(),
                source,
            })?;
            BufReader::new(file).lines().count() as u64
        } else {
            0
        };
        Ok(Spill {
            path: path.to_owned(),
            len,
            committed: 0,
            replayed: 0,
            rows,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether rows wait in the file.
    pub(super) fn is_empty(&self) -> bool {
        self.committed == self.len
    }

    /// Whether rows wait in the file that no batch in flight holds.
    pub(super) fn has_unreplayed(&self) -> bool {
        self.replayed < self.len
    }

    fn io(&self, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `rows` to the file.
    pub(super) fn append(&mut self, rows: &[LedgerRow]) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for r in rows {
            serde_json::to_writer(&mut text, r).map_err(|e| self.io(e.into()))?;
            text.push(b'\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        file.write_all(&text).map_err(|e| self.io(e))?;
        self.len += text.len() as u64;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Reads up to `max` rows after those already handed out; returns them with the offset to
    /// [`Spill::commit`] once they are stored.
    pub(super) fn replay(&mut self, max: usize) -> Result<(Vec<LedgerRow>, u64), LedgerError> {
        let mut file = File::open(&self.path).map_err(|e| self.io(e))?;
        file.seek(SeekFrom::Start(self.replayed))
            .map_err(|e| self.io(e))?;
        let mut reader = BufReader::new(file);
        let mut rows = Vec::new();
        let mut at = self.replayed;
        let mut line = String::new();
        while rows.len() < max && at < self.len {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            at += n as u64;
            match serde_json::from_str::<LedgerRow>(line.trim_end()) {
                Ok(row) => rows.push(row),
                // A line cut short by a crash while appending: its rows were still in memory
                // and are lost with the process; nothing else to recover from it.
                Err(e) => tracing::warn!(
                    "usage ledger: skipping an unreadable line of the spill file {}: {e}",
                    self.path.display()
                ),
            }
        }
        self.replayed = at;
        Ok((rows, at))
    }

    /// The rows up to `offset` are stored. Once everything is, the file is emptied.
    pub(super) fn commit(&mut self, offset: u64, rows: usize) -> Result<(), LedgerError> {
        self.committed = self.committed.max(offset);
        self.rows = self.rows.saturating_sub(rows as u64);
        if self.committed == self.len && self.len > 0 {
            std::fs::remove_file(&self.path).map_err(|e| self.io(e))?;
            (self.len, self.committed, self.replayed, self.rows) = (0, 0, 0, 0);
        }
        Ok(())
    }

    /// A replayed batch failed: its rows are handed out again.
    pub(super) fn rewind(&mut self) {
        self.replayed = self.committed;
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cycle: u64) -> LedgerRow {
        LedgerRow {
            node: "n".into(),
            realm: "realm1".into(),
            session: 7,
            cycle,
            authid: "a".into(),
            authrole: "r".into(),
            authmethod: "anonymous".into(),
            serializer: "cbor".into(),
            transport: "rawsocket".into(),
            peer: "unix".into(),
            started: 1,
            duration: 2,
            messages: 3,
            bytes: 4,
            rated_messages: 5,
            first: cycle == 1,
            last: false,
            ended: None,
        }
    }

    /// Rows appended are replayed in order, in batches; a failed batch is handed out again;
    /// the file is removed once everything in it is committed; a run that dies mid-line leaves
    /// a line the next run skips, without losing the rows appended after it.
    #[test]
    fn append_replay_commit_and_a_cut_line() {
        let dir = std::env::temp_dir().join(format!("turnstile-spill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("usage.spill");
        let mut spill = Spill::open(&path).unwrap();
        assert!(spill.is_empty() && !spill.has_unreplayed());
        spill.append(&[row(1), row(2), row(3)]).unwrap();
        let (batch, offset) = spill.replay(2).unwrap();
        assert_eq!(batch, [row(1), row(2)]);
        spill.rewind();
        let (again, same) = spill.replay(2).unwrap();
        assert_eq!((again, same), (batch, offset));
        spill.commit(offset, 2).unwrap();
        let (rest, end) = spill.replay(10).unwrap();
        assert_eq!(rest, [row(3)]);
        assert!(!spill.is_empty());
        spill.commit(end, 1).unwrap();
        assert!(spill.is_empty() && !path.exists(), "removed once committed");

        // A previous run died while appending: half a line at the end.
        std::fs::write(&path, "{\"node\":\"n\",\"realm\":\"re").unwrap();
        let mut spill = Spill::open(&path).unwrap();
        spill.append(&[row(4)]).unwrap();
        let reopened = Spill::open(&path).unwrap();
        assert_eq!(reopened.rows, 2, "the cut line and the new row");
        let (rows, _) = spill.replay(10).unwrap();
        assert_eq!(
            rows,
            [row(4)],
            "the cut line is skipped, the next row is whole"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
