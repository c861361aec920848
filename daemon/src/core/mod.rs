//! The core task: the only owner of the alarm engine and the room state. Readings, link events and
//! person actions come in over channels; every change goes out once, serialised, on a bounded
//! broadcast to the display sessions. Heartbeats come from here too, so a display hears silence
//! if this task stalls, not just if the network does.

mod encode;
mod events;
mod publish;
mod reconfigure;
mod requests;
mod restore;
mod wire;

use crate::central::Feed;
use crate::clock::Clock;
use crate::metrics::Metrics;
pub use crate::numbers::check_numbers;
use crate::room_state::RoomState;
#[cfg(feature = "fault-injection")]
pub use crate::supervise::Fault;
use crate::supervise::{Pulse, Watchdog};
use crate::trend::Trends;
use axum::extract::ws::Utf8Bytes;
pub use encode::reading_info;
use publish::RoomEvent;
pub use reconfigure::Reconfigure;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_alarm::{AlarmState, AlarmView, Engine, EngineEvent, SessionPhase};
use vigil_drivers::{DeviceHandle, DriverEvent, DriverEventKind, Link};
use vigil_protocol::display::{
    AlarmInfo, BpInfo, ClientMessage, LinkState, ServerMessage, SessionInfo, Snapshot, UserInfo,
};
use vigil_protocol::{DeviceCommand, DeviceEvent, Format, Unavailable, Value};
pub use wire::{from_wire_name, wire_name, wire_tag, UnknownName};

/// How often the core says it is alive. The display raises loss of communication after 3 s.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// One message for every display session, serialised once.
#[derive(Debug)]
pub struct Outgoing {
    /// Broadcast sequence number.
    pub seq: u64,
    /// The frame's text.
    pub text: Utf8Bytes,
    /// When the reading it carries arrived, for the delivery-latency histogram.
    pub received: Option<Instant>,
    /// Instead of `text` (empty), each display gets a fresh snapshot: the room's devices or
    /// limits changed (a configuration reload).
    pub snapshot_due: bool,
}

/// What the core publishes at once: the messages one event caused, in order, so that a display
/// session writes them together.
pub type Published = Arc<Vec<Outgoing>>;

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable code.
    pub code: &'static str,
    /// For a person.
    pub reason: String,
}

/// The span of the trend chart in a snapshot.
const SNAPSHOT_TREND_MINUTES: u32 = 60;

enum Request {
    #[cfg(feature = "fault-injection")]
    Fault(Fault),
    Snapshot {
        user: UserInfo,
        reply: oneshot::Sender<Snapshot>,
    },
    Act {
        person: String,
        message: ClientMessage,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    Reconfigure {
        change: Reconfigure,
        applied: oneshot::Sender<()>,
    },
    CentralLink(bool),
}

/// The sessions' handle on the core.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    requests: mpsc::Sender<Request>,
    /// The trends the core publishes: a snapshot's chart is drawn from them here, off the core.
    trends: watch::Receiver<Arc<Trends>>,
    clock: Clock,
}

fn stopped() -> Refusal {
    Refusal {
        code: "unavailable",
        reason: "the daemon is shutting down".into(),
    }
}

