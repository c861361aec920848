//! The engine's public vocabulary: alarms, events, actions and the session as others see them.

use crate::profile::Priority;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use vigil_protocol::Vital;

/// Physiological (about the patient) or technical (about the equipment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// About the patient.
    Physiological,
    /// About the equipment or the data.
    Technical,
}

/// Where an alarm is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        /// The pre-dose baseline BP, if a valid one was taken in time.
        baseline: Option<Bp>,
        /// When the baseline measurement was taken.
        baseline_taken: Option<Instant>,
    },
    /// A person set the baseline from a valid measurement taken after the dose was marked
    /// without one.
    BaselineSet {
        /// Who set it.
        by: String,
        /// When.
        at: Instant,
        /// When the measurement was taken.
        taken: Instant,
        /// The measurement.
        baseline: Bp,
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
    /// A BP alarm that was waiting for its confirming repeat.
    pub awaiting_confirmation: bool,
}

/// Everything the engine needs to go on after a restart, read back from the session record.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredSession {
    /// The time of the restart: conditions the restored state raises carry it.
    pub now: Instant,
    /// When the dose was marked, and by whom.
    pub dose: Option<Act>,
    /// The baseline, when its measurement was taken, and who set it (when a person did).
    pub baseline: Option<(Bp, Instant, Option<Act>)>,
    /// Complete valid BP measurements of the session, oldest first (the last one is the last
    /// BP for the NIBP schedule and the discharge gate).
    pub bp_measurements: Vec<(Instant, Bp)>,
    /// Alarms a previous run left active, acknowledged or latched.
    pub alarms: Vec<RestoredAlarm>,
    /// The lowest occurrence number the session has not used (ended alarms included), so that
    /// an alarm id is never given twice in a session.
    pub next_seq: u64,
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
    /// Before the dose the baseline is the last valid pre-dose BP, fixed when the dose is marked.
    #[error(
        "the dose is not marked yet: the baseline is taken from the last valid pre-dose BP then"
    )]
    DoseNotMarked,
    /// A baseline is set once; it is the reference for the post-dose rise alarm.
    #[error("the session already has a baseline ({0})")]
    BaselineAlreadySet(String),
    /// No complete valid BP measurement was taken at that time.
    #[error("no complete valid BP measurement was taken at that time")]
    NoSuchReading,
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
    /// The session's baseline BP.
    pub baseline: Option<Bp>,
    /// When the baseline measurement was taken.
    pub baseline_taken: Option<Instant>,
    /// Who set the baseline, when a person did (`set_baseline`) rather than the dose mark.
    pub baseline_set_by: Option<Act>,
    /// Why there is no baseline, once the dose is marked without one.
    pub baseline_missing: Option<String>,
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
