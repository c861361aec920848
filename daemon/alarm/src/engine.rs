//! The alarm engine: a pure state machine in the shape of a sans-IO protocol.
//!
//! Feed it readings, device events, link changes and person actions, each with `now` (monotonic);
//! ask it for its next deadline ([`Engine::poll_timeout`]), drain its events
//! ([`Engine::poll_event`]) and look at every alarm ([`Engine::snapshot`]). It never reads a
//! clock: the same inputs at the same times give the same outputs.
//!
//! Vocabulary (IEC 60601-1-8): a *condition* is a predicate over the data; an *occurrence* is
//! one interval in which it holds. Acknowledgement, escalation and logging work per occurrence.

use crate::profile::{Bound, Phase, Priority, Profile, Rule, RuleSpec};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use vigil_protocol::{DeviceEvent, Flag, Reading, Vital};

/// Physiological (about the patient) or technical (about the equipment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// About the patient.
    Physiological,
    /// About the equipment or the data.
    Technical,
}

/// Where an alarm is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// The condition holds but its delay has not passed: not annunciated.
    Pending,
    /// Annunciated and not acknowledged.
    Active,
    /// The condition holds; a person acknowledged this occurrence.
    Acknowledged,
    /// The condition has ended; the alarm holds until a person resets it.
    Latched,
    /// The condition has ended and the alarm is gone (only in `cleared` events).
    Cleared,
}

/// A blood-pressure pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bp {
    /// Systolic, mmHg.
    pub systolic: f64,
    /// Diastolic, mmHg.
    pub diastolic: f64,
}

/// Who did something, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Act {
    /// The person's name.
    pub by: String,
    /// When.
    pub at: Instant,
}

/// One alarm as the snapshot and events show it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    /// Unique per occurrence: `<rule id>#<number>`.
    pub id: String,
    /// The rule that raised it.
    pub rule: String,
    /// Physiological or technical.
    pub kind: AlarmKind,
    /// The vital concerned, when there is one.
    pub vital: Option<Vital>,
    /// The device concerned, when there is one.
    pub device: Option<String>,
    /// Current priority.
    pub priority: Priority,
    /// What the display says.
    pub message: String,
    /// Where it is in its life.
    pub state: AlarmState,
    /// When the condition began (start of the delay).
    pub onset: Instant,
    /// When it was declared (annunciated); the onset for a pending alarm.
    pub since: Instant,
    /// Who acknowledged this occurrence, and when.
    pub acknowledged: Option<Act>,
    /// Whether it will hold after its condition ends, until reset.
    pub latching: bool,
    /// A BP reading waits for a confirming repeat.
    pub awaiting_confirmation: bool,
    /// The latest value that bore on it, in the vital's canonical unit.
    pub value: Option<f64>,
}

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmChange {
    /// Declared after its delay.
    Raised,
    /// Its priority rose.
    Escalated,
    /// A person acknowledged it.
    Acknowledged,
    /// Its condition ended: gone, or latched until reset (see the alarm's state).
    Cleared,
    /// A person reset a latched alarm.
    Reset,
}

/// Why an audio pause ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseEnd {
    /// Its time ran out.
    Expired,
    /// A new condition or a higher priority must be heard.
    NewCondition,
}

/// Something the engine tells the rest of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// An alarm changed.
    Alarm {
        /// What happened.
        change: AlarmChange,
        /// The alarm after the change.
        alarm: AlarmView,
        /// Who did it, for person actions.
        by: Option<String>,
        /// When.
        at: Instant,
    },
    /// Audio is paused until `until`.
    AudioPaused {
        /// Who paused it.
        by: String,
        /// When it was paused.
        at: Instant,
        /// When it ends.
        until: Instant,
    },
    /// The audio pause ended.
    AudioPauseEnded {
        /// Why.
        reason: PauseEnd,
        /// When.
        at: Instant,
    },
    /// The dose was marked; the session clock starts.
    DoseMarked {
        /// Who marked it.
        by: String,
        /// When.
        at: Instant,
        /// The pre-dose baseline BP, if one was taken.
        baseline: Option<Bp>,
    },
    /// A rule asks for an NIBP measurement now (e.g. to confirm a high BP).
    NibpRequested {
        /// The rule asking.
        rule: String,
        /// When.
        at: Instant,
    },
}

/// An alarm to bring back after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredAlarm {
    /// Rule id.
    pub rule: String,
    /// The occurrence number from its id (`rule#seq`).
    pub seq: u64,
    /// Device concerned.
    pub device: Option<String>,
    /// Vital concerned.
    pub vital: Option<Vital>,
    /// Priority it had reached.
    pub priority: Priority,
    /// When the condition began.
    pub onset: Instant,
    /// When it was raised.
    pub since: Instant,
    /// Who acknowledged it.
    pub acknowledged: Option<Act>,
    /// Its condition had ended and it waited for a reset.
    pub latched: bool,
    /// Its latest value.
    pub value: Option<f64>,
}

