//! The room's publisher to the central station over NATS (`[central]`): a sibling adapter of the
//! core's room events, like the record writer. The core hands each event to a bounded [`Feed`]
//! without waiting; this side throttles readings, keeps what NATS has not acknowledged in a
//! bounded [`Outbox`], publishes it in order with JetStream acknowledgements when NATS is
//! reachable, sends the heartbeat, tells the room's displays the link's state, and answers the
//! central's requests (`requests.rs`) through the core. NATS being away never stops the room.
//! Alarm steps and link changes it could not publish before a restart come back from the
//! session record (`record.rs`) and are published first.

mod outbox;
mod record;
mod requests;

pub use outbox::{Item, Outbox, Subject, OUTBOX_CAPACITY};
pub use record::{Done, RecordProgress, REPLAY_MAX};

use crate::config::Central;
use crate::core::CoreHandle;
use crate::metrics::Metrics;
use crate::nats::{msg_id, replay_msg_id, snapshot_msg_id, Subjects};
use async_nats::connection::State;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_protocol::display::{ServerMessage, UserInfo};

/// Messages the core may have handed over that the publisher has not taken yet.
pub const FEED_CAPACITY: usize = 4096;
/// Room kept in the feed for alarm steps, link and session changes: readings and heartbeats
/// are not offered once fewer places than this are left.
const FEED_RESERVE: usize = 1024;
/// How often a reading is published at most, per device and vital (the latest one).
const READING_EVERY: Duration = Duration::from_secs(1);
/// How often the room publishes its whole state while connected, besides at start and after
/// each reconnect: a central that starts rebuilds each room from its last stored snapshot, so
/// this bounds what it must read again (minutes of the site's stream, not the hours since a
/// room last reconnected) before it shows the rooms as they are.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2 * 60);
/// How often the heartbeat is published.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(900);
/// How long one publication may take before NATS counts as away.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before trying again after NATS failed.
const RETRY: Duration = Duration::from_millis(500);

/// What a room event is on NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An alarm step.
    Alarm,
    /// A link change.
    Device,
    /// A session change.
    Session,
    /// A reading; `key` names its device and vital for the throttle.
    Reading {
        /// `device/vital`.
        key: String,
    },
    /// The core's heartbeat.
    Heartbeat,
}

#[derive(Debug)]
enum FeedItem {
    Message { kind: Kind, seq: u64, text: String },
    SnapshotDue,
}

/// The core's end of the feed to the publisher: never waits.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: mpsc::Sender<FeedItem>,
    metrics: Arc<Metrics>,
}

/// The publisher's end of the feed.
#[derive(Debug)]
pub struct FeedReceiver(mpsc::Receiver<FeedItem>);

/// A feed from the core to the publisher.
pub fn feed(metrics: Arc<Metrics>) -> (Feed, FeedReceiver) {
    let (tx, rx) = mpsc::channel(FEED_CAPACITY);
    (Feed { tx, metrics }, FeedReceiver(rx))
}

impl Feed {
    /// Offers one message the core has just made (`text`: its display JSON).
    pub(crate) fn offer(&self, kind: Kind, seq: u64, text: &str) {
        let lossy = matches!(kind, Kind::Reading { .. } | Kind::Heartbeat);
        if lossy && self.tx.capacity() <= FEED_RESERVE {
            self.metrics.central_dropped(1);
            return;
        }
        let text = text.to_string();
        if self
            .tx
            .try_send(FeedItem::Message { kind, seq, text })
            .is_err()
        {
            // Only when the publisher has stalled or stopped: the room goes on regardless.
            self.metrics.central_dropped(1);
            if !lossy {
                tracing::error!(
                    seq,
                    "the central station's feed is full: a message for it was dropped"
                );
            }
        }
    }

    /// The room's devices or profile changed: the central needs a fresh snapshot.
    pub(crate) fn snapshot_due(&self) {
        let _ = self.tx.try_send(FeedItem::SnapshotDue);
    }
}

struct Shared {
    outbox: Mutex<Outbox>,
    more: Notify,
    metrics: Arc<Metrics>,
    /// Whether the stream took the last message offered to it (true until one fails). While it
    /// refuses (full, no JetStream leader, no permission) the room sends no heartbeat: a
    /// heartbeat tells the central it has the room's messages (X1).
    stream_takes: AtomicBool,
    /// The stream sequence of the last message the stream acknowledged, sent in each heartbeat
    /// (`stream_seq`): the central holds the link up only while it has read that far (X2).
    stream_seq: AtomicU64,
}

