//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer connection (behind a mutex) takes whole batches in one
//! transaction; readers come from a small pool and never block the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::log_index::LogIndex;
use super::{ChannelRecord, Page, Retention, Store, StoreError, StoredFrame};
use crate::config::SyncMode;
use crate::event::{Committed, NewEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS channels (
    id         TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- An append-only log: rows only ever go to the end of this one B-tree.
-- Lookups by (channel, seq) use the in-memory LogIndex, rebuilt at start.
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    frame       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    channel  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    status   INTEGER,
    acked_at INTEGER NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
";

/// Idle read connections kept open.
const READER_POOL: usize = 8;
/// How often the background thread folds the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages after which a commit checkpoints by itself, should the
/// background checkpointer fall behind (SQLite's default is 1000).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `(seq, rowid)` of every retained event and each channel's head;
    /// written only while `writer` is held.
    index: RwLock<LogIndex>,
    /// Dropping it stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    retention: Retention,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

fn open_connection(path: &Path, sync: SyncMode) -> Result<Connection, StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let conn = Connection::open(path).map_err(open_err)?;
    let sync = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;"
    ))
    .map_err(open_err)?;
    Ok(conn)
}

/// Checkpoints off the commit path: a passive checkpoint never blocks the
/// writer, and the committer no longer pays for copying pages back.
fn spawn_checkpointer(conn: Connection) -> Result<mpsc::Sender<()>, StoreError> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("hookpipe-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        })
        .map_err(|e| StoreError::Open {
            path: "checkpoint thread".into(),
            message: e.to_string(),
        })?;
    Ok(stop)
}

