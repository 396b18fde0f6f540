//! The only way ravelin code reads the time.
//!
//! Pure stages take `now: SystemTime` as an argument; the daemon gets it from a [`Clock`].
//! Tests use [`FakeClock`] so windows, expiries and escalation run in simulated time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct FakeClock {
    micros: Arc<AtomicU64>,
}

impl FakeClock {
    /// A fake clock at `start`.
    pub fn new(start: SystemTime) -> Self {
        let micros = start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        Self {
            micros: Arc::new(AtomicU64::new(micros)),
        }
    }

    /// Jump to `t` (forward or back; the caller keeps it monotonic where that matters).
    pub fn set(&self, t: SystemTime) {
        let micros = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
        self.micros.store(micros, Ordering::SeqCst);
    }

    /// Move forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.micros
            .fetch_add(d.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The time `secs` seconds after the Unix epoch.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// RFC 3339 in UTC with second precision, e.g. `2026-11-21T06:13:45Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_advanced() {
        let c = FakeClock::new(from_unix_secs(1_000));
        assert_eq!(unix_secs(c.now()), 1_000);
        c.advance(Duration::from_secs(61));
        assert_eq!(unix_secs(c.clone().now()), 1_061);
        assert_eq!(rfc3339(from_unix_secs(0)), "1970-01-01T00:00:00Z");
    }
}
