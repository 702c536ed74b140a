//! Databases written before the log became one row per group commit hold
//! one row per event in a table `events`. Opening one moves those rows into
//! `batches`, once, in one transaction, and drops the old table.

use rusqlite::{Connection, TransactionBehavior};

use super::batch::Builder;
use crate::store::StoreError;

/// Events packed into one row when converting.
const PER_BATCH: usize = 512;

/// Converts a pre-batch `events` table, if there is one; returns how many
/// events it moved.
pub(super) fn events_into_batches(conn: &mut Connection) -> Result<u64, StoreError> {
    let old: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')",
        [],
        |r| r.get(0),
    )?;
    if !old {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut moved = 0u64;
    {
        let mut read =
            tx.prepare("SELECT channel, seq, received_at, frame FROM events ORDER BY rowid")?;
        let mut rows = read.query([])?;
        let mut row = Builder::with_capacity(0);
        while let Some(r) = rows.next()? {
            let (channel, seq, at): (String, u64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let frame: String = r.get(3)?;
            row.push(&channel, seq, at, &frame)?;
            if row.events() == PER_BATCH {
                moved += PER_BATCH as u64;
                std::mem::replace(&mut row, Builder::with_capacity(0)).insert(&tx)?;
            }
        }
        if row.events() > 0 {
            moved += row.events() as u64;
            row.insert(&tx)?;
        }
    }
    tx.execute_batch("DROP TABLE events")?;
    tx.commit()?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::{Connection, params};

    use crate::config::SyncMode;
    use crate::store::Retention;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn a_per_event_log_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::event::now_ms();
        {
            let old = Connection::open(dir.path().join("hookpipe.db")).unwrap();
            old.execute_batch(
                "CREATE TABLE channels (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL,
                    created_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                 CREATE TABLE events (id INTEGER PRIMARY KEY, channel TEXT NOT NULL,
                    seq INTEGER NOT NULL, received_at INTEGER NOT NULL, frame TEXT NOT NULL);
                 INSERT INTO channels (id, token_hash, created_at) VALUES ('c', x'00', 1), ('d', x'00', 1);",
            )
            .unwrap();
            // More than one converted row's worth, across two channels.
            for seq in 1..=600u64 {
                let channel = if seq % 100 == 0 { "d" } else { "c" };
                old.execute(
                    "INSERT INTO events (channel, seq, received_at, frame) VALUES (?1, ?2, ?3, ?4)",
                    params![channel, seq, now, format!("{{\"seq\":{seq}}}")],
                )
                .unwrap();
            }
        }
        let retention = Retention {
            keep_events: 10_000,
            max_age: Duration::from_secs(3600),
        };
        let store = SqliteStore::open(dir.path(), SyncMode::Normal, retention).unwrap();
        let page = store.inner.read_since("d", 0, 100, now).unwrap();
        let frames: Vec<_> = page
            .events
            .iter()
            .map(|e| (e.seq, e.frame.as_str()))
            .collect();
        assert_eq!(
            frames[..2],
            [(100, "{\"seq\":100}"), (200, "{\"seq\":200}")]
        );
        assert_eq!((frames.len(), page.head), (6, 600));
        let page = store.inner.read_since("c", 590, 100, now).unwrap();
        assert_eq!(page.events.len(), 9, "591..=599 of c");
        let old_left: bool = store
            .inner
            .with_writer(|conn| {
                Ok(conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'events')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert!(!old_left, "the old table is dropped");
    }
}
