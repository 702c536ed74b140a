//! The in-memory index of the SQLite event log.
//!
//! Events are appended to one table in rowid order, so every commit writes
//! to the end of one B-tree. A per-channel index in SQLite would scatter each
//! commit over one leaf page per channel (measured: a third of the relay's
//! CPU with 1000 busy channels); this index keeps `(seq, rowid)` of every
//! retained event in memory instead (16 bytes each) and is rebuilt from the
//! log at start-up.

use std::collections::{HashMap, VecDeque};

/// `(seq, rowid)` pairs of one channel, oldest first, plus its head.
#[derive(Debug, Default)]
struct ChannelLog {
    head: u64,
    entries: VecDeque<(u64, i64)>,
}

/// The index of every channel that has events or a known head.
#[derive(Debug, Default)]
pub struct LogIndex {
    channels: HashMap<String, ChannelLog>,
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

    /// Appends a committed event; seqs of a channel arrive in increasing order.
    pub fn push(&mut self, channel: &str, seq: u64, rowid: i64) {
        let log = match self.channels.get_mut(channel) {
            Some(l) => l,
            None => self.channels.entry(channel.to_owned()).or_default(),
        };
        log.head = log.head.max(seq);
        log.entries.push_back((seq, rowid));
    }

    /// Up to `limit` entries of `channel` with `seq > since`, oldest first,
    /// and whether more follow.
    pub fn after(&self, channel: &str, since: u64, limit: usize) -> (Vec<(u64, i64)>, bool) {
        let Some(log) = self.channels.get(channel) else {
            return (Vec::new(), false);
        };
        let start = log.entries.partition_point(|&(seq, _)| seq <= since);
        let out: Vec<_> = log.entries.range(start..).take(limit).copied().collect();
        let more = log.entries.len() - start > out.len();
        (out, more)
    }

    /// Rowids of `channel`'s entries with `seq <= upto`.
    pub fn rowids_through(&self, channel: &str, upto: u64) -> Vec<i64> {
        let Some(log) = self.channels.get(channel) else {
            return Vec::new();
        };
        let n = log.entries.partition_point(|&(seq, _)| seq <= upto);
        log.entries.range(..n).map(|&(_, rowid)| rowid).collect()
    }

    /// Rowids of `channel`'s entries with `seq <= upto`, removed from the index.
    pub fn take_through(&mut self, channel: &str, upto: u64) -> Vec<i64> {
        let Some(log) = self.channels.get_mut(channel) else {
            return Vec::new();
        };
        let n = log.entries.partition_point(|&(seq, _)| seq <= upto);
        log.entries.drain(..n).map(|(_, rowid)| rowid).collect()
    }

    /// Forgets every entry with `rowid < bound` (what an age trim deleted).
    pub fn drop_before_rowid(&mut self, bound: i64) {
        for log in self.channels.values_mut() {
            let n = log.entries.partition_point(|&(_, rowid)| rowid < bound);
            log.entries.drain(..n);
        }
    }

    /// `(channel, head)` of every channel, for writing heads down.
    pub fn heads(&self) -> impl Iterator<Item = (&str, u64)> {
        self.channels.iter().map(|(c, l)| (c.as_str(), l.head))
    }

    /// Channels holding more than `keep` entries: `(channel, last seq to
    /// drop, rowids of the entries to drop)`.
    pub fn beyond(&self, keep: u64) -> Vec<(String, u64, Vec<i64>)> {
        self.channels
            .iter()
            .filter(|(_, l)| l.entries.len() as u64 > keep)
            .map(|(c, l)| {
                let upto = l.head.saturating_sub(keep);
                (c.clone(), upto, self.rowids_through(c, upto))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_page_and_trim() {
        let mut ix = LogIndex::default();
        for (seq, rowid) in [(1, 10), (2, 12), (3, 15), (4, 20)] {
            ix.push("a", seq, rowid);
        }
        ix.push("b", 1, 11);
        assert_eq!(ix.head("a"), Some(4));
        assert_eq!(ix.after("a", 1, 2), (vec![(2, 12), (3, 15)], true));
        assert_eq!(ix.after("a", 2, 10), (vec![(3, 15), (4, 20)], false));
        assert_eq!(ix.after("zz", 0, 10), (vec![], false));
        assert_eq!(ix.rowids_through("a", 2), vec![10, 12]);
        assert_eq!(ix.take_through("a", 2), vec![10, 12]);
        assert_eq!(ix.after("a", 0, 10).0, vec![(3, 15), (4, 20)]);
        ix.drop_before_rowid(16);
        assert_eq!(ix.after("a", 0, 10).0, vec![(4, 20)]);
        assert_eq!(ix.after("b", 0, 10).0, vec![]);
        assert_eq!(ix.head("b"), Some(1), "heads outlive their events");
        assert_eq!(ix.beyond(1), vec![]);
        ix.push("b", 2, 30);
        ix.push("b", 3, 31);
        assert_eq!(ix.beyond(1), vec![("b".to_owned(), 2, vec![30])]);
        ix.note_head("b", 0);
        assert_eq!(ix.head("b"), Some(3), "never lowered");
    }
}
