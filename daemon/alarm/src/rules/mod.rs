//! Rule kinds: one module per kind, each owning its settings' parsing and validation, how it
//! reads the engine's signals, its deadlines and what the safety envelope needs to know of it.
//!
//! The engine and the profile loader never name a kind: they ask the rule's [`Kind`]. Adding a
//! kind is a new module here plus one line in [`kinds!`] and its variant in [`RuleSpec`] (the
//! settings, public because the daemon reads them); the compiler points at anything missed.

use crate::engine::{Bp, Truth};
use crate::profile::{Fields, Origin, Priority, ProfileError, Rule};
use std::time::{Duration, Instant};
use vigil_protocol::Vital;

mod baseline_rise;
mod bp;
mod discharge_ready;
mod disconnected;
mod limit;
mod low_battery;
mod nibp_overdue;
mod nibp_repeat_overdue;
mod no_baseline;
mod not_current;
mod record_unreadable;
mod recording_failed;
mod sensor_off;

pub(crate) const MINUTE: Duration = Duration::from_secs(60);
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

/// Which side of a limit is the alarm side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Alarm when the value is strictly below.
    Below(f64),
    /// Alarm when the value is strictly above.
    Above(f64),
}

/// Session phase a rule applies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the dose is marked.
    PreDose,
    /// After the dose is marked.
    PostDose,
    /// Whenever.
    Any,
}

/// How a BP rule compares a reading with its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Strictly greater.
    Above,
    /// Greater or equal.
    AtLeast,
}

impl Compare {
    /// Does `value` meet `threshold`?
    pub fn meets(self, value: f64, threshold: f64) -> bool {
        match self {
            Compare::Above => value > threshold,
            Compare::AtLeast => value >= threshold,
        }
    }
}

/// What a rule watches: one variant per kind, holding its validated settings.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSpec {
    /// A vital beyond a limit, with a persistence delay and clearing hysteresis.
    Limit {
        /// The vitals watched (one condition per device and rule).
        vitals: Vec<Vital>,
        /// The limit.
        bound: Bound,
        /// How long the limit must be exceeded before the alarm is declared.
        delay: Duration,
        /// Back past the limit by this much clears at once.
        clear_margin: f64,
        /// Back in range (but within the margin) for this long clears.
        clear_after: Duration,
    },
    /// A completed BP measurement at or above thresholds (systolic or diastolic).
    Bp {
        /// Session phase in which it applies.
        phase: Phase,
        /// Comparison.
        compare: Compare,
        /// Systolic threshold, mmHg.
        systolic: f64,
        /// Diastolic threshold, mmHg.
        diastolic: f64,
        /// When set, a first reading asks for a repeat and only a repeat within this time that
        /// also meets the thresholds raises the rule's priority.
        confirm_within: Option<Duration>,
        /// Priority while unconfirmed.
        unconfirmed_priority: Priority,
    },
    /// Post-dose rise over the session's pre-dose baseline (systolic or diastolic).
    BaselineRise {
        /// Systolic rise, mmHg.
        systolic_rise: f64,
        /// Diastolic rise, mmHg.
        diastolic_rise: f64,
    },
    /// No valid sample of a vital from a device for too long.
    NotCurrent {
        /// Vitals watched, for the devices that provide them.
        vitals: Vec<Vital>,
        /// How long without a valid sample.
        after: Duration,
    },
    /// No NIBP measurement by a scheduled time after the dose.
    NibpOverdue {
        /// First scheduled reading after the dose.
        first_after_dose: Duration,
        /// Interval after that.
        every: Duration,
        /// No scheduled readings after this time since dose.
        until: Duration,
        /// A reading this long before a scheduled time satisfies it.
        early_tolerance: Duration,
        /// Overdue only this long after the scheduled time (a cuff cycle takes about a minute).
        grace: Duration,
    },
    /// A device's link is down.
    Disconnected {
        /// How long it must stay down.
        delay: Duration,
    },
    /// The device reports its sensor off, disconnected or defective.
    SensorOff {
        /// How long it must persist.
        delay: Duration,
    },
    /// The device reports a low battery.
    LowBattery {
        /// Clears when no low-battery report has come for this long.
        clear_after: Duration,
    },
    /// A repeat NIBP that a rule asked for (to confirm a high BP) has not come when its
    /// confirmation window ended.
    NibpRepeatOverdue,
    /// Part of the session record could not be read back after a restart (named in the
    /// message); latches until a person resets it.
    RecordUnreadable,
    /// The dose was marked with no pre-dose BP to serve as baseline.
    NoBaseline,
    /// The session record cannot be written (disk full, database locked or corrupt).
    RecordingFailed,
    /// Time since dose and BP back near baseline.
    DischargeReady {
        /// Minimum time since dose.
        after: Duration,
        /// Allowed systolic above baseline, mmHg.
        systolic_margin: f64,
        /// Allowed diastolic above baseline, mmHg.
        diastolic_margin: f64,
    },
}

