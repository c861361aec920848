//! The flood limit of one display connection: every frame it sends (text, binary, ping, pong)
//! takes a token from a bucket (a burst of 20, refilled at 10 a second); a frame without one is
//! refused with `rate_limited`. Refusals add up and are forgiven slowly, so a display that
//! keeps sending faster than the limit is closed (1008) even when some of its frames get
//! through.

use tokio::time::Instant;

/// Frames a display may send in a burst ...
const BURST: f64 = 20.0;
/// ... refilled at this rate per second.
pub const RATE: f64 = 10.0;
/// Refused frames (net of those forgiven) after which the session is closed.
pub const CLOSE_AFTER: f64 = 50.0;
/// Refused frames forgiven per second: a display sustaining more than 11 frames a second is
/// closed; at 20 a second it takes about 6 s, at 100 about half a second.
const FORGIVEN_PER_S: f64 = 1.0;

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Answer `rate_limited`.
    Refuse,
    /// Close the session with 1008.
    Close,
}

/// One session's flood limit.
#[derive(Debug)]
pub struct Flood {
    tokens: f64,
    refused: f64,
    at: Instant,
}

impl Flood {
    /// A full bucket.
    pub fn new(now: Instant) -> Flood {
        Flood {
            tokens: BURST,
            refused: 0.0,
            at: now,
        }
    }

    /// Counts a frame received at `now`.
    pub fn frame(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.refused = (self.refused - elapsed * FORGIVEN_PER_S).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Verdict::Allow
        } else {
            self.refused += 1.0;
            if self.refused > CLOSE_AFTER {
                Verdict::Close
            } else {
                Verdict::Refuse
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How long a steady sender at `per_second` lasts before it is closed.
    fn survives(per_second: f64, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut f = Flood::new(start);
        let step = Duration::from_secs_f64(1.0 / per_second);
        let mut t = Duration::ZERO;
        while t < limit {
            if f.frame(start + t) == Verdict::Close {
                return Some(t);
            }
            t += step;
        }
        None
    }

    #[test]
    fn a_burst_then_the_rate_is_allowed() {
        let start = Instant::now();
        let mut f = Flood::new(start);
        for _ in 0..20 {
            assert_eq!(f.frame(start), Verdict::Allow);
        }
        assert_eq!(f.frame(start), Verdict::Refuse);
        // Ten a second for an hour never closes.
        assert_eq!(survives(10.0, Duration::from_secs(3600)), None);
    }

    #[test]
    fn a_sustained_flood_is_closed_even_when_some_frames_get_through() {
        // Consecutive refusals never reach 50 at 20 a second (every other frame passes), but
        // the sum does.
        let at_20 = survives(20.0, Duration::from_secs(60)).expect("closed");
        assert!(
            at_20 > Duration::from_secs(3) && at_20 < Duration::from_secs(10),
            "{at_20:?}"
        );
        let at_1000 = survives(1000.0, Duration::from_secs(60)).expect("closed");
        assert!(at_1000 < Duration::from_millis(100), "{at_1000:?}");
    }

    #[test]
    fn refusals_are_forgiven_slowly() {
        let start = Instant::now();
        let mut f = Flood::new(start);
        // 60 in a go: 40 refused, not closed; a minute later the slate is clean.
        let verdicts: Vec<Verdict> = (0..60).map(|_| f.frame(start)).collect();
        assert!(!verdicts.contains(&Verdict::Close));
        let later = start + Duration::from_secs(60);
        let verdicts: Vec<Verdict> = (0..60).map(|_| f.frame(later)).collect();
        assert!(!verdicts.contains(&Verdict::Close));
        // Without the minute's pause the same would have been closed.
        let mut g = Flood::new(start);
        let verdicts: Vec<Verdict> = (0..120).map(|_| g.frame(start)).collect();
        assert!(verdicts.contains(&Verdict::Close));
    }
}
