//! Subject names, the stream's name and the message id, as the contract spells them.

/// The longest site or room id, so subjects stay short.
const SLUG_MAX: usize = 64;

/// Whether `s` may be a site or room id: 1 to 64 of `a-z`, `0-9`, `-`, starting with a letter or
/// digit. No dots, spaces or wildcards, so it is always exactly one subject token.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SLUG_MAX
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The site's stream: `VIGIL_<SITE>`, the site upper-cased and every other character as `_`.
pub fn stream_name(site: &str) -> String {
    let site: String = site
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            c @ ('A'..='Z' | '0'..='9') => c,
            _ => '_',
        })
        .collect();
    format!("VIGIL_{site}")
}

/// A persistent message's `Nats-Msg-Id`: `<room_id>.<boot>.<seq>`, with `boot` the room
/// process's start (Unix ms) and `seq` the room's display sequence number, so a message published
/// again after a reconnect is dropped by the stream as a duplicate while a restarted room's
/// messages (same `seq`s, new `boot`) are not.
pub fn msg_id(room_id: &str, boot: u64, seq: u64) -> String {
    format!("{room_id}.{boot}.{seq}")
}

/// The `Nats-Msg-Id` of the `n`th message a room started at `boot` publishes from its session
/// record, what an earlier run recorded and could not publish: `<room_id>.<boot>r.<n>`. Its own
/// boot (`<boot>r`) tells the central it is a sequence of its own, before this run's snapshot.
pub fn replay_msg_id(room_id: &str, boot: u64, n: u64) -> String {
    format!("{room_id}.{boot}r.{n}")
}

/// A snapshot's `Nats-Msg-Id`: `<room_id>.<boot>.<seq>.snapshot`, `seq` being the last message
/// it includes (whose own id it must not take).
pub fn snapshot_msg_id(room_id: &str, boot: u64, seq: u64) -> String {
    format!("{}.snapshot", msg_id(room_id, boot, seq))
}

/// One room's subjects. `Subjects::new(site, "*")` gives the wildcards over every room of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    site: String,
    room_id: String,
}

impl Subjects {
    /// The subjects of `room_id` at `site` (both slugs, see [`valid_slug`]).
    pub fn new(site: &str, room_id: &str) -> Subjects {
        Subjects {
            site: site.to_string(),
            room_id: room_id.to_string(),
        }
    }

    /// The stream's filter: every persistent subject of the site, `vigil.<site>.>`.
    pub fn stream_filter(site: &str) -> String {
        format!("vigil.{site}.>")
    }

    fn stored(&self, kind: &str) -> String {
        format!("vigil.{}.{}.{kind}", self.site, self.room_id)
    }

    fn live(&self, kind: &str) -> String {
        format!("vigil-live.{}.{}.{kind}", self.site, self.room_id)
    }

    /// Every alarm step (display `alarm`), in the stream.
    pub fn alarm(&self) -> String {
        self.stored("alarm")
    }

    /// Every link change (display `device`), in the stream.
    pub fn device(&self) -> String {
        self.stored("device")
    }

    /// Session changes (display `session`), in the stream.
    pub fn session(&self) -> String {
        self.stored("session")
    }

    /// Readings (display `reading`), at most once a second per device and vital, in the stream.
    pub fn reading(&self) -> String {
        self.stored("reading")
    }

    /// The room's full state (display `snapshot`), in the stream.
    pub fn snapshot(&self) -> String {
        self.stored("snapshot")
    }

    /// The room's heartbeat each second, core NATS (not stored).
    pub fn heartbeat(&self) -> String {
        self.live("heartbeat")
    }

    /// Requests for an action (core NATS request/reply).
    pub fn action(&self) -> String {
        self.live("action")
    }

    /// Requests for the room's current snapshot (core NATS request/reply).
    pub fn snapshot_request(&self) -> String {
        self.live("snapshot")
    }

    /// The room's trend request (request/reply): a display `trend` request, answered by the
    /// display's `trend` message.
    pub fn trend_request(&self) -> String {
        self.live("trend")
    }

    /// Splits a subject of the contract into `(site, room_id, kind)`, stored or live.
    pub fn parse(subject: &str) -> Option<(&str, &str, &str)> {
        let mut parts = subject.split('.');
        let prefix = parts.next()?;
        let (site, room, kind) = (parts.next()?, parts.next()?, parts.next()?);
        let fine = matches!(prefix, "vigil" | "vigil-live") && parts.next().is_none();
        fine.then_some((site, room, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_stream_and_msg_id_are_spelled_as_the_contract_says() {
        let s = Subjects::new("clinic", "room-1");
        assert_eq!(s.alarm(), "vigil.clinic.room-1.alarm");
        assert_eq!(s.device(), "vigil.clinic.room-1.device");
        assert_eq!(s.session(), "vigil.clinic.room-1.session");
        assert_eq!(s.reading(), "vigil.clinic.room-1.reading");
        assert_eq!(s.snapshot(), "vigil.clinic.room-1.snapshot");
        assert_eq!(s.heartbeat(), "vigil-live.clinic.room-1.heartbeat");
        assert_eq!(s.action(), "vigil-live.clinic.room-1.action");
        assert_eq!(s.snapshot_request(), "vigil-live.clinic.room-1.snapshot");
        assert_eq!(s.trend_request(), "vigil-live.clinic.room-1.trend");
        assert_eq!(Subjects::stream_filter("clinic"), "vigil.clinic.>");
        assert_eq!(stream_name("north-site.2"), "VIGIL_NORTH_SITE_2");
        assert_eq!(
            msg_id("room-1", 1700000000000, 42),
            "room-1.1700000000000.42"
        );
        assert_eq!(
            Subjects::parse("vigil-live.clinic.room-1.heartbeat"),
            Some(("clinic", "room-1", "heartbeat"))
        );
        assert_eq!(Subjects::parse("vigil.clinic.room-1.alarm.x"), None);
        assert_eq!(Subjects::parse("other.clinic.room-1.alarm"), None);
    }

    #[test]
    fn slugs_are_one_subject_token() {
        for good in ["a", "room-1", "1st", &"x".repeat(64)] {
            assert!(valid_slug(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "Room",
            "a.b",
            "a b",
            "*",
            ">",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