/// The one list of rule kinds: `Variant => module`, in the order the profile's error message
/// names them.
macro_rules! kinds {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        /// A rule kind as a value, one per module.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum AnyKind {
            $(
                #[doc = concat!("The `", stringify!($module), "` kind.")]
                $variant,
            )+
        }

        /// Every kind, for finding one by its `type` name.
        pub(crate) const KINDS: &[AnyKind] = &[$(AnyKind::$variant),+];

        impl RuleSpec {
            /// The kind that owns this rule's behaviour.
            pub(crate) fn kind(&self) -> AnyKind {
                match self {
                    $(RuleSpec::$variant { .. } => AnyKind::$variant,)+
                }
            }
        }

        impl AnyKind {
            /// Calls `f` with this kind's module. Inlined, so each arm calls its module directly:
            /// static dispatch on the per-reading path, no virtual calls.
            #[inline(always)]
            fn with<R>(self, f: impl FnOnce(&dyn Kind) -> R) -> R {
                match self {
                    $(AnyKind::$variant => f(&$module::$variant),)+
                }
            }
        }
    };
}

kinds! {
    Limit => limit,
    Bp => bp,
    BaselineRise => baseline_rise,
    NotCurrent => not_current,
    NibpOverdue => nibp_overdue,
    NibpRepeatOverdue => nibp_repeat_overdue,
    Disconnected => disconnected,
    SensorOff => sensor_off,
    LowBattery => low_battery,
    NoBaseline => no_baseline,
    RecordingFailed => recording_failed,
    RecordUnreadable => record_unreadable,
    DischargeReady => discharge_ready,
}

impl RuleSpec {
    /// Is the condition about the patient (physiological) rather than the equipment?
    pub fn is_physiological(&self) -> bool {
        self.kind().physiological()
    }
}

/// The kind with this `type` name.
pub(crate) fn by_name(name: &str) -> Option<AnyKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// "limit, bp, … or discharge_ready": every kind's name, for the unknown-type message.
pub(crate) fn names() -> String {
    let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// Where a kind's conditions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// One per session, from the engine's start.
    Session,
    /// One per device, made on first use.
    Device,
    /// One per device and vital, made on first use.
    Vital,
}

/// Something that happened, as the kinds see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    /// A device was added.
    DeviceAdded,
    /// (To `Vital` kinds.) A valid sample of a vital (evidence); `continuous` when the device keeps it current,
    /// `complete_bp` when it came in a measurement with both systolic and diastolic.
    Sample {
        vital: Vital,
        value: f64,
        continuous: bool,
        complete_bp: bool,
    },
    /// A fresh valid sample of a continuous vital, to a condition already on that vital.
    Current { value: f64 },
    /// A reading of a vital that is not evidence, to a condition already on that vital.
    NotEvidence,
    /// The device's link came up or went down.
    Link { up: bool },
    /// The device's sensor is off (`true`) or a valid sample shows it on (`false`).
    SensorOff(bool),
    /// The device reported a low battery.
    LowBattery,
    /// A cuff measurement's systolic and diastolic (evidence only; either may be missing).
    Bp {
        systolic: Option<f64>,
        diastolic: Option<f64>,
    },
    /// The dose was marked, with or without a baseline.
    Dose { baseline: bool },
    /// A person set the baseline.
    BaselineSet,
    /// The session record is failing (`true`) or writing again.
    Recording { failing: bool },
    /// Stored rows could not be read back after a restart.
    Unreadable,
}

/// What a kind makes of a signal for one condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Feed this truth (and value, if any) to the occurrence state machine.
    Truth(Truth, Option<f64>),
    /// Keep the state, but the in-range evidence that would clear it starts over.
    InterruptClearing,
    /// A BP rule with confirmation is met: raise it unconfirmed or confirm it.
    Confirm(Duration, Option<f64>),
    /// Raise and end at once: it latches until a person resets it.
    Latch,
}

