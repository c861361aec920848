//! Alarm profiles: which conditions alarm, at what priority, after what delay.
//!
//! A profile is TOML: the shipped default (`profiles/kap-default.toml`) or a clinic's edited
//! copy, then any number of override layers (clinic, patient) that change single values by rule
//! id. Loading validates everything and reports every problem at once, each with where it is.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
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

/// Where a layer of the profile came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "level", content = "name")]
pub enum Source {
    /// The profile shipped with Vigil.
    Default,
    /// A clinic's profile or override file.
    Clinic(String),
    /// A patient's override file.
    Patient(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("built-in default"),
            Source::Clinic(n) => write!(f, "clinic {n}"),
            Source::Patient(n) => write!(f, "patient {n}"),
        }
    }
}

/// One TOML document and where it came from.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// Its origin.
    pub source: Source,
    /// Its text.
    pub text: &'a str,
}

/// The effective value of one setting and which layer set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// `behaviour` or a rule id.
    pub scope: String,
    /// The key.
    pub key: String,
    /// The value, as TOML.
    pub value: String,
    /// The layer that set it.
    pub source: Source,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Profile-wide behaviour.
    pub behaviour: Behaviour,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// Every setting with its effective value and source, for display and audit.
    pub settings: Vec<Setting>,
}

/// One problem in a profile, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// Which layer, and where in it.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found in a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the alarm profile:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl Profile {
    /// The shipped KAP profile with no overrides.
    pub fn kap_default() -> Result<Profile, ProfileErrors> {
        Profile::load(
            Layer {
                source: Source::Default,
                text: KAP_DEFAULT,
            },
            &[],
        )
    }

    /// Loads a full profile, applies override layers in order, and validates the result.
    pub fn load(base: Layer<'_>, overrides: &[Layer<'_>]) -> Result<Profile, ProfileErrors> {
        let mut errors = Vec::new();
        let mut doc = match parse(&base) {
            Ok(t) => t,
            Err(e) => return Err(ProfileErrors(vec![e])),
        };
        let mut sources: BTreeMap<(String, String), Source> = BTreeMap::new();
        record_sources(&doc, &base.source, &mut sources);
        for layer in overrides {
            match parse(layer) {
                Ok(t) => apply_override(&mut doc, &t, layer, &mut sources, &mut errors),
                Err(e) => errors.push(e),
            }
        }
        let profile = validate(&doc, &base.source, &sources, &mut errors);
        match profile {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(ProfileErrors(errors)),
        }
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

fn parse(layer: &Layer<'_>) -> Result<toml::Table, ProfileError> {
    layer.text.parse::<toml::Table>().map_err(|e| ProfileError {
        location: layer.source.to_string(),
        message: format!("not valid TOML: {}", e.to_string().trim()),
    })
}

fn rule_tables(doc: &toml::Table) -> Vec<&toml::Table> {
    doc.get("rule")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_table()).collect())
        .unwrap_or_default()
}

fn record_sources(
    doc: &toml::Table,
    source: &Source,
    sources: &mut BTreeMap<(String, String), Source>,
) {
    if let Some(b) = doc.get("behaviour").and_then(|b| b.as_table()) {
        for k in b.keys() {
            sources.insert(("behaviour".into(), k.clone()), source.clone());
        }
    }
    for t in rule_tables(doc) {
        if let Some(id) = t.get("id").and_then(|v| v.as_str()) {
            for k in t.keys() {
                sources.insert((id.to_string(), k.clone()), source.clone());
            }
        }
    }
}