/// Why a person's action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No alarm has this id (it may have cleared).
    #[error("no alarm {0:?}: it may have cleared already")]
    UnknownAlarm(String),
    /// The alarm is still inside its delay and has not sounded.
    #[error("alarm {0:?} has not been raised yet")]
    NotRaised(String),
    /// This occurrence was already acknowledged.
    #[error("alarm {id:?} was already acknowledged by {by}")]
    AlreadyAcknowledged {
        /// The alarm.
        id: String,
        /// Who acknowledged it.
        by: String,
    },
    /// Reset ends latched alarms only; this condition still holds.
    #[error("alarm {0:?} cannot be reset: its condition is still present")]
    ConditionPresent(String),
    /// The dose can be marked once per session.
    #[error("the dose was already marked")]
    DoseAlreadyMarked,
}

/// Session phase as the snapshot shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum SessionPhase {
    /// Before the dose is marked.
    PreDose,
    /// After the dose.
    PostDose {
        /// Whole minutes since the dose.
        minutes_since_dose: u64,
    },
}

/// Session state as the snapshot shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// Phase and time since dose.
    pub phase: SessionPhase,
    /// When the dose was marked, and by whom.
    pub dose: Option<Act>,
    /// The pre-dose baseline.
    pub baseline: Option<Bp>,
    /// The latest BP measurement and when.
    pub last_bp: Option<(Instant, Bp)>,
}

/// Every alarm and the session, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Alarms, highest priority first, then oldest first.
    pub alarms: Vec<AlarmView>,
    /// Audio pause in force and its remaining time.
    pub audio_pause_remaining: Option<Duration>,
    /// Session state.
    pub session: SessionView,
}

/// Readiness of one condition's answer to new data.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Truth {
    /// The condition holds.
    Violating,
    /// Back in range but within the hysteresis band: clears only after `clear_after`.
    InBand,
    /// Definitely not holding: clears now.
    ClearNow,
}

#[derive(Debug, Clone)]
struct Occurrence {
    seq: u64,
    onset: Instant,
    declared: Option<Instant>,
    priority: Priority,
    /// When the priority was last set (for escalation timing).
    priority_since: Instant,
    acknowledged: Option<Act>,
    /// In range (within the band) since.
    clearing_since: Option<Instant>,
    /// The latest sample that met the condition.
    last_violation: Instant,
    /// Unconfirmed BP: a confirming repeat must come by then.
    confirm_until: Option<Instant>,
    value: Option<f64>,
}

#[derive(Debug, Clone)]
struct Condition {
    rule: usize,
    device: Option<usize>,
    vital: Option<Vital>,
    occurrence: Option<Occurrence>,
}

#[derive(Debug, Clone)]
struct Latched {
    rule: usize,
    device: Option<usize>,
    vital: Option<Vital>,
    occurrence: Occurrence,
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    /// Last valid sample of each continuous vital the device should keep current (or when
    /// watching began).
    last_valid: Vec<(Vital, Instant)>,
    low_battery_at: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Session {
    dose: Option<Act>,
    baseline: Option<Bp>,
    last_bp: Option<(Instant, Bp)>,
}

/// The alarm engine.
#[derive(Debug, Clone)]
pub struct Engine {
    profile: Profile,
    devices: Vec<Device>,
    conditions: Vec<Condition>,
    latched: Vec<Latched>,
    events: VecDeque<EngineEvent>,
    next_seq: u64,
    session: Session,
    audio_paused_until: Option<Instant>,
    /// The time the engine has been advanced to.
    now: Option<Instant>,
}

impl Engine {
    /// An engine with no devices, before the dose.
    pub fn new(profile: Profile) -> Engine {
        let mut engine = Engine {
            profile,
            devices: Vec::new(),
            conditions: Vec::new(),
            latched: Vec::new(),
            events: VecDeque::new(),
            next_seq: 1,
            session: Session::default(),
            audio_paused_until: None,
            now: None,
        };
        // Session-level conditions exist from the start so that their deadlines are known.
        for rule in 0..engine.profile.rules.len() {
            if engine.is_session_rule(rule) {
                engine.conditions.push(Condition {
                    rule,
                    device: None,
                    vital: None,
                    occurrence: None,
                });
            }
        }
        engine
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn is_session_rule(&self, rule: usize) -> bool {
        matches!(
            self.profile.rules[rule].spec,
            RuleSpec::Bp { .. }
                | RuleSpec::BaselineRise { .. }
                | RuleSpec::NibpOverdue { .. }
                | RuleSpec::NoBaseline
                | RuleSpec::RecordingFailed
                | RuleSpec::DischargeReady { .. }
        )
    }

    /// Starts watching a device. `continuous` lists the vitals it should keep current (an
    /// oximeter's SpO2 and pulse rate; nothing for a cuff). Its link starts down: if it does not
    /// connect within the disconnect rule's delay, that alarm is raised.
    pub fn add_device(&mut self, now: Instant, id: &str, continuous: &[Vital]) {
        let now = self.advance(now);
        if self.device_index(id).is_some() {
            return;
        }
        self.devices.push(Device {
            id: id.to_string(),
            last_valid: continuous.iter().map(|v| (*v, now)).collect(),
            low_battery_at: None,
        });
        let d = self.devices.len() - 1;
        for rule in 0..self.profile.rules.len() {
            match &self.profile.rules[rule].spec {
                RuleSpec::NotCurrent { vitals, .. } => {
                    for v in vitals.clone() {
                        if continuous.contains(&v) {
                            self.condition(rule, Some(d), Some(v));
                        }
                    }
                }
                RuleSpec::Disconnected { .. } => {
                    let c = self.condition(rule, Some(d), None);
                    self.update(c, Truth::Violating, now, None);
                }
                _ => {}
            }
        }
    }

    fn device_index(&self, id: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.id == id)
    }

