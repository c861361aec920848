//! Reconnect delays: exponential from 0.5 s, capped, with ±20 % jitter so that many devices
//! that lost power together do not retry in lockstep.

use std::time::Duration;

/// A reconnect delay sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

/// The first delay.
pub const INITIAL: Duration = Duration::from_millis(500);

impl Backoff {
    /// Delays from 0.5 s doubling up to `cap`.
    pub fn new(cap: Duration) -> Self {
        Backoff { next: INITIAL, cap }
    }

    /// The next delay, jittered.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        base.mul_f64(0.8 + 0.4 * fastrand::f64())
    }

    /// Back to the first delay (after a connection that worked for a while).
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let delays: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        let bases = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0];
        for (d, base) in delays.iter().zip(bases) {
            assert!(
                *d >= base * 0.8 - 1e-9 && *d <= base * 1.2 + 1e-9,
                "{d} vs {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(600));
    }
}
