//! What the central bench receives: the central's displays, the relay's subscribers, and the
//! tap that sees what the rooms publish; each reading counted per room (each `seq` once) and
//! timed.

use crate::devices::{Kind, Sent, ROOM};
use crate::measure::histogram;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the bench started, when each device message was written, and when the tap saw the
/// message carrying it published.
#[derive(Clone)]
pub(super) struct Clock {
    pub(super) epoch: Instant,
    pub(super) sent: Sent,
    pub(super) tapped: Sent,
}

impl Clock {
    pub(super) fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// The fields of a message the bench looks at (a central display frame, or a room's display
/// message as published on NATS).
#[derive(serde::Deserialize)]
pub(super) struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    /// The `room_id`, on the central's frames.
    #[serde(borrow, default)]
    room: Option<&'a str>,
    seq: Option<u64>,
    #[serde(borrow, default)]
    device: Option<&'a str>,
    #[serde(borrow, default)]
    vital: Option<&'a str>,
    value: Option<f64>,
    #[serde(borrow, default)]
    event: Option<&'a str>,
    #[serde(borrow, default)]
    alarm: Option<AlarmRef<'a>>,
}

#[derive(serde::Deserialize)]
pub(super) struct AlarmRef<'a> {
    #[serde(borrow)]
    rule: &'a str,
}

/// A room's index from its `room_id` (`bench-<index>`).
pub(super) fn room_index(room_id: &str) -> Option<usize> {
    room_id.strip_prefix("bench-")?.parse().ok()
}

/// What one receiver (a central display or a relay subscriber) got: readings per room (each
/// `seq` once) as it goes, and at the end its latencies.
pub(super) struct Tally {
    pub(super) per_room: Arc<Vec<AtomicU64>>,
    pub(super) last_seq: Vec<Option<u64>>,
    pub(super) from_device: Histogram<u64>,
    pub(super) from_nats: Histogram<u64>,
    /// Readings whose publication the tap had not noted yet (not timed from NATS).
    pub(super) untimed: u64,
    /// `rooms` messages after the first: the display fell behind and started again.
    pub(super) resyncs: u64,
    /// "room link lost" alarms raised.
    pub(super) link_lost: u64,
    /// Rooms that have sent their state (a `snapshot` frame) to this receiver.
    pub(super) snapshots: Arc<Vec<AtomicU64>>,
    pub(super) rooms_messages: u64,
}

impl Tally {
    pub(super) fn new(rooms: usize) -> Tally {
        Tally {
            per_room: Arc::new((0..rooms).map(|_| AtomicU64::new(0)).collect()),
            last_seq: vec![None; rooms],
            from_device: histogram(),
            from_nats: histogram(),
            untimed: 0,
            resyncs: 0,
            link_lost: 0,
            snapshots: Arc::new((0..rooms).map(|_| AtomicU64::new(0)).collect()),
            rooms_messages: 0,
        }
    }

    /// Notes one message `m` about room `room`, received at `now` (ns since the epoch).
    fn note(&mut self, room: usize, m: &Frame<'_>, clock: &Clock, now: u64) {
        if room >= self.per_room.len() {
            return;
        }
        match m.kind {
            "snapshot" => {
                self.snapshots[room].fetch_add(1, Ordering::Relaxed);
            }
            "alarm"
                if m.event == Some("raised")
                    && m.alarm.as_ref().is_some_and(|a| a.rule == "room-link-lost") =>
            {
                self.link_lost += 1;
            }
            "reading" => {
                let Some(seq) = m.seq else { return };
                if self.last_seq[room].is_some_and(|last| seq <= last) {
                    return;
                }
                self.last_seq[room] = Some(seq);
                self.per_room[room].fetch_add(1, Ordering::Relaxed);
                let Some(d) = m.device.and_then(Kind::from_id) else {
                    return;
                };
                let kind = ROOM[d];
                let (Some(vital), Some(value)) = (m.vital, m.value) else {
                    return;
                };
                if vital != kind.timed_vital().0 {
                    return;
                }
                let slot = kind.slot(value) as usize;
                let sent = clock.sent[room][d].0[slot].load(Ordering::Acquire);
                if sent == 0 {
                    return;
                }
                let micros = |since: u64| (now.saturating_sub(since) / 1000).max(1);
                self.from_device.record(micros(sent)).unwrap();
                let tapped = clock.tapped[room][d].0[slot].load(Ordering::Acquire);
                // A stamp older than the write is from the slot's previous round.
                if tapped >= sent && tapped <= now {
                    self.from_nats.record(micros(tapped)).unwrap();
                } else {
                    self.untimed += 1;
                }
            }
            _ => {}
        }
    }
}

