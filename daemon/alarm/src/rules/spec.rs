//! What each rule watches: one variant per kind, holding its validated settings. Public, so the
//! daemon can read a rule's limits; each kind's module reads and writes its own variant.

use crate::profile::Priority;
use std::time::Duration;
use vigil_protocol::Vital;

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
        /// How long it must stay up again to end the condition (a shorter one counts as `delay`).
        clear_after: Duration,
    },
    /// The device reports its sensor off, disconnected or defective.
    SensorOff {
        /// How long it must persist.
        delay: Duration,
    },
    /// No breath: the device's apnea event or a respiratory rate of 0.
    Apnea {
        /// How long it must persist.
        delay: Duration,
        /// How long breaths (a rate above 0) must be seen, without a gap, to end it.
        clear_after: Duration,
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
