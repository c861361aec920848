//! The core task: the only owner of the alarm engine and the hub. Readings, link events and
//! person actions come in over channels; every change goes out once, serialised, on a bounded
//! broadcast to the display sessions. Heartbeats come from here too, so a display hears silence
//! if this task stalls, not just if the network does.

use crate::clock::Clock;
use crate::hub::Hub;
use crate::metrics::Metrics;
pub use crate::numbers::check_numbers;
#[cfg(feature = "fault-injection")]
pub use crate::supervise::Fault;
use crate::supervise::{Pulse, Watchdog};
use crate::trend::Trends;
use axum::extract::ws::Utf8Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_alarm::{
    AlarmChange, AlarmKind, AlarmState, AlarmView, Engine, EngineEvent, PauseEnd, Priority,
    SessionPhase,
};
use vigil_drivers::{DeviceHandle, DriverEvent, DriverEventKind, Link};
use vigil_protocol::display::{
    AlarmInfo, BpInfo, ClientMessage, LinkState, ServerMessage, SessionInfo, Snapshot, UserInfo,
};
use vigil_protocol::{DeviceEvent, Format, Unavailable, Value};

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
    hub: Hub,
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
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::High => "high",
        Priority::Medium => "medium",
        Priority::Low => "low",
        Priority::Info => "info",
    }
}

fn state_name(s: AlarmState) -> &'static str {
    match s {
        AlarmState::Pending => "pending",
        AlarmState::Active => "active",
        AlarmState::Acknowledged => "acknowledged",
        AlarmState::Latched => "latched",
        AlarmState::Cleared => "cleared",
    }
}

