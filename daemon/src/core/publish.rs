//! What the room publishes: typed room events (engine enums and instants, no wire text), and
//! their two adapters side by side, the display encoder (`encode.rs`) and the record.

use super::*;
use crate::central::Kind;
use crate::storage::{Record, RecordedAlarm};
use vigil_alarm::{AlarmChange, Bp, PauseEnd};
use vigil_protocol::Reading;

/// Something that happened in the room, as the core knows it.
#[derive(Debug, Clone)]
pub(super) enum RoomEvent {
    /// A device sent a reading.
    Reading {
        /// Device id.
        device: String,
        /// The reading as decoded.
        reading: Reading,
        /// When it arrived.
        at: Instant,
    },
    /// A device's link changed.
    Link {
        /// Device id.
        device: String,
        /// New state.
        link: LinkState,
        /// Why, for a loss.
        reason: Option<String>,
    },
    /// An alarm changed.
    Alarm {
        /// What happened to it.
        change: AlarmChange,
        /// The alarm after the change.
        alarm: AlarmView,
    },
    /// A person paused the audio.
    AudioPaused {
        /// Who.
        by: String,
        /// For how long from now.
        remaining: Duration,
    },
    /// The audio pause ended.
    AudioPauseEnded {
        /// Why.
        reason: PauseEnd,
    },
    /// The dose was marked.
    DoseMarked {
        /// Who.
        by: String,
        /// When.
        at: std::time::Instant,
        /// The pre-dose baseline.
        baseline: Option<Bp>,
        /// When the baseline measurement was taken.
        baseline_taken: Option<std::time::Instant>,
    },
    /// A person set the baseline.
    BaselineSet {
        /// Who.
        by: String,
        /// When the measurement was taken.
        taken: std::time::Instant,
        /// The baseline.
        baseline: Bp,
    },
    /// The engine asks for a repeat NIBP.
    NibpRequested {
        /// The rule asking.
        rule: String,
        /// The cuffs Vigil is starting; empty when none here can be started (IntelliVue, BLE
        /// cuffs), so the nurse must take it at the monitor.
        started: Vec<String>,
    },
    /// A forward's pending count or connection changed.
    Forward(vigil_protocol::display::ForwardInfo),
    /// The core is alive.
    Heartbeat {
        /// Now.
        at: Instant,
    },
    /// The room's link to the central station changed.
    CentralLink {
        /// Whether NATS is connected now.
        connected: bool,
    },
}

impl Core {
    /// The forwards as the status line shows them: read from counters the forwarders keep,
    /// never waiting on them.
    pub(super) fn forward_infos(&self) -> Vec<vigil_protocol::display::ForwardInfo> {
        use std::sync::atomic::Ordering;
        self.forwards
            .iter()
            .map(|f| vigil_protocol::display::ForwardInfo {
                forward: f.name.clone(),
                pending: f.pending.load(Ordering::Relaxed),
                connected: f.connected.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Tells the displays of every forward whose pending count or connection changed since
    /// they last heard (called with the heartbeat, so at most twice a second).
    pub(super) fn publish_forwards(&mut self) {
        let now = self.forward_infos();
        let changed: Vec<_> = now
            .iter()
            .filter(|f| !self.forwards_shown.contains(f))
            .cloned()
            .collect();
        self.forwards_shown = now;
        for f in changed {
            self.emit(RoomEvent::Forward(f), None);
        }
    }

    /// Hands a room event to the record, then to the displays (serialised once, published with
    /// the rest of what the event being handled caused).
    pub(super) fn emit(&mut self, event: RoomEvent, received: Option<Instant>) {
        if let Some(record) = self.record_of(&event) {
            self.storage.record(record);
        }
        self.seq += 1;
        let central = self.central.as_ref().and_then(|_| central_kind(&event));
        let text = self.message(self.seq, event).to_json();
        if let (Some(feed), Some(kind)) = (&self.central, central) {
            feed.offer(kind, self.seq, &text);
        }
        self.pending.push(Outgoing {
            seq: self.seq,
            text: text.into(),
            received,
            snapshot_due: false,
        });
    }

    /// The record's adapter: what the session record keeps of a room event.
    fn record_of(&self, event: &RoomEvent) -> Option<Record> {
        let clock = &self.clock;
        let unix_ms = |at: std::time::Instant| clock.unix_ms(Instant::from_std(at));
        Some(match event {
            RoomEvent::Reading {
                device,
                reading,
                at,
            } => Record::Reading {
                device: device.clone(),
                reading: Box::new(reading.clone()),
                at: clock.unix_ms(*at),
            },
            RoomEvent::Link {
                device,
                link,
                reason,
            } => Record::Link {
                device: device.clone(),
                state: *link,
                reason: reason.clone(),
                at: clock.unix_ms(clock.now()),
            },
            RoomEvent::Alarm { change, alarm } => Record::Alarm {
                change: *change,
                alarm: Box::new(RecordedAlarm::of(alarm, clock)),
                display: Box::new(self.alarm_info(alarm)),
                at: clock.unix_ms(clock.now()),
            },
            RoomEvent::DoseMarked {
                by,
                at,
                baseline,
                baseline_taken,
            } => Record::Dose {
                at: unix_ms(*at),
                by: by.clone(),
                baseline: baseline.map(|b| (b.systolic, b.diastolic)),
                baseline_taken: baseline_taken.map(unix_ms),
            },
            RoomEvent::BaselineSet {
                by,
                taken,
                baseline,
            } => Record::Baseline {
                baseline: (baseline.systolic, baseline.diastolic),
                taken: unix_ms(*taken),
                by: by.clone(),
            },
            RoomEvent::AudioPaused { .. }
            | RoomEvent::AudioPauseEnded { .. }
            | RoomEvent::NibpRequested { .. }
            | RoomEvent::Forward(_)
            | RoomEvent::Heartbeat { .. }
            | RoomEvent::CentralLink { .. } => return None,
        })
    }
}

/// The central station's adapter: what a room event is on NATS (none: not published there).
fn central_kind(event: &RoomEvent) -> Option<Kind> {
    Some(match event {
        RoomEvent::Alarm { .. } => Kind::Alarm,
        RoomEvent::Link { .. } => Kind::Device,
        RoomEvent::DoseMarked { .. }
        | RoomEvent::BaselineSet { .. }
        | RoomEvent::NibpRequested { .. } => Kind::Session,
        RoomEvent::Reading {
            device, reading, ..
        } => Kind::Reading {
            key: format!("{device}/{:?}", reading.vital),
        },
        RoomEvent::Heartbeat { .. } => Kind::Heartbeat,
        RoomEvent::AudioPaused { .. }
        | RoomEvent::AudioPauseEnded { .. }
        | RoomEvent::Forward(_)
        | RoomEvent::CentralLink { .. } => return None,
    })
}