impl Shared {
    /// Whether the room may send a heartbeat: the stream takes its messages.
    fn stream_takes(&self) -> bool {
        self.stream_takes.load(Ordering::Relaxed)
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, item: Item) {
        let (dropped, len) = {
            let mut outbox = self.outbox();
            (outbox.push(item), outbox.len())
        };
        if let Some(d) = dropped {
            self.metrics.central_dropped(1);
            if d.subject == Subject::Alarm {
                tracing::error!(msg_id = %d.msg_id, "the central station's outbox is full: an alarm step was dropped");
            }
        }
        self.metrics.set_central_pending(len);
        self.more.notify_one();
    }
}

/// The publisher's fixed facts.
#[derive(Clone)]
struct Room {
    name: String,
    room_id: String,
    site: String,
    boot: u64,
    subjects: Subjects,
    client: async_nats::Client,
    core: CoreHandle,
    /// Answers the central's trend requests with the room displays' own service and slots.
    trends: crate::trend::TrendService,
    metrics: Arc<Metrics>,
    /// The site's key: only requests signed with it are answered (hazard V6).
    action_key: Option<crate::nats::signed::ActionKey>,
}

/// Starts publishing the room to the central station: connects (in the background; the room
/// runs alone until NATS answers) and runs until `cancel`. With `record` (the session record
/// could be opened), what an earlier run recorded and did not publish is published first, and
/// what JetStream acknowledges is noted there.
pub async fn start(
    central: &Central,
    room_name: &str,
    (core, trends): (CoreHandle, crate::trend::TrendService),
    metrics: Arc<Metrics>,
    (feed, record): (FeedReceiver, Option<RecordProgress>),
    cancel: CancellationToken,
) -> TaskTracker {
    let tasks = TaskTracker::new();
    let name = format!("vigil room {}", central.room_id);
    let client = match crate::nats::connect(&central.connection, &name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot publish to the central station; the room runs alone");
            tasks.close();
            return tasks;
        }
    };
    let boot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let room = Room {
        name: room_name.to_string(),
        room_id: central.room_id.clone(),
        site: central.site.clone(),
        boot,
        subjects: Subjects::new(&central.site, &central.room_id),
        client,
        core,
        trends,
        metrics: metrics.clone(),
        action_key: central.connection.action_key(),
    };
    let shared = Arc::new(Shared {
        outbox: Mutex::new(Outbox::new(OUTBOX_CAPACITY)),
        more: Notify::new(),
        metrics,
        stream_takes: AtomicBool::new(true),
        stream_seq: AtomicU64::new(0),
    });
    tracing::info!(site = %room.site, room_id = %room.room_id, "publishing to the central station");
    let replayed = match &record {
        Some(record) => record.unpublished().await,
        None => Vec::new(),
    };
    let (notes, noted) = record::notes();
    if let Some(record) = record {
        tasks.spawn(record.keep(noted, cancel.clone()));
    }
    tasks.spawn(take_feed(
        room.clone(),
        shared.clone(),
        (feed, replayed),
        cancel.clone(),
    ));
    tasks.spawn(send(room.clone(), shared, notes, cancel.clone()));
    tasks.spawn(requests::answer(room, cancel));
    tasks.close();
    tasks
}

impl Room {
    fn item(&self, subject: Subject, seq: u64, payload: String) -> Item {
        Item {
            subject,
            msg_id: msg_id(&self.room_id, self.boot, seq),
            done: Done::of_live(subject, &payload),
            payload,
        }
    }

    /// The `n`th message published from the record (see [`replay_msg_id`]).
    fn replayed(&self, n: u64, replayed: record::Replayed) -> Item {
        let mut message = replayed.message;
        if let ServerMessage::Alarm { seq, .. } | ServerMessage::Device { seq, .. } = &mut message {
            *seq = n;
        }
        Item {
            subject: replayed.subject,
            msg_id: replay_msg_id(&self.room_id, self.boot, n),
            payload: message.to_json(),
            done: Some(replayed.done),
        }
    }

    /// The room's current state, without the trend chart: its `seq` and its JSON.
    async fn snapshot(&self) -> Option<(u64, String)> {
        let user = UserInfo {
            name: "central".into(),
            role: "viewer".into(),
        };
        let snapshot = self.core.snapshot_without_trend(user).await?;
        let seq = snapshot.seq;
        Some((seq, ServerMessage::Snapshot(Box::new(snapshot)).to_json()))
    }

    /// The live heartbeat for the core's heartbeat message `text`, with the stream sequence of
    /// the room's last stored message.
    fn heartbeat(&self, seq: u64, text: &str, stream_seq: u64) -> String {
        let at = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v["at"].as_str().map(str::to_string))
            .unwrap_or_default();
        serde_json::json!({
            "v": 1,
            "type": "heartbeat",
            "at": at,
            "room": self.name,
            "room_id": self.room_id,
            "boot": self.boot,
            "seq": seq,
            "stream_seq": stream_seq,
        })
        .to_string()
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

/// The publisher's end of the feed, and what it keeps between messages.
struct Taker {
    room: Room,
    shared: Arc<Shared>,
    feed: mpsc::Receiver<FeedItem>,
    /// The latest reading of each device and vital since the last flush.
    latest: BTreeMap<String, (u64, String)>,
    beat: Option<Instant>,
}

impl Taker {
    async fn take(&mut self, item: FeedItem) {
        match item {
            FeedItem::SnapshotDue => self.snapshot().await,
            FeedItem::Message { kind, seq, text } => self.message(kind, seq, text).await,
        }
    }

