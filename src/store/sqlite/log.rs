//! The event log: group-commit appends, indexed reads, retention trims.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::Inner;
use crate::event::{Committed, NewEvent};
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

    pub(super) fn trim(&self, now_ms: i64) -> Result<u64, StoreError> {
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
    pub(super) fn trim_counts(&self) -> Result<u64, StoreError> {
        let keep = self.retention.keep_events;
        self.with_writer(|conn| {
            // The index changes only under the writer lock we hold.
            let over = self
                .index
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .beyond(keep);
            if over.is_empty() {
                return Ok(0);
            }
            let mut gone: Vec<i64> = over
                .iter()
                .flat_map(|(_, _, rowids)| rowids.iter().copied())
                .collect();
            // In rowid order, each old page is visited (and rewritten) once.
            gone.sort_unstable();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                // Rowids are assigned in commit order, so a busy channel's old
                // events are long runs: one range delete a run.
                let mut delete =
                    tx.prepare_cached("DELETE FROM events WHERE rowid BETWEEN ?1 AND ?2")?;
                for (first, last) in runs(&gone) {
                    delete.execute(params![first, last])?;
                }
                let mut delete_acks =
                    tx.prepare_cached("DELETE FROM acks WHERE channel = ?1 AND seq <= ?2")?;
                for (channel, upto, _) in &over {
                    delete_acks.execute(params![channel, upto])?;
                }
            }
            tx.commit()?;
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            for (channel, upto, _) in &over {
                index.take_through(channel, *upto);
            }
            Ok(gone.len() as u64)
        })
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
    use super::runs;

    #[test]
    fn consecutive_rowids_become_one_run() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[4]), vec![(4, 4)]);
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 8), (10, 10)]);
    }
}