impl SqliteStore {
    /// Opens (creating if needed) `hookpipe.db` in `data_dir`.
    pub fn open(data_dir: &Path, sync: SyncMode, retention: Retention) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.display().to_string(),
            message: format!("cannot create the data directory: {e}"),
        })?;
        let path = data_dir.join("hookpipe.db");
        let writer = open_connection(&path, sync)?;
        writer.execute_batch(SCHEMA).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        let checkpointer = spawn_checkpointer(open_connection(&path, sync)?)?;
        let inner = Inner {
            path,
            index: RwLock::new(LogIndex::default()),
            _checkpointer: checkpointer,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            retention,
        };
        inner.load_index()?;
        // What an earlier run (perhaps with a larger --retain-events) left.
        let removed = inner.trim_counts()?;
        if removed > 0 {
            tracing::info!(
                removed,
                "applied --retain-events to events kept by an earlier run"
            );
        }
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool so SQLite never stalls the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl Inner {
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means another operation panicked mid-way; its
        // transaction rolled back when the connection's guard dropped.
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            // Readers never write, so the sync mode is irrelevant to them.
            None => open_connection(&self.path, SyncMode::Normal)?,
        };
        let out = f(&mut conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }

    fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError> {
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for ev in &batch {
                *counts.entry(ev.channel.as_str()).or_default() += 1;
            }
            // The index is only written below, under the writer lock we hold,
            // so heads read now stay valid until the commit.
            let mut next: HashMap<&str, u64> = HashMap::with_capacity(counts.len());
            {
                let index = self.index.read().unwrap_or_else(|p| p.into_inner());
                for channel in counts.keys() {
                    let head = match index.head(channel) {
                        Some(h) => h,
                        None => stored_head(&tx, channel)?
                            .ok_or_else(|| StoreError::UnknownChannel((*channel).to_owned()))?,
                    };
                    next.insert(channel, head + 1);
                }
            }
            let mut committed = Vec::with_capacity(batch.len());
            let mut rowids = Vec::with_capacity(batch.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (channel, seq, received_at, frame) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for ev in &batch {
                    let slot = next.get_mut(ev.channel.as_str()).expect("counted above");
                    let seq = *slot;
                    *slot += 1;
                    let frame = ev.frame(seq);
                    insert.execute(params![ev.channel, seq, ev.received_at_ms, frame])?;
                    rowids.push(tx.last_insert_rowid());
                    committed.push(Committed {
                        channel: ev.channel.clone(),
                        seq,
                        id: ev.id.clone(),
                        frame,
                    });
                }
            }
            tx.commit()?;
            // Only a committed batch changes the index.
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            for (c, rowid) in committed.iter().zip(rowids) {
                index.push(&c.channel, c.seq, rowid);
            }
            Ok(committed)
        })
    }

    fn read_since(
        &self,
        channel: &str,
        since: u64,
        limit: usize,
        now_ms: i64,
    ) -> Result<Page, StoreError> {
        let keep = self.retention.keep_events;
        let cutoff = now_ms - self.retention.max_age.as_millis() as i64;
        let (head, entries, more) = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            match index.head(channel) {
                Some(head) => {
                    // Reads apply retention themselves; trimming is housekeeping.
                    let (entries, more) =
                        index.after(channel, since.max(head.saturating_sub(keep)), limit);
                    (Some(head), entries, more)
                }
                None => (None, Vec::new(), false),
            }
        };
        self.with_reader(|conn| {
            let head = match head {
                Some(h) => h,
                // Not in the index: no events; the channels table knows it (or not).
                None => stored_head(conn, channel)?
                    .ok_or_else(|| StoreError::UnknownChannel(channel.to_owned()))?,
            };
            let mut stmt =
                conn.prepare_cached("SELECT received_at, frame FROM events WHERE rowid = ?1")?;
            let mut events = Vec::with_capacity(entries.len());
            for (seq, rowid) in entries {
                // A row trimmed since the index was read is simply gone: the
                // feed reports the hole as a gap.
                let row: Option<(i64, String)> = stmt
                    .query_row(params![rowid], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((received_at, frame)) = row
                    && received_at >= cutoff
                {
                    events.push(StoredFrame { seq, frame });
                }
            }
            Ok(Page { events, head, more })
        })
    }

    fn trim(&self, now_ms: i64) -> Result<u64, StoreError> {
        Ok(self.trim_counts()? + self.trim_age(now_ms)?)
    }

    /// Deletes what is older than `max_age`.
    fn trim_age(&self, now_ms: i64) -> Result<u64, StoreError> {
        let cutoff = now_ms - self.retention.max_age.as_millis() as i64;
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Rowids follow commit order and received_at follows arrival, so
            // old rows come first: the scan stops at the first young one.
            let first_young: Option<i64> = tx
                .query_row(
                    "SELECT rowid FROM events WHERE received_at >= ?1 ORDER BY rowid LIMIT 1",
                    params![cutoff],
                    |r| r.get(0),
                )
                .optional()?;
            let bound = first_young.unwrap_or(i64::MAX);
            let any_old: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE rowid < ?1)",
                params![bound],
                |r| r.get(0),
            )?;
            if !any_old {
                return Ok(0);
            }
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            {
                // Age may delete a channel's last event: write heads down first.
                let mut save = tx.prepare_cached(
                    "UPDATE channels SET last_seq = ?2 WHERE id = ?1 AND last_seq < ?2",
                )?;
                for (channel, head) in index.heads() {
                    save.execute(params![channel, head])?;
                }
            }
            let deleted = tx.execute("DELETE FROM events WHERE rowid < ?1", params![bound])? as u64;
            tx.execute("DELETE FROM acks WHERE acked_at < ?1", params![cutoff])?;
            tx.commit()?;
            index.drop_before_rowid(bound);
            Ok(deleted)
        })
    }

    /// Deletes, per channel, the events beyond the newest `keep_events`.
    fn trim_counts(&self) -> Result<u64, StoreError> {
        let keep = self.retention.keep_events;
        self.with_writer(|conn| {
            let over: Vec<(String, u64)> = {
                let index = self.index.read().unwrap_or_else(|p| p.into_inner());
                index
                    .lens()
                    .filter(|(_, n)| *n as u64 > keep)
                    .map(|(c, _)| {
                        (
                            c.to_owned(),
                            index.head(c).unwrap_or(0).saturating_sub(keep),
                        )
                    })
                    .collect()
            };
            if over.is_empty() {
                return Ok(0);
            }
            let mut gone: Vec<i64> = {
                let index = self.index.read().unwrap_or_else(|p| p.into_inner());
                over.iter()
                    .flat_map(|(c, upto)| index.rowids_through(c, *upto))
                    .collect()
            };
            // In rowid order, each old page is visited (and rewritten) once.
            gone.sort_unstable();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM events WHERE rowid = ?1")?;
                for rowid in &gone {
                    delete.execute(params![rowid])?;
                }
                let mut delete_acks =
                    tx.prepare_cached("DELETE FROM acks WHERE channel = ?1 AND seq <= ?2")?;
                for (channel, upto) in &over {
                    delete_acks.execute(params![channel, upto])?;
                }
            }
            tx.commit()?;
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            for (channel, upto) in &over {
                index.take_through(channel, *upto);
            }
            Ok(gone.len() as u64)
        })
    }

    /// Rebuilds the index from the log.
    fn load_index(&self) -> Result<(), StoreError> {
        self.with_writer(|conn| {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let mut heads = conn.prepare("SELECT id, last_seq FROM channels WHERE last_seq > 0")?;
            let mut rows = heads.query([])?;
            while let Some(r) = rows.next()? {
                index.note_head(&r.get::<_, String>(0)?, r.get(1)?);
            }
            let mut log = conn.prepare("SELECT rowid, channel, seq FROM events ORDER BY rowid")?;
            let mut rows = log.query([])?;
            while let Some(r) = rows.next()? {
                let channel: String = r.get(1)?;
                index.push(&channel, r.get(2)?, r.get(0)?);
            }
            Ok(())
        })
    }
}

