//! The event log: one row per group commit, indexed reads, retention trims.

use std::collections::HashMap;

use rusqlite::{Connection, MAIN_DB, OptionalExtension, params};

use super::{Inner, batch};
use crate::event::{Committed, NewEvent};
use crate::store::log_index::Entry;
use crate::store::{Page, StoreError, StoredFrame};

impl Inner {
    /// Appends, waiting for the writer connection.
    pub(super) fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError> {
        self.with_writer(|conn| self.append_locked(conn, batch))
    }

    /// Appends if the writer connection is free; gives the batch back if a
    /// trim or another writer holds it.
    pub(super) fn try_append(
        &self,
        batch: Vec<NewEvent>,
    ) -> Result<Result<Vec<Committed>, StoreError>, Vec<NewEvent>> {
        match self.try_writer() {
            Some(mut conn) => Ok(self.append_locked(&mut conn, batch)),
            None => Err(batch),
        }
    }

    fn append_locked(
        &self,
        conn: &mut Connection,
        batch: Vec<NewEvent>,
    ) -> Result<Vec<Committed>, StoreError> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for ev in &batch {
            *counts.entry(ev.channel.as_str()).or_default() += 1;
        }
        // The index is only written below, under the writer lock we hold,
        // so heads read now stay valid until the commit.
        let keep = self.retention.keep_events;
        let mut next: HashMap<&str, u64> = HashMap::with_capacity(counts.len());
        let mut drops = Vec::new();
        let emptied = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            for (channel, added) in &counts {
                let head = match index.head(channel) {
                    Some(h) => h,
                    None => stored_head(&tx, channel)?
                        .ok_or_else(|| StoreError::UnknownChannel((*channel).to_owned()))?,
                };
                next.insert(channel, head + 1);
                // Count retention as events arrive: the older events this batch
                // pushes out go in the same transaction, a few at a time,
                // instead of in a periodic trim that holds the writer longer.
                let upto = (head + added).saturating_sub(keep).min(head);
                if index.oldest(channel).is_some_and(|seq| seq <= upto) {
                    drops.push(((*channel).to_owned(), upto));
                }
            }
            index.emptied_by(&drops).0
        };
        // The whole batch is one row: one insert, and one delete once
        // retention has dropped all of its events.
        let bytes: usize = batch.iter().map(|ev| ev.encoded_len() + 96).sum();
        let mut row = batch::Builder::with_capacity(bytes);
        let mut committed = Vec::with_capacity(batch.len());
        let mut placed = Vec::with_capacity(batch.len());
        for ev in &batch {
            let slot = next.get_mut(ev.channel.as_str()).expect("counted above");
            let seq = *slot;
            *slot += 1;
            let frame = ev.frame(seq);
            placed.push(row.push(&ev.channel, seq, ev.received_at_ms, &frame)?);
            committed.push(Committed {
                channel: ev.channel.clone(),
                seq,
                id: ev.id.clone(),
                frame,
            });
        }
        let rowid = row.insert(&tx)?;
        delete_rows(&tx, &emptied)?;
        tx.commit()?;
        // Their acks wait for the next trim: one delete a channel a second,
        // not one a channel a commit.
        self.note_acks_due(&drops);
        // Only a committed batch changes the index.
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        index.drop_through(&drops);
        for ((c, ev), (offset, len)) in committed.iter().zip(&batch).zip(placed) {
            let entry = Entry {
                seq: c.seq,
                rowid,
                received_at_ms: ev.received_at_ms,
                offset,
                len,
            };
            index.push(&c.channel, entry);
        }
        Ok(committed)
    }

    pub(super) fn read_since(
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
        if let Some(head) = head
            && entries.is_empty()
        {
            return Ok(Page {
                events: Vec::new(),
                head,
                more,
            });
        }
        self.with_reader(|conn| {
            let head = match head {
                Some(h) => h,
                // Not in the index: no events; the channels table knows it (or not).
                None => stored_head(conn, channel)?
                    .ok_or_else(|| StoreError::UnknownChannel(channel.to_owned()))?,
            };
            let mut events = Vec::with_capacity(entries.len());
            let mut rows = FrameReader::new(conn, channel);
            for entry in entries {
                if entry.received_at_ms < cutoff {
                    continue;
                }
                // A row trimmed since the index was read is simply gone: the
                // feed reports the hole as a gap.
                if let Some(frame) = rows.frame(&entry)? {
                    events.push(StoredFrame {
                        seq: entry.seq,
                        frame,
                    });
                }
            }
            Ok(Page { events, head, more })
        })
    }

    pub(super) fn trim(&self, now_ms: i64) -> Result<u64, StoreError> {
        Ok(self.trim_counts()? + self.trim_age(now_ms)?)
    }

    /// Deletes the batches whose newest event is older than `max_age`.
    /// Returns how many events that dropped from the index.
    fn trim_age(&self, now_ms: i64) -> Result<u64, StoreError> {
        let cutoff = now_ms - self.retention.max_age.as_millis() as i64;
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Rowids follow commit order and arrival times follow it too, so
            // old batches come first: the scan stops at the first young one.
            let first_young: Option<i64> = tx
                .query_row(
                    "SELECT rowid FROM batches WHERE last_at >= ?1 ORDER BY rowid LIMIT 1",
                    params![cutoff],
                    |r| r.get(0),
                )
                .optional()?;
            let bound = first_young.unwrap_or(i64::MAX);
            let any_old: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM batches WHERE rowid < ?1)",
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
            tx.execute("DELETE FROM batches WHERE rowid < ?1", params![bound])?;
            tx.execute("DELETE FROM acks WHERE acked_at < ?1", params![cutoff])?;
            tx.commit()?;
            Ok(index.drop_before_rowid(bound))
        })
    }

    /// Drops, per channel, the events beyond the newest `keep_events`, and
    /// deletes the batches left holding none and the acks of every event
    /// retired since the last trim. Returns how many events it dropped.
    pub(super) fn trim_counts(&self) -> Result<u64, StoreError> {
        let keep = self.retention.keep_events;
        self.with_writer(|conn| {
            // The index and the acks due change only under the writer lock we hold.
            let (drops, emptied, dropped) = {
                let index = self.index.read().unwrap_or_else(|p| p.into_inner());
                let drops = index.beyond(keep);
                let (emptied, dropped) = index.emptied_by(&drops);
                (drops, emptied, dropped)
            };
            let acks_due = std::mem::take(&mut *self.acks_due());
            if drops.is_empty() && acks_due.is_empty() {
                return Ok(0);
            }
            let deleted = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)
                .and_then(|tx| {
                    delete_rows(&tx, &emptied)?;
                    delete_acks(&tx, drops.iter().map(|(c, s)| (c, s)).chain(&acks_due))?;
                    Ok(tx.commit()?)
                });
            if let Err(e) = deleted {
                // Try those acks again next time.
                self.acks_due().extend(acks_due);
                return Err(e);
            }
            self.index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .drop_through(&drops);
            Ok(dropped)
        })
    }

    /// Remembers that the acks of `drops` (`(channel, last seq retired)`)
    /// are to be deleted by the next trim.
    fn note_acks_due(&self, drops: &[(String, u64)]) {
        if drops.is_empty() {
            return;
        }
        let mut due = self.acks_due();
        for (channel, upto) in drops {
            let seq = due.entry(channel.clone()).or_default();
            *seq = (*seq).max(*upto);
        }
    }

    fn acks_due(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.acks_due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rebuilds the index from the log.
    pub(super) fn load_index(&self) -> Result<(), StoreError> {
        self.with_writer(|conn| {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let mut heads = conn.prepare("SELECT id, last_seq FROM channels WHERE last_seq > 0")?;
            let mut rows = heads.query([])?;
            while let Some(r) = rows.next()? {
                index.note_head(&r.get::<_, String>(0)?, r.get(1)?);
            }
            let mut log = conn.prepare("SELECT rowid, events FROM batches ORDER BY rowid")?;
            let mut rows = log.query([])?;
            while let Some(r) = rows.next()? {
                let rowid: i64 = r.get(0)?;
                let blob = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                for rec in batch::records(rowid, blob)? {
                    let entry = Entry {
                        seq: rec.seq,
                        rowid,
                        received_at_ms: rec.received_at_ms,
                        offset: rec.offset,
                        len: rec.len,
                    };
                    index.push(rec.channel, entry);
                }
            }
            Ok(())
        })
    }
}

