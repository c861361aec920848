//! The safety envelope: a clinic's profile or an override may tighten an alarm, never silence it.
//!
//! Every profile is held against [`ENVELOPE`] when it is loaded, after its values are validated
//! (IEC 60601-1-8 and alarms.md section 4.3 item 4: the configurable range of limits is bounded
//! so that tuning for fatigue can never quietly disable an alarm). What the envelope protects is
//! derived from the shipped default profile itself: every rule there that sounds (priority above
//! `info`) must stay, keep its type, keep watching its vitals and its side of the limit, never
//! become `info`, and keep escalating. On top of that, the table below sets priority floors,
//! delay bounds and limit bounds. A technical rule added to the default is protected by being
//! there, with no list to update here.

use super::load::Origin;
use super::{Bound, Priority, Profile, ProfileError, Rule, RuleSpec};
use crate::rules::Kind;
use std::sync::OnceLock;
use std::time::Duration;
use vigil_protocol::Vital;

/// The safety envelope, one table: what no override may go past. Like the default profile, a
/// configurable default for clinical review; changing it is a change to Vigil, not to a clinic's
/// configuration.
#[derive(Debug)]
pub struct Envelope {
    /// The lowest priority a rule of the default profile may be given. A rule not listed here
    /// that sounds in the default may be lowered to `low`, never to `info`.
    pub floors: &'static [(&'static str, Priority)],
    /// The longest delay (a limit's `delay`, not-current's `after`, a technical rule's `delay`)
    /// a rule of the default profile may be given.
    pub delays: &'static [(&'static str, Duration)],
    /// The furthest any limit may sit on the silent side, per vital.
    pub limits: &'static [LimitBound],
}

/// One row of the limit bounds.
#[derive(Debug, Clone, Copy)]
pub struct LimitBound {
    /// The vital (a BP rule's systolic and diastolic thresholds count as NIBP systolic and
    /// diastolic limits).
    pub vital: Vital,
    /// The alarm side of the limits this row bounds.
    pub side: Side,
    /// A low limit may not be under this; a high limit may not be over it.
    pub bound: f64,
}

/// Which side of a limit sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Alarm below the limit (a low limit).
    Low,
    /// Alarm above the limit (a high limit).
    High,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn limit(vital: Vital, side: Side, bound: f64) -> LimitBound {
    LimitBound { vital, side, bound }
}

/// The envelope (issue 14 section 4; alarms.md section 6 for the default values it surrounds).
pub const ENVELOPE: Envelope = Envelope {
    floors: &[
        ("spo2-critical", Priority::High),
        ("bp-crisis", Priority::High),
        ("pr-critical-low", Priority::High),
        ("spo2-low", Priority::Medium),
        ("sbp-low", Priority::Medium),
        ("pr-high", Priority::Medium),
        ("pr-very-high", Priority::Medium),
        ("pr-low", Priority::Medium),
        ("bp-severe", Priority::Medium),
        ("bp-rise", Priority::Medium),
        ("apnea", Priority::High),
        ("rr-low", Priority::Medium),
        ("etco2-high", Priority::Medium),
    ],
    delays: &[
        ("spo2-critical", secs(10)),
        ("spo2-low", secs(30)),
        ("pr-very-high", secs(30)),
        ("pr-low", secs(30)),
        ("pr-critical-low", secs(30)),
        // Sustained tachycardia is defined by its minutes; it keeps them.
        ("pr-high", secs(5 * 60)),
        ("not-current", secs(30)),
        ("device-disconnected", secs(10)),
        ("sensor-off", secs(15)),
        // No breath is High, like SpO2 below 85: its delay may only be shortened.
        ("apnea", secs(20)),
        ("rr-low", secs(60)),
        ("etco2-high", secs(60)),
    ],
    limits: &[
        limit(Vital::Spo2, Side::Low, 80.0),
        limit(Vital::PulseRate, Side::High, 160.0),
        limit(Vital::HeartRate, Side::High, 160.0),
        limit(Vital::PulseRate, Side::Low, 35.0),
        limit(Vital::HeartRate, Side::Low, 35.0),
        limit(Vital::NibpSystolic, Side::Low, 70.0),
        limit(Vital::NibpSystolic, Side::High, 220.0),
        limit(Vital::NibpDiastolic, Side::High, 130.0),
        // Below 6 breaths/min is bradypnoea near apnea; above 60 mmHg EtCO2 is marked
        // hypoventilation (docs/breathing.md).
        limit(Vital::RespiratoryRate, Side::Low, 6.0),
        limit(Vital::Etco2, Side::High, 60.0),
    ],
};

/// The shipped default as written: which rules exist, what they watch, how they escalate.
fn reference() -> Option<&'static Profile> {
    static REFERENCE: OnceLock<Option<Profile>> = OnceLock::new();
    REFERENCE
        .get_or_init(|| Profile::kap_default_unchecked().ok())
        .as_ref()
}

