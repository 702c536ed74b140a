//! Every retry policy and time limit of the client, in one place.
//!
//! Both policies are backon's exponential backoff with full jitter: each delay
//! is a random point in `[d, 2d)` where `d` doubles up to half the cap, so no
//! delay exceeds the cap and clients that lost the same relay spread out.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Longest wait between two attempts to reach the relay.
pub const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// First wait before reconnecting to the relay.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// A connection that lived this long resets the reconnect backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Time limit of the relay's TCP + TLS + WebSocket handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the client pings the relay.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// Silence (no frame, ping or pong) after which the connection counts as dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Time limit of one write (an ack, a ping, the close frame) to the relay.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait between two attempts to deliver an event locally.
pub const DELIVERY_CAP: Duration = Duration::from_secs(30);
/// First wait before retrying a delivery.
pub const DELIVERY_FIRST: Duration = Duration::from_secs(1);

/// Delays between reconnects: endless.
pub fn reconnect() -> ExponentialBackoff {
    jittered(RECONNECT_FIRST, RECONNECT_CAP)
        .without_max_times()
        .build()
}

/// Delays between delivery attempts: `retries` of them.
pub fn delivery(retries: usize) -> ExponentialBackoff {
    jittered(DELIVERY_FIRST, DELIVERY_CAP)
        .with_max_times(retries)
        .build()
}

fn jittered(first: Duration, cap: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(cap / 2)
        .with_factor(2.0)
        .with_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_jittered_and_stay_under_the_cap() {
        let delays: Vec<_> = reconnect().take(50).collect();
        assert_eq!(delays.len(), 50, "reconnecting never gives up");
        assert!(delays[0] >= RECONNECT_FIRST && delays[0] < RECONNECT_FIRST * 2);
        assert!(delays.iter().all(|d| *d < RECONNECT_CAP));
        assert!(delays[20..].iter().all(|d| *d >= RECONNECT_CAP / 2));
    }

    #[test]
    fn delivery_retries_are_bounded_and_last_minutes() {
        assert_eq!(delivery(0).count(), 0);
        let delays: Vec<_> = delivery(12).collect();
        assert_eq!(delays.len(), 12);
        let total: Duration = delays.iter().sum();
        // Documented in --help as "about 3½ minutes".
        assert!(
            total >= Duration::from_secs(120) && total <= Duration::from_secs(330),
            "{total:?}"
        );
    }
}