impl CoreHandle {
    /// A fresh snapshot for `user`; `None` when the core has stopped. Its trend chart (the
    /// last hour) is drawn here, by the caller, from the trends the core published with the
    /// snapshot, so that many displays connecting at once cost the core only the live state.
    pub async fn snapshot(&self, user: UserInfo) -> Option<Snapshot> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Snapshot { user, reply })
            .await
            .ok()?;
        let mut snapshot = answer.await.ok()?;
        let trends = self.trends.borrow().clone();
        snapshot.trend = trends.window(
            self.clock.unix_ms(self.clock.now()),
            SNAPSHOT_TREND_MINUTES,
            crate::trend::resolution(SNAPSHOT_TREND_MINUTES),
        );
        Some(snapshot)
    }

    /// Makes the core fail as a bug would (tests only).
    #[cfg(feature = "fault-injection")]
    pub async fn inject(&self, fault: Fault) {
        let _ = self.requests.send(Request::Fault(fault)).await;
    }

    /// Applies a configuration reload's new profile and devices; returns once the core has
    /// (`false` when the core has stopped).
    pub async fn reconfigure(&self, change: Reconfigure) -> bool {
        let (applied, done) = oneshot::channel();
        let request = Request::Reconfigure { change, applied };
        self.requests.send(request).await.is_ok() && done.await.is_ok()
    }

    /// Tells the room (and so its displays) whether NATS is connected.
    pub async fn central_link(&self, connected: bool) {
        let _ = self.requests.send(Request::CentralLink(connected)).await;
    }

    /// A snapshot without its trend chart, for the central station (kept small for NATS).
    pub async fn snapshot_without_trend(&self, user: UserInfo) -> Option<Snapshot> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Snapshot { user, reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Carries out a person's action, once its numbers are checked.
    pub async fn act(&self, person: &str, message: ClientMessage) -> Result<(), Refusal> {
        check_numbers(&message)?;
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Act {
                person: person.to_string(),
                message,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The core task's state.
pub struct Core {
    engine: Engine,
    room_state: RoomState,
    clock: Clock,
    room: String,
    seq: u64,
    out: broadcast::Sender<Published>,
    /// Messages made since the last publication.
    pending: Vec<Outgoing>,
    devices: HashMap<String, (DeviceHandle, Format)>,
    metrics: Arc<Metrics>,
    storage: crate::storage::Storage,
    storage_health: mpsc::UnboundedReceiver<crate::storage::Health>,
    /// Trends for answering requests off the core, published every heartbeat they changed.
    trends: watch::Sender<Arc<Trends>>,
    pulse: Arc<Pulse>,
    watchdog: Watchdog,
    /// The `[[forward]]`s, shown on the displays' status line.
    forwards: Vec<Arc<crate::forward::Status>>,
    /// What the displays were last told of them.
    forwards_shown: Vec<vigil_protocol::display::ForwardInfo>,
    /// The feed to the central station's publisher, when the room has `[central]`.
    central: Option<Feed>,
    /// The central station's link as the displays show it (none without `[central]`).
    central_link: Option<bool>,
    /// Unknown parameters logged per device, rate-limited (W1).
    unknown_log: HashMap<String, crate::net::Tally>,
}

impl Core {
    /// A core for the configured devices. Returns it with the handle sessions use.
    pub fn new(
        engine: Engine,
        clock: Clock,
        room: String,
        devices: HashMap<String, (DeviceHandle, Format)>,
        out: broadcast::Sender<Published>,
        metrics: Arc<Metrics>,
        storage: (
            crate::storage::Storage,
            mpsc::UnboundedReceiver<crate::storage::Health>,
        ),
    ) -> Core {
        let mut engine = engine;
        let now = clock.now().into_std();
        let mut listed: Vec<(String, Format)> = devices
            .iter()
            .map(|(id, (_, f))| (id.clone(), *f))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, format) in &listed {
            engine.add_device(now, id, format.continuous_vitals());
        }
        Core {
            room_state: RoomState::new(&listed),
            engine,
            clock,
            room,
            seq: 0,
            out,
            pending: Vec::new(),
            devices,
            metrics,
            storage: storage.0,
            storage_health: storage.1,
            trends: watch::channel(Arc::default()).0,
            pulse: Arc::new(Pulse::new()),
            watchdog: Watchdog::from_env(),
            forwards: Vec::new(),
            forwards_shown: Vec::new(),
            central: None,
            central_link: None,
            unknown_log: HashMap::new(),
        }
    }

    /// Shows these forwards on the displays' status line (snapshot and `forward` messages).
    pub fn set_forwards(&mut self, forwards: Vec<Arc<crate::forward::Status>>) {
        self.forwards = forwards;
        self.forwards_shown = self.forward_infos();
    }

    /// Hands every room event the central station takes to `feed` (`[central]`); the room's
    /// displays then show the link, disconnected until the publisher says otherwise.
    pub fn feed_central(&mut self, feed: Feed) {
        self.central = Some(feed);
        self.central_link = Some(false);
    }

    /// The trends the core publishes, for answering trend requests off it.
    pub fn trends(&self) -> watch::Receiver<Arc<Trends>> {
        self.trends.subscribe()
    }

    /// The core's heartbeat, for `/healthz`.
    pub fn pulse(&self) -> Arc<Pulse> {
        self.pulse.clone()
    }

    /// Hands what the last event caused to every display session at once.
    pub(super) fn publish(&mut self) {
        if !self.pending.is_empty() {
            // No session listening is fine: the state is in the next snapshot.
            let _ = self.out.send(Arc::new(std::mem::take(&mut self.pending)));
        }
    }

    /// Starts the task; it runs until `cancel` fires and returns the engine for a final look.
    pub fn start(
        mut self,
        mut drivers: mpsc::Receiver<DriverEvent>,
        cancel: CancellationToken,
    ) -> (CoreHandle, tokio::task::JoinHandle<Engine>) {
        let (tx, mut requests) = mpsc::channel(256);
        // What was restored is published before any display can ask.
        if let Some(trends) = self.room_state.publish_trends() {
            self.trends.send_replace(trends);
        }
        let handle = CoreHandle {
            requests: tx,
            trends: self.trends.subscribe(),
            clock: self.clock,
        };
        let task = tokio::spawn(async move {
            let mut heartbeat = interval(HEARTBEAT);
            heartbeat.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                let deadline = self.engine.poll_timeout().map(Instant::from_std);
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    _ = async { match deadline { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => {
                        let now = self.clock.now();
                        self.engine.handle_timeout(now.into_std());
                        self.publish_engine_events();
                    }
                    Some(request) = requests.recv() => self.on_request(request),
                    Some(health) = self.storage_health.recv() => {
                        let failing = matches!(health, crate::storage::Health::Failing(_));
                        self.pulse.set_record_failing(failing);
                        self.engine.set_recording_failed(self.clock.now().into_std(), failing);
                        self.publish_engine_events();
                    }
                    _ = heartbeat.tick() => {
                        let now = self.clock.now();
                        self.emit(RoomEvent::Heartbeat { at: now }, None);
                        self.publish_forwards();
                        self.pulse.beat(now);
                        self.watchdog.kick(now);
                        if let Some(trends) = self.room_state.publish_trends() {
                            self.trends.send_replace(trends);
                        }
                    }
                    // Last: a device that sends faster than the core takes its frames keeps
                    // this queue full, and polled earlier it starved the heartbeat (and the
                    // watchdog, and people's actions) for as long as it lasted.
                    Some(event) = drivers.recv() => self.on_driver(event),
                }
                self.publish();
            }
            let active = self
                .engine
                .snapshot(self.clock.now().into_std())
                .alarms
                .iter()
                .filter(|a| a.state != AlarmState::Pending)
                .count();
            tracing::info!(alarms = active, "core stopped");
            self.storage.record(crate::storage::Record::End);
            self.engine
        });
        (handle, task)
    }
}
