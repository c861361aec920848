//! The room's publisher to the central station over NATS (`[central]`): a sibling adapter of the
//! core's room events, like the record writer. The core hands each event to a bounded [`Feed`]
//! without waiting; this side throttles readings, keeps what NATS has not acknowledged in a
//! bounded [`Outbox`], publishes it in order with JetStream acknowledgements when NATS is
//! reachable, sends the heartbeat, tells the room's displays the link's state, and answers the
//! central's requests (`requests.rs`) through the core. NATS being away never stops the room.

mod outbox;
mod requests;

pub use outbox::{Item, Outbox, Subject, OUTBOX_CAPACITY};

use crate::config::Central;
use crate::core::CoreHandle;
use crate::metrics::Metrics;
use crate::nats::{msg_id, snapshot_msg_id, Subjects};
use async_nats::connection::State;
use std::collections::BTreeMap;
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
}

impl Shared {
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
    metrics: Arc<Metrics>,
}

/// Starts publishing the room to the central station: connects (in the background; the room
/// runs alone until NATS answers) and runs until `cancel`.
pub async fn start(
    central: &Central,
    room_name: &str,
    core: CoreHandle,
    metrics: Arc<Metrics>,
    feed: FeedReceiver,
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
        metrics: metrics.clone(),
    };
    let shared = Arc::new(Shared {
        outbox: Mutex::new(Outbox::new(OUTBOX_CAPACITY)),
        more: Notify::new(),
        metrics,
    });
    tracing::info!(site = %room.site, room_id = %room.room_id, "publishing to the central station");
    tasks.spawn(take_feed(
        room.clone(),
        shared.clone(),
        feed,
        cancel.clone(),
    ));
    tasks.spawn(send(room.clone(), shared, cancel.clone()));
    tasks.spawn(requests::answer(room, cancel));
    tasks.close();
    tasks
}

impl Room {
    fn item(&self, subject: Subject, seq: u64, payload: String) -> Item {
        Item {
            subject,
            msg_id: msg_id(&self.room_id, self.boot, seq),
            payload,
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

    async fn queue_snapshot(&self, shared: &Shared) {
        if let Some((seq, text)) = self.snapshot().await {
            shared.push(Item {
                subject: Subject::Snapshot,
                msg_id: snapshot_msg_id(&self.room_id, self.boot, seq),
                payload: text,
            });
        }
    }

    /// The live heartbeat for the core's heartbeat message `text`.
    fn heartbeat(&self, seq: u64, text: &str) -> String {
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
        })
        .to_string()
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

/// Takes what the core hands over: queues alarm steps, link and session changes at once, the
/// latest reading of each device and vital each second, snapshots when due; sends heartbeats;
/// follows the connection's state.
async fn take_feed(room: Room, shared: Arc<Shared>, feed: FeedReceiver, cancel: CancellationToken) {
    let mut feed = feed.0;
    let mut latest: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut flushed = Instant::now();
    let mut beat: Option<Instant> = None;
    let mut connected = false;
    room.queue_snapshot(&shared).await;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            item = feed.recv() => match item {
                None => break,
                Some(FeedItem::SnapshotDue) => room.queue_snapshot(&shared).await,
                Some(FeedItem::Message { kind, seq, text }) => match kind {
                    Kind::Reading { key } => {
                        latest.insert(key, (seq, text));
                    }
                    Kind::Heartbeat => {
                        let due = beat.is_none_or(|b| b.elapsed() >= HEARTBEAT_EVERY);
                        if due && room.connected() {
                            beat = Some(Instant::now());
                            let payload = room.heartbeat(seq, &text);
                            let publish = room.client.publish(room.subjects.heartbeat(), payload.into());
                            if !matches!(tokio::time::timeout(PUBLISH_TIMEOUT, publish).await, Ok(Ok(()))) {
                                tracing::debug!("heartbeat to the central station not sent");
                            }
                        }
                    }
                    Kind::Alarm => shared.push(room.item(Subject::Alarm, seq, text)),
                    Kind::Device => shared.push(room.item(Subject::Device, seq, text)),
                    Kind::Session => shared.push(room.item(Subject::Session, seq, text)),
                },
            },
            _ = tick.tick() => {
                if flushed.elapsed() >= READING_EVERY {
                    flushed = Instant::now();
                    let mut readings: Vec<_> = std::mem::take(&mut latest).into_values().collect();
                    readings.sort_by_key(|(seq, _)| *seq);
                    for (seq, text) in readings {
                        shared.push(room.item(Subject::Reading, seq, text));
                    }
                }
                let now = room.connected();
                if now != connected {
                    connected = now;
                    room.metrics.set_central_connected(now);
                    room.core.central_link(now).await;
                    if now {
                        tracing::info!("connected to the central station");
                        // The central takes the room's full state after each reconnect.
                        room.queue_snapshot(&shared).await;
                    } else {
                        tracing::warn!(pending = shared.outbox().len(), "lost the central station; the room goes on alone and keeps what it could not publish");
                    }
                }
            }
        }
    }
}

/// Publishes the outbox in order, each message acknowledged by the stream before the next.
async fn send(room: Room, shared: Arc<Shared>, cancel: CancellationToken) {
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
        let sent = room.connected() && {
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
            stream_ready && publish(&js, &room.subjects, &item).await.is_ok()
        };
        if sent {
            failing = false;
            let len = {
                let mut outbox = shared.outbox();
                outbox.published(&item.msg_id);
                outbox.len()
            };
            shared.metrics.set_central_pending(len);
        } else {
            if !failing && room.connected() {
                tracing::warn!(msg_id = %item.msg_id, "cannot publish to the central station; retrying");
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

async fn publish(
    js: &async_nats::jetstream::Context,
    subjects: &Subjects,
    item: &Item,
) -> Result<(), String> {
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
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no acknowledgement in time".into()),
    }
}