/// The head written down in the channels table (events may hold newer
/// ones: the index is the authority). `None` for an unknown channel.
fn stored_head(conn: &Connection, channel: &str) -> Result<Option<u64>, StoreError> {
    let head = conn
        .prepare_cached("SELECT last_seq FROM channels WHERE id = ?1")?
        .query_row(params![channel], |r| r.get(0))
        .optional()?;
    Ok(head)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_channel(
        &self,
        id: &str,
        token_hash: &[u8],
        created_at_ms: i64,
    ) -> Result<(), StoreError> {
        let (id, hash) = (id.to_owned(), token_hash.to_vec());
        self.blocking(move |inner| {
            inner.with_writer(|conn| {
                conn.execute(
                    "INSERT INTO channels (id, token_hash, created_at) VALUES (?1, ?2, ?3)",
                    params![id, hash, created_at_ms],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn channel(&self, id: &str) -> Result<Option<ChannelRecord>, StoreError> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            inner.with_reader(|conn| {
                let mut rec = conn
                    .prepare_cached(
                        "SELECT id, token_hash, created_at, last_seq FROM channels WHERE id = ?1",
                    )?
                    .query_row(params![id], |r| {
                        Ok(ChannelRecord {
                            id: r.get(0)?,
                            token_hash: r.get(1)?,
                            created_at_ms: r.get(2)?,
                            last_seq: r.get(3)?,
                        })
                    })
                    .optional()?;
                if let Some(r) = rec.as_mut() {
                    let index = inner.index.read().unwrap_or_else(|p| p.into_inner());
                    r.last_seq = r.last_seq.max(index.head(&r.id).unwrap_or(0));
                }
                Ok(rec)
            })
        })
        .await
    }

    async fn channels(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(|inner| {
            inner.with_reader(|conn| {
                let ids = conn
                    .prepare_cached("SELECT id FROM channels ORDER BY created_at")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
        })
        .await
    }

    /// Runs on the calling thread: the committer calls it from a thread of
    /// its own, so a hand-off per batch would be pure overhead.
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError> {
        self.inner.append(batch)
    }

    async fn read_since(
        &self,
        channel: &str,
        since: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let channel = channel.to_owned();
        let now = crate::event::now_ms();
        self.blocking(move |inner| inner.read_since(&channel, since, limit, now))
            .await
    }

    async fn trim(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.blocking(move |inner| inner.trim(now_ms)).await
    }

    async fn record_ack(
        &self,
        channel: &str,
        seq: u64,
        status: Option<u16>,
    ) -> Result<(), StoreError> {
        let channel = channel.to_owned();
        let now = crate::event::now_ms();
        self.blocking(move |inner| {
            inner.with_writer(|conn| {
                conn.prepare_cached(
                    "INSERT INTO acks (channel, seq, status, acked_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (channel, seq) DO UPDATE SET status = excluded.status, acked_at = excluded.acked_at",
                )?
                .execute(params![channel, seq, status, now])?;
                Ok(())
            })
        })
        .await
    }

    async fn acks(
        &self,
        channel: &str,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<super::Ack>, StoreError> {
        let channel = channel.to_owned();
        let clamp = |s: u64| s.min(i64::MAX as u64);
        let (from, to) = (clamp(from_seq), clamp(to_seq));
        self.blocking(move |inner| {
            inner.with_reader(|conn| {
                let acks = conn
                    .prepare_cached(
                        "SELECT seq, status, acked_at FROM acks
                         WHERE channel = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq",
                    )?
                    .query_map(params![channel, from, to], |r| {
                        Ok(super::Ack {
                            seq: r.get(0)?,
                            status: r.get(1)?,
                            acked_at_ms: r.get(2)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(acks)
            })
        })
        .await
    }
}
