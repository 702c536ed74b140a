//! The background task that trims what retention no longer keeps.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;
use crate::event::now_ms;

/// How often to trim. Count retention is applied here too, once a second
/// rather than in every group commit: deleting a second's worth of old rows
/// at once rewrites each old page once, not once per commit.
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
