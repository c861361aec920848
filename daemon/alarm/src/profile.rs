//! Alarm profiles: which conditions alarm, at what priority, after what delay.
//!
//! A profile is TOML: the shipped default (`profiles/kap-default.toml`) or a clinic's edited
//! copy, then any number of override layers (clinic, patient) that change single values by rule
//! id. Loading validates everything and reports every problem at once, each with where it is,
//! then holds the result against the safety envelope ([`envelope`]): an override may tighten an
//! alarm, never silence it.

pub mod envelope;
mod fields;
mod load;
#[cfg(test)]
mod tests;

pub use load::{Layer, Profile, ProfileError, ProfileErrors, Setting, Source};

use fields::{check_limit_pairs, Fields};
use load::{settings, Origin};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;
use vigil_protocol::Vital;

/// The shipped default KAP profile.
pub const KAP_DEFAULT: &str = include_str!("../profiles/kap-default.toml");

/// Alarm priority, lowest first. `Info` is an informational signal, not an alarm: no sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Informational: shown, never sounded, never escalated.
    Info,
    /// Awareness.
    Low,
    /// Prompt response.
    Medium,
    /// Immediate response.
    High,
}

impl Priority {
    /// One step up, at most High; Info never escalates.
    pub fn escalated(self) -> Priority {
        match self {
            Priority::Info => Priority::Info,
            Priority::Low => Priority::Medium,
            Priority::Medium | Priority::High => Priority::High,
        }
    }
}

/// Session phase a rule applies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Which side of a limit is the alarm side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Alarm when the value is strictly below.
    Below(f64),
    /// Alarm when the value is strictly above.
    Above(f64),
}

/// What a rule watches.
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

impl RuleSpec {
    /// Is the condition about the patient (physiological) rather than the equipment?
    pub fn is_physiological(&self) -> bool {
        matches!(
            self,
            RuleSpec::Limit { .. }
                | RuleSpec::Bp { .. }
                | RuleSpec::BaselineRise { .. }
                | RuleSpec::DischargeReady { .. }
        )
    }
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique id, used by overrides and in alarm ids.
    pub id: String,
    /// What the display says.
    pub message: String,
    /// Priority once declared (BP rules with confirmation: once confirmed).
    pub priority: Priority,
    /// Unacknowledged for this long: one priority step up. `None`: never.
    pub escalate_after: Option<Duration>,
    /// `Some` when the profile sets latching explicitly; otherwise High priority and loss of
    /// communication latch.
    pub latching: Option<bool>,
    /// What it watches.
    pub spec: RuleSpec,
}

/// Profile-wide behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// The longest audio pause.
    pub audio_pause_max: Duration,
    /// Default escalation time for rules that set none.
    pub escalate_unacknowledged_after: Option<Duration>,
    /// The oldest a pre-dose BP may be, at the dose, to become the session's baseline.
    pub baseline_max_age: Duration,
}

/// Keys every rule may have.
const COMMON_KEYS: [&str; 6] = [
    "id",
    "type",
    "message",
    "priority",
    "escalate_after",
    "latching",
];

fn keys_for(rule_type: &str) -> Option<&'static [&'static str]> {
    Some(match rule_type {
        "limit" => &[
            "vital",
            "below",
            "above",
            "delay",
            "clear_margin",
            "clear_after",
        ],
        "bp" => &[
            "phase",
            "compare",
            "systolic",
            "diastolic",
            "confirm_within",
            "unconfirmed_priority",
        ],
        "baseline_rise" => &["systolic_rise", "diastolic_rise"],
        "not_current" => &["vital", "after"],
        "nibp_overdue" => &[
            "first_after_dose",
            "every",
            "until",
            "early_tolerance",
            "grace",
        ],
        "disconnected" | "sensor_off" => &["delay"],
        "low_battery" => &["clear_after"],
        "no_baseline" | "recording_failed" | "nibp_repeat_overdue" | "record_unreadable" => &[],
        "discharge_ready" => &["after", "systolic_margin", "diastolic_margin"],
        _ => return None,
    })
}