/// Reads frames out of batch rows, keeping the last row open: a channel's
/// consecutive events often share one.
struct FrameReader<'c> {
    conn: &'c Connection,
    channel: &'c str,
    open: Option<(i64, rusqlite::blob::Blob<'c>)>,
}

impl<'c> FrameReader<'c> {
    fn new(conn: &'c Connection, channel: &'c str) -> Self {
        FrameReader {
            conn,
            channel,
            open: None,
        }
    }

    /// The frame of `entry` of this reader's channel; `None` when its row is
    /// gone, or was reused for other events.
    fn frame(&mut self, entry: &Entry) -> Result<Option<String>, StoreError> {
        if self.open.as_ref().map(|(rowid, _)| *rowid) != Some(entry.rowid) {
            self.open = None;
            match self
                .conn
                .blob_open(MAIN_DB, c"batches", c"events", entry.rowid, true)
            {
                Ok(blob) => self.open = Some((entry.rowid, blob)),
                Err(e) if !self.row_exists(entry.rowid)? => {
                    tracing::trace!(error = %e, rowid = entry.rowid, "batch trimmed while reading");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (_, blob) = self.open.as_ref().expect("opened above");
        // The record's header too, to check it is the event the index means.
        let header = batch::header_len(self.channel);
        let damaged = || StoreError::Database(format!("stored batch {} is damaged", entry.rowid));
        let start = (entry.offset as usize)
            .checked_sub(header)
            .ok_or_else(damaged)?;
        let mut record = vec![0u8; header + entry.len as usize];
        if blob.read_at(&mut record, start)? < record.len() {
            // Shorter than the index says: a reused row id, holding other events.
            return Ok(None);
        }
        match batch::frame_of(&record, self.channel, entry.seq) {
            Some(frame) => String::from_utf8(frame.to_vec())
                .map(Some)
                .map_err(|_| damaged()),
            None => Ok(None),
        }
    }

    fn row_exists(&self, rowid: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM batches WHERE rowid = ?1)")?
            .query_row(params![rowid], |r| r.get(0))?)
    }
}

/// Deletes the batch rows `emptied` (sorted, none retaining an event).
fn delete_rows(tx: &Connection, emptied: &[i64]) -> Result<(), StoreError> {
    // Batches empty in commit order, mostly: one range delete a run.
    let mut delete = tx.prepare_cached("DELETE FROM batches WHERE rowid BETWEEN ?1 AND ?2")?;
    for (first, last) in runs(emptied) {
        delete.execute(params![first, last])?;
    }
    Ok(())
}

/// Deletes the acks of retired events, given as `(channel, last seq retired)`.
fn delete_acks<'a>(
    tx: &Connection,
    retired: impl Iterator<Item = (&'a String, &'a u64)>,
) -> Result<(), StoreError> {
    let mut delete = tx.prepare_cached("DELETE FROM acks WHERE channel = ?1 AND seq <= ?2")?;
    for (channel, upto) in retired {
        delete.execute(params![channel, upto])?;
    }
    Ok(())
}

