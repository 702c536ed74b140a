//! The highest seq below which every event is finished, however out of order
//! deliveries complete: the only position safe to resume from.

use std::collections::BTreeSet;

/// A contiguous watermark over seqs finished in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    through: u64,
    above: BTreeSet<u64>,
}

impl Watermark {
    /// Everything up to and including `through` is finished.
    pub fn new(through: u64) -> Watermark {
        Watermark {
            through,
            above: BTreeSet::new(),
        }
    }

    /// The highest seq with nothing unfinished at or below it.
    pub fn through(&self) -> u64 {
        self.through
    }

    /// Marks `seq` finished; returns whether [`Self::through`] moved.
    pub fn complete(&mut self, seq: u64) -> bool {
        if seq <= self.through {
            return false;
        }
        self.above.insert(seq);
        self.advance()
    }

    /// Marks `from..=to` finished (events the relay will never send).
    pub fn complete_range(&mut self, from: u64, to: u64) -> bool {
        if to <= self.through || from > to {
            return false;
        }
        if from <= self.through + 1 {
            // Jump straight over the range instead of inserting each seq.
            self.through = to;
            self.above = self.above.split_off(&(to + 1));
            self.advance();
            return true;
        }
        // A range beyond a hole: rare (the relay sends events in order), so
        // remember each seq; ranges are bounded by the relay's retention.
        self.above.extend(from..=to);
        false
    }

    fn advance(&mut self) -> bool {
        let before = self.through;
        while self.above.first() == Some(&(self.through + 1)) {
            self.above.pop_first();
            self.through += 1;
        }
        self.through != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_completion_advances_each_time() {
        let mut w = Watermark::new(10);
        assert!(w.complete(11));
        assert!(w.complete(12));
        assert_eq!(w.through(), 12);
        assert!(!w.complete(12), "duplicates change nothing");
        assert!(!w.complete(3));
    }

    #[test]
    fn out_of_order_completion_waits_for_the_hole() {
        let mut w = Watermark::new(0);
        assert!(!w.complete(3));
        assert!(!w.complete(2));
        assert_eq!(w.through(), 0, "seq 1 is still in flight");
        assert!(w.complete(1));
        assert_eq!(w.through(), 3);
        assert!(!w.complete(5));
        assert!(w.complete(4));
        assert_eq!(w.through(), 5);
    }

    #[test]
    fn ranges_skip_lost_events() {
        let mut w = Watermark::new(4);
        assert!(w.complete_range(5, 9));
        assert_eq!(w.through(), 9);
        assert!(!w.complete_range(1, 3));
        // A range after a hole lands once the hole fills, with whatever follows it.
        assert!(!w.complete_range(12, 14));
        assert!(!w.complete(11));
        assert!(w.complete(10));
        assert_eq!(w.through(), 14);
        // A range that swallows pending seqs.
        let mut w = Watermark::new(0);
        w.complete(3);
        w.complete(7);
        assert!(w.complete_range(1, 5));
        assert_eq!(w.through(), 5);
        assert!(w.complete(6));
        assert_eq!(w.through(), 7);
    }
}
