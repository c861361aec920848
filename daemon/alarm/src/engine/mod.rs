//! The alarm engine: a pure state machine in the shape of a sans-IO protocol.
//!
//! Feed it readings, device events, link changes and person actions, each with `now` (monotonic);
//! ask it for its next deadline ([`Engine::poll_timeout`]), drain its events
//! ([`Engine::poll_event`]) and look at every alarm ([`Engine::snapshot`]). It never reads a
//! clock: the same inputs at the same times give the same outputs.
//!
//! Vocabulary (IEC 60601-1-8): a *condition* is a predicate over the data; an *occurrence* is
//! one interval in which it holds. Acknowledgement, escalation and logging work per occurrence.

use crate::profile::{Priority, Profile, Rule};
use crate::rules::{Scope, Signal, Verdict};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use vigil_protocol::{DeviceEvent, Reading, Vital};

mod actions;
mod bp;
mod evidence;
mod occurrence;
mod restore;
mod types;

pub use types::*;

/// What one piece of evidence (or one event) says about a condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Truth {
    /// The condition holds.
    Violating,
    /// Valid evidence back in range: the condition ends once such evidence has lasted the rule's
    /// clearing time without a gap (never on one sample when that time is not zero).
    InRange,
    /// Definitely not holding: ends now (a link back up, a normal BP measurement).
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
    /// Valid in-range evidence without a gap since.
    clearing_since: Option<Instant>,
    /// The latest valid sample that bore on it (for or against).
    last_evidence: Instant,
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
    baseline_taken: Option<Instant>,
    baseline_set_by: Option<Act>,
    /// Why the dose was marked without a baseline.
    baseline_missing: Option<String>,
    last_bp: Option<(Instant, Bp)>,
    /// The latest complete valid measurements, oldest first, for `set_baseline`.
    bp_history: VecDeque<(Instant, Bp)>,
    /// A repeat NIBP was asked for and must come by then.
    repeat_due: Option<Instant>,
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
    /// Ids of stored rows a restart could not read back.
    unreadable: Vec<String>,
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
            unreadable: Vec::new(),
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
        self.profile.rules[rule].spec.kind().scope() == Scope::Session
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
            let rules = &self.profile.rules;
            let spec = &rules[rule].spec;
            for v in spec.kind().watched_vitals(spec, continuous, rules) {
                self.condition(rule, Some(d), Some(v));
            }
            let session = self.session_view();
            self.signal_rule(now, rule, d, None, &Signal::DeviceAdded, &session);
        }
    }

    /// The kinds' view of the session.
    fn session_view(&self) -> crate::rules::Session {
        crate::rules::Session {
            now: self.now,
            dose: self.session.dose.as_ref().map(|a| a.at),
            baseline: self.session.baseline,
            last_bp: self.session.last_bp,
            repeat_due: self.session.repeat_due,
        }
    }

    /// A signal about device `d` (and `vital`): every rule that answers gets its condition for
    /// the device (made on first use) updated.
    fn signal_device(&mut self, now: Instant, d: usize, vital: Option<Vital>, signal: &Signal) {
        let session = self.session_view();
        for rule in 0..self.profile.rules.len() {
            self.signal_rule(now, rule, d, vital, signal, &session);
        }
    }

    fn signal_rule(
        &mut self,
        now: Instant,
        rule: usize,
        d: usize,
        vital: Option<Vital>,
        signal: &Signal,
        session: &crate::rules::Session,
    ) {
        let spec = &self.profile.rules[rule].spec;
        if let Some(verdict) = spec.kind().on(spec, signal, session) {
            let c = self.condition(rule, Some(d), vital);
            self.apply(c, verdict, now);
        }
    }

    /// A signal to the conditions that exist: all of them, or those on `on` (device, vital).
    fn signal_existing(&mut self, now: Instant, on: Option<(usize, Vital)>, signal: &Signal) {
        let session = self.session_view();
        for c in 0..self.conditions.len() {
            let cond = &self.conditions[c];
            if on.is_some_and(|(d, v)| cond.device != Some(d) || cond.vital != Some(v)) {
                continue;
            }
            let spec = &self.profile.rules[cond.rule].spec;
            if let Some(verdict) = spec.kind().on(spec, signal, &session) {
                self.apply(c, verdict, now);
            }
        }
    }

    fn apply(&mut self, c: usize, verdict: Verdict, now: Instant) {
        match verdict {
            Verdict::Truth(truth, value) => self.update(c, truth, now, value),
            Verdict::InterruptClearing => self.interrupt_clearing(c),
            Verdict::Confirm(within, value) => self.confirm_bp(c, now, within, value),
            Verdict::Latch => {
                self.update(c, Truth::Violating, now, None);
                self.update(c, Truth::ClearNow, now, None);
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
            kind: if r.spec.kind().physiological() {
                AlarmKind::Physiological
            } else {
                AlarmKind::Technical
            },
            vital,
            device: device.map(|d| self.devices[d].id.clone()),
            priority: o.priority,
            message: r.spec.kind().message(
                &r.message,
                self.session.baseline_missing.as_deref(),
                &self.unreadable,
            ),
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
                baseline_taken: self.session.baseline_taken,
                baseline_set_by: self.session.baseline_set_by.clone(),
                baseline_missing: self.session.baseline_missing.clone(),
                last_bp: self.session.last_bp,
            },
        }
    }
}

/// How many complete BP measurements the engine keeps for `set_baseline` (a session has a few
/// dozen at most).
const BP_HISTORY: usize = 64;

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

/// High priority and loss of communication latch unless the profile says otherwise.
fn latches(rule: &Rule, priority: Priority) -> bool {
    rule.latching
        .unwrap_or(priority == Priority::High || rule.spec.kind().latches_by_default())
}
