//! The one retry schedule: the image fetch, the key fetch and the iSCSI
//! logins wait the same way between rounds, and the device waits poll by
//! the same formula on a shorter scale.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// Exponential waits: `unit`·2^attempt, capped at `cap`, plus a per-node
/// jitter under one `unit` so that a rack does not come back in step.
pub struct Schedule {
    unit: Duration,
    cap: Duration,
}

/// Servers and targets: 2, 4, 8, 16, then 30 s.
pub const NETWORK: Schedule = Schedule {
    unit: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

/// A local device that is about to appear: 0.2, 0.4, then every 0.5 s, so a
/// device is used within half a second of showing up.
pub const DEVICE: Schedule = Schedule {
    unit: Duration::from_millis(100),
    cap: Duration::from_millis(500),
};

impl Schedule {
    /// The wait before round `attempt` (1, 2, …); never past `left`.
    pub fn wait(&self, attempt: u32, left: Duration) -> Duration {
        let exp = self.unit.saturating_mul(1 << attempt.min(16));
        let unit_ms = self.unit.as_millis().max(1) as u64;
        let jitter = (u64::from(std::process::id()) + u64::from(attempt) * 7919) % unit_ms;
        (exp.min(self.cap) + Duration::from_millis(jitter)).min(left)
    }
}

/// The network schedule's wait before round `attempt`.
pub fn backoff(attempt: u32, left: Duration) -> Duration {
    NETWORK.wait(attempt, left)
}

/// Calls `check` on the device schedule until it gives a value or
/// `timeout` has passed; `what` names the wait in the error, in the log
/// line and in the unit's status after the first seconds.
pub fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    let mut logged = false;
    for attempt in 1.. {
        if let Some(v) = check() {
            return Ok(v);
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        if !logged && start.elapsed() > Duration::from_secs(2) {
            crate::sys::notify::status(&format!("waiting for {what}"));
            tracing::info!("waiting up to {} s for {what}", timeout.as_secs());
            logged = true;
        }
        std::thread::sleep(DEVICE.wait(attempt, left));
    }
    bail!("{what} did not appear within {} s", timeout.as_secs())
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

    #[test]
    fn devices_are_polled_at_most_every_half_second_plus_jitter() {
        let ms = |n| DEVICE.wait(n, Duration::MAX).as_millis() / 100;
        assert_eq!([ms(1), ms(2), ms(3), ms(9)], [2, 4, 5, 5]);
    }

    #[test]
    fn poll_returns_the_value_or_names_what_never_came() {
        let mut n = 0;
        let got = poll("three calls", Duration::from_secs(60), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got.unwrap(), 3);
        let e = poll("/dev/nothing", Duration::ZERO, || None::<()>).unwrap_err();
        assert_eq!(e.to_string(), "/dev/nothing did not appear within 0 s");
    }
}
