//! What the room has not yet published to the central station, in order, bounded. While NATS is
//! unreachable it fills; when full it drops readings first (the central gets the latest state
//! from the snapshot after the reconnect), then superseded state (device and session changes,
//! snapshots), and alarm steps only when nothing else is left.

use std::collections::VecDeque;

/// Messages kept while NATS is unreachable: at most this many (about 20 MB at the largest
/// alarm messages). With only alarm steps and link changes queued that is hours of a busy
/// room; readings give way first.
pub const OUTBOX_CAPACITY: usize = 20_000;

/// Which persistent subject a message goes to; also its rank when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// Dropped first.
    Reading,
    /// Superseded by the next one.
    Snapshot,
    /// A link change.
    Device,
    /// A session change.
    Session,
    /// Dropped last.
    Alarm,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its subject.
    pub subject: Subject,
    /// Its `Nats-Msg-Id`.
    pub msg_id: String,
    /// The display message's JSON.
    pub payload: String,
    /// What its acknowledgement completes in the session record, for what the record keeps.
    pub done: Option<super::record::Done>,
}

/// The bounded, ordered queue of what is still to publish.
#[derive(Debug)]
pub struct Outbox {
    items: VecDeque<Item>,
    capacity: usize,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `item` last. A new snapshot replaces those still queued (it holds their state).
    /// Returns what had to be dropped to make room, if anything.
    pub fn push(&mut self, item: Item) -> Option<Item> {
        if item.subject == Subject::Snapshot {
            self.items.retain(|i| i.subject != Subject::Snapshot);
        }
        let dropped = if self.items.len() >= self.capacity {
            // The oldest message of the lowest rank queued.
            let lowest = self.items.iter().map(|i| i.subject).min()?;
            let at = self.items.iter().position(|i| i.subject == lowest)?;
            self.items.remove(at)
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    /// The next message to publish.
    pub fn front(&self) -> Option<&Item> {
        self.items.front()
    }

    /// Removes the front message once published, if it is still `msg_id` (a full outbox may have
    /// dropped it meanwhile).
    pub fn published(&mut self, msg_id: &str) {
        if self.items.front().is_some_and(|i| i.msg_id == msg_id) {
            self.items.pop_front();
        }
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: Subject, n: u32) -> Item {
        Item {
            subject,
            msg_id: format!("r.1.{n}"),
            payload: String::new(),
            done: None,
        }
    }

    fn ids(o: &Outbox) -> Vec<String> {
        o.items.iter().map(|i| i.msg_id.clone()).collect()
    }

    #[test]
    fn a_full_outbox_drops_readings_then_state_and_alarm_steps_last() {
        let mut o = Outbox::new(4);
        o.push(item(Subject::Alarm, 1));
        o.push(item(Subject::Reading, 2));
        o.push(item(Subject::Device, 3));
        o.push(item(Subject::Reading, 4));
        // Full: the oldest reading goes, then the next reading, then the link change.
        assert_eq!(
            o.push(item(Subject::Alarm, 5)).map(|i| i.msg_id),
            Some("r.1.2".into())
        );
        assert_eq!(
            o.push(item(Subject::Alarm, 6)).map(|i| i.msg_id),
            Some("r.1.4".into())
        );
        assert_eq!(
            o.push(item(Subject::Alarm, 7)).map(|i| i.msg_id),
            Some("r.1.3".into())
        );
        assert_eq!(ids(&o), ["r.1.1", "r.1.5", "r.1.6", "r.1.7"]);
        // Only alarm steps left: the oldest goes, order kept.
        assert_eq!(
            o.push(item(Subject::Alarm, 8)).map(|i| i.msg_id),
            Some("r.1.1".into())
        );
        assert_eq!(ids(&o), ["r.1.5", "r.1.6", "r.1.7", "r.1.8"]);
    }

    #[test]
    fn a_new_snapshot_replaces_the_queued_one_and_publishing_pops_in_order() {
        let mut o = Outbox::new(10);
        o.push(item(Subject::Snapshot, 1));
        o.push(item(Subject::Alarm, 2));
        o.push(item(Subject::Snapshot, 3));
        assert_eq!(ids(&o), ["r.1.2", "r.1.3"]);
        // A stale acknowledgement (the front changed meanwhile) removes nothing.
        o.published("r.1.1");
        assert_eq!(o.len(), 2);
        o.published("r.1.2");
        assert_eq!(o.front().map(|i| i.msg_id.as_str()), Some("r.1.3"));
    }
}
