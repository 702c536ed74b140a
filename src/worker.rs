//! Which worker thread the caller is on. The server's workers number
//! themselves as they start (see `server::workers`); group commit keeps one
//! lane per worker and the hub one shard per worker by this number. Every
//! other thread counts as worker 0.

use std::cell::Cell;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as worker `worker`. Each worker thread calls it once.
pub fn set_current(worker: usize) {
    CURRENT.with(|w| w.set(worker));
}

/// The calling thread's worker number, modulo `of` (the number of workers
/// the caller keeps state for; at least 1).
pub fn current(of: usize) -> usize {
    CURRENT.with(Cell::get) % of.max(1)
}
