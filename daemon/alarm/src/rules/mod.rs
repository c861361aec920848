//! Rule kinds: one module per kind, each owning its settings' parsing and validation, how it
//! reads the engine's signals, its deadlines and what the safety envelope needs to know of it.
//!
//! The engine and the profile loader never name a kind: they ask the rule's kind ([`Kind`]).
//! Adding a kind is a new module here, its line in `kinds!` below, and its settings as a
//! variant of [`RuleSpec`] (in `spec.rs`: public with named fields, because the daemon reads a
//! limit's settings); the compiler reports whichever of the three is missing. See
//! `docs/architecture.md`, "Adding a rule".

use crate::engine::{Bp, Truth};
use crate::profile::{Fields, Origin, Priority, ProfileError, Rule};
use std::time::{Duration, Instant};
use vigil_protocol::Vital;

mod spec;

pub use spec::{Bound, Compare, Phase, RuleSpec};

pub(crate) const MINUTE: Duration = Duration::from_secs(60);
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

/// The one list of rule kinds: `Variant => module`, in the order the profile's error message
/// names them.
macro_rules! kinds {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        $(mod $module;)+

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
    Apnea => apnea,
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
    /// `complete_bp` when it came in a measurement with both systolic and diastolic, `spot`
    /// when it is a spot-check: a settled, discrete measurement from a device with no stream.
    Sample {
        vital: Vital,
        value: f64,
        continuous: bool,
        complete_bp: bool,
        spot: bool,
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
    /// (To `Vital` kinds, on the respiratory rate.) The device reports that the patient is not
    /// breathing.
    Apnea,
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

impl Signal {
    /// The systolic of a complete BP measurement (systolic and diastolic both present): what
    /// counts as a scheduled reading or a repeat. A partial frame is none.
    pub(crate) fn complete_bp_systolic(&self) -> Option<f64> {
        match *self {
            Signal::Bp {
                systolic: Some(s),
                diastolic: Some(_),
            } => Some(s),
            _ => None,
        }
    }
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
    /// A settled measurement (a spot-check): `true` meets the condition and declares it at
    /// once, without its delay; `false` ends it at once, as the next measurement may be long
    /// in coming.
    Measured(bool, Option<f64>),
}

/// What a kind may read of the dose session when it decides (a copy; the engine keeps the
/// session itself in `engine/session.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionFacts {
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
    fn on(&self, _spec: &RuleSpec, _signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
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
        _session: &SessionFacts,
        _last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        None
    }

    /// At its idle deadline: does it hold? (Most do by construction.)
    fn holds_at_deadline(&self, _spec: &RuleSpec, _session: &SessionFacts) -> bool {
        true
    }

    /// When an occurrence ends by itself. `low_battery_at`: the device's last such report;
    /// `clearing_since`: since when the occurrence has had in-range evidence without a gap.
    fn clear_deadline(
        &self,
        _spec: &RuleSpec,
        _low_battery_at: Option<Instant>,
        _clearing_since: Option<Instant>,
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

    /// The safety envelope: its clearing time, where it has one (an override may lengthen it,
    /// never shorten it).
    fn clear_after(&self, _spec: &RuleSpec) -> Option<Duration> {
        None
    }

    /// The safety envelope: the times an override may shorten, never lengthen (a schedule's
    /// intervals, a confirmation window), as (key, time).
    fn at_most(&self, _spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        Vec::new()
    }

    /// The safety envelope: the times an override may lengthen, never shorten (how long a
    /// schedule lasts), as (key, time).
    fn at_least(&self, _spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        Vec::new()
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
    fn on(&self, spec: &RuleSpec, signal: &Signal, session: &SessionFacts) -> Option<Verdict> {
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
        session: &SessionFacts,
        last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        self.with(|k| k.idle_deadline(spec, session, last_valid))
    }
    #[inline]
    fn holds_at_deadline(&self, spec: &RuleSpec, session: &SessionFacts) -> bool {
        self.with(|k| k.holds_at_deadline(spec, session))
    }
    #[inline]
    fn clear_deadline(
        &self,
        spec: &RuleSpec,
        low_battery_at: Option<Instant>,
        clearing_since: Option<Instant>,
    ) -> Option<Instant> {
        self.with(|k| k.clear_deadline(spec, low_battery_at, clearing_since))
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
    #[inline]
    fn clear_after(&self, spec: &RuleSpec) -> Option<Duration> {
        self.with(|k| k.clear_after(spec))
    }
    #[inline]
    fn at_most(&self, spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        self.with(|k| k.at_most(spec))
    }
    #[inline]
    fn at_least(&self, spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        self.with(|k| k.at_least(spec))
    }
}

#[cfg(test)]
mod tests;
