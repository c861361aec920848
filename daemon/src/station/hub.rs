//! The central's rooms behind one lock, and the broadcast every central display subscribes to.
//! A change and its frame go out under the lock, so a display that subscribes and takes the
//! `rooms` message under the same lock misses nothing and sees nothing twice.

use super::rooms::{LinkAction, Malformed, Rooms};
use crate::clock::Clock;
use crate::net::Tally;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;
use tokio::time::Instant;
use vigil_protocol::display::UserInfo;

/// Frames a display may be behind before it gets a fresh `rooms` message instead: about 2 s
/// of a full site (256 rooms publish about 1,800 messages a second). Small on purpose: a
/// display further behind than that is better served by the current state than by old frames.
pub const BROADCAST_CAPACITY: usize = 4096;

/// One frame for every display: shared, not copied, by each display's connection.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// The rooms and their broadcast.
pub struct Hub {
    rooms: Mutex<Rooms>,
    out: broadcast::Sender<Frame>,
    clock: Clock,
    malformed: AtomicU64,
    malformed_log: Mutex<Tally>,
}

impl Hub {
    /// No rooms yet.
    pub fn new(clock: Clock) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: Mutex::default(),
            out: broadcast::Sender::new(BROADCAST_CAPACITY),
            clock,
            malformed: AtomicU64::new(0),
            malformed_log: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, frame: String) {
        // No display connected is not an error.
        let _ = self.out.send(Frame::from(frame));
    }

    /// UTC now as RFC 3339.
    pub fn utc_now(&self) -> String {
        self.clock.rfc3339(Instant::now())
    }

    /// A message a room published to the stream. Malformed ones are counted and logged (at
    /// most once a minute, with the count), never applied.
    pub fn apply(&self, room_id: &str, boot: Option<&str>, payload: &[u8]) {
        let mut rooms = self.lock();
        match rooms.apply(room_id, boot, payload, Instant::now()) {
            Ok(Some(frame)) => self.send(frame),
            Ok(None) => {}
            Err(e) => {
                drop(rooms);
                self.malformed(room_id, &e);
            }
        }
    }

    /// A room's answer to the central's snapshot request (see
    /// [`Rooms::apply_live_snapshot`](super::rooms::Rooms::apply_live_snapshot)).
    pub fn apply_live_snapshot(&self, room_id: &str, payload: &[u8]) {
        let mut rooms = self.lock();
        match rooms.apply_live_snapshot(room_id, payload, Instant::now()) {
            Ok(Some(frame)) => self.send(frame),
            Ok(None) => {}
            Err(e) => {
                drop(rooms);
                self.malformed(room_id, &e);
            }
        }
    }

    /// Counts and logs a message from a room that could not be used.
    pub fn malformed(&self, room_id: &str, e: &Malformed) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        let due = self
            .malformed_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(Instant::now());
        if let Some(count) = due {
            tracing::warn!(room = %room_id, count, error = %e, "malformed messages from a room (count since the last such line)");
        }
    }

    /// Malformed messages from rooms since start.
    pub fn malformed_count(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// A room's heartbeat, with the boot of the room process that sent it.
    pub fn heartbeat(&self, room_id: &str, name: &str, boot: Option<&str>) {
        let mut rooms = self.lock();
        match rooms.heartbeat_from(room_id, name, boot, Instant::now()) {
            Ok(Some(frame)) => self.send(frame),
            Ok(None) => {}
            Err(e) => {
                drop(rooms);
                self.malformed(room_id, &e);
            }
        }
    }

    /// Whether the central keeps `room_id` (a room it refused is not asked anything).
    pub fn knows(&self, room_id: &str) -> bool {
        self.lock().get(room_id).is_some()
    }

    /// Whether the central should ask `room_id` for its state (it has none yet).
    pub fn needs_snapshot(&self, room_id: &str) -> bool {
        self.lock().get(room_id).is_some_and(|r| !r.has_snapshot)
    }

    /// Raises "room link lost" for the rooms silent too long.
    pub fn tick(&self) {
        let now = Instant::now();
        let utc = self.clock.rfc3339(now);
        let mut rooms = self.lock();
        for frame in rooms.tick(now, &utc) {
            self.send(frame);
        }
    }

    /// The central's own heartbeat to every display.
    pub fn display_heartbeat(&self) {
        let frame = serde_json::json!({
            "v": vigil_protocol::display::VERSION,
            "type": "heartbeat",
            "at": self.utc_now(),
        });
        let _rooms = self.lock();
        self.send(frame.to_string());
    }

    /// A display's start (or its fresh start after it fell behind): the `rooms` message and the
    /// broadcast from that moment on.
    pub fn subscribe(&self, user: &UserInfo) -> (String, broadcast::Receiver<Frame>) {
        let utc = self.utc_now();
        let rooms = self.lock();
        (rooms.rooms_message(user, &utc), self.out.subscribe())
    }

    /// `ack` or `reset` (`reset == true`) of a "room link lost" alarm by `person`.
    pub fn link_action(
        &self,
        room_id: &str,
        alarm_id: &str,
        person: &str,
        reset: bool,
    ) -> LinkAction {
        let utc = self.utc_now();
        let mut rooms = self.lock();
        let done = if reset {
            rooms.reset_link(room_id, alarm_id, person)
        } else {
            rooms.ack_link(room_id, alarm_id, person, &utc)
        };
        if let LinkAction::Done(frame) = &done {
            self.send(frame.clone());
        }
        done
    }
}