fn change_name(c: AlarmChange) -> &'static str {
    match c {
        AlarmChange::Raised => "raised",
        AlarmChange::Escalated => "escalated",
        AlarmChange::Acknowledged => "acknowledged",
        AlarmChange::Cleared => "cleared",
        AlarmChange::Reset => "reset",
    }
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
            hub: Hub::new(&listed),
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
        }
    }

    /// The trends the core publishes, for answering trend requests off it.
    pub fn trends(&self) -> watch::Receiver<Arc<Trends>> {
        self.trends.subscribe()
    }

    /// The core's heartbeat, for `/healthz`.
    pub fn pulse(&self) -> Arc<Pulse> {
        self.pulse.clone()
    }

    /// Brings back the session, alarms and trends a crashed run left open.
    pub fn restore(&mut self, resumed: &crate::storage::Resumed) {
        for s in &resumed.trend {
            self.hub.restore_trend(&s.device, s.vital, &s.points);
        }
        let parse_priority = |p: &str| match p {
            "high" => Some(Priority::High),
            "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            "info" => Some(Priority::Info),
            _ => None,
        };
        let instant = |iso: &str| {
            humantime::parse_rfc3339(iso)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| self.clock.instant_of_unix_ms(d.as_millis() as i64))
        };
        let now = self.clock.now().into_std();
        // Nothing stored is dropped or lowered silently: what cannot be read is named, logged,
        // and raises `record-unreadable`; an alarm whose priority or time cannot be read comes
        // back at High, now.
        let mut unreadable = resumed.unreadable.clone();
        let mut alarms = Vec::new();
        for (a, _) in &resumed.alarms {
            let seq = a.id.rsplit('#').next().and_then(|s| s.parse().ok());
            let (Some(seq), Some(priority), Some(since)) =
                (seq, parse_priority(&a.priority), instant(&a.since))
            else {
                tracing::error!(alarm = %a.id, "stored alarm could not be read back");
                unreadable.push(format!("alarm {}", a.id));
                if let Some(seq) = seq {
                    alarms.push(vigil_alarm::RestoredAlarm {
                        rule: a.rule.clone(),
                        seq,
                        device: a.device.clone(),
                        vital: a.vital,
                        priority: Priority::High,
                        onset: now,
                        since: now,
                        acknowledged: None,
                        latched: a.state == "latched",
                        value: a.value,
                        awaiting_confirmation: a.awaiting_confirmation,
                    });
                }
                continue;
            };
            alarms.push(vigil_alarm::RestoredAlarm {
                rule: a.rule.clone(),
                seq,
                device: a.device.clone(),
                vital: a.vital,
                priority,
                onset: since,
                since,
                acknowledged: match (&a.acknowledged_by, &a.acknowledged_at) {
                    (Some(by), Some(at)) => Some(vigil_alarm::Act {
                        by: by.clone(),
                        at: instant(at).unwrap_or(now),
                    }),
                    _ => None,
                },
                latched: a.state == "latched",
                value: a.value,
                awaiting_confirmation: a.awaiting_confirmation,
            });
        }
        let dose = resumed.dose.as_ref().map(|(at, by)| vigil_alarm::Act {
            by: by.clone(),
            at: self.clock.instant_of_unix_ms(*at),
        });
        let baseline = resumed.baseline.map(|(systolic, diastolic)| {
            let taken = resumed
                .baseline_taken
                .map_or(now, |ms| self.clock.instant_of_unix_ms(ms));
            let set_by = resumed
                .baseline_by
                .clone()
                .map(|by| vigil_alarm::Act { by, at: taken });
            (
                vigil_alarm::Bp {
                    systolic,
                    diastolic,
                },
                taken,
                set_by,
            )
        });
        let bp_measurements = resumed
            .bp_measurements
            .iter()
            .map(|&(ms, systolic, diastolic)| {
                let bp = vigil_alarm::Bp {
                    systolic,
                    diastolic,
                };
                (self.clock.instant_of_unix_ms(ms), bp)
            })
            .collect();
        let restored = vigil_alarm::RestoredSession {
            now,
            dose,
            baseline,
            bp_measurements,
            alarms,
            next_seq: resumed.next_alarm_seq,
        };
        for id in self.engine.restore(restored) {
            tracing::error!(alarm = %id, "not restored: its rule is no longer in the profile");
            unreadable.push(format!("alarm {id} (its rule is no longer in the profile)"));
        }
        // Restored alarms are not new events: drain them without publishing.
        while self.engine.poll_event().is_some() {}
        // What could not be read back is new, and must be heard.
        self.engine.record_unreadable(now, unreadable);
        self.publish_engine_events();
    }

    fn send(&mut self, make: impl FnOnce(u64) -> ServerMessage, received: Option<Instant>) {
        self.seq += 1;
        let text = make(self.seq).to_json();
        self.pending.push(Outgoing {
            seq: self.seq,
            text: text.into(),
            received,
        });
    }

    /// Hands what the last event caused to every display session at once.
    fn publish(&mut self) {
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
        if let Some(trends) = self.hub.publish_trends() {
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
                        let at = self.clock.rfc3339(now);
                        self.send(|seq| ServerMessage::Heartbeat { seq, at }, None);
                        self.pulse.beat(now);
                        self.watchdog.kick(now);
                        if let Some(trends) = self.hub.publish_trends() {
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

    fn on_driver(&mut self, event: DriverEvent) {
        let device = event.device.to_string();
        match event.kind {
            DriverEventKind::Readings(readings) => {
                self.metrics.readings(&device, readings.len() as u64);
                let implausible = readings
                    .iter()
                    .filter(|r| r.value == Value::Unavailable(Unavailable::Implausible))
                    .count();
                self.metrics.implausible(&device, implausible as u64);
                let mut sensor_back = false;
                let at_ms = self.clock.unix_ms(event.at);
                for r in &readings {
                    let info = self.hub.record(&self.clock, &device, r, event.at);
                    self.storage.record(crate::storage::Record::Reading(
                        Box::new(info.clone()),
                        at_ms,
                        r.device_time,
                    ));
                    sensor_back |= r.clinical_value().is_some();
                    self.send(
                        |seq| ServerMessage::Reading { seq, reading: info },
                        Some(event.at),
                    );
                }
                if sensor_back && self.hub.link(&device) == Some(LinkState::SensorOff) {
                    self.set_link(&device, LinkState::Connected, None);
                }
                let started = std::time::Instant::now();
                self.engine
                    .handle_readings(event.at.into_std(), &device, &readings);
                self.metrics.record_engine(started.elapsed());
            }
            DriverEventKind::Device(e) => {
                match &e {
                    DeviceEvent::SensorOff
                    | DeviceEvent::SensorDefective
                    | DeviceEvent::SensorDisconnected => {
                        if matches!(
                            self.hub.link(&device),
                            Some(LinkState::Connected | LinkState::Stale)
                        ) {
                            self.set_link(&device, LinkState::SensorOff, None);
                        }
                    }
                    DeviceEvent::BatteryLevel { percent } => {
                        self.hub.set_battery(&device, *percent)
                    }
                    DeviceEvent::UnknownParameter { code } => {
                        self.metrics.unknown_parameter(&device);
                        tracing::warn!(%device, %code, "unknown parameter from device");
                    }
                    _ => {}
                }
                self.engine
                    .handle_device_event(event.at.into_std(), &device, &e);
            }
            DriverEventKind::Link(link) => {
                let (state, reason, up) = match link {
                    Link::Connecting => (LinkState::Connecting, None, None),
                    Link::Connected => (LinkState::Connected, None, Some(true)),
                    Link::Disconnected { reason } => {
                        (LinkState::Disconnected, Some(reason), Some(false))
                    }
                    Link::NoData { .. } => (LinkState::Stale, None, None),
                };
                // A reconnect attempt after a loss keeps showing the loss until it succeeds.
                let keep_loss = state == LinkState::Connecting
                    && self.hub.link(&device) == Some(LinkState::Disconnected);
                if !keep_loss {
                    self.set_link(&device, state, reason);
                }
                if let Some(up) = up {
                    self.engine.handle_link(event.at.into_std(), &device, up);
                }
            }
            DriverEventKind::DecodeErrors { count, .. } => {
                self.metrics.decode_errors(&device, count)
            }
        }
        self.publish_engine_events();
    }

    fn set_link(&mut self, device: &str, link: LinkState, reason: Option<String>) {
        if self.hub.set_link(device, link, reason.clone()) {
            self.storage.record(crate::storage::Record::Link {
                device: device.to_string(),
                state: link,
                reason: reason.clone(),
                at: self.clock.unix_ms(self.clock.now()),
            });
            let device = device.to_string();
            self.send(
                |seq| ServerMessage::Device {
                    seq,
                    device,
                    link,
                    reason,
                },
                None,
            );
        }
    }

    fn alarm_info(&self, a: &AlarmView) -> AlarmInfo {
        AlarmInfo {
            id: a.id.clone(),
            rule: a.rule.clone(),
            kind: match a.kind {
                AlarmKind::Physiological => "physiological",
                AlarmKind::Technical => "technical",
            }
            .into(),
            vital: a.vital,
            device: a.device.clone(),
            priority: priority_name(a.priority).into(),
            message: a.message.clone(),
            state: state_name(a.state).into(),
            since: self.clock.rfc3339_std(a.since),
            acknowledged_by: a.acknowledged.as_ref().map(|x| x.by.clone()),
            acknowledged_at: a
                .acknowledged
                .as_ref()
                .map(|x| self.clock.rfc3339_std(x.at)),
            latching: a.latching,
            awaiting_confirmation: a.awaiting_confirmation,
            value: a.value,
        }
    }

    fn session_info(&self) -> SessionInfo {
        let s = self.engine.snapshot(self.clock.now().into_std()).session;
        SessionInfo {
            phase: match s.phase {
                SessionPhase::PreDose => "pre_dose",
                SessionPhase::PostDose { .. } => "post_dose",
            }
            .into(),
            minutes_since_dose: match s.phase {
                SessionPhase::PostDose { minutes_since_dose } => Some(minutes_since_dose),
                SessionPhase::PreDose => None,
            },
            dose_at: s.dose.as_ref().map(|d| self.clock.rfc3339_std(d.at)),
            dose_by: s.dose.map(|d| d.by),
            baseline: s.baseline.map(|b| BpInfo {
                systolic: b.systolic,
                diastolic: b.diastolic,
            }),
            baseline_taken_at: s.baseline_taken.map(|t| self.clock.rfc3339_std(t)),
            baseline_set_by: s.baseline_set_by.map(|a| a.by),
            baseline_missing: s.baseline_missing,
        }
    }

    /// Turns the engine's events into messages and publishes everything the event being
    /// handled caused, so that its changes reach the displays before any answer to a person.
    fn publish_engine_events(&mut self) {
        let mut alarms_changed = false;
        while let Some(event) = self.engine.poll_event() {
            match event {
                EngineEvent::Alarm {
                    change, alarm, by, ..
                } => {
                    alarms_changed = true;
                    match &by {
                        Some(person) => {
                            tracing::info!(alarm = %alarm.id, change = change_name(change), %person, "alarm action")
                        }
                        None => {
                            tracing::info!(alarm = %alarm.id, change = change_name(change), priority = priority_name(alarm.priority), "alarm")
                        }
                    }
                    let info = self.alarm_info(&alarm);
                    let event = change_name(change).to_string();
                    self.storage.record(crate::storage::Record::Alarm {
                        event: event.clone(),
                        alarm: Box::new(info.clone()),
                        at: self.clock.unix_ms(self.clock.now()),
                    });
                    self.send(
                        |seq| ServerMessage::Alarm {
                            seq,
                            event,
                            alarm: info,
                        },
                        None,
                    );
                }
                EngineEvent::AudioPaused { by, at, until } => {
                    tracing::info!(%by, "audio paused");
                    let remaining = until.saturating_duration_since(at).as_secs_f64();
                    self.send(
                        |seq| ServerMessage::AudioPause {
                            seq,
                            paused: true,
                            remaining_s: Some(remaining),
                            by: Some(by),
                            reason: None,
                        },
                        None,
                    );
                }
                EngineEvent::AudioPauseEnded { reason, .. } => {
                    let reason = match reason {
                        PauseEnd::Expired => "expired",
                        PauseEnd::NewCondition => "new_condition",
                    };
                    self.send(
                        |seq| ServerMessage::AudioPause {
                            seq,
                            paused: false,
                            remaining_s: None,
                            by: None,
                            reason: Some(reason.into()),
                        },
                        None,
                    );
                }
                EngineEvent::DoseMarked {
                    by,
                    at,
                    baseline,
                    baseline_taken,
                } => {
                    tracing::info!(%by, "dose marked");
                    self.storage.record(crate::storage::Record::Dose {
                        at: self.clock.unix_ms(tokio::time::Instant::from_std(at)),
                        by: by.clone(),
                        baseline: baseline.map(|b| (b.systolic, b.diastolic)),
                        baseline_taken: baseline_taken
                            .map(|t| self.clock.unix_ms(tokio::time::Instant::from_std(t))),
                    });
                    let session = self.session_info();
                    self.send(
                        |seq| ServerMessage::Session {
                            seq,
                            event: "dose_marked".into(),
                            session,
                            by: Some(by),
                            message: None,
                        },
                        None,
                    );
                }
                EngineEvent::BaselineSet {
                    by,
                    taken,
                    baseline,
                    ..
                } => {
                    tracing::info!(%by, "baseline set");
                    self.storage.record(crate::storage::Record::Baseline {
                        baseline: (baseline.systolic, baseline.diastolic),
                        taken: self.clock.unix_ms(tokio::time::Instant::from_std(taken)),
                        by: by.clone(),
                    });
                    let session = self.session_info();
                    self.send(
                        |seq| ServerMessage::Session {
                            seq,
                            event: "baseline_set".into(),
                            session,
                            by: Some(by),
                            message: None,
                        },
                        None,
                    );
                }
                EngineEvent::NibpRequested { rule, .. } => {
                    let session = self.session_info();
                    self.send(
                        |seq| ServerMessage::Session {
                            seq,
                            event: "nibp_requested".into(),
                            session,
                            by: None,
                            message: Some(format!("Repeat the NIBP now to confirm ({rule})")),
                        },
                        None,
                    );
                    // Cuffs the daemon can start are started; others rely on the nurse.
                    for (id, (handle, format)) in &self.devices {
                        if *format == Format::Suntech {
                            let handle = handle.clone();
                            let id = id.clone();
                            tokio::spawn(async move {
                                if let Err(e) = handle.start_nibp().await {
                                    tracing::warn!(device = %id, error = %e, "could not start the repeat NIBP");
                                }
                            });
                        }
                    }
                }
            }
        }
        if alarms_changed {
            let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
            for a in self.engine.snapshot(self.clock.now().into_std()).alarms {
                *counts
                    .entry((priority_name(a.priority).into(), state_name(a.state).into()))
                    .or_default() += 1;
            }
            self.metrics.set_alarms(counts);
        }
        self.publish();
    }

    fn snapshot(&self, user: UserInfo) -> Snapshot {
        let now = self.clock.now();
        let engine = self.engine.snapshot(now.into_std());
        Snapshot {
            room: self.room.clone(),
            user,
            server_time: self.clock.rfc3339(now),
            seq: self.seq,
            session: self.session_info(),
            devices: self.hub.devices(),
            vitals: self.hub.latest(now),
            alarms: engine.alarms.iter().map(|a| self.alarm_info(a)).collect(),
            audio_pause_remaining_s: engine.audio_pause_remaining.map(|d| d.as_secs_f64()),
            // Filled in by `CoreHandle::snapshot`, off the core.
            trend: vigil_protocol::display::Trend {
                minutes: SNAPSHOT_TREND_MINUTES,
                resolution_s: crate::trend::resolution(SNAPSHOT_TREND_MINUTES),
                series: Vec::new(),
            },
            limits: self.limits(),
        }
    }

    fn limits(&self) -> Vec<vigil_protocol::display::LimitLine> {
        use vigil_alarm::profile::Bound;
        self.engine
            .profile()
            .rules
            .iter()
            .filter_map(|r| match &r.spec {
                vigil_alarm::RuleSpec::Limit { vitals, bound, .. } => Some((r, vitals, *bound)),
                _ => None,
            })
            .flat_map(|(r, vitals, bound)| {
                vitals.iter().map(move |v| {
                    let (side, value) = match bound {
                        Bound::Below(x) => ("below", x),
                        Bound::Above(x) => ("above", x),
                    };
                    vigil_protocol::display::LimitLine {
                        rule: r.id.clone(),
                        vital: *v,
                        side: side.into(),
                        value,
                        priority: priority_name(r.priority).into(),
                    }
                })
            })
            .collect()
    }

    /// Records a person's action and answers only once it is committed: a display never hears
    /// "done" for an action the record does not hold.
    fn commit_then_reply(
        &self,
        person: &str,
        action: String,
        target: Option<String>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    ) {
        let committed = record_action(&self.storage, &self.clock, person, action, target);
        tokio::spawn(async move {
            let _ = reply.send(committed.await);
        });
    }

    fn on_request(&mut self, request: Request) {
        match request {
            #[cfg(feature = "fault-injection")]
            Request::Fault(fault) => match fault {
                Fault::PanicCore => panic!("injected fault: the core panics"),
                Fault::StallCore(d) => std::thread::sleep(d),
                Fault::PanicWriter => self.storage.record(crate::storage::Record::Panic),
                Fault::PanicDriver(device) => {
                    if let Some((handle, _)) = self.devices.get(device) {
                        handle.inject_panic();
                    }
                }
            },
            Request::Snapshot { user, reply } => {
                // The chart the handle draws then holds everything up to this snapshot.
                if let Some(trends) = self.hub.publish_trends() {
                    self.trends.send_replace(trends);
                }
                let _ = reply.send(self.snapshot(user));
            }
            Request::Act {
                person,
                message,
                reply,
            } => {
                let now = self.clock.now().into_std();
                let action = message.action().to_string();
                let target = match &message {
                    ClientMessage::Ack { alarm_id, .. } | ClientMessage::Reset { alarm_id, .. } => {
                        Some(alarm_id.clone())
                    }
                    ClientMessage::StartNibp { device, .. } => Some(device.clone()),
                    ClientMessage::SetBaseline { reading_time, .. } => Some(reading_time.clone()),
                    _ => None,
                };
                let refused = |e: vigil_alarm::ActionError| Refusal {
                    code: "refused",
                    reason: e.to_string(),
                };
                let result = match message {
                    ClientMessage::Ack { alarm_id, .. } => self
                        .engine
                        .acknowledge(now, &alarm_id, &person)
                        .map_err(refused),
                    ClientMessage::Reset { alarm_id, .. } => {
                        self.engine.reset(now, &alarm_id, &person).map_err(refused)
                    }
                    ClientMessage::MarkDose { .. } => self
                        .engine
                        .mark_dose(now, &person)
                        .map(|_| ())
                        .map_err(refused),
                    ClientMessage::SetBaseline { reading_time, .. } => {
                        match humantime::parse_rfc3339(&reading_time)
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        {
                            None => Err(Refusal {
                                code: "bad_message",
                                reason: format!(
                                    "reading_time must be a UTC RFC 3339 time, not {reading_time:?}"
                                ),
                            }),
                            Some(d) => {
                                let taken = self.clock.instant_of_unix_ms(d.as_millis() as i64);
                                self.engine
                                    .set_baseline(now, taken, &person)
                                    .map(|_| ())
                                    .map_err(refused)
                            }
                        }
                    }
                    ClientMessage::PauseAudio { seconds, .. } => {
                        // `check_numbers` passed it; `try_` keeps a bad caller from panicking us.
                        match seconds.map(Duration::try_from_secs_f64).transpose() {
                            Ok(s) => {
                                self.engine.pause_audio(now, &person, s);
                                Ok(())
                            }
                            Err(e) => Err(Refusal {
                                code: "bad_message",
                                reason: e.to_string(),
                            }),
                        }
                    }
                    ClientMessage::Trend { .. } => Ok(()),
                    ClientMessage::StartNibp { device, .. } => match self.devices.get(&device) {
                        None => Err(Refusal {
                            code: "refused",
                            reason: format!("no device {device:?} in this room"),
                        }),
                        Some((handle, _)) => {
                            tracing::info!(%person, %device, "NIBP start requested");
                            let handle = handle.clone();
                            let storage = self.storage.clone();
                            let (clock, person) = (self.clock, person.clone());
                            self.publish_engine_events();
                            // The cuff answers off the core; a started measurement is recorded
                            // like any other action before the display hears it worked.
                            tokio::spawn(async move {
                                let answer = match handle.start_nibp().await {
                                    Err(e) => Err(Refusal {
                                        code: "refused",
                                        reason: e.to_string(),
                                    }),
                                    Ok(()) => {
                                        record_action(&storage, &clock, &person, action, target)
                                            .await
                                    }
                                };
                                let _ = reply.send(answer);
                            });
                            return;
                        }
                    },
                };
                self.publish_engine_events();
                match result {
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                    Ok(()) => self.commit_then_reply(&person, action, target, reply),
                }
            }
        }
    }
}

/// Queues an action for the record; the future says whether it was committed, as the
/// display's answer.
fn record_action(
    storage: &crate::storage::Storage,
    clock: &Clock,
    person: &str,
    action: String,
    target: Option<String>,
) -> impl std::future::Future<Output = Result<(), Refusal>> + Send + 'static {
    let at = clock.unix_ms(clock.now());
    let committed = storage.commit_action(action, person.to_string(), target, at);
    async move {
        committed.await.map_err(|reason| Refusal {
            code: "not_recorded",
            reason,
        })
    }
}
