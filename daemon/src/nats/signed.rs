//! The central's requests to a room, signed (hazard V6). The NATS server's permissions decide
//! who may publish on a room's request subjects; a server configured without them (or another
//! room's leaked credentials on a server that has them) would let anyone pause a room's alarm
//! sound. So the central signs every request with the site's `action_key`, a secret the central
//! and each room share, and a room answers only a request signed with it, signed within
//! [`WINDOW`] of its own clock, and not answered before.
//!
//! A signature is HMAC-SHA256 over the subject, the signing time and the payload, carried in two
//! headers ([`SIGNED_AT`], [`SIGNATURE`]); the replay check keeps the signatures answered within the
//! window, at most [`MAX_SEEN`]. Sans-IO: the caller gives the time.

use ring::hmac;
use std::collections::HashMap;
use std::time::Duration;

/// Header: when the central signed, unix milliseconds.
pub const SIGNED_AT: &str = "Vigil-Signed-At";
/// Header: the signature, lower-case hex.
pub const SIGNATURE: &str = "Vigil-Signature";
/// How far a request's signing time may be from the room's clock, either way.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Signatures remembered for the replay check; a room asked more than this within the window
/// refuses until some expire.
pub const MAX_SEEN: usize = 4096;

/// This machine's clock, unix milliseconds: what a signing time is, and what a room compares it
/// with (the wall clock, as the two machines' clocks are what must agree).
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The site's shared secret.
#[derive(Clone)]
pub struct ActionKey(hmac::Key);

impl std::fmt::Debug for ActionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionKey(..)")
    }
}

/// Why a room refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsigned {
    /// No signature, or one not made with this site's key.
    #[error("not signed with this site's action_key: only the central station may ask a room")]
    Forged,
    /// Signed too long ago, or in the future, by this room's clock.
    #[error("signed {0} s away from this room's clock (more than 30 s): check both clocks (NTP)")]
    Stale(i64),
    /// A signed request already answered.
    #[error("a request this room has already answered (a replay)")]
    Replay,
    /// More signed requests within the window than the room remembers.
    #[error("too many requests within 30 s")]
    Busy,
}