/// Holds `profile` against the envelope, adding one problem per violation. `written` lists the
/// rule ids the profile's text has (a rule that failed validation is missing from `profile`
/// but was not removed: its own problems are already reported).
pub(super) fn check(
    profile: &Profile,
    written: &[&str],
    origin: &Origin<'_>,
    errors: &mut Vec<ProfileError>,
) {
    let Some(reference) = reference() else {
        errors.push(ProfileError {
            location: "built-in default".into(),
            message: "the shipped profile does not load, so no profile can be checked".into(),
        });
        return;
    };
    let mut v = Violations { origin, errors };
    let mut escalation_reported = false;
    for r in reference
        .rules
        .iter()
        .filter(|r| r.priority > Priority::Info)
    {
        if !written.contains(&r.id.as_str()) {
            v.at_base(
                &r.id,
                "cannot be removed: every alarm rule of the default profile stays (the safety \
                 envelope: an override may tighten an alarm, never silence it)",
            );
            continue;
        }
        let Some(rule) = profile.rule(&r.id) else {
            continue;
        };
        if std::mem::discriminant(&rule.spec) != std::mem::discriminant(&r.spec) {
            v.at(&r.id, "type", "cannot change: the rule keeps its type");
            continue;
        }
        check_priority(r, rule, &mut v);
        check_target(r, rule, &mut v);
        check_delay(rule, &mut v);
        check_clearing(r, rule, &mut v);
        check_schedule(r, rule, &mut v);
        if rule.latching == Some(false) {
            v.at(
                &r.id,
                "latching",
                "cannot be switched off: an alarm of the default profile latches when it is High \
                 or a loss of communication, until a person resets it",
            );
        }
        // Switched off, or slower than the default's: an alarm nobody acknowledges must rise
        // in time.
        let problem = match (r.escalate_after, rule.escalate_after) {
            (Some(_), None) => Some(ESCALATION_OFF.to_string()),
            (Some(max), Some(d)) if d > max => Some(format!(
                "{} is longer than the default's {}: an alarm nobody acknowledges must rise in time",
                humantime::format_duration(d),
                humantime::format_duration(max)
            )),
            _ => None,
        };
        if let Some(message) = problem {
            let own = origin
                .sources
                .contains_key(&(rule.id.clone(), "escalate_after".into()));
            if own {
                v.at(&rule.id, "escalate_after", message);
            } else if !escalation_reported {
                escalation_reported = true;
                v.at("behaviour", "escalate_unacknowledged_after", message);
            }
        }
    }
    for rule in &profile.rules {
        check_limits(rule, &mut v);
    }
}

const ESCALATION_OFF: &str =
    "escalation cannot be switched off: an alarm nobody acknowledges must rise (at most \"1h\")";

/// Adds violations, each located in the layer that wrote the offending value.
struct Violations<'a, 'b> {
    origin: &'a Origin<'b>,
    errors: &'a mut Vec<ProfileError>,
}

impl Violations<'_, '_> {
    fn at(&mut self, scope: &str, key: &str, message: impl Into<String>) {
        let base = self.origin.base;
        let location = self.origin.locate(scope, key, || {
            if scope == "behaviour" {
                format!("{base}: behaviour.{key}")
            } else {
                format!("{base}: rule \"{scope}\".{key}")
            }
        });
        self.errors.push(ProfileError {
            location,
            message: message.into(),
        });
    }

    fn at_base(&mut self, id: &str, message: &str) {
        self.errors.push(ProfileError {
            location: format!("{}: rule \"{id}\"", self.origin.base),
            message: message.into(),
        });
    }
}

fn name(p: Priority) -> &'static str {
    match p {
        Priority::Info => "info",
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
    }
}

fn check_priority(reference: &Rule, rule: &Rule, v: &mut Violations<'_, '_>) {
    let floor = ENVELOPE
        .floors
        .iter()
        .find(|(id, _)| *id == rule.id)
        .map_or(Priority::Low, |(_, p)| *p);
    if rule.priority == Priority::Info {
        v.at(
            &rule.id,
            "priority",
            format!(
                "info is below this alarm's floor {}: info never sounds, so it would silence \
                 the alarm",
                name(floor)
            ),
        );
    } else if rule.priority < floor {
        v.at(
            &rule.id,
            "priority",
            format!(
                "{} is below this alarm's floor {}: an override may raise a priority, never \
                 lower it past the floor",
                name(rule.priority),
                name(floor)
            ),
        );
    }
    if let (Some(was), Some(now)) = (
        unconfirmed_priority(&reference.spec),
        unconfirmed_priority(&rule.spec),
    ) {
        if was > Priority::Info && now == Priority::Info {
            v.at(
                &rule.id,
                "unconfirmed_priority",
                "cannot be info: an unconfirmed reading must still sound",
            );
        }
    }
}

fn unconfirmed_priority(spec: &RuleSpec) -> Option<Priority> {
    spec.kind().unconfirmed_priority(spec)
}

