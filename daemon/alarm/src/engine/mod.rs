//! The alarm engine: a pure state machine in the shape of a sans-IO protocol.
//!
//! Feed it readings, device events, link changes and person actions, each with `now` (monotonic);
//! ask it for its next deadline ([`Engine::poll_timeout`]), drain its events
//! ([`Engine::poll_event`]) and look at every alarm ([`Engine::snapshot`]). It never reads a
//! clock: the same inputs at the same times give the same outputs.
//!
//! Vocabulary (IEC 60601-1-8): a *condition* is a predicate over the data; an *occurrence* is
//! one interval in which it holds. Acknowledgement, escalation and logging work per occurrence.
//!
//! The parts: `evidence` (readings, device events, links), `session` (dose, baseline, BP and its
//! confirmation), `actions` (acknowledge, reset, pause), `signals` (what happened, put to each
//! rule's kind in `crate::rules`, whose verdict is applied), `occurrence` (the IEC state
//! machine), `timers` (deadlines), `view` (alarm views and the snapshot), `restore` (restart).
//! No part names a rule kind.

use crate::profile::{Priority, Profile, Rule};
use crate::rules::{AnyKind, Kind, Scope, Signal, Verdict};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use vigil_protocol::{DeviceEvent, Flag, Reading, Vital};

mod actions;
mod evidence;
mod occurrence;
mod restore;
mod session;
mod signals;
mod timers;
mod types;
mod view;

use occurrence::Occurrence;
use session::{Session, BP_HISTORY};

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
    /// The device time of the last cuff determination it sent, when it carries one: a
    /// monitor that sends its last determination again (every poll, or after a reconnect)
    /// sends no new measurement (hazard G12).
    last_nibp_time: Option<vigil_protocol::DeviceTime>,
    /// The last evidence of each vital the device is not (yet) held to keep current: a second
    /// sample within [`STREAM_GAP`] makes it a stream (V1).
    last_sample: Vec<(Vital, Instant)>,
}

/// What the engine asks of a rule on every call, read from its kind once (a running engine's
/// profile does not change): the per-reading path makes no calls it need not make.
#[derive(Debug, Clone, Copy)]
struct RuleFacts {
    kind: AnyKind,
    scope: Scope,
    /// (delay before declaring, time of in-range evidence before clearing).
    timing: (Duration, Duration),
    needs_fresh_evidence: bool,
    own_deadlines: bool,
    /// The vitals whose samples it judges, one bit each ([`vital_bit`]).
    judges: u32,
}

/// A vital's bit in [`RuleFacts::judges`].
fn vital_bit(vital: Vital) -> u32 {
    1 << (vital as u32)
}

/// The alarm engine.
#[derive(Debug, Clone)]
pub struct Engine {
    profile: Profile,
    /// Per rule, in the profile's order.
    facts: Vec<RuleFacts>,
    /// The rules with a condition per device, in order.
    device_rules: Vec<usize>,
    /// The rules with a condition per device and vital, in order.
    vital_rules: Vec<usize>,
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
        let facts: Vec<RuleFacts> = profile
            .rules
            .iter()
            .map(|r| {
                let kind = r.spec.kind();
                RuleFacts {
                    kind,
                    scope: kind.scope(),
                    timing: kind.timing(&r.spec),
                    needs_fresh_evidence: kind.needs_fresh_evidence(),
                    own_deadlines: kind.own_deadlines(),
                    judges: Vital::ALL
                        .into_iter()
                        .filter(|v| kind.judges_samples_of(&r.spec, *v))
                        .map(vital_bit)
                        .fold(0, |bits, bit| bits | bit),
                }
            })
            .collect();
        let of_scope = |scope: Scope| -> Vec<usize> {
            (0..facts.len())
                .filter(|r| facts[*r].scope == scope)
                .collect()
        };
        let device_rules = of_scope(Scope::Device);
        let vital_rules = of_scope(Scope::Vital);
        let mut engine = Engine {
            profile,
            facts,
            device_rules,
            vital_rules,
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
        self.facts[rule].scope == Scope::Session
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
            last_nibp_time: None,
            last_sample: Vec::new(),
        });
        let d = self.devices.len() - 1;
        for rule in 0..self.profile.rules.len() {
            let rules = &self.profile.rules;
            let spec = &rules[rule].spec;
            for v in spec.kind().watched_vitals(spec, continuous, rules) {
                self.condition(rule, Some(d), Some(v));
            }
            let session = self.session_facts();
            self.signal_rule(now, rule, d, None, &Signal::DeviceAdded, &session);
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

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }
}

/// A vital a device sends as evidence again within this time is a stream it sends, whatever
/// its format assumed (a monitor streams what is plugged in): from then on the delayed limits
/// judge it and `not-current` holds it (V1). A cuff's pulse rate comes minutes apart.
pub const STREAM_GAP: Duration = Duration::from_secs(10);

/// How old the latest violating sample may be when a limit's delay ends and it is declared.
pub const EVIDENCE_MAX_AGE: Duration = Duration::from_secs(10);

/// High priority and loss of communication latch unless the profile says otherwise.
fn latches(rule: &Rule, priority: Priority) -> bool {
    rule.latching
        .unwrap_or(priority == Priority::High || rule.spec.kind().latches_by_default())
}
