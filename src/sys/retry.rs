//! The one retry schedule: the image fetch, the key fetch and the iSCSI
//! logins wait the same way between rounds.

use std::time::Duration;

/// The wait before round `attempt` (1, 2, …): exponential, capped at 30 s,
/// with a per-node jitter so that a rack that lost its server does not come
/// back in step; never past `left`.
pub fn backoff(attempt: u32, left: Duration) -> Duration {
    let base = 1u64 << attempt.min(5);
    let jitter = (std::process::id() as u64 + attempt as u64 * 7919) % 1000;
    Duration::from_millis((base * 1000).min(30_000) + jitter).min(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_thirty_seconds_and_stops_at_the_deadline() {
        let secs = |n| backoff(n, Duration::MAX).as_secs();
        assert_eq!(
            [secs(1), secs(2), secs(3), secs(4), secs(5), secs(9)],
            [2, 4, 8, 16, 30, 30]
        );
        assert_eq!(backoff(3, Duration::from_secs(1)), Duration::from_secs(1));
    }
}
