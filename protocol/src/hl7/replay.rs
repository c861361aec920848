//! Replayed messages (W3): a whole ORU^R01 sent again with its original MSH-7 and OBX-14 (a
//! capture played back, a gateway re-sending its backlog after a reconnect) carries old values
//! that V5 cannot see, since its OBX-14 and MSH-7 agree. A device's messages are sent in order,
//! so a message whose MSH-7 is older than the newest already read from that device (by more than
//! [`REORDER_MARGIN`]) is a replay: its readings are `stored` (shown, never evidence) and its
//! device events (an apnea) are dropped.
//!
//! Only the device's own times are compared, so a monitor whose clock is off (hours, a wrong
//! time zone) is read as usual: a skew is not a replay. A monitor whose clock is set back is:
//! if for [`STALE_AFTER`] of local time every message it sends is older than its newest, none
//! newer, the clock was set back and the newest is forgotten.
//!
//! A message dated ahead of the device's course (its newest plus the local time since, plus
//! [`STALE_AFTER`]) is read but does not become the newest, unless the device keeps that course
//! for [`STALE_AFTER`] (its clock was set forward): one forged message dated next year cannot
//! make the monitor's own messages replays.

use super::oru::STALE_AFTER;
use super::time::{has_offset, parse_ts, to_unix};
use crate::model::{Flag, Observation};
use std::time::{Duration, Instant};

/// How much older than the device's newest a message may be and still be taken (messages a
/// gateway reorders by a second or two).
pub const REORDER_MARGIN: Duration = Duration::from_secs(2);

/// When a message says it was sent (MSH-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentAt {
    /// Seconds since 1970 in the message's frame of reference (UTC if it has an offset).
    pub unix: i64,
    /// Whether MSH-7 had an offset; times with and without one are not compared.
    pub with_offset: bool,
}

impl SentAt {
    /// MSH-7's text read; `None` if it is not a time.
    pub fn parse(text: &str) -> Option<SentAt> {
        Some(SentAt {
            unix: to_unix(&parse_ts(text)?)?,
            with_offset: has_offset(text),
        })
    }
}

/// One device's judge of replayed messages, sans-IO: the caller gives the receive time.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    /// The newest message's time, and when it was received.
    newest: Option<(SentAt, Instant)>,
    /// Since when every message has been older than the newest.
    older_since: Option<Instant>,
    /// Since when every message has been ahead of the device's course.
    ahead_since: Option<Instant>,
    replays: u64,
}

impl ReplayGuard {
    /// Judges a message sent at `sent` and received at `now`: `true` if it is a replay.
    pub fn is_replay(&mut self, sent: Option<SentAt>, now: Instant) -> bool {
        let Some(sent) = sent else {
            return false;
        };
        let Some((newest, received)) = self
            .newest
            .filter(|(n, _)| n.with_offset == sent.with_offset)
        else {
            self.newest = Some((sent, now));
            return false;
        };
        let lasted = |since: Instant| now.saturating_duration_since(since) >= STALE_AFTER;
        if sent.unix + REORDER_MARGIN.as_secs() as i64 >= newest.unix {
            self.older_since = None;
            let course = newest.unix + now.saturating_duration_since(received).as_secs() as i64;
            if sent.unix > course + STALE_AFTER.as_secs() as i64 {
                let since = *self.ahead_since.get_or_insert(now);
                if lasted(since) {
                    // Ahead for that long: the monitor's clock was set forward.
                    self.newest = Some((sent, now));
                    self.ahead_since = None;
                }
                return false;
            }
            self.ahead_since = None;
            if sent.unix > newest.unix {
                self.newest = Some((sent, now));
            }
            return false;
        }
        let since = *self.older_since.get_or_insert(now);
        if lasted(since) {
            // Nothing newer for that long: the monitor's clock was set back, not replayed.
            self.newest = Some((sent, now));
            self.older_since = None;
            return false;
        }
        self.replays += 1;
        true
    }

    /// Messages judged replays so far.
    pub fn replays(&self) -> u64 {
        self.replays
    }
}