    async fn message(&mut self, kind: Kind, seq: u64, text: String) {
        let (room, shared) = (&self.room, &self.shared);
        match kind {
            Kind::Reading { key } => {
                self.latest.insert(key, (seq, text));
            }
            Kind::Heartbeat => {
                let due = self.beat.is_none_or(|b| b.elapsed() >= HEARTBEAT_EVERY);
                if due && room.connected() && shared.stream_takes() {
                    self.beat = Some(Instant::now());
                    let stream_seq = shared.stream_seq.load(Ordering::Relaxed);
                    let payload = room.heartbeat(seq, &text, stream_seq);
                    let publish = room
                        .client
                        .publish(room.subjects.heartbeat(), payload.into());
                    if !matches!(
                        tokio::time::timeout(PUBLISH_TIMEOUT, publish).await,
                        Ok(Ok(()))
                    ) {
                        tracing::debug!("heartbeat to the central station not sent");
                    }
                }
            }
            Kind::Alarm => shared.push(room.item(Subject::Alarm, seq, text)),
            Kind::Device => shared.push(room.item(Subject::Device, seq, text)),
            Kind::Session => shared.push(room.item(Subject::Session, seq, text)),
        }
    }

    /// Queues the room's snapshot behind every step it includes. The core offered those to the
    /// feed before it answered, so they are taken from the feed first: a snapshot queued ahead
    /// of a step it includes would make the central drop that step as already applied, and an
    /// alarm raised and ended meanwhile would never reach it.
    async fn snapshot(&mut self) {
        let Some((seq, text)) = self.room.snapshot().await else {
            return;
        };
        let (included, after) = included(&mut self.feed, seq);
        for (kind, seq, text) in included {
            self.message(kind, seq, text).await;
        }
        self.shared.push(Item {
            subject: Subject::Snapshot,
            msg_id: snapshot_msg_id(&self.room.room_id, self.room.boot, seq),
            payload: text,
            done: None,
        });
        if let Some(FeedItem::Message { kind, seq, text }) = after {
            self.message(kind, seq, text).await;
        }
    }

    /// Queues the latest reading of each device and vital, in their order.
    fn flush_readings(&mut self) {
        let mut readings: Vec<_> = std::mem::take(&mut self.latest).into_values().collect();
        readings.sort_by_key(|(seq, _)| *seq);
        for (seq, text) in readings {
            self.shared
                .push(self.room.item(Subject::Reading, seq, text));
        }
    }
}

/// What the feed holds that a snapshot of `seq` includes (the core offers a message before it
/// answers a snapshot request, so those are all there already), and the first message after,
/// taken too. A snapshot due meanwhile is the one being taken.
fn included(
    feed: &mut mpsc::Receiver<FeedItem>,
    seq: u64,
) -> (Vec<(Kind, u64, String)>, Option<FeedItem>) {
    let mut included = Vec::new();
    while let Ok(item) = feed.try_recv() {
        match item {
            FeedItem::Message { seq: s, .. } if s > seq => return (included, Some(item)),
            FeedItem::SnapshotDue => {}
            FeedItem::Message { kind, seq, text } => included.push((kind, seq, text)),
        }
    }
    (included, None)
}

/// Takes what the core hands over: queues alarm steps, link and session changes at once, the
/// latest reading of each device and vital each second, snapshots when due; sends heartbeats;
/// follows the connection's state. What an earlier run recorded and did not publish
/// (`replayed`) goes first, before this run's first snapshot.
async fn take_feed(
    room: Room,
    shared: Arc<Shared>,
    (feed, replayed): (FeedReceiver, Vec<record::Replayed>),
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut flushed = Instant::now();
    let mut snapshotted = Instant::now();
    let mut connected = false;
    for (n, replayed) in (1..).zip(replayed) {
        shared.push(room.replayed(n, replayed));
    }
    let mut taker = Taker {
        room: room.clone(),
        shared: shared.clone(),
        feed: feed.0,
        latest: BTreeMap::new(),
        beat: None,
    };
    taker.snapshot().await;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            item = taker.feed.recv() => match item {
                None => break,
                Some(item) => taker.take(item).await,
            },
            _ = tick.tick() => {
                if flushed.elapsed() >= READING_EVERY {
                    flushed = Instant::now();
                    taker.flush_readings();
                }
                if connected && snapshotted.elapsed() >= SNAPSHOT_EVERY {
                    snapshotted = Instant::now();
                    taker.snapshot().await;
                }
                // Connected to NATS is not enough: the stream must take the room's messages.
                let now = room.connected() && shared.stream_takes();
                if now != connected {
                    connected = now;
                    room.metrics.set_central_connected(now);
                    room.core.central_link(now).await;
                    if now {
                        tracing::info!("connected to the central station");
                        // The central takes the room's full state after each reconnect.
                        taker.snapshot().await;
                    } else {
                        tracing::warn!(pending = shared.outbox().len(), "lost the central station; the room goes on alone and keeps what it could not publish");
                    }
                }
            }
        }
    }
}