/// Applies `[rules.<id>]` and `[behaviour]` tables of an override layer.
fn apply_override(
    doc: &mut toml::Table,
    layer_doc: &toml::Table,
    layer: &Layer<'_>,
    sources: &mut BTreeMap<(String, String), Source>,
    errors: &mut Vec<ProfileError>,
) {
    let at = |path: &str| format!("{}: {path}", layer.source);
    for (key, value) in layer_doc {
        match (key.as_str(), value) {
            ("behaviour", toml::Value::Table(changes)) => {
                let entry = doc
                    .entry("behaviour")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let Some(behaviour) = entry.as_table_mut() {
                    for (k, v) in changes {
                        behaviour.insert(k.clone(), v.clone());
                        sources.insert(("behaviour".into(), k.clone()), layer.source.clone());
                    }
                }
            }
            ("rules", toml::Value::Table(rules)) => {
                for (id, changes) in rules {
                    let Some(changes) = changes.as_table() else {
                        errors.push(ProfileError {
                            location: at(&format!("rules.{id}")),
                            message: "must be a table of values to change".into(),
                        });
                        continue;
                    };
                    if changes.contains_key("id") || changes.contains_key("type") {
                        errors.push(ProfileError {
                            location: at(&format!("rules.{id}")),
                            message: "an override cannot change a rule's id or type".into(),
                        });
                        continue;
                    }
                    let target =
                        doc.get_mut("rule")
                            .and_then(|r| r.as_array_mut())
                            .and_then(|rules| {
                                rules.iter_mut().filter_map(|r| r.as_table_mut()).find(|r| {
                                    r.get("id").and_then(|v| v.as_str()) == Some(id.as_str())
                                })
                            });
                    match target {
                        Some(rule) => {
                            for (k, v) in changes {
                                rule.insert(k.clone(), v.clone());
                                sources.insert((id.clone(), k.clone()), layer.source.clone());
                            }
                        }
                        None => errors.push(ProfileError {
                            location: at(&format!("rules.{id}")),
                            message: "no rule with this id in the profile".into(),
                        }),
                    }
                }
            }
            (other, _) => errors.push(ProfileError {
                location: at(other),
                message: "an override file holds only [behaviour] and [rules.<id>] tables".into(),
            }),
        }
    }
}

/// Reads one rule's or the behaviour table's fields, recording problems with their location.
struct Fields<'a> {
    table: &'a toml::Table,
    location: String,
    errors: &'a mut Vec<ProfileError>,
}

