//! The one place that reads the clock. Everything else takes `now` (monotonic) and asks the
//! clock to turn it into UTC for timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Maps monotonic instants to UTC using one anchor taken at start-up, so that timestamps never
/// jump when the wall clock is adjusted during a session.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    mono: Instant,
    wall: SystemTime,
}

impl Clock {
    /// Reads both clocks once.
    pub fn start() -> Clock {
        Clock {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Monotonic now.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// UTC time of a monotonic instant.
    pub fn utc(&self, at: Instant) -> SystemTime {
        if at >= self.mono {
            self.wall + (at - self.mono)
        } else {
            self.wall - (self.mono - at)
        }
    }

    /// UTC time of an engine instant (std).
    pub fn utc_std(&self, at: std::time::Instant) -> SystemTime {
        self.utc(Instant::from_std(at))
    }

    /// RFC 3339 with milliseconds, e.g. `2026-11-23T10:00:00.123Z`.
    pub fn rfc3339(&self, at: Instant) -> String {
        format_rfc3339(self.utc(at))
    }

    /// RFC 3339 of an engine instant.
    pub fn rfc3339_std(&self, at: std::time::Instant) -> String {
        format_rfc3339(self.utc_std(at))
    }

    /// The monotonic instant of a UTC time in unix milliseconds (for times read back from the
    /// session record); now, if it lies before the monotonic clock's origin.
    pub fn instant_of_unix_ms(&self, ms: i64) -> std::time::Instant {
        let wall = self.unix_ms(self.mono);
        let mono = self.mono.into_std();
        if ms >= wall {
            mono.checked_add(Duration::from_millis((ms - wall) as u64))
                .unwrap_or(mono)
        } else {
            mono.checked_sub(Duration::from_millis((wall - ms) as u64))
                .unwrap_or(mono)
        }
    }

    /// Unix milliseconds of a monotonic instant.
    pub fn unix_ms(&self, at: Instant) -> i64 {
        self.utc(at)
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64
    }
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

/// RFC 3339 of a UTC time, held inside what the format can write: humantime panics on a time
/// before 1970 and fails after 9999, and a time read back from a damaged record (or a clock
/// started at 1970) once panicked the core on every snapshot.
fn format_rfc3339(t: SystemTime) -> String {
    let t = t.clamp(
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_millis(LAST_RFC3339_MS),
    );
    humantime::format_rfc3339_millis(t).to_string()
}
