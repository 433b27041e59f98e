//! The one retry schedule: the image fetch, the key fetch and the iSCSI
//! logins wait the same way between rounds, and the device waits poll by
//! the same formula on a shorter scale.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// Exponential waits with "equal jitter": round n waits between half and
/// all of `unit`·2^n (capped at `cap`), the half drawn at random on each
/// node, so that a rack that lost its server together does not come back
/// to it in step (the same initrd gives every node the same PIDs and
/// timings: only real randomness spreads them).
pub struct Schedule {
    unit: Duration,
    cap: Duration,
}

/// Servers and targets: 1-2, 2-4, 4-8, 8-16, then 15-30 s.
pub const NETWORK: Schedule = Schedule {
    unit: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

/// A local device that is about to appear: 0.1-0.2, 0.2-0.4, then every
/// 0.25-0.5 s, so a device is used within half a second of showing up.
pub const DEVICE: Schedule = Schedule {
    unit: Duration::from_millis(100),
    cap: Duration::from_millis(500),
};

impl Schedule {
    /// The wait before round `attempt` (1, 2, …); never past `left`.
    pub fn wait(&self, attempt: u32, left: Duration) -> Duration {
        self.wait_with(attempt, left, random())
    }

    /// The wait with the random draw given: `r` picks a point in the upper
    /// half of the round's exponential wait.
    pub fn wait_with(&self, attempt: u32, left: Duration, r: u64) -> Duration {
        let full = self.unit.saturating_mul(1 << attempt.min(16)).min(self.cap);
        let half = full / 2;
        let span_ms = (full - half).as_millis().max(1) as u64;
        (half + Duration::from_millis(r % (span_ms + 1))).min(left)
    }
}

/// 64 random bits from the kernel; the time and PID when /dev/urandom
/// cannot be read (the jitter is a courtesy, not a secret).
fn random() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
}

/// The network schedule's wait before round `attempt`.
pub fn backoff(attempt: u32, left: Duration) -> Duration {
    NETWORK.wait(attempt, left)
}

/// Calls `check` on the device schedule until it gives a value or
/// `timeout` has passed; `what` names the wait in the error, in the log
/// line and in the unit's status after the first seconds. It ends sooner
/// when every unit that would make the device has failed
/// (`sys::systemd::WaitOpts`), asked at most every 2 s.
pub fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    let mut logged = false;
    let mut asked: Option<Instant> = None;
    for attempt in 1.. {
        if let Some(v) = check() {
            return Ok(v);
        }
        if asked.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
            asked = Some(Instant::now());
            if let Some(why) = crate::sys::systemd::feeders_failed() {
                bail!("{what} will not appear: {why}");
            }
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
    fn doubles_to_thirty_seconds_with_jitter_and_stops_at_the_deadline() {
        let secs = |n, r| NETWORK.wait_with(n, Duration::MAX, r).as_millis();
        // The lowest draw waits half the round, the highest all of it.
        assert_eq!(
            [
                secs(1, 0),
                secs(2, 0),
                secs(3, 0),
                secs(4, 0),
                secs(5, 0),
                secs(9, 0)
            ],
            [1000, 2000, 4000, 8000, 15000, 15000]
        );
        assert_eq!(secs(3, 4000), 8000);
        assert_eq!(secs(9, 15000), 30000);
        for _ in 0..100 {
            let w = backoff(4, Duration::MAX);
            assert!(
                w >= Duration::from_secs(8) && w <= Duration::from_secs(16),
                "{w:?}"
            );
        }
        assert_eq!(backoff(3, Duration::from_secs(1)), Duration::from_secs(1));
    }

    /// Nodes that retry together spread out: 64 draws of one round take
    /// many different waits, not one.
    #[test]
    fn jitter_spreads_a_rack() {
        let waits: std::collections::BTreeSet<u128> = (0..64)
            .map(|_| backoff(5, Duration::MAX).as_millis())
            .collect();
        assert!(waits.len() > 32, "{waits:?}");
    }

    #[test]
    fn devices_are_polled_at_most_every_half_second() {
        let ms = |n, r| DEVICE.wait_with(n, Duration::MAX, r).as_millis();
        assert_eq!(
            [ms(1, 0), ms(2, 0), ms(3, 0), ms(9, 0)],
            [100, 200, 250, 250]
        );
        assert_eq!([ms(1, 100), ms(3, 250), ms(9, 251)], [200, 500, 250]);
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