/// Publishes the outbox in order, each message acknowledged by the stream before the next.
async fn send(room: Room, shared: Arc<Shared>, notes: record::Notes, cancel: CancellationToken) {
    let js = async_nats::jetstream::new(room.client.clone());
    let mut stream_ready = false;
    let mut failing = false;
    loop {
        let next = shared.outbox().front().cloned();
        let Some(item) = next else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = shared.more.notified() => continue,
            }
        };
        let connected = room.connected();
        let sent = connected && {
            if !stream_ready {
                stream_ready = matches!(
                    tokio::time::timeout(
                        PUBLISH_TIMEOUT,
                        crate::nats::ensure_stream(&js, &room.site)
                    )
                    .await,
                    Ok(Ok(_))
                );
            }
            stream_ready
                && match publish(&js, &room.subjects, &item).await {
                    Ok(stream_seq) => {
                        shared.stream_seq.fetch_max(stream_seq, Ordering::Relaxed);
                        true
                    }
                    Err(_) => false,
                }
        };
        // Disconnected says nothing of the stream (the connection's state governs then). A
        // refused message stays at the outbox's front and is retried, so this turns true again.
        if connected {
            shared.stream_takes.store(sent, Ordering::Relaxed);
        }
        if sent {
            failing = false;
            if let Some(done) = item.done.clone() {
                notes.acknowledged(done);
            }
            let len = {
                let mut outbox = shared.outbox();
                outbox.published(&item.msg_id);
                outbox.len()
            };
            shared.metrics.set_central_pending(len);
        } else {
            if !failing && room.connected() {
                tracing::warn!(msg_id = %item.msg_id, "cannot publish to the central station; retrying, without heartbeats until the stream takes it");
            }
            failing = true;
            // The stream may have gone with the server's store: make sure of it again.
            stream_ready = false;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// Publishes `item` and waits for the stream's acknowledgement: the stream sequence it got.
async fn publish(
    js: &async_nats::jetstream::Context,
    subjects: &Subjects,
    item: &Item,
) -> Result<u64, String> {
    use async_nats::jetstream::message::PublishMessage;
    let subject = match item.subject {
        Subject::Alarm => subjects.alarm(),
        Subject::Device => subjects.device(),
        Subject::Session => subjects.session(),
        Subject::Reading => subjects.reading(),
        Subject::Snapshot => subjects.snapshot(),
    };
    let message = PublishMessage::build()
        .payload(item.payload.clone().into())
        .message_id(&item.msg_id);
    let acked = async {
        js.send_publish(subject, message)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(PUBLISH_TIMEOUT, acked).await {
        Ok(Ok(ack)) => Ok(ack.sequence),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no acknowledgement in time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> FeedItem {
        FeedItem::Message {
            kind: Kind::Alarm,
            seq,
            text: format!("step {seq}"),
        }
    }

    /// The core raised alarm steps 4 and 5, then answered a snapshot at seq 5, then raised
    /// step 6: the snapshot is queued after 4 and 5 (which it includes) and before 6.
    #[test]
    fn a_snapshot_is_queued_behind_the_steps_it_includes() {
        let (tx, mut rx) = mpsc::channel(16);
        for item in [
            message(4),
            FeedItem::SnapshotDue,
            message(5),
            message(6),
            message(7),
        ] {
            tx.try_send(item).unwrap();
        }
        let (before, after) = included(&mut rx, 5);
        let seqs: Vec<u64> = before.iter().map(|(_, seq, _)| *seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert!(matches!(after, Some(FeedItem::Message { seq: 6, .. })));
        // What follows stays in the feed, in order.
        assert!(matches!(
            rx.try_recv(),
            Ok(FeedItem::Message { seq: 7, .. })
        ));
        // Nothing after the snapshot: everything is taken.
        tx.try_send(message(8)).unwrap();
        let (before, after) = included(&mut rx, 9);
        assert_eq!(before.len(), 1);
        assert!(after.is_none());
    }
}
