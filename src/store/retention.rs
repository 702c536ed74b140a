//! The background task that trims what retention no longer keeps.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;
use crate::event::now_ms;

/// How often to trim. The SQLite store applies count retention in each group
/// commit (a row or two at a time, now that a row holds a whole batch), so
/// this mostly enforces age and what a restart with a smaller
/// `--retain-events` left; a second's worth of deletes at once held the
/// writer long enough to show in the latency tail.
pub fn interval_for(max_age: Duration) -> Duration {
    (max_age / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Trims every `every` until `shutdown` fires. Reads already hide what is
/// out of retention, so a late trim only costs disk, never correctness.
pub async fn run(store: Arc<dyn Store>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store.trim(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "retention trimmed events"),
            Err(e) => tracing::warn!(error = %e, "retention trim failed; will retry"),
        }
    }
}