    fn device_or_add(&mut self, now: Instant, id: &str) -> usize {
        match self.device_index(id) {
            Some(d) => d,
            None => {
                self.add_device(now, id, &[]);
                let d = self.devices.len() - 1;
                // Data is flowing, so its link is up.
                self.set_link(now, d, true);
                d
            }
        }
    }

    /// The condition slot for (rule, device, vital), created on first use.
    fn condition(&mut self, rule: usize, device: Option<usize>, vital: Option<Vital>) -> usize {
        if let Some(i) = self
            .conditions
            .iter()
            .position(|c| c.rule == rule && c.device == device && c.vital == vital)
        {
            return i;
        }
        self.conditions.push(Condition {
            rule,
            device,
            vital,
            occurrence: None,
        });
        self.conditions.len() - 1
    }

    /// Readings decoded from one frame of one device (a cuff's systolic, diastolic and mean
    /// arrive together and count as one measurement).
    pub fn handle_readings(&mut self, now: Instant, device: &str, readings: &[Reading]) {
        let now = self.advance(now);
        let d = self.device_or_add(now, device);
        let mut bp = (None, None);
        for reading in readings {
            if reading.flags.contains(Flag::SensorOff)
                || reading.flags.contains(Flag::SensorDefective)
            {
                self.sensor(now, d, Truth::Violating);
            }
            let Some(value) = reading.clinical_value() else {
                continue;
            };
            let vital = reading.vital;
            // A valid sample: the sensor is on and this vital is current.
            self.sensor(now, d, Truth::ClearNow);
            if let Some(slot) = self.devices[d]
                .last_valid
                .iter_mut()
                .find(|(v, _)| *v == vital)
            {
                slot.1 = now;
                for c in 0..self.conditions.len() {
                    let cond = &self.conditions[c];
                    if cond.device == Some(d)
                        && cond.vital == Some(vital)
                        && matches!(
                            self.profile.rules[cond.rule].spec,
                            RuleSpec::NotCurrent { .. }
                        )
                    {
                        self.update(c, Truth::ClearNow, now, Some(value));
                    }
                }
            }
            // "Sustained for N minutes" needs a value that is watched continuously; an
            // intermittent one (a cuff's pulse rate) is held only to instantaneous limits.
            let continuous = self.devices[d].last_valid.iter().any(|(v, _)| *v == vital);
            for rule in 0..self.profile.rules.len() {
                let truth = match &self.profile.rules[rule].spec {
                    RuleSpec::Limit {
                        vitals,
                        bound,
                        clear_margin,
                        delay,
                        ..
                    } if vitals.contains(&vital) && (continuous || delay.is_zero()) => {
                        limit_truth(*bound, *clear_margin, value)
                    }
                    _ => continue,
                };
                let c = self.condition(rule, Some(d), Some(vital));
                self.update(c, truth, now, Some(value));
            }
            match vital {
                Vital::NibpSystolic => bp.0 = Some(value),
                Vital::NibpDiastolic => bp.1 = Some(value),
                _ => {}
            }
        }
        if bp.0.is_some() || bp.1.is_some() {
            self.handle_bp(now, bp.0, bp.1);
        }
    }

    fn handle_bp(&mut self, now: Instant, systolic: Option<f64>, diastolic: Option<f64>) {
        let pair = systolic.zip(diastolic).map(|(s, d)| Bp {
            systolic: s,
            diastolic: d,
        });
        if let Some(bp) = pair {
            self.session.last_bp = Some((now, bp));
        }
        let dosed = self.session.dose.is_some();
        for c in 0..self.conditions.len() {
            let rule = &self.profile.rules[self.conditions[c].rule];
            let shown = systolic.or(diastolic);
            match rule.spec.clone() {
                RuleSpec::Bp {
                    phase,
                    compare,
                    systolic: s_lim,
                    diastolic: d_lim,
                    confirm_within,
                    ..
                } => {
                    let in_phase = match phase {
                        Phase::Any => true,
                        Phase::PreDose => !dosed,
                        Phase::PostDose => dosed,
                    };
                    if !in_phase {
                        continue;
                    }
                    let meets = systolic.is_some_and(|s| compare.meets(s, s_lim))
                        || diastolic.is_some_and(|d| compare.meets(d, d_lim));
                    if !meets {
                        self.update(c, Truth::ClearNow, now, shown);
                    } else if let Some(within) = confirm_within {
                        self.confirm_bp(c, now, within, shown);
                    } else {
                        self.update(c, Truth::Violating, now, shown);
                    }
                }
                RuleSpec::BaselineRise {
                    systolic_rise,
                    diastolic_rise,
                } => {
                    let (Some(base), true) = (self.session.baseline, dosed) else {
                        continue;
                    };
                    let meets = systolic.is_some_and(|s| s - base.systolic >= systolic_rise)
                        || diastolic.is_some_and(|d| d - base.diastolic >= diastolic_rise);
                    let truth = if meets {
                        Truth::Violating
                    } else {
                        Truth::ClearNow
                    };
                    self.update(c, truth, now, shown);
                }
                RuleSpec::NibpOverdue { .. } => self.update(c, Truth::ClearNow, now, shown),
                RuleSpec::DischargeReady { .. } => {
                    let truth = self.discharge_truth(c, now);
                    self.update(c, truth, now, None);
                }
                _ => {}
            }
        }
    }

