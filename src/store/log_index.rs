//! The in-memory index of the SQLite event log.
//!
//! Each group commit is one row of the log (see `sqlite::batch`), so every
//! commit appends one row to the end of one B-tree. A per-channel index in
//! SQLite would scatter each commit over one leaf page per channel
//! (measured: a third of the relay's CPU with 1000 busy channels); this index
//! keeps, for every retained event, its batch row and the byte range of its
//! frame there (32 bytes each), and how many retained events each batch row
//! still holds, so a row is deleted once none is left. It is rebuilt from
//! the log at start-up.

use std::collections::{HashMap, VecDeque};

/// Where one retained event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// Its batch row.
    pub rowid: i64,
    pub received_at_ms: i64,
    /// Byte range of its frame in the row's blob.
    pub offset: u32,
    pub len: u32,
}

/// Entries of one channel, oldest first, plus its head.
#[derive(Debug, Default)]
struct ChannelLog {
    head: u64,
    entries: VecDeque<Entry>,
}

/// The index of every channel that has events or a known head.
#[derive(Debug, Default)]
pub struct LogIndex {
    channels: HashMap<String, ChannelLog>,
    /// `(rowid, retained events)` of every batch row, in rowid order.
    batches: VecDeque<(i64, u32)>,
}

impl LogIndex {
    /// The newest seq of `channel`, if the index knows the channel.
    pub fn head(&self, channel: &str) -> Option<u64> {
        self.channels.get(channel).map(|c| c.head)
    }

    /// Records a head known from elsewhere (the channels table), never lowering it.
    pub fn note_head(&mut self, channel: &str, head: u64) {
        let log = self.channels.entry(channel.to_owned()).or_default();
        log.head = log.head.max(head);
    }

    /// Appends a committed event. Seqs of a channel arrive in increasing
    /// order, and rowids never decrease.
    pub fn push(&mut self, channel: &str, entry: Entry) {
        let log = match self.channels.get_mut(channel) {
            Some(l) => l,
            None => self.channels.entry(channel.to_owned()).or_default(),
        };
        log.head = log.head.max(entry.seq);
        log.entries.push_back(entry);
        match self.batches.back_mut() {
            Some((rowid, live)) if *rowid == entry.rowid => *live += 1,
            _ => self.batches.push_back((entry.rowid, 1)),
        }
    }

    /// The oldest retained seq of `channel`, if it has any.
    pub fn oldest(&self, channel: &str) -> Option<u64> {
        self.channels.get(channel)?.entries.front().map(|e| e.seq)
    }

    /// Up to `limit` entries of `channel` with `seq > since`, oldest first,
    /// and whether more follow.
    pub fn after(&self, channel: &str, since: u64, limit: usize) -> (Vec<Entry>, bool) {
        let Some(log) = self.channels.get(channel) else {
            return (Vec::new(), false);
        };
        let start = log.entries.partition_point(|e| e.seq <= since);
        let out: Vec<_> = log.entries.range(start..).take(limit).copied().collect();
        let more = log.entries.len() - start > out.len();
        (out, more)
    }

    /// `(channel, last seq to drop)` of the channels holding more than `keep` entries.
    pub fn beyond(&self, keep: u64) -> Vec<(String, u64)> {
        self.channels
            .iter()
            .filter(|(_, l)| l.entries.len() as u64 > keep)
            .map(|(c, l)| (c.clone(), l.head.saturating_sub(keep)))
            .collect()
    }

    /// The batch rows that dropping `drops` (`(channel, upto)` as from
    /// [`beyond`](Self::beyond)) would leave without any retained event, in
    /// rowid order, and how many events would be dropped. Changes nothing.
    pub fn emptied_by(&self, drops: &[(String, u64)]) -> (Vec<i64>, u64) {
        let mut taken: HashMap<i64, u32> = HashMap::new();
        let mut events = 0;
        for (channel, upto) in drops {
            let Some(log) = self.channels.get(channel) else {
                continue;
            };
            let n = log.entries.partition_point(|e| e.seq <= *upto);
            events += n as u64;
            for e in log.entries.range(..n) {
                *taken.entry(e.rowid).or_default() += 1;
            }
        }
        let mut emptied: Vec<i64> = taken
            .into_iter()
            .filter(|(rowid, n)| self.live(*rowid) == Some(*n))
            .map(|(rowid, _)| rowid)
            .collect();
        emptied.sort_unstable();
        (emptied, events)
    }