/// What a replayed message may still say: its readings, marked `stored`, and its unknown
/// parameters (counted); its device events are not current, so they go.
pub fn mark_replayed(observations: Vec<Observation>) -> Vec<Observation> {
    observations
        .into_iter()
        .filter_map(|o| match o {
            Observation::Reading(mut r) => {
                r.flags.insert(Flag::Stored);
                Some(Observation::Reading(r))
            }
            Observation::Event(_) => None,
            other => Some(other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> Option<SentAt> {
        Some(SentAt {
            unix,
            with_offset: true,
        })
    }

    #[test]
    fn older_than_the_newest_is_a_replay_a_skew_is_not() {
        let start = Instant::now();
        let mut g = ReplayGuard::default();
        // A monitor whose clock is a day behind: in order, so all taken.
        let day_ago = 1_800_000_000 - 86_400;
        for i in 0..10 {
            assert!(!g.is_replay(at(day_ago + i), start + Duration::from_secs(i as u64)));
        }
        // A message reordered by a second is taken; one sent a minute before the newest is not.
        assert!(!g.is_replay(at(day_ago + 8), start + Duration::from_secs(10)));
        assert!(g.is_replay(at(day_ago - 60), start + Duration::from_secs(10)));
        // The live monitor goes on meanwhile, so replays stay replays however long they last.
        for i in 11..100 {
            let now = start + Duration::from_secs(i);
            assert!(!g.is_replay(at(day_ago + i as i64), now));
            assert!(g.is_replay(at(day_ago - 60 + i as i64 / 2), now));
        }
        assert_eq!(g.replays(), 90);
    }

    #[test]
    fn a_message_dated_ahead_does_not_make_the_monitor_a_replay_a_clock_set_forward_does() {
        let start = Instant::now();
        let mut g = ReplayGuard::default();
        let s = |i: u64| start + Duration::from_secs(i);
        assert!(!g.is_replay(at(10_000), s(0)));
        // A forged message dated a year ahead is read, but the monitor goes on being current.
        assert!(!g.is_replay(at(10_000 + 365 * 86_400), s(1)));
        for i in 1..60 {
            assert!(!g.is_replay(at(10_000 + i as i64), s(i)));
        }
        // The monitor's clock set forward an hour: after 30 s on that course it is the newest,
        // and a message from before the step is a replay.
        for i in 60..100 {
            assert!(!g.is_replay(at(13_600 + i as i64), s(i)));
        }
        assert!(g.is_replay(at(10_090), s(100)));
    }

    #[test]
    fn a_clock_set_back_is_taken_again_after_the_stale_limit() {
        let start = Instant::now();
        let mut g = ReplayGuard::default();
        assert!(!g.is_replay(at(10_000), start));
        // Set back an hour: older than the newest, and nothing newer comes.
        let mut t = 0;
        while t < STALE_AFTER.as_secs() {
            assert!(g.is_replay(at(6_400 + t as i64), start + Duration::from_secs(1 + t)));
            t += 1;
        }
        assert!(!g.is_replay(at(6_400 + t as i64), start + Duration::from_secs(1 + t)));
        assert!(!g.is_replay(at(6_401 + t as i64), start + Duration::from_secs(2 + t)));
    }

    /// A `connect` device's session outlives its connection: the backlog the monitor re-sends
    /// on the next one is older than what was read, so stored; a capture read from a file
    /// (`feed`) is read as recorded.
    #[test]
    fn a_backlog_resent_after_a_reconnect_is_stored() {
        use crate::hl7::{mllp::frame, CodeTable, Hl7Session, Match};
        use crate::model::Reading;
        let message = |control: &str, at: &str, spo2: u32| {
            frame(format!(
                "MSH|^~\\&|MON|WARD|||{at}||ORU^R01^ORU_R01|{control}|P|2.6\r\
                 OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||{at}\r"
            ).as_bytes())
        };
        let readings = |s: &mut Hl7Session| -> Vec<Reading> {
            std::iter::from_fn(|| crate::device::DeviceSession::poll_output(s))
                .filter_map(|o| match o {
                    Ok(Observation::Reading(r)) => Some(r),
                    _ => None,
                })
                .collect()
        };
        let now = Instant::now();
        let mut s = Hl7Session::new(CodeTable::default(), Match::default());
        s.feed_live(&message("A2", "20261130101000+0000", 97), now);
        s.reconnected();
        s.feed_live(&message("A1", "20261130100800+0000", 80), now);
        s.feed_live(&message("A3", "20261130101005+0000", 96), now);
        let r = readings(&mut s);
        let stored: Vec<bool> = r.iter().map(|r| r.flags.contains(Flag::Stored)).collect();
        assert_eq!(stored, [false, true, false]);
        assert!(!r[1].is_evidence());
        assert_eq!(s.replays(), 1);
        let mut capture = Hl7Session::new(CodeTable::default(), Match::default());
        capture.feed(&message("A2", "20261130101000+0000", 97));
        capture.feed(&message("A1", "20261130100800+0000", 80));
        assert!(readings(&mut capture)
            .iter()
            .all(|r| !r.flags.contains(Flag::Stored)));
    }
}