/// A central display: reads frames until `stop`.
pub(super) async fn central_display(
    url: String,
    clock: Clock,
    mut tally: Tally,
    stop: CancellationToken,
) -> Tally {
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .expect("a display connects to the central");
    let (_write, mut read) = ws.split();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return tally,
            m = read.next() => m,
        };
        let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) = message else {
            eprintln!("a central display's connection ended");
            return tally;
        };
        let now = clock.now_ns();
        let Ok(m) = serde_json::from_str::<Frame>(&text) else {
            continue;
        };
        if m.kind == "rooms" {
            tally.rooms_messages += 1;
            if tally.rooms_messages > 1 {
                tally.resyncs += 1;
            }
            continue;
        }
        if let Some(room) = m.room.and_then(room_index) {
            tally.note(room, &m, &clock, now);
        }
    }
}

/// A subscriber of the bare relay: `bench-relay.<room>`.
pub(super) async fn relay_subscriber(
    mut messages: async_nats::Subscriber,
    clock: Clock,
    mut tally: Tally,
    stop: CancellationToken,
) -> Tally {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return tally,
            m = messages.next() => m,
        };
        let Some(message) = message else {
            return tally;
        };
        let now = clock.now_ns();
        let room = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .and_then(|r| r.parse::<usize>().ok());
        let (Some(room), Ok(m)) = (room, serde_json::from_slice::<Frame>(&message.payload)) else {
            continue;
        };
        tally.note(room, &m, &clock, now);
    }
}

/// What the tap saw the rooms publish.
pub(super) struct Published {
    /// Readings per room, each `seq` once.
    pub(super) readings: Vec<AtomicU64>,
    /// Every message on the site's stored subjects (readings, alarm steps, link and session
    /// changes, snapshots), as relayed.
    pub(super) messages: AtomicU64,
}

/// The tap: every message the rooms publish on `vigil.<site>.>`, counted, its publication noted,
/// and republished unchanged to the relay's server.
pub(super) async fn tap(
    mut stored: async_nats::Subscriber,
    relay: async_nats::Client,
    clock: Clock,
    published: Arc<Published>,
    stop: CancellationToken,
) {
    let rooms = published.readings.len();
    let mut last_seq: Vec<Option<u64>> = vec![None; rooms];
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = stored.next() => m,
        };
        let Some(message) = message else { return };
        let now = clock.now_ns();
        let Some(room) = message
            .subject
            .as_str()
            .split('.')
            .nth(2)
            .and_then(room_index)
        else {
            continue;
        };
        if room >= rooms {
            continue;
        }
        published.messages.fetch_add(1, Ordering::Relaxed);
        if let Ok(m) = serde_json::from_slice::<Frame>(&message.payload) {
            let seq = m.seq.unwrap_or(0);
            if m.kind == "reading" && last_seq[room].is_none_or(|last| seq > last) {
                last_seq[room] = Some(seq);
                published.readings[room].fetch_add(1, Ordering::Relaxed);
                if let (Some(d), Some(value)) = (m.device.and_then(Kind::from_id), m.value) {
                    let kind = ROOM[d];
                    if m.vital == Some(kind.timed_vital().0) {
                        let slot = kind.slot(value) as usize;
                        clock.tapped[room][d].0[slot].store(now, Ordering::Release);
                    }
                }
            }
        }
        let _ = relay
            .publish(format!("bench-relay.{room}"), message.payload)
            .await;
    }
}