    /// A BP reading that meets a rule with confirmation: the first one asks for a repeat at the
    /// unconfirmed priority; a repeat within the window raises the rule's full priority.
    fn confirm_bp(&mut self, c: usize, now: Instant, within: Duration, value: Option<f64>) {
        let rule = self.conditions[c].rule;
        let full = self.profile.rules[rule].priority;
        let pending_confirmation = self.conditions[c]
            .occurrence
            .as_ref()
            .and_then(|o| o.confirm_until);
        match pending_confirmation {
            Some(until) if now <= until => {
                if let Some(o) = self.conditions[c].occurrence.as_mut() {
                    o.confirm_until = None;
                    o.value = value;
                }
                self.set_priority(c, now, full);
            }
            Some(_) => {
                // The window passed without a repeat: this reading starts a new confirmation.
                if let Some(o) = self.conditions[c].occurrence.as_mut() {
                    o.confirm_until = Some(now + within);
                    o.value = value;
                }
                self.request_nibp(rule, now);
            }
            None if self.conditions[c].occurrence.is_some() => {
                self.update(c, Truth::Violating, now, value);
            }
            None => {
                self.update(c, Truth::Violating, now, value);
                self.request_nibp(rule, now);
            }
        }
    }

    fn request_nibp(&mut self, rule: usize, at: Instant) {
        self.events.push_back(EngineEvent::NibpRequested {
            rule: self.profile.rules[rule].id.clone(),
            at,
        });
    }

    fn discharge_truth(&self, c: usize, now: Instant) -> Truth {
        let RuleSpec::DischargeReady {
            after,
            systolic_margin,
            diastolic_margin,
        } = self.profile.rules[self.conditions[c].rule].spec
        else {
            return Truth::ClearNow;
        };
        let (Some(dose), Some(base), Some((_, last))) = (
            &self.session.dose,
            self.session.baseline,
            self.session.last_bp,
        ) else {
            return Truth::ClearNow;
        };
        let ready = now >= dose.at + after
            && last.systolic <= base.systolic + systolic_margin
            && last.diastolic <= base.diastolic + diastolic_margin;
        if ready {
            Truth::Violating
        } else {
            Truth::ClearNow
        }
    }

    /// Something the device reported that is not a value.
    pub fn handle_device_event(&mut self, now: Instant, device: &str, event: &DeviceEvent) {
        let now = self.advance(now);
        let d = self.device_or_add(now, device);
        match event {
            DeviceEvent::SensorOff
            | DeviceEvent::SensorDefective
            | DeviceEvent::SensorDisconnected => self.sensor(now, d, Truth::Violating),
            DeviceEvent::LowBattery => {
                self.devices[d].low_battery_at = Some(now);
                for rule in 0..self.profile.rules.len() {
                    if matches!(self.profile.rules[rule].spec, RuleSpec::LowBattery { .. }) {
                        let c = self.condition(rule, Some(d), None);
                        self.update(c, Truth::Violating, now, None);
                    }
                }
            }
            _ => {}
        }
    }

    fn sensor(&mut self, now: Instant, d: usize, truth: Truth) {
        for rule in 0..self.profile.rules.len() {
            if matches!(self.profile.rules[rule].spec, RuleSpec::SensorOff { .. }) {
                let c = self.condition(rule, Some(d), None);
                self.update(c, truth, now, None);
            }
        }
    }

    /// The device's link came up (`true`) or went down (`false`).
    pub fn handle_link(&mut self, now: Instant, device: &str, up: bool) {
        let now = self.advance(now);
        let d = match self.device_index(device) {
            Some(d) => d,
            None => {
                self.add_device(now, device, &[]);
                self.devices.len() - 1
            }
        };
        self.set_link(now, d, up);
    }

    fn set_link(&mut self, now: Instant, d: usize, up: bool) {
        for rule in 0..self.profile.rules.len() {
            if matches!(self.profile.rules[rule].spec, RuleSpec::Disconnected { .. }) {
                let c = self.condition(rule, Some(d), None);
                let truth = if up {
                    Truth::ClearNow
                } else {
                    Truth::Violating
                };
                self.update(c, truth, now, None);
            }
        }
    }

