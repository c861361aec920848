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

pub use crate::rules::{Bound, Compare, Phase, RuleSpec};
pub use load::{Layer, Profile, ProfileError, ProfileErrors, Setting, Source};

use crate::rules::{self, Kind, HOUR, MINUTE};
pub(crate) use fields::Fields;
use load::settings;
pub(crate) use load::Origin;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

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
    for kind in rules::KINDS {
        kind.check_profile(&rules, origin, errors);
    }
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
    let Some(kind) = rules::by_name(&rule_type) else {
        f.error(
            "type",
            format!(
                "unknown rule type {rule_type:?}; expected {}",
                rules::names()
            ),
        );
        return None;
    };
    let keys = kind.keys();
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

    let spec = kind.parse(&mut f, priority);
    Some(Rule {
        id: id.to_string(),
        message,
        priority: priority?,
        escalate_after,
        latching,
        spec: spec?,
    })
}