/// Plausible limit range per vital: a limit outside it would quietly disable the alarm.
fn limit_range(vital: Vital) -> std::ops::RangeInclusive<f64> {
    match vital {
        Vital::Spo2 => 70.0..=100.0,
        Vital::PulseRate | Vital::HeartRate => 20.0..=250.0,
        Vital::NibpSystolic | Vital::NibpDiastolic | Vital::NibpMean | Vital::CuffPressure => {
            30.0..=260.0
        }
        Vital::PerfusionIndex => 0.0..=20.0,
        Vital::RrInterval => 0.2..=3.0,
        Vital::EnergyExpended => 0.0..=65_535.0,
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn validate(doc: &toml::Table, origin: &Origin<'_>, errors: &mut Vec<ProfileError>) -> Profile {
    let top = origin.base.to_string();
    for key in doc.keys() {
        if !["name", "behaviour", "rule"].contains(&key.as_str()) {
            errors.push(ProfileError {
                location: format!("{top}: {key}"),
                message: "unknown key; a profile has name, [behaviour] and [[rule]]".into(),
            });
        }
    }
    let name = doc
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("unnamed")
        .to_string();

    let empty = toml::Table::new();
    let behaviour_table = doc
        .get("behaviour")
        .and_then(|b| b.as_table())
        .unwrap_or(&empty);
    let mut f = Fields {
        table: behaviour_table,
        scope: "behaviour",
        location: format!("{top}: behaviour"),
        origin,
        errors,
    };
    for key in behaviour_table.keys() {
        if ![
            "audio_pause_max",
            "escalate_unacknowledged_after",
            "baseline_max_age",
        ]
        .contains(&key.as_str())
        {
            f.error(key, "unknown key");
        }
    }
    let behaviour = Behaviour {
        // Two minutes is the oximeter cap (ISO 80601-2-61 as cited); never allow longer.
        audio_pause_max: f
            .duration("audio_pause_max", 2 * MINUTE)
            .unwrap_or(2 * MINUTE),
        escalate_unacknowledged_after: f
            .duration_or_off("escalate_unacknowledged_after", HOUR, true)
            .unwrap_or(None),
        baseline_max_age: f.duration("baseline_max_age", 4 * HOUR).unwrap_or(HOUR),
    };

    let mut rules = Vec::new();
    let mut seen = HashSet::new();
    let raw_rules = match doc.get("rule") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a.iter().collect(),
        Some(_) => {
            errors.push(ProfileError {
                location: format!("{top}: rule"),
                message: "rules are written as [[rule]] tables".into(),
            });
            Vec::new()
        }
    };
    if raw_rules.is_empty() {
        errors.push(ProfileError {
            location: top.clone(),
            message: "the profile has no rules".into(),
        });
    }
    for (i, raw) in raw_rules.into_iter().enumerate() {
        let Some(table) = raw.as_table() else {
            errors.push(ProfileError {
                location: format!("{top}: rule #{}", i + 1),
                message: "must be a table".into(),
            });
            continue;
        };
        let id = table.get("id").and_then(|v| v.as_str()).unwrap_or("");
        let location = if id.is_empty() {
            format!("{top}: rule #{}", i + 1)
        } else {
            format!("{top}: rule #{} \"{id}\"", i + 1)
        };
        if id.is_empty() {
            errors.push(ProfileError {
                location: location.clone(),
                message: "id is required".into(),
            });
        } else if !seen.insert(id.to_string()) {
            errors.push(ProfileError {
                location: location.clone(),
                message: format!("duplicate rule id {id:?}"),
            });
        }
        if let Some(rule) = validate_rule(table, id, location, origin, &behaviour, errors) {
            rules.push(rule);
        }
    }
    check_limit_pairs(&rules, origin, errors);
    Profile {
        name,
        behaviour,
        settings: settings(doc, origin),
        rules,
    }
}

fn validate_rule(
    table: &toml::Table,
    id: &str,
    location: String,
    origin: &Origin<'_>,
    behaviour: &Behaviour,
    errors: &mut Vec<ProfileError>,
) -> Option<Rule> {
    let mut f = Fields {
        table,
        scope: id,
        location,
        origin,
        errors,
    };
    let rule_type = f.str("type").unwrap_or_default();
    let Some(keys) = keys_for(&rule_type) else {
        f.error(
            "type",
            format!(
                "unknown rule type {rule_type:?}; expected limit, bp, baseline_rise, not_current, \
                 nibp_overdue, nibp_repeat_overdue, disconnected, sensor_off, low_battery, \
                 no_baseline, recording_failed, record_unreadable or discharge_ready"
            ),
        );
        return None;
    };
    for key in table.keys() {
        if !COMMON_KEYS.contains(&key.as_str()) && !keys.contains(&key.as_str()) {
            f.error(key, format!("does not apply to a {rule_type} rule"));
        }
    }
    if !table.contains_key("priority") {
        f.error("priority", "is required");
    }
    let priority = f.priority("priority");
    let message = f.str("message").unwrap_or_else(|| id.to_string());
    let latching = match table.get("latching") {
        None => None,
        Some(toml::Value::Boolean(b)) => Some(*b),
        Some(other) => {
            f.error(
                "latching",
                format!("must be true or false, not {}", other.type_str()),
            );
            None
        }
    };
    let escalate_after = if table.contains_key("escalate_after") {
        f.duration_or_off("escalate_after", HOUR, true).flatten()
    } else {
        behaviour.escalate_unacknowledged_after
    };

    let spec = match rule_type.as_str() {
        "limit" => {
            let vitals = f.vitals("vital");
            let range = vitals
                .as_ref()
                .and_then(|v| v.first())
                .map(|v| limit_range(*v))
                .unwrap_or(0.0..=1000.0);
            let bound = match (table.contains_key("below"), table.contains_key("above")) {
                (true, false) => f.limit("below", range).map(Bound::Below),
                (false, true) => f.limit("above", range).map(Bound::Above),
                _ => {
                    f.error(
                        "below",
                        "a limit rule has exactly one of `below` or `above`",
                    );
                    None
                }
            };
            let delay = f.duration("delay", 15 * MINUTE).unwrap_or_default();
            let clear_margin = f.number("clear_margin", 0.0..=30.0).unwrap_or(0.0);
            let clear_after = f.duration("clear_after", 10 * MINUTE).unwrap_or_default();
            RuleSpec::Limit {
                vitals: vitals?,
                bound: bound?,
                delay,
                clear_margin,
                clear_after,
            }
        }
        "bp" => {
            let phase = match f.str("phase").as_deref() {
                None | Some("any") => Some(Phase::Any),
                Some("pre_dose") => Some(Phase::PreDose),
                Some("post_dose") => Some(Phase::PostDose),
                Some(other) => {
                    f.error(
                        "phase",
                        format!("{other:?} is not one of pre_dose, post_dose, any"),
                    );
                    None
                }
            };
            let compare = match f.str("compare").as_deref() {
                None | Some("at_least") => Some(Compare::AtLeast),
                Some("above") => Some(Compare::Above),
                Some(other) => {
                    f.error(
                        "compare",
                        format!("{other:?} is not one of at_least, above"),
                    );
                    None
                }
            };
            let systolic = f.required_number("systolic", 60.0..=260.0);
            let diastolic = f.required_number("diastolic", 30.0..=180.0);
            if let (Some(s), Some(d)) = (systolic, diastolic) {
                if d >= s {
                    f.error("diastolic", format!("{d} must be below systolic {s}"));
                }
            }
            let confirm_within = f.duration("confirm_within", 30 * MINUTE);
            let unconfirmed_priority = if table.contains_key("unconfirmed_priority") {
                f.priority("unconfirmed_priority")
            } else {
                priority
            };
            RuleSpec::Bp {
                phase: phase?,
                compare: compare?,
                systolic: systolic?,
                diastolic: diastolic?,
                confirm_within,
                unconfirmed_priority: unconfirmed_priority?,
            }
        }
        "baseline_rise" => RuleSpec::BaselineRise {
            systolic_rise: f.required_number("systolic_rise", 5.0..=100.0)?,
            diastolic_rise: f.required_number("diastolic_rise", 5.0..=100.0)?,
        },
        "not_current" => {
            let vitals = f.vitals("vital");
            let after = f.required_duration("after", 5 * MINUTE);
            RuleSpec::NotCurrent {
                vitals: vitals?,
                after: after?,
            }
        }
        "nibp_overdue" => {
            let first = f.required_duration("first_after_dose", 4 * HOUR);
            let every = f.required_duration("every", 2 * HOUR);
            let until = f.required_duration("until", 8 * HOUR);
            let early = f.duration("early_tolerance", HOUR).unwrap_or_default();
            let grace = f.duration("grace", 30 * MINUTE).unwrap_or_default();
            if every.is_some_and(|e| e < MINUTE) {
                f.error("every", "must be at least 1m");
            }
            if let (Some(a), Some(b)) = (first, until) {
                if a > b {
                    f.error("until", "must not come before first_after_dose");
                }
            }
            RuleSpec::NibpOverdue {
                first_after_dose: first?,
                every: every.filter(|e| *e >= MINUTE)?,
                until: until?,
                early_tolerance: early,
                grace,
            }
        }
        "disconnected" => RuleSpec::Disconnected {
            delay: f.duration("delay", 5 * MINUTE).unwrap_or_default(),
        },
        "sensor_off" => RuleSpec::SensorOff {
            delay: f.duration("delay", 5 * MINUTE).unwrap_or_default(),
        },
        "low_battery" => RuleSpec::LowBattery {
            clear_after: f
                .duration("clear_after", HOUR)
                .unwrap_or(Duration::from_secs(60)),
        },
        "nibp_repeat_overdue" => RuleSpec::NibpRepeatOverdue,
        "record_unreadable" => RuleSpec::RecordUnreadable,
        "no_baseline" => RuleSpec::NoBaseline,
        "recording_failed" => RuleSpec::RecordingFailed,
        "discharge_ready" => RuleSpec::DischargeReady {
            after: f.required_duration("after", 12 * HOUR)?,
            systolic_margin: f.number("systolic_margin", 0.0..=60.0).unwrap_or(0.0),
            diastolic_margin: f.number("diastolic_margin", 0.0..=60.0).unwrap_or(0.0),
        },
        _ => return None,
    };
    Some(Rule {
        id: id.to_string(),
        message,
        priority: priority?,
        escalate_after,
        latching,
        spec,
    })
}