impl Fields<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ProfileError {
            location: format!("{}.{key}", self.location),
            message: message.into(),
        });
    }

    fn str(&mut self, key: &str) -> Option<String> {
        match self.table.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            other => {
                self.error(key, format!("must be a string, not {}", other.type_str()));
                None
            }
        }
    }

    fn number(&mut self, key: &str, range: std::ops::RangeInclusive<f64>) -> Option<f64> {
        let v = match self.table.get(key)? {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            other => {
                self.error(key, format!("must be a number, not {}", other.type_str()));
                return None;
            }
        };
        if !range.contains(&v) {
            self.error(
                key,
                format!(
                    "{v} is outside the allowed range {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(v)
    }

    fn required_number(&mut self, key: &str, range: std::ops::RangeInclusive<f64>) -> Option<f64> {
        if !self.table.contains_key(key) {
            self.error(key, "is required");
        }
        self.number(key, range)
    }

    /// A duration like "15s"; `off` gives `Some(None)` when allowed.
    fn duration_or_off(
        &mut self,
        key: &str,
        max: Duration,
        allow_off: bool,
    ) -> Option<Option<Duration>> {
        let text = self.str(key)?;
        if allow_off && text == "off" {
            return Some(None);
        }
        match humantime::parse_duration(&text) {
            Ok(d) if d <= max => Some(Some(d)),
            Ok(_) => {
                self.error(
                    key,
                    format!(
                        "{text} is longer than the maximum {}",
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Err(e) => {
                self.error(
                    key,
                    format!("{text:?} is not a duration like \"15s\" or \"5m\": {e}"),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &str, max: Duration) -> Option<Duration> {
        self.duration_or_off(key, max, false).flatten()
    }

    fn required_duration(&mut self, key: &str, max: Duration) -> Option<Duration> {
        if !self.table.contains_key(key) {
            self.error(key, "is required");
        }
        self.duration(key, max)
    }

    fn priority(&mut self, key: &str) -> Option<Priority> {
        let text = self.str(key)?;
        match text.as_str() {
            "high" => Some(Priority::High),
            "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            "info" => Some(Priority::Info),
            _ => {
                self.error(
                    key,
                    format!("{text:?} is not one of high, medium, low, info"),
                );
                None
            }
        }
    }

    fn vitals(&mut self, key: &str) -> Option<Vec<Vital>> {
        let names: Vec<String> = match self.table.get(key) {
            None => {
                self.error(key, "is required");
                return None;
            }
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_default())
                .collect(),
            Some(other) => {
                self.error(
                    key,
                    format!("must be a vital name or a list, not {}", other.type_str()),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for n in names {
            match Vital::from_name(&n) {
                Some(v) => out.push(v),
                None => self.error(
                    key,
                    format!(
                        "unknown vital {n:?}; expected one of {}",
                        Vital::ALL.map(Vital::name).join(", ")
                    ),
                ),
            }
        }
        (!out.is_empty()).then_some(out)
    }
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

fn validate(
    doc: &toml::Table,
    base: &Source,
    sources: &BTreeMap<(String, String), Source>,
    errors: &mut Vec<ProfileError>,
) -> Option<Profile> {
    let top = base.to_string();
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
        location: format!("{top}: behaviour"),
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
        if let Some(rule) = validate_rule(table, id, location, &behaviour, errors) {
            rules.push(rule);
        }
    }
    check_limit_pairs(&rules, &top, errors);

    let settings = sources
        .iter()
        .filter_map(|((scope, key), source)| {
            let value = if scope == "behaviour" {
                behaviour_table.get(key)
            } else {
                rule_tables(doc)
                    .into_iter()
                    .find(|t| t.get("id").and_then(|v| v.as_str()) == Some(scope.as_str()))
                    .and_then(|t| t.get(key))
            }?;
            Some(Setting {
                scope: scope.clone(),
                key: key.clone(),
                value: toml_text(value),
                source: source.clone(),
            })
        })
        .collect();
    Some(Profile {
        name,
        behaviour,
        rules,
        settings,
    })
}

fn validate_rule(
    table: &toml::Table,
    id: &str,
    location: String,
    behaviour: &Behaviour,
    errors: &mut Vec<ProfileError>,
) -> Option<Rule> {
    let mut f = Fields {
        table,
        location,
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
                (true, false) => f.number("below", range).map(Bound::Below),
                (false, true) => f.number("above", range).map(Bound::Above),
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

/// A setting's value as it would be written in TOML (without the `display` feature's weight).
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_text).collect::<Vec<_>>().join(", ")
        ),
        other => other.type_str().to_string(),
    }
}

/// A low limit at or above a high limit for the same vital can never be in range.
fn check_limit_pairs(rules: &[Rule], top: &str, errors: &mut Vec<ProfileError>) {
    for low in rules {
        let RuleSpec::Limit {
            vitals: low_vitals,
            bound: Bound::Below(lo),
            ..
        } = &low.spec
        else {
            continue;
        };
        for high in rules {
            let RuleSpec::Limit {
                vitals: high_vitals,
                bound: Bound::Above(hi),
                ..
            } = &high.spec
            else {
                continue;
            };
            if low_vitals.iter().any(|v| high_vitals.contains(v)) && lo >= hi {
                errors.push(ProfileError {
                    location: format!("{top}: rule \"{}\"", low.id),
                    message: format!(
                        "low limit {lo} is not below the high limit {hi} of rule \"{}\"",
                        high.id
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(base: &str, overrides: &[(&str, Source)]) -> Result<Profile, ProfileErrors> {
        let layers: Vec<Layer> = overrides
            .iter()
            .map(|(text, source)| Layer {
                source: source.clone(),
                text,
            })
            .collect();
        Profile::load(
            Layer {
                source: Source::Clinic("clinic.toml".into()),
                text: base,
            },
            &layers,
        )
    }

    #[test]
    fn shipped_profile_has_every_row_of_the_reference_table() {
        let p = Profile::kap_default().unwrap();
        let ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
        for id in [
            "predose-bp-review",
            "bp-rise",
            "bp-severe",
            "bp-crisis",
            "sbp-low",
            "spo2-low",
            "spo2-critical",
            "pr-high",
            "pr-very-high",
            "pr-low",
            "pr-critical-low",
            "not-current",
            "nibp-overdue",
            "device-disconnected",
            "discharge-ready",
        ] {
            assert!(ids.contains(&id), "missing {id}");
        }
        let spo2 = p.rule("spo2-low").unwrap();
        assert_eq!(spo2.priority, Priority::Medium);
        assert_eq!(
            spo2.spec,
            RuleSpec::Limit {
                vitals: vec![Vital::Spo2],
                bound: Bound::Below(90.0),
                delay: Duration::from_secs(15),
                clear_margin: 2.0,
                clear_after: Duration::from_secs(5),
            }
        );
        assert_eq!(p.behaviour.audio_pause_max, Duration::from_secs(120));
        assert_eq!(
            p.rule("nibp-overdue").unwrap().escalate_after,
            Some(Duration::from_secs(180))
        );
    }

    #[test]
    fn overrides_change_values_and_record_their_source() {
        let p = Profile::load(
            Layer {
                source: Source::Default,
                text: KAP_DEFAULT,
            },
            &[
                Layer {
                    source: Source::Clinic("clinic.toml".into()),
                    text: "[rules.spo2-low]\nbelow = 88\ndelay = \"20s\"\n",
                },
                Layer {
                    source: Source::Patient("p-17.toml".into()),
                    text: "[rules.spo2-low]\nbelow = 87\n",
                },
            ],
        )
        .unwrap();
        let RuleSpec::Limit { bound, delay, .. } = &p.rule("spo2-low").unwrap().spec else {
            panic!()
        };
        assert_eq!(*bound, Bound::Below(87.0));
        assert_eq!(*delay, Duration::from_secs(20));
        let source_of = |key: &str| {
            p.settings
                .iter()
                .find(|s| s.scope == "spo2-low" && s.key == key)
                .map(|s| s.source.clone())
        };
        assert_eq!(
            source_of("below"),
            Some(Source::Patient("p-17.toml".into()))
        );
        assert_eq!(
            source_of("delay"),
            Some(Source::Clinic("clinic.toml".into()))
        );
        assert_eq!(source_of("priority"), Some(Source::Default));
    }

    #[test]
    fn every_problem_is_listed_with_its_location() {
        let bad = r#"
            name = "bad"
            [behaviour]
            audio_pause_max = "10m"
            [[rule]]
            id = "a"
            type = "limit"
            vital = "spo3"
            below = 90
            priority = "urgent"
            [[rule]]
            id = "a"
            type = "limit"
            vital = "pulse_rate"
            below = 130
            delay = "-5s"
            priority = "medium"
            [[rule]]
            id = "b"
            type = "limit"
            vital = "pulse_rate"
            above = 120
            priority = "medium"
            [[rule]]
            id = "c"
            type = "bp"
            systolic = 100
            diastolic = 120
            below = 3
            priority = "high"
            [[rule]]
            id = "d"
            type = "warp"
            priority = "low"
        "#;
        let errors = load_with(bad, &[]).unwrap_err().0;
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(
            has("behaviour.audio_pause_max: 10m is longer than the maximum 2m"),
            "{text:#?}"
        );
        assert!(
            has("rule #1 \"a\".vital: unknown vital \"spo3\""),
            "{text:#?}"
        );
        assert!(
            has("rule #1 \"a\".priority: \"urgent\" is not one of"),
            "{text:#?}"
        );
        assert!(has("rule #2 \"a\": duplicate rule id"), "{text:#?}");
        assert!(
            has("rule #2 \"a\".delay: \"-5s\" is not a duration"),
            "{text:#?}"
        );
        assert!(
            has("low limit 130 is not below the high limit 120"),
            "{text:#?}"
        );
        assert!(
            has("rule #4 \"c\".diastolic: 120 must be below systolic 100"),
            "{text:#?}"
        );
        assert!(
            has("rule #4 \"c\".below: does not apply to a bp rule"),
            "{text:#?}"
        );
        assert!(
            has("rule #5 \"d\".type: unknown rule type \"warp\""),
            "{text:#?}"
        );
        assert!(errors.len() >= 9, "{text:#?}");
    }

    #[test]
    fn absurd_values_are_refused() {
        let errors = load_with(
            "[[rule]]\nid=\"x\"\ntype=\"limit\"\nvital=\"spo2\"\nbelow=20\ndelay=\"3h\"\npriority=\"high\"\n",
            &[],
        )
        .unwrap_err()
        .0;
        let text = ProfileErrors(errors).to_string();
        assert!(
            text.contains("20 is outside the allowed range 70 to 100"),
            "{text}"
        );
        assert!(text.contains("3h is longer than the maximum 15m"), "{text}");
    }

    #[test]
    fn override_of_an_unknown_rule_or_bad_toml_is_reported() {
        let errors = load_with(
            KAP_DEFAULT,
            &[
                (
                    "[rules.spo2-lo]\nbelow = 88\n",
                    Source::Patient("p.toml".into()),
                ),
                (
                    "[rules.spo2-low\nbelow = 88\n",
                    Source::Patient("q.toml".into()),
                ),
            ],
        )
        .unwrap_err()
        .0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].location, "patient p.toml: rules.spo2-lo");
        assert!(
            errors[1].message.starts_with("not valid TOML"),
            "{errors:?}"
        );
    }
}