/// The vitals a rule watches and the side of its limit, where it has them.
fn target(spec: &RuleSpec) -> Option<(&[Vital], Option<Side>)> {
    let (vitals, bound) = spec.kind().target(spec)?;
    Some((vitals, bound.as_ref().map(side)))
}

fn side(bound: &Bound) -> Side {
    match bound {
        Bound::Below(_) => Side::Low,
        Bound::Above(_) => Side::High,
    }
}

fn check_target(reference: &Rule, rule: &Rule, v: &mut Violations<'_, '_>) {
    let (Some((was, was_side)), Some((now, now_side))) =
        (target(&reference.spec), target(&rule.spec))
    else {
        return;
    };
    let dropped: Vec<&str> = was
        .iter()
        .filter(|x| !now.contains(x))
        .map(|x| x.name())
        .collect();
    if !dropped.is_empty() {
        v.at(
            &rule.id,
            "vital",
            format!(
                "cannot stop watching {}: the rule keeps its vitals (more may be added)",
                dropped.join(", ")
            ),
        );
    }
    if was_side != now_side {
        let key = if was_side == Some(Side::Low) {
            "above"
        } else {
            "below"
        };
        v.at(
            &rule.id,
            key,
            "cannot turn the limit around: the rule keeps its side (below or above)",
        );
    }
}

fn check_delay(rule: &Rule, v: &mut Violations<'_, '_>) {
    let Some((_, max)) = ENVELOPE.delays.iter().find(|(id, _)| *id == rule.id) else {
        return;
    };
    let Some((key, d)) = rule.spec.kind().delay(&rule.spec) else {
        return;
    };
    if d > *max {
        v.at(
            &rule.id,
            key,
            format!(
                "{} is longer than this alarm's bound {}",
                humantime::format_duration(d),
                humantime::format_duration(*max)
            ),
        );
    }
}

/// A clearing time: shorter than the default's, fewer in-range samples end an alarm (zero:
/// one sample does, and a value hovering at the limit never sounds), or a briefer reconnect
/// ends a disconnection (and a flapping link never sounds).
fn check_clearing(reference: &Rule, rule: &Rule, v: &mut Violations<'_, '_>) {
    let (Some(least), Some(clear_after)) = (
        reference.spec.kind().clear_after(&reference.spec),
        rule.spec.kind().clear_after(&rule.spec),
    ) else {
        return;
    };
    let (least, clear_after) = (&least, &clear_after);
    if clear_after < least {
        v.at(
            &rule.id,
            "clear_after",
            format!(
                "{} is shorter than this alarm's least clearing time {}",
                humantime::format_duration(*clear_after),
                humantime::format_duration(*least)
            ),
        );
    }
}

/// The NIBP schedule and a BP rule's confirmation window: an override may make them denser or
/// shorter, never sparser or longer (a first check after the session, or a repeat given half
/// an hour, never sounds in time).
fn check_schedule(reference: &Rule, rule: &Rule, v: &mut Violations<'_, '_>) {
    let (was, now) = (reference.spec.kind(), rule.spec.kind());
    for ((key, max), (_, d)) in was
        .at_most(&reference.spec)
        .into_iter()
        .zip(now.at_most(&rule.spec))
    {
        if d > max {
            let (d, max) = (
                humantime::format_duration(d),
                humantime::format_duration(max),
            );
            v.at(
                &rule.id,
                key,
                format!("{d} is longer than the default's {max}"),
            );
        }
    }
    for ((key, least), (_, d)) in was
        .at_least(&reference.spec)
        .into_iter()
        .zip(now.at_least(&rule.spec))
    {
        if d < least {
            let (d, least) = (
                humantime::format_duration(d),
                humantime::format_duration(least),
            );
            v.at(
                &rule.id,
                key,
                format!("{d} is shorter than the default's {least}"),
            );
        }
    }
}

/// Every limit a rule sets: the vital, the alarm side, the value and the key that sets it.
fn limits(spec: &RuleSpec) -> Vec<(Vital, Side, f64, &'static str)> {
    let value = |bound: Bound| match bound {
        Bound::Below(x) | Bound::Above(x) => x,
    };
    spec.kind()
        .limits(spec)
        .into_iter()
        .map(|(vital, bound, key)| (vital, side(&bound), value(bound), key))
        .collect()
}

fn check_limits(rule: &Rule, v: &mut Violations<'_, '_>) {
    for (vital, side, value, key) in limits(&rule.spec) {
        let Some(row) = ENVELOPE
            .limits
            .iter()
            .find(|b| b.vital == vital && b.side == side)
        else {
            continue;
        };
        let outside = match side {
            Side::Low => value < row.bound,
            Side::High => value > row.bound,
        };
        if outside {
            let (which, limit) = match side {
                Side::Low => ("low limit", "under"),
                Side::High => ("high limit", "over"),
            };
            v.at(
                &rule.id,
                key,
                format!(
                    "{value} is {limit} the bound {}: a {} {which} may not be {limit} {}",
                    row.bound,
                    vital.name(),
                    row.bound
                ),
            );
        }
    }
}