fn message(subject: &str, signed_at: i64, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(subject.len() + payload.len() + 24);
    m.extend_from_slice(subject.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(signed_at.to_string().as_bytes());
    m.push(b'\n');
    m.extend_from_slice(payload);
    m
}

impl ActionKey {
    /// The key from its configured text.
    pub fn new(secret: &str) -> ActionKey {
        ActionKey(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    /// The headers that sign `payload` for `subject` at `now_ms` (unix milliseconds).
    pub fn sign(&self, subject: &str, payload: &[u8], now_ms: i64) -> async_nats::HeaderMap {
        let tag = hmac::sign(&self.0, &message(subject, now_ms, payload));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SIGNED_AT, now_ms.to_string().as_str());
        headers.insert(SIGNATURE, hex(tag.as_ref()).as_str());
        headers
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A room's check of the requests it gets.
#[derive(Debug)]
pub struct Verifier {
    key: ActionKey,
    /// Signatures answered, with their signing times.
    seen: HashMap<Vec<u8>, i64>,
    /// The newest signing time answered.
    newest: i64,
}

impl Verifier {
    /// Checks with `key`.
    pub fn new(key: ActionKey) -> Verifier {
        Verifier {
            key,
            seen: HashMap::new(),
            newest: i64::MIN,
        }
    }

    /// Whether the request (`subject`, its headers and payload) is the central's and fresh, by
    /// the room's clock (`now_ms`, unix milliseconds). Holds no state: a flood of them costs a
    /// hash each and nothing more.
    pub fn authentic(
        &self,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<Signed, Unsigned> {
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        let signed_at: i64 = header(SIGNED_AT)
            .and_then(|t| t.parse().ok())
            .ok_or(Unsigned::Forged)?;
        let tag = header(SIGNATURE).and_then(unhex).ok_or(Unsigned::Forged)?;
        hmac::verify(&self.key.0, &message(subject, signed_at, payload), &tag)
            .map_err(|_| Unsigned::Forged)?;
        let off_ms = now_ms.saturating_sub(signed_at);
        if now_ms.abs_diff(signed_at) > WINDOW.as_millis() as u64 {
            return Err(Unsigned::Stale(off_ms / 1000));
        }
        Ok(Signed { tag, signed_at })
    }

    /// Whether an authentic request is answered for the first time (an action: answering one
    /// twice would act twice). Called only for what the room will carry out, after its rate
    /// limits, so only the central's own requests, at most at that rate, are remembered.
    ///
    /// Replays are judged by signing times, not by the room's clock, so a room clock set back
    /// cannot make a request answered once pass again: a request signed more than [`WINDOW`]
    /// before the newest one answered is refused, and the signatures within that window are
    /// remembered.
    pub fn first_time(&mut self, signed: Signed, now_ms: i64) -> Result<(), Unsigned> {
        self.forget_a_clock_gone_back(now_ms);
        self.seen_before(&signed)?;
        let newest = self.newest.max(signed.signed_at);
        let oldest = newest.saturating_sub(WINDOW.as_millis() as i64);
        if signed.signed_at < oldest {
            return Err(Unsigned::Replay);
        }
        self.seen.retain(|_, at| *at >= oldest);
        if self.seen.contains_key(&signed.tag) {
            return Err(Unsigned::Replay);
        }
        if self.seen.len() >= MAX_SEEN {
            return Err(Unsigned::Busy);
        }
        self.seen.insert(signed.tag, signed.signed_at);
        self.newest = newest;
        Ok(())
    }

    /// Whether an authentic request is one already answered (a replay), without remembering it:
    /// checked before the request counts against any budget, so replays cannot use them up.
    pub fn seen_before(&self, signed: &Signed) -> Result<(), Unsigned> {
        let oldest = self.newest.saturating_sub(WINDOW.as_millis() as i64);
        if signed.signed_at < oldest || self.seen.contains_key(&signed.tag) {
            return Err(Unsigned::Replay);
        }
        Ok(())
    }

    /// Both clocks set wrongly ahead and then corrected would leave `newest` in the future and
    /// every new action refused as a replay until then: a newest more than two windows ahead of
    /// the room's clock is forgotten (a restart forgets it too), and the jump logged.
    fn forget_a_clock_gone_back(&mut self, now_ms: i64) {
        if self.newest > now_ms.saturating_add(2 * WINDOW.as_millis() as i64) {
            tracing::error!(
                ahead_s = (self.newest - now_ms) / 1000,
                "the clock went back: the central's requests answered were signed ahead of it"
            );
            self.seen.clear();
            self.newest = i64::MIN;
        }
    }

    /// [`Verifier::authentic`], then [`Verifier::first_time`].
    pub fn check(
        &mut self,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<(), Unsigned> {
        let signed = self.authentic(subject, headers, payload, now_ms)?;
        self.first_time(signed, now_ms)
    }
}

/// An authentic request's signature and signing time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    tag: Vec<u8>,
    signed_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_796_000_000_000;
    const SUBJECT: &str = "vigil-live.clinic.room-1.action";
    const BODY: &[u8] = br#"{"type":"pause_audio","seconds":120,"user":"A","role":"nurse"}"#;

    fn key() -> ActionKey {
        ActionKey::new("site-action-key-0123456789")
    }

    #[test]
    fn a_signed_request_passes_once_whatever_the_rooms_clock_does() {
        let mut room = Verifier::new(key());
        let headers = key().sign(SUBJECT, BODY, NOW_MS);
        assert_eq!(
            room.check(SUBJECT, Some(&headers), BODY, NOW_MS + 2_000),
            Ok(())
        );
        assert_eq!(
            room.check(SUBJECT, Some(&headers), BODY, NOW_MS + 3_000),
            Err(Unsigned::Replay)
        );
        // Newer requests answered since, and the room's clock set back: still a replay.
        for i in 1..=40 {
            let newer = key().sign(SUBJECT, BODY, NOW_MS + i * 1_000);
            assert_eq!(
                room.check(SUBJECT, Some(&newer), BODY, NOW_MS + i * 1_000),
                Ok(())
            );
        }
        assert_eq!(
            room.check(SUBJECT, Some(&headers), BODY, NOW_MS),
            Err(Unsigned::Replay)
        );
        // Requests within the window arrive in any order.
        let a = key().sign(SUBJECT, BODY, NOW_MS + 39_500);
        assert_eq!(room.check(SUBJECT, Some(&a), BODY, NOW_MS + 40_000), Ok(()));
    }

    #[test]
    fn unsigned_forged_altered_and_stale_requests_are_refused() {
        let other = ActionKey::new("another-site-key-0123456789");
        let mut room = Verifier::new(key());
        assert_eq!(
            room.check(SUBJECT, None, BODY, NOW_MS),
            Err(Unsigned::Forged)
        );
        let forged = other.sign(SUBJECT, BODY, NOW_MS);
        assert_eq!(
            room.check(SUBJECT, Some(&forged), BODY, NOW_MS),
            Err(Unsigned::Forged)
        );
        let signed = key().sign(SUBJECT, BODY, NOW_MS);
        let altered = br#"{"type":"pause_audio","seconds":3600,"user":"A","role":"nurse"}"#;
        assert_eq!(
            room.check(SUBJECT, Some(&signed), altered, NOW_MS),
            Err(Unsigned::Forged)
        );
        // Signed for another room.
        let room_2 = "vigil-live.clinic.room-2.action";
        assert_eq!(
            room.check(room_2, Some(&signed), BODY, NOW_MS),
            Err(Unsigned::Forged)
        );
        assert_eq!(
            room.check(SUBJECT, Some(&signed), BODY, NOW_MS + 31_000),
            Err(Unsigned::Stale(31))
        );
        assert_eq!(
            room.check(SUBJECT, Some(&signed), BODY, NOW_MS - 31_000),
            Err(Unsigned::Stale(-31))
        );
        let mut garbled = async_nats::HeaderMap::new();
        garbled.insert(SIGNED_AT, "soon");
        garbled.insert(SIGNATURE, "zz");
        assert_eq!(
            room.check(SUBJECT, Some(&garbled), BODY, NOW_MS),
            Err(Unsigned::Forged)
        );
    }

    #[test]
    fn both_clocks_set_ahead_then_corrected_do_not_lock_the_central_out() {
        let mut room = Verifier::new(key());
        let a_day = 86_400_000;
        let ahead = key().sign(SUBJECT, BODY, NOW_MS + a_day);
        assert_eq!(
            room.check(SUBJECT, Some(&ahead), BODY, NOW_MS + a_day),
            Ok(())
        );
        // Both clocks corrected: the central's next action is answered.
        let next = key().sign(SUBJECT, BODY, NOW_MS);
        assert_eq!(room.check(SUBJECT, Some(&next), BODY, NOW_MS), Ok(()));
    }

    #[test]
    fn a_replay_is_known_before_it_is_remembered_again() {
        let mut room = Verifier::new(key());
        let headers = key().sign(SUBJECT, BODY, NOW_MS);
        let signed = room
            .authentic(SUBJECT, Some(&headers), BODY, NOW_MS)
            .unwrap();
        assert_eq!(room.seen_before(&signed), Ok(()));
        assert_eq!(room.first_time(signed.clone(), NOW_MS), Ok(()));
        assert_eq!(room.seen_before(&signed), Err(Unsigned::Replay));
    }

    #[test]
    fn the_replay_memory_is_bounded() {
        let mut room = Verifier::new(key());
        for i in 0..MAX_SEEN as i64 {
            let headers = key().sign(SUBJECT, BODY, NOW_MS + i);
            assert_eq!(room.check(SUBJECT, Some(&headers), BODY, NOW_MS), Ok(()));
        }
        let one_more = key().sign(SUBJECT, BODY, NOW_MS - 1);
        assert_eq!(
            room.check(SUBJECT, Some(&one_more), BODY, NOW_MS),
            Err(Unsigned::Busy)
        );
        // Once newer requests leave them behind the window, the old ones are forgotten.
        let later = key().sign(SUBJECT, BODY, NOW_MS + 31_000);
        assert_eq!(
            room.check(SUBJECT, Some(&later), BODY, NOW_MS + 31_000),
            Ok(())
        );
        let after = key().sign(SUBJECT, BODY, NOW_MS + 31_001);
        assert_eq!(
            room.check(SUBJECT, Some(&after), BODY, NOW_MS + 31_000),
            Ok(())
        );
    }
}
