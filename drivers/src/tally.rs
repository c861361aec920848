//! Repeated log lines counted and rate-limited: the first at once, then at most once a minute
//! with the count. Used wherever untrusted input (a network peer, a device) could otherwise
//! write a line per event and flood the journal (the daemon's network edge, the HL7 listener).

use std::time::Duration;
use tokio::time::Instant;

/// Repeated events are logged at most this often, with their count.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts events and says when to log them: the first at once, then at most once per
/// [`LOG_EVERY`] with the count since the last line.
#[derive(Debug, Default)]
pub struct Tally {
    unlogged: u64,
    last: Option<Instant>,
}

impl Tally {
    /// One more event; `Some(count)` when a line is due.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        self.due(now)
    }

    /// `Some(count)` when events wait and a line is due (called once a minute).
    pub fn flush(&mut self, now: Instant) -> Option<u64> {
        if self.unlogged == 0 {
            return None;
        }
        self.due(now)
    }

    /// Events not yet logged?
    pub fn pending(&self) -> bool {
        self.unlogged > 0
    }

    fn due(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_logs_the_first_at_once_then_once_a_minute_with_the_count() {
        let start = Instant::now();
        let mut t = Tally::default();
        assert_eq!(t.note(start), Some(1));
        let lines: Vec<u64> = (1..=100)
            .filter_map(|i| t.note(start + Duration::from_millis(i * 300)))
            .collect();
        // 100 more over 30 s: nothing until a minute has passed.
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(t.flush(start + Duration::from_secs(59)), None);
        assert_eq!(t.flush(start + LOG_EVERY), Some(100));
        assert_eq!(t.flush(start + LOG_EVERY * 3), None);
    }
}