    /// Drops the entries of each `(channel, upto)` with `seq <= upto`, and
    /// forgets the batch rows left without events (which the caller deleted).
    /// Costs O(dropped × log rows): it runs in every group commit.
    pub fn drop_through(&mut self, drops: &[(String, u64)]) {
        for (channel, upto) in drops {
            let Some(log) = self.channels.get_mut(channel) else {
                continue;
            };
            let n = log.entries.partition_point(|e| e.seq <= *upto);
            for e in log.entries.drain(..n) {
                let i = self.batches.partition_point(|(rowid, _)| *rowid < e.rowid);
                if let Some((rowid, live)) = self.batches.get_mut(i)
                    && *rowid == e.rowid
                {
                    *live -= 1;
                }
            }
        }
        // Rows empty mostly in rowid order. One emptied out of order keeps a
        // zero count until the rows before it go too; nothing matches a zero.
        while let Some((_, 0)) = self.batches.front() {
            self.batches.pop_front();
        }
    }

    /// Forgets every batch row with `rowid < bound` and its events (what an
    /// age trim deleted); returns how many events that was.
    pub fn drop_before_rowid(&mut self, bound: i64) -> u64 {
        let mut dropped = 0;
        for log in self.channels.values_mut() {
            let n = log.entries.partition_point(|e| e.rowid < bound);
            dropped += n as u64;
            log.entries.drain(..n);
        }
        let n = self.batches.partition_point(|(rowid, _)| *rowid < bound);
        self.batches.drain(..n);
        dropped
    }

    /// `(channel, head)` of every channel, for writing heads down.
    pub fn heads(&self) -> impl Iterator<Item = (&str, u64)> {
        self.channels.iter().map(|(c, l)| (c.as_str(), l.head))
    }

    /// Retained events of batch row `rowid`, if the index holds it.
    fn live(&self, rowid: i64) -> Option<u32> {
        let i = self.batches.partition_point(|(r, _)| *r < rowid);
        match self.batches.get(i) {
            Some((r, live)) if *r == rowid => Some(*live),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, rowid: i64) -> Entry {
        Entry {
            seq,
            rowid,
            received_at_ms: 0,
            offset: 0,
            len: 0,
        }
    }

    fn seqs(ix: &LogIndex, channel: &str) -> Vec<u64> {
        ix.after(channel, 0, 100).0.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn push_page_and_trim() {
        let mut ix = LogIndex::default();
        // Row 10 holds a1 and b1; row 11 a2 and a3; row 12 a4.
        ix.push("a", entry(1, 10));
        ix.push("b", entry(1, 10));
        ix.push("a", entry(2, 11));
        ix.push("a", entry(3, 11));
        ix.push("a", entry(4, 12));
        assert_eq!(ix.head("a"), Some(4));
        assert_eq!(
            ix.after("a", 1, 2),
            (vec![entry(2, 11), entry(3, 11)], true)
        );
        assert_eq!(
            ix.after("a", 2, 10),
            (vec![entry(3, 11), entry(4, 12)], false)
        );
        assert_eq!(ix.after("zz", 0, 10), (vec![], false));

        // Keeping 1 of "a" drops a1..a3: row 11 empties, row 10 still holds b1.
        let drops = ix.beyond(1);
        assert_eq!(drops, vec![("a".to_owned(), 3)]);
        assert_eq!(ix.emptied_by(&drops), (vec![11], 3));
        assert_eq!(
            seqs(&ix, "a"),
            vec![1, 2, 3, 4],
            "emptied_by changes nothing"
        );
        ix.drop_through(&drops);
        assert_eq!(seqs(&ix, "a"), vec![4]);
        assert_eq!(ix.batches, VecDeque::from([(10, 1), (11, 0), (12, 1)]));

        // Then b1 goes too: row 10 empties.
        ix.push("b", entry(2, 13));
        let drops = ix.beyond(1);
        assert_eq!(ix.emptied_by(&drops), (vec![10], 1));
        ix.drop_through(&drops);
        assert_eq!(
            ix.batches,
            VecDeque::from([(12, 1), (13, 1)]),
            "10 and 11 gone from the front"
        );

        assert_eq!(ix.drop_before_rowid(13), 1);
        assert_eq!(seqs(&ix, "a"), Vec::<u64>::new());
        assert_eq!(seqs(&ix, "b"), vec![2]);
        assert_eq!(ix.head("a"), Some(4), "heads outlive their events");
        ix.note_head("b", 0);
        assert_eq!(ix.head("b"), Some(2), "never lowered");
    }
}
