//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer connection (behind a mutex) takes whole batches in one
//! transaction; readers come from a small pool and never block the writer.
//! `log` holds the event log itself: append, read, trim, and rebuilding its
//! in-memory index.

mod batch;
mod log;
mod migrate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::log_index::LogIndex;
use super::{ChannelRecord, Page, Retention, Store, StoreError};
use crate::config::SyncMode;
use crate::event::{Committed, NewEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS channels (
    id         TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- An append-only log, one row per group commit: rows only ever go to the
-- end of this one B-tree. `events` holds the batch's records (see batch.rs);
-- lookups by (channel, seq) use the in-memory LogIndex, rebuilt at start.
CREATE TABLE IF NOT EXISTS batches (
    id       INTEGER PRIMARY KEY,
    first_at INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    events   BLOB NOT NULL
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
    /// `channel → last seq` retired by appends whose acks the next trim deletes.
    acks_due: Mutex<HashMap<String, u64>>,
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
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        let mut writer = open_connection(&path, sync)?;
        writer
            .execute_batch(SCHEMA)
            .and_then(|()| {
                writer.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            })
            .map_err(|e| open_err(e.to_string()))?;
        let moved = migrate::events_into_batches(&mut writer).map_err(|e| {
            open_err(format!(
                "cannot convert the event log of an earlier version: {e}"
            ))
        })?;
        if moved > 0 {
            tracing::info!(moved, "converted the event log to one row per group commit");
        }
        let checkpointer = spawn_checkpointer(open_connection(&path, sync)?)?;
        let inner = Inner {
            path,
            index: RwLock::new(LogIndex::default()),
            _checkpointer: checkpointer,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            retention,
            acks_due: Mutex::new(HashMap::new()),
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

    /// The writer, if no one holds it right now (poisoning as in `with_writer`).
    fn try_writer(&self) -> Option<MutexGuard<'_, Connection>> {
        match self.writer.try_lock() {
            Ok(conn) => Some(conn),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
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

    /// Runs on the calling thread when the writer is free: a batch commits in
    /// tens of microseconds, less than a hand-off to a blocking thread and
    /// back costs. While a retention trim holds the writer, the batch waits
    /// on the blocking pool instead, so the worker keeps serving.
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError> {
        match self.inner.try_append(batch) {
            Ok(done) => done,
            Err(batch) => self.blocking(move |inner| inner.append(batch)).await,
        }
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