    /// The core state machine of one condition.
    fn update(&mut self, c: usize, truth: Truth, now: Instant, value: Option<f64>) {
        let rule = &self.profile.rules[self.conditions[c].rule];
        let (delay, clear_after) = rule_timing(rule);
        let priority = rule.priority;
        enum Next {
            Stay,
            Declare,
            End,
        }
        let next = match (&mut self.conditions[c].occurrence, truth) {
            (None, Truth::Violating) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.conditions[c].occurrence = Some(Occurrence {
                    seq,
                    onset: now,
                    declared: None,
                    priority,
                    priority_since: now,
                    acknowledged: None,
                    clearing_since: None,
                    last_violation: now,
                    confirm_until: None,
                    value,
                });
                if delay.is_zero() {
                    Next::Declare
                } else {
                    Next::Stay
                }
            }
            (None, _) => Next::Stay,
            (Some(o), truth) => {
                if value.is_some() {
                    o.value = value;
                }
                match truth {
                    Truth::Violating => {
                        o.clearing_since = None;
                        o.last_violation = now;
                        if o.declared.is_none() && now >= o.onset + delay {
                            Next::Declare
                        } else {
                            Next::Stay
                        }
                    }
                    Truth::InBand => {
                        let since = *o.clearing_since.get_or_insert(now);
                        if now >= since + clear_after {
                            Next::End
                        } else {
                            Next::Stay
                        }
                    }
                    Truth::ClearNow => Next::End,
                }
            }
        };
        match next {
            Next::Stay => {}
            Next::Declare => self.declare(c, now),
            Next::End => self.end(c, now),
        }
    }

    /// The delay has passed: annunciate.
    fn declare(&mut self, c: usize, at: Instant) {
        let rule = &self.profile.rules[self.conditions[c].rule];
        let (initial, confirm_until) = match rule.spec {
            RuleSpec::Bp {
                confirm_within: Some(within),
                unconfirmed_priority,
                ..
            } => (unconfirmed_priority, Some(at + within)),
            _ => (rule.priority, None),
        };
        let Some(o) = self.conditions[c].occurrence.as_mut() else {
            return;
        };
        o.declared = Some(at);
        o.priority = initial;
        o.priority_since = at;
        o.confirm_until = confirm_until;
        let sounds = initial > Priority::Info;
        self.emit_alarm(c, AlarmChange::Raised, None, at);
        if sounds {
            self.end_pause(at);
        }
    }

    fn set_priority(&mut self, c: usize, at: Instant, priority: Priority) {
        let Some(o) = self.conditions[c].occurrence.as_mut() else {
            return;
        };
        if priority <= o.priority || o.declared.is_none() {
            return;
        }
        o.priority = priority;
        o.priority_since = at;
        // A rise in priority must be heard again: it clears the acknowledgement.
        o.acknowledged = None;
        self.emit_alarm(c, AlarmChange::Escalated, None, at);
        self.end_pause(at);
    }

    /// The condition has ended.
    fn end(&mut self, c: usize, at: Instant) {
        let cond = &mut self.conditions[c];
        let Some(o) = cond.occurrence.take() else {
            return;
        };
        if o.declared.is_none() {
            // Never annunciated: it leaves no trace.
            return;
        }
        let rule = &self.profile.rules[cond.rule];
        let latched = Latched {
            rule: cond.rule,
            device: cond.device,
            vital: cond.vital,
            occurrence: o,
        };
        if latches(rule, latched.occurrence.priority) {
            let view = self.view_latched(&latched);
            self.latched.push(latched);
            self.events.push_back(EngineEvent::Alarm {
                change: AlarmChange::Cleared,
                alarm: view,
                by: None,
                at,
            });
        } else {
            let mut view = self.view_latched(&latched);
            view.state = AlarmState::Cleared;
            self.events.push_back(EngineEvent::Alarm {
                change: AlarmChange::Cleared,
                alarm: view,
                by: None,
                at,
            });
        }
    }

    fn end_pause(&mut self, at: Instant) {
        if self.audio_paused_until.take().is_some() {
            self.events.push_back(EngineEvent::AudioPauseEnded {
                reason: PauseEnd::NewCondition,
                at,
            });
        }
    }

    fn emit_alarm(&mut self, c: usize, change: AlarmChange, by: Option<String>, at: Instant) {
        if let Some(alarm) = self.view_condition(c) {
            self.events.push_back(EngineEvent::Alarm {
                change,
                alarm,
                by,
                at,
            });
        }
    }

