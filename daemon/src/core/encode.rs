//! The display encoder: the one place that turns the engine's typed state into the display
//! protocol's text (RFC 3339 times, wire names).

use super::*;
use vigil_protocol::display::ReadingInfo;
use vigil_protocol::Reading;

/// The wire name of the central station's link.
fn central_link_name(connected: bool) -> &'static str {
    if connected {
        "connected"
    } else {
        "disconnected"
    }
}

impl Core {
    /// The display's message for a room event.
    pub(super) fn message(&mut self, seq: u64, event: RoomEvent) -> ServerMessage {
        match event {
            RoomEvent::Reading {
                device,
                reading,
                at,
            } => ServerMessage::Reading {
                seq,
                reading: reading_info(&self.clock, &device, &reading, at),
            },
            RoomEvent::Link {
                device,
                link,
                reason,
            } => ServerMessage::Device {
                seq,
                device,
                link,
                reason,
            },
            RoomEvent::Alarm { change, alarm } => ServerMessage::Alarm {
                seq,
                event: wire_name(&change),
                alarm: self.alarm_info(&alarm),
            },
            RoomEvent::AudioPaused { by, remaining } => ServerMessage::AudioPause {
                seq,
                paused: true,
                remaining_s: Some(remaining.as_secs_f64()),
                by: Some(by),
                reason: None,
            },
            RoomEvent::AudioPauseEnded { reason } => ServerMessage::AudioPause {
                seq,
                paused: false,
                remaining_s: None,
                by: None,
                reason: Some(wire_name(&reason)),
            },
            RoomEvent::DoseMarked { by, .. } => ServerMessage::Session {
                seq,
                event: "dose_marked".into(),
                session: self.session_info(),
                by: Some(by),
                message: None,
            },
            RoomEvent::BaselineSet { by, .. } => ServerMessage::Session {
                seq,
                event: "baseline_set".into(),
                session: self.session_info(),
                by: Some(by),
                message: None,
            },
            RoomEvent::NibpRequested { rule, started } => ServerMessage::Session {
                seq,
                event: "nibp_requested".into(),
                session: self.session_info(),
                by: None,
                message: Some(nibp_prompt(&rule, &started)),
            },
            RoomEvent::Forward(forward) => ServerMessage::Forward { seq, forward },
            RoomEvent::CentralLink { connected } => ServerMessage::Central {
                seq,
                link: central_link_name(connected).into(),
            },
            RoomEvent::Heartbeat { at } => ServerMessage::Heartbeat {
                seq,
                at: self.clock.rfc3339(at),
            },
        }
    }

    /// An alarm as the display shows it.
    pub(super) fn alarm_info(&self, a: &AlarmView) -> AlarmInfo {
        AlarmInfo {
            id: a.id.clone(),
            rule: a.rule.clone(),
            kind: wire_name(&a.kind),
            vital: a.vital,
            device: a.device.clone(),
            priority: wire_name(&a.priority),
            message: a.message.clone(),
            state: wire_name(&a.state),
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

    /// The session (dose, baseline) as the display shows it.
    pub(super) fn session_info(&self) -> SessionInfo {
        let s = self.engine.snapshot(self.clock.now().into_std()).session;
        SessionInfo {
            phase: wire_tag(&s.phase, "phase"),
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

    pub(super) fn snapshot(&self, user: UserInfo) -> Snapshot {
        let now = self.clock.now();
        let engine = self.engine.snapshot(now.into_std());
        Snapshot {
            room: self.room.clone(),
            user,
            server_time: self.clock.rfc3339(now),
            seq: self.seq,
            session: self.session_info(),
            devices: self.room_state.devices(),
            vitals: self.room_state.latest(&self.clock, now),
            alarms: engine.alarms.iter().map(|a| self.alarm_info(a)).collect(),
            audio_pause_remaining_s: engine.audio_pause_remaining.map(|d| d.as_secs_f64()),
            // Filled in by `CoreHandle::snapshot`, off the core.
            trend: vigil_protocol::display::Trend {
                minutes: SNAPSHOT_TREND_MINUTES,
                resolution_s: crate::trend::resolution(SNAPSHOT_TREND_MINUTES),
                series: Vec::new(),
            },
            limits: self.limits(),
            forwards: self.forward_infos(),
            central: self.central_link.map(|c| central_link_name(c).into()),
        }
    }

    pub(super) fn limits(&self) -> Vec<vigil_protocol::display::LimitLine> {
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
                        priority: wire_name(&r.priority),
                    }
                })
            })
            .collect()
    }
}

/// A reading as the display shows it.
pub fn reading_info(clock: &Clock, device: &str, reading: &Reading, at: Instant) -> ReadingInfo {
    let (value, unavailable) = match reading.value {
        Value::Number(v) => (Some(v), None),
        Value::Unavailable(why) => (None, Some(why)),
    };
    ReadingInfo {
        device: device.to_string(),
        vital: reading.vital,
        value,
        unavailable,
        unit: reading.unit,
        mdc: reading.mdc,
        at: clock.rfc3339(at),
        flags: reading.flags,
    }
}

/// The prompt of a repeat NIBP request: which cuffs Vigil is starting, or, when none here can
/// be started (read-only monitors such as IntelliVue, BLE cuffs), that the nurse must take it.
fn nibp_prompt(rule: &str, started: &[String]) -> String {
    if started.is_empty() {
        format!(
            "Repeat the NIBP now to confirm ({rule}): take it at the monitor, Vigil cannot \
             start a cuff in this room"
        )
    } else {
        format!(
            "Repeat the NIBP now to confirm ({rule}): starting {}",
            started.join(", ")
        )
    }
}