/// Sorted, distinct rowids as inclusive runs of consecutive values.
fn runs(sorted: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &id in sorted {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => out.push((id, id)),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderMap;

    use rusqlite::params;

    use super::runs;
    use crate::config::SyncMode;
    use crate::event::{Incoming, NewEvent, now_ms};
    use crate::store::Retention;
    use crate::store::sqlite::SqliteStore;

    /// A store keeping `keep` events per channel, with channels `c` and `d`.
    fn store_with(dir: &std::path::Path, keep: u64) -> SqliteStore {
        let retention = Retention {
            keep_events: keep,
            max_age: Duration::from_secs(3600),
        };
        let store = SqliteStore::open(dir, SyncMode::Normal, retention).unwrap();
        store
            .inner
            .with_writer(|conn| {
                conn.execute(
                    "INSERT INTO channels (id, token_hash, created_at) VALUES ('c', x'00', 1), ('d', x'00', 1)",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        store
    }

    fn event(channel: &str, body: &str) -> NewEvent {
        let headers = HeaderMap::new();
        let req = Incoming {
            method: "POST",
            path: "",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        NewEvent::new(channel.into(), format!("evt_{body}"), now_ms(), req)
    }

    fn rows(store: &SqliteStore) -> i64 {
        store
            .inner
            .with_writer(|conn| {
                Ok(conn.query_row("SELECT count(*) FROM batches", [], |r| r.get(0))?)
            })
            .unwrap()
    }

    #[test]
    fn appends_retire_what_count_retention_no_longer_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 3);
        let inner = &store.inner;
        let acks = || -> i64 {
            inner
                .with_writer(|conn| {
                    Ok(conn.query_row("SELECT count(*) FROM acks", [], |r| r.get(0))?)
                })
                .unwrap()
        };
        // Row 1 holds c1 and d1; then c2..c5 one row each.
        inner
            .append(vec![event("c", "c1"), event("d", "d1")])
            .unwrap();
        inner
            .with_writer(|conn| {
                conn.execute(
                    "INSERT INTO acks (channel, seq, status, acked_at) VALUES ('c', 1, 200, 0)",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        for i in 2..=5 {
            inner.append(vec![event("c", &format!("c{i}"))]).unwrap();
        }
        let seqs = |channel| {
            let page = inner.read_since(channel, 0, 10, now_ms()).unwrap();
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>()
        };
        assert_eq!(seqs("c"), [3, 4, 5]);
        assert_eq!(seqs("d"), [1]);
        // c2's row went with c5's append; c1's row stays for d1.
        assert_eq!(rows(&store), 1 + 3);
        assert_eq!(acks(), 1, "c1's ack waits for the trim");
        assert_eq!(
            inner.trim(now_ms()).unwrap(),
            0,
            "appends left no event to trim"
        );
        assert_eq!(acks(), 0, "the trim deleted c1's ack");
        inner
            .append(vec![event("d", "d2"), event("d", "d3"), event("d", "d4")])
            .unwrap();
        assert_eq!(seqs("d"), [2, 3, 4]);
        assert_eq!(rows(&store), 3 + 1, "d1 retired: its row is gone");
    }

    #[test]
    fn a_row_deleted_under_the_index_reads_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 100);
        let inner = &store.inner;
        inner
            .append(vec![event("c", "one"), event("c", "two")])
            .unwrap();
        inner.append(vec![event("c", "three")]).unwrap();
        let page = inner.read_since("c", 0, 10, now_ms()).unwrap();
        assert_eq!(
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(
            page.events[2].frame.contains("\"body\":\"three\""),
            "{}",
            page.events[2].frame
        );

        let delete_oldest_row = || {
            inner
                .with_writer(|conn| {
                    conn.execute(
                        "DELETE FROM batches WHERE rowid = (SELECT min(rowid) FROM batches)",
                        [],
                    )?;
                    Ok(())
                })
                .unwrap()
        };
        // As if a trim deleted the first batch between index read and row read.
        delete_oldest_row();
        let page = inner.read_since("c", 0, 10, now_ms()).unwrap();
        assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        assert_eq!(page.head, 3);

        // And if SQLite reused that row id for other events (it may, once the
        // newest rows are gone), those are not passed off as c's.
        let mut other = Vec::new();
        for seq in 1..=2 {
            super::batch::push(&mut other, "d", seq, now_ms(), "{\"not\":\"c\"}").unwrap();
        }
        let mut longer = Vec::new();
        super::batch::push(&mut longer, "c", 9, now_ms(), &"x".repeat(400)).unwrap();
        for blob in [other, longer] {
            inner
                .with_writer(|conn| {
                    conn.execute(
                        "INSERT OR REPLACE INTO batches (id, first_at, last_at, events)
                         VALUES ((SELECT min(rowid) FROM batches) - 1, 0, 0, ?1)",
                        params![blob],
                    )?;
                    Ok(())
                })
                .unwrap();
            let page = inner.read_since("c", 0, 10, now_ms()).unwrap();
            assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
            delete_oldest_row();
        }
    }

    #[test]
    fn consecutive_rowids_become_one_run() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[4]), vec![(4, 4)]);
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 8), (10, 10)]);
    }
}