    /// Acknowledges the current occurrence of an alarm: its audio stops until the condition
    /// ends, a new occurrence begins, or its priority rises.
    pub fn acknowledge(&mut self, now: Instant, id: &str, by: &str) -> Result<(), ActionError> {
        let now = self.advance(now);
        let act = Act {
            by: by.to_string(),
            at: now,
        };
        if let Some(c) = self.find_condition(id) {
            let Some(o) = self.conditions[c].occurrence.as_mut() else {
                return Err(ActionError::UnknownAlarm(id.into()));
            };
            if o.declared.is_none() {
                return Err(ActionError::NotRaised(id.into()));
            }
            if let Some(prev) = &o.acknowledged {
                return Err(ActionError::AlreadyAcknowledged {
                    id: id.into(),
                    by: prev.by.clone(),
                });
            }
            o.acknowledged = Some(act);
            self.emit_alarm(c, AlarmChange::Acknowledged, Some(by.into()), now);
            return Ok(());
        }
        let l = self
            .latched
            .iter()
            .position(|l| self.alarm_id(l.rule, l.occurrence.seq) == id)
            .ok_or_else(|| ActionError::UnknownAlarm(id.into()))?;
        if let Some(prev) = &self.latched[l].occurrence.acknowledged {
            return Err(ActionError::AlreadyAcknowledged {
                id: id.into(),
                by: prev.by.clone(),
            });
        }
        self.latched[l].occurrence.acknowledged = Some(act);
        let alarm = self.view_latched(&self.latched[l]);
        self.events.push_back(EngineEvent::Alarm {
            change: AlarmChange::Acknowledged,
            alarm,
            by: Some(by.into()),
            at: now,
        });
        Ok(())
    }

    /// Resets a latched alarm whose condition has ended.
    pub fn reset(&mut self, now: Instant, id: &str, by: &str) -> Result<(), ActionError> {
        let now = self.advance(now);
        if self.find_condition(id).is_some() {
            return Err(ActionError::ConditionPresent(id.into()));
        }
        let l = self
            .latched
            .iter()
            .position(|l| self.alarm_id(l.rule, l.occurrence.seq) == id)
            .ok_or_else(|| ActionError::UnknownAlarm(id.into()))?;
        let latched = self.latched.remove(l);
        let mut alarm = self.view_latched(&latched);
        alarm.state = AlarmState::Cleared;
        self.events.push_back(EngineEvent::Alarm {
            change: AlarmChange::Reset,
            alarm,
            by: Some(by.into()),
            at: now,
        });
        Ok(())
    }

    /// Pauses audio for at most the profile's maximum. A new condition or a rise in priority
    /// ends the pause at once. Returns when it ends.
    pub fn pause_audio(&mut self, now: Instant, by: &str, requested: Option<Duration>) -> Instant {
        let now = self.advance(now);
        let max = self.profile.behaviour.audio_pause_max;
        let until = now + requested.map_or(max, |r| r.min(max));
        self.audio_paused_until = Some(until);
        self.events.push_back(EngineEvent::AudioPaused {
            by: by.into(),
            at: now,
            until,
        });
        until
    }

    /// Marks the dose: fixes the baseline from the last pre-dose BP and starts the session clock.
    pub fn mark_dose(&mut self, now: Instant, by: &str) -> Result<Option<Bp>, ActionError> {
        let now = self.advance(now);
        if self.session.dose.is_some() {
            return Err(ActionError::DoseAlreadyMarked);
        }
        let baseline = self.session.last_bp.map(|(_, bp)| bp);
        self.session.dose = Some(Act {
            by: by.into(),
            at: now,
        });
        self.session.baseline = baseline;
        self.events.push_back(EngineEvent::DoseMarked {
            by: by.into(),
            at: now,
            baseline,
        });
        for c in 0..self.conditions.len() {
            match self.profile.rules[self.conditions[c].rule].spec {
                RuleSpec::Bp {
                    phase: Phase::PreDose,
                    ..
                } => self.update(c, Truth::ClearNow, now, None),
                RuleSpec::NoBaseline if baseline.is_none() => {
                    self.update(c, Truth::Violating, now, None)
                }
                _ => {}
            }
        }
        Ok(baseline)
    }

    /// The session record is failing (`true`) or writing again (`false`).
    pub fn set_recording_failed(&mut self, now: Instant, failing: bool) {
        let now = self.advance(now);
        for c in 0..self.conditions.len() {
            if matches!(
                self.profile.rules[self.conditions[c].rule].spec,
                RuleSpec::RecordingFailed
            ) {
                let truth = if failing {
                    Truth::Violating
                } else {
                    Truth::ClearNow
                };
                self.update(c, truth, now, None);
            }
        }
    }

    /// Restores the session and the alarms a previous run left active or latched (after a
    /// crash). Returns the ids it could not restore (their rule is no longer in the profile).
    pub fn restore(
        &mut self,
        dose: Option<Act>,
        baseline: Option<Bp>,
        alarms: Vec<RestoredAlarm>,
    ) -> Vec<String> {
        self.session.dose = dose;
        self.session.baseline = baseline;
        let mut skipped = Vec::new();
        for a in alarms {
            let Some(rule) = self.profile.rules.iter().position(|r| r.id == a.rule) else {
                skipped.push(format!("{}#{}", a.rule, a.seq));
                continue;
            };
            let device = match &a.device {
                Some(id) => Some(match self.device_index(id) {
                    Some(d) => d,
                    None => {
                        self.add_device(a.since, id, &[]);
                        self.devices.len() - 1
                    }
                }),
                None => None,
            };
            self.next_seq = self.next_seq.max(a.seq + 1);
            let occurrence = Occurrence {
                seq: a.seq,
                onset: a.onset,
                declared: Some(a.since),
                priority: a.priority,
                priority_since: a.since,
                acknowledged: a.acknowledged,
                clearing_since: None,
                last_violation: a.since,
                confirm_until: None,
                value: a.value,
            };
            if a.latched {
                self.latched.push(Latched {
                    rule,
                    device,
                    vital: a.vital,
                    occurrence,
                });
            } else {
                let c = self.condition(rule, device, a.vital);
                self.conditions[c].occurrence = Some(occurrence);
            }
        }
        skipped
    }