/// The session as the kinds see it when they decide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// The engine's time (none before its first input).
    pub now: Option<Instant>,
    /// When the dose was marked.
    pub dose: Option<Instant>,
    /// The baseline BP.
    pub baseline: Option<Bp>,
    /// The latest complete valid measurement.
    pub last_bp: Option<(Instant, Bp)>,
    /// A requested repeat NIBP must come by then.
    pub repeat_due: Option<Instant>,
}

/// One rule kind. Every method but the first four has a default meaning "not this kind's
/// business", so a kind writes only what it does.
pub(crate) trait Kind: Sync {
    /// The `type` written in a profile.
    fn name(&self) -> &'static str;

    /// The keys it takes beyond the ones every rule has.
    fn keys(&self) -> &'static [&'static str];

    /// Reads and validates its settings; every problem goes to `f`. `priority` is the rule's.
    fn parse(&self, f: &mut Fields<'_>, priority: Option<Priority>) -> Option<RuleSpec>;

    /// Where its conditions live.
    fn scope(&self) -> Scope;

    /// Checks that need the whole profile (a low limit below the high one), after every rule
    /// has been read.
    fn check_profile(
        &self,
        _rules: &[Rule],
        _origin: &Origin<'_>,
        _errors: &mut Vec<ProfileError>,
    ) {
    }

    /// About the patient rather than the equipment.
    fn physiological(&self) -> bool {
        false
    }

    /// (delay before declaring, time of in-range evidence before clearing).
    fn timing(&self, _spec: &RuleSpec) -> (Duration, Duration) {
        (Duration::ZERO, Duration::ZERO)
    }

    /// Latches when the profile does not say, whatever its priority.
    fn latches_by_default(&self) -> bool {
        false
    }

    /// Declared only on fresh evidence when its delay ends.
    fn needs_fresh_evidence(&self) -> bool {
        false
    }

    /// Judges samples of `vital`: only then does it hear [`Signal::Sample`] of it, and every
    /// device giving it continuously must keep it current (a rule on a silent value would
    /// never sound).
    fn judges_samples_of(&self, _spec: &RuleSpec, _vital: Vital) -> bool {
        false
    }

    /// For a device added with these continuous vitals: the vitals to keep a condition on.
    fn watched_vitals(
        &self,
        _spec: &RuleSpec,
        _continuous: &[Vital],
        _rules: &[Rule],
    ) -> Vec<Vital> {
        Vec::new()
    }

    /// What the signal means for this rule's condition, if anything.
    fn on(&self, _spec: &RuleSpec, _signal: &Signal, _session: &Session) -> Option<Verdict> {
        None
    }

    /// When declared: the priority it starts at and, if it waits for confirmation, how long.
    fn declared_priority(
        &self,
        _spec: &RuleSpec,
        priority: Priority,
    ) -> (Priority, Option<Duration>) {
        (priority, None)
    }

    /// How long a declared occurrence waits for confirmation (restored after a restart).
    fn confirm_within(&self, _spec: &RuleSpec) -> Option<Duration> {
        None
    }

    /// Has deadlines of its own ([`Kind::idle_deadline`], [`Kind::clear_deadline`]). The
    /// default asks; a kind without any says `false` so that the engine's scan of every
    /// condition, on every reading, skips it.
    fn own_deadlines(&self) -> bool {
        true
    }

    /// When an idle condition starts to hold. `last_valid` looks up the device's last valid
    /// sample of the condition's vital.
    fn idle_deadline(
        &self,
        _spec: &RuleSpec,
        _session: &Session,
        _last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        None
    }

    /// At its idle deadline: does it hold? (Most do by construction.)
    fn holds_at_deadline(&self, _spec: &RuleSpec, _session: &Session) -> bool {
        true
    }

    /// When an occurrence ends by itself. `low_battery_at`: the device's last such report.
    fn clear_deadline(
        &self,
        _spec: &RuleSpec,
        _low_battery_at: Option<Instant>,
    ) -> Option<Instant> {
        None
    }

    /// The alarm's message, given the rule's. `baseline_missing` and `unreadable` say why.
    fn message(
        &self,
        message: &str,
        _baseline_missing: Option<&str>,
        _unreadable: &[String],
    ) -> String {
        message.to_string()
    }

    /// The safety envelope: the vitals it watches and its limit's side, where it has them.
    fn target<'a>(&self, _spec: &'a RuleSpec) -> Option<(&'a [Vital], Option<Bound>)> {
        None
    }

    /// The safety envelope: its delay and the key that sets it, where it has one.
    fn delay(&self, _spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        None
    }

    /// The safety envelope: every limit it sets, as (vital, bound, key).
    fn limits(&self, _spec: &RuleSpec) -> Vec<(Vital, Bound, &'static str)> {
        Vec::new()
    }

    /// The safety envelope: its priority while unconfirmed, where it has one.
    fn unconfirmed_priority(&self, _spec: &RuleSpec) -> Option<Priority> {
        None
    }
}