    /// Advances time to `now`, processing every deadline in order. Call at
    /// [`Engine::poll_timeout`]; every other entry point calls it too.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.advance(now);
    }

    /// The next time the engine needs [`Engine::handle_timeout`], if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline().map(|(t, _)| t)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    /// Processes deadlines up to `now` and returns the engine's time: `now`, or the engine's
    /// current time if `now` is earlier (time never goes backwards for the engine).
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |t| t.max(now));
        let mut last = None;
        while let Some((at, what)) = self.next_deadline().filter(|(t, _)| *t <= now) {
            // Every deadline changes the state it came from; the same one twice is a bug, and
            // looping on it would stop the alarms. Stop here instead.
            debug_assert_ne!(last, Some((at, what)), "deadline did not progress");
            if last == Some((at, what)) {
                break;
            }
            last = Some((at, what));
            self.now = Some(at);
            self.fire(at, what);
        }
        self.now = Some(now);
        now
    }

    fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        let mut best: Option<(Instant, Deadline)> = None;
        let mut offer = |t: Instant, d: Deadline| {
            if best.as_ref().is_none_or(|(b, _)| t < *b) {
                best = Some((t, d));
            }
        };
        if let Some(until) = self.audio_paused_until {
            offer(until, Deadline::PauseEnds);
        }
        for (c, cond) in self.conditions.iter().enumerate() {
            let rule = &self.profile.rules[cond.rule];
            let (delay, clear_after) = rule_timing(rule);
            match &cond.occurrence {
                Some(o) => {
                    // A limit is declared at the end of its delay only on fresh evidence: a cuff
                    // reading five minutes old does not make "sustained for five minutes".
                    // Otherwise the next sample decides.
                    let fresh = !matches!(rule.spec, RuleSpec::Limit { .. })
                        || o.last_violation + EVIDENCE_MAX_AGE >= o.onset + delay;
                    if o.declared.is_none() && o.clearing_since.is_none() && fresh {
                        offer(o.onset + delay, Deadline::Declare(c));
                    }
                    if let Some(since) = o.clearing_since {
                        offer(since + clear_after, Deadline::Clear(c));
                    }
                    if o.declared.is_some()
                        && o.acknowledged.is_none()
                        && o.priority > Priority::Info
                        && o.priority < Priority::High
                    {
                        if let Some(after) = rule.escalate_after {
                            offer(o.priority_since + after, Deadline::Escalate(c));
                        }
                    }
                    if let (RuleSpec::LowBattery { clear_after }, Some(d)) =
                        (&rule.spec, cond.device)
                    {
                        if let Some(at) = self.devices[d].low_battery_at {
                            offer(at + *clear_after, Deadline::Clear(c));
                        }
                    }
                }
                None => {
                    if let Some(t) = self.idle_deadline(cond) {
                        offer(t, Deadline::Violate(c));
                    }
                }
            }
        }
        best
    }

    /// When an idle time-driven condition starts to hold.
    fn idle_deadline(&self, cond: &Condition) -> Option<Instant> {
        match &self.profile.rules[cond.rule].spec {
            RuleSpec::NotCurrent { after, .. } => {
                let d = &self.devices[cond.device?];
                let (_, last) = d.last_valid.iter().find(|(v, _)| Some(*v) == cond.vital)?;
                Some(*last + *after)
            }
            RuleSpec::NibpOverdue {
                first_after_dose,
                every,
                until,
                early_tolerance,
                grace,
            } => {
                let dose = self.session.dose.as_ref()?.at;
                // The first scheduled time that no measurement satisfies.
                let satisfied_until = self
                    .session
                    .last_bp
                    .map(|(t, _)| t + *early_tolerance)
                    .filter(|t| *t >= dose);
                let mut due = dose + *first_after_dose;
                while due <= dose + *until {
                    if satisfied_until.is_none_or(|s| due > s) {
                        return Some(due + *grace);
                    }
                    due += *every;
                }
                None
            }
            RuleSpec::DischargeReady { after, .. } => {
                let dose = self.session.dose.as_ref()?.at + *after;
                (self.now.is_none_or(|n| n < dose)).then_some(dose)
            }
            _ => None,
        }
    }

    fn fire(&mut self, at: Instant, what: Deadline) {
        match what {
            Deadline::PauseEnds => {
                self.audio_paused_until = None;
                self.events.push_back(EngineEvent::AudioPauseEnded {
                    reason: PauseEnd::Expired,
                    at,
                });
            }
            Deadline::Declare(c) => self.declare(c, at),
            Deadline::Clear(c) => self.end(c, at),
            Deadline::Escalate(c) => {
                let next = self.conditions[c]
                    .occurrence
                    .as_ref()
                    .map(|o| o.priority.escalated());
                if let Some(p) = next {
                    self.set_priority(c, at, p);
                }
            }
            Deadline::Violate(c) => {
                let truth = if matches!(
                    self.profile.rules[self.conditions[c].rule].spec,
                    RuleSpec::DischargeReady { .. }
                ) {
                    self.discharge_truth(c, at)
                } else {
                    Truth::Violating
                };
                // Not ready at that time: re-evaluated at each later BP measurement.
                if truth == Truth::Violating {
                    self.update(c, truth, at, None);
                }
            }
        }
    }

    fn find_condition(&self, id: &str) -> Option<usize> {
        self.conditions.iter().position(|c| {
            c.occurrence
                .as_ref()
                .is_some_and(|o| self.alarm_id(c.rule, o.seq) == id)
        })
    }

    fn alarm_id(&self, rule: usize, seq: u64) -> String {
        format!("{}#{seq}", self.profile.rules[rule].id)
    }

    fn view(
        &self,
        rule: usize,
        device: Option<usize>,
        vital: Option<Vital>,
        o: &Occurrence,
        state: AlarmState,
    ) -> AlarmView {
        let r = &self.profile.rules[rule];
        AlarmView {
            id: self.alarm_id(rule, o.seq),
            rule: r.id.clone(),
            kind: if r.spec.is_physiological() {
                AlarmKind::Physiological
            } else {
                AlarmKind::Technical
            },
            vital,
            device: device.map(|d| self.devices[d].id.clone()),
            priority: o.priority,
            message: r.message.clone(),
            state,
            onset: o.onset,
            since: o.declared.unwrap_or(o.onset),
            acknowledged: o.acknowledged.clone(),
            latching: latches(r, o.priority),
            awaiting_confirmation: o.confirm_until.is_some(),
            value: o.value,
        }
    }

    fn view_condition(&self, c: usize) -> Option<AlarmView> {
        let cond = &self.conditions[c];
        let o = cond.occurrence.as_ref()?;
        let state = match (o.declared, &o.acknowledged) {
            (None, _) => AlarmState::Pending,
            (Some(_), None) => AlarmState::Active,
            (Some(_), Some(_)) => AlarmState::Acknowledged,
        };
        Some(self.view(cond.rule, cond.device, cond.vital, o, state))
    }

    fn view_latched(&self, l: &Latched) -> AlarmView {
        self.view(
            l.rule,
            l.device,
            l.vital,
            &l.occurrence,
            AlarmState::Latched,
        )
    }

    /// Every alarm (pending ones included) and the session at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let mut alarms: Vec<AlarmView> = (0..self.conditions.len())
            .filter_map(|c| self.view_condition(c))
            .chain(self.latched.iter().map(|l| self.view_latched(l)))
            .collect();
        alarms.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.since.cmp(&b.since)));
        let phase = match &self.session.dose {
            None => SessionPhase::PreDose,
            Some(d) => SessionPhase::PostDose {
                minutes_since_dose: now.saturating_duration_since(d.at).as_secs() / 60,
            },
        };
        Snapshot {
            alarms,
            audio_pause_remaining: self
                .audio_paused_until
                .map(|u| u.saturating_duration_since(now))
                .filter(|d| !d.is_zero()),
            session: SessionView {
                phase,
                dose: self.session.dose.clone(),
                baseline: self.session.baseline,
                last_bp: self.session.last_bp,
            },
        }
    }
}