/// Each method goes to the kind's module.
impl Kind for AnyKind {
    #[inline]
    fn name(&self) -> &'static str {
        self.with(|k| k.name())
    }
    #[inline]
    fn keys(&self) -> &'static [&'static str] {
        self.with(|k| k.keys())
    }
    #[inline]
    fn parse(&self, f: &mut Fields<'_>, priority: Option<Priority>) -> Option<RuleSpec> {
        self.with(|k| k.parse(f, priority))
    }
    #[inline]
    fn scope(&self) -> Scope {
        self.with(|k| k.scope())
    }
    #[inline]
    fn check_profile(&self, rules: &[Rule], origin: &Origin<'_>, errors: &mut Vec<ProfileError>) {
        self.with(|k| k.check_profile(rules, origin, errors))
    }
    #[inline]
    fn physiological(&self) -> bool {
        self.with(|k| k.physiological())
    }
    #[inline]
    fn timing(&self, spec: &RuleSpec) -> (Duration, Duration) {
        self.with(|k| k.timing(spec))
    }
    #[inline]
    fn latches_by_default(&self) -> bool {
        self.with(|k| k.latches_by_default())
    }
    #[inline]
    fn needs_fresh_evidence(&self) -> bool {
        self.with(|k| k.needs_fresh_evidence())
    }
    #[inline]
    fn judges_samples_of(&self, spec: &RuleSpec, vital: Vital) -> bool {
        self.with(|k| k.judges_samples_of(spec, vital))
    }
    #[inline]
    fn watched_vitals(&self, spec: &RuleSpec, continuous: &[Vital], rules: &[Rule]) -> Vec<Vital> {
        self.with(|k| k.watched_vitals(spec, continuous, rules))
    }
    #[inline]
    fn on(&self, spec: &RuleSpec, signal: &Signal, session: &Session) -> Option<Verdict> {
        self.with(|k| k.on(spec, signal, session))
    }
    #[inline]
    fn declared_priority(
        &self,
        spec: &RuleSpec,
        priority: Priority,
    ) -> (Priority, Option<Duration>) {
        self.with(|k| k.declared_priority(spec, priority))
    }
    #[inline]
    fn confirm_within(&self, spec: &RuleSpec) -> Option<Duration> {
        self.with(|k| k.confirm_within(spec))
    }
    #[inline]
    fn own_deadlines(&self) -> bool {
        self.with(|k| k.own_deadlines())
    }
    #[inline]
    fn idle_deadline(
        &self,
        spec: &RuleSpec,
        session: &Session,
        last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        self.with(|k| k.idle_deadline(spec, session, last_valid))
    }
    #[inline]
    fn holds_at_deadline(&self, spec: &RuleSpec, session: &Session) -> bool {
        self.with(|k| k.holds_at_deadline(spec, session))
    }
    #[inline]
    fn clear_deadline(&self, spec: &RuleSpec, low_battery_at: Option<Instant>) -> Option<Instant> {
        self.with(|k| k.clear_deadline(spec, low_battery_at))
    }
    #[inline]
    fn message(
        &self,
        message: &str,
        baseline_missing: Option<&str>,
        unreadable: &[String],
    ) -> String {
        self.with(|k| k.message(message, baseline_missing, unreadable))
    }
    #[inline]
    fn target<'a>(&self, spec: &'a RuleSpec) -> Option<(&'a [Vital], Option<Bound>)> {
        self.with(|k| k.target(spec))
    }
    #[inline]
    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        self.with(|k| k.delay(spec))
    }
    #[inline]
    fn limits(&self, spec: &RuleSpec) -> Vec<(Vital, Bound, &'static str)> {
        self.with(|k| k.limits(spec))
    }
    #[inline]
    fn unconfirmed_priority(&self, spec: &RuleSpec) -> Option<Priority> {
        self.with(|k| k.unconfirmed_priority(spec))
    }
}

#[cfg(test)]
mod tests;