/// How old the latest violating sample may be when a limit's delay ends and it is declared.
pub const EVIDENCE_MAX_AGE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    PauseEnds,
    Declare(usize),
    Clear(usize),
    Escalate(usize),
    Violate(usize),
}

/// (delay before declaring, time in the hysteresis band before clearing).
fn rule_timing(rule: &Rule) -> (Duration, Duration) {
    match rule.spec {
        RuleSpec::Limit {
            delay, clear_after, ..
        } => (delay, clear_after),
        RuleSpec::Disconnected { delay } | RuleSpec::SensorOff { delay } => (delay, Duration::ZERO),
        _ => (Duration::ZERO, Duration::ZERO),
    }
}

/// High priority and loss of communication latch unless the profile says otherwise.
fn latches(rule: &Rule, priority: Priority) -> bool {
    rule.latching
        .unwrap_or(priority == Priority::High || matches!(rule.spec, RuleSpec::Disconnected { .. }))
}

fn limit_truth(bound: Bound, margin: f64, value: f64) -> Truth {
    let (violating, clear) = match bound {
        Bound::Below(limit) => (value < limit, value >= limit + margin),
        Bound::Above(limit) => (value > limit, value <= limit - margin),
    };
    if violating {
        Truth::Violating
    } else if clear {
        Truth::ClearNow
    } else {
        Truth::InBand
    }
}
