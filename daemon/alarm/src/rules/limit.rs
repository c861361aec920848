//! `limit`: a vital beyond a limit, with a persistence delay and clearing hysteresis.

use super::*;
use crate::engine::Truth;
use crate::profile::{Origin, ProfileError};

pub(crate) struct Limit;

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
        // Hypercapnia limits sit at 45–60 mmHg; below 5 or above 100 nothing would fire in time.
        Vital::Etco2 => 5.0..=100.0,
        // A rate limit below 1 breath/min could never fire (0 is apnea, its own rule).
        Vital::RespiratoryRate => 1.0..=60.0,
    }
}

impl Kind for Limit {
    fn name(&self) -> &'static str {
        "limit"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "vital",
            "below",
            "above",
            "delay",
            "clear_margin",
            "clear_after",
        ]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        let vitals = f.vitals("vital");
        let range = vitals
            .as_ref()
            .and_then(|v| v.first())
            .map(|v| limit_range(*v))
            .unwrap_or(0.0..=1000.0);
        let bound = match (f.table.contains_key("below"), f.table.contains_key("above")) {
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
        Some(RuleSpec::Limit {
            vitals: vitals?,
            bound: bound?,
            delay,
            clear_margin,
            clear_after,
        })
    }

    fn scope(&self) -> Scope {
        Scope::Vital
    }

    fn own_deadlines(&self) -> bool {
        false
    }

    fn physiological(&self) -> bool {
        true
    }

    fn timing(&self, spec: &RuleSpec) -> (Duration, Duration) {
        match spec {
            RuleSpec::Limit {
                delay, clear_after, ..
            } => (*delay, *clear_after),
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }

    /// A cuff reading five minutes old does not make "sustained for five minutes".
    fn needs_fresh_evidence(&self) -> bool {
        true
    }

    fn judges_samples_of(&self, spec: &RuleSpec, vital: Vital) -> bool {
        matches!(spec, RuleSpec::Limit { vitals, .. } if vitals.contains(&vital))
    }

    fn on(&self, spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        let RuleSpec::Limit {
            vitals,
            bound,
            delay,
            ..
        } = spec
        else {
            return None;
        };
        match *signal {
            // A spot-check is a settled measurement, like a cuff's: judged at once against
            // every limit of its vital, and ended by the next one in range (F12).
            Signal::Sample {
                vital, value, spot, ..
            } if spot && vitals.contains(&vital) => Some(Verdict::Measured(
                limit_truth(*bound, value) == Truth::Violating,
                Some(value),
            )),
            // "Sustained for N minutes" needs a value that is watched continuously; an
            // intermittent one (a cuff's pulse rate) is held only to instantaneous limits.
            Signal::Sample {
                vital,
                value,
                continuous,
                complete_bp,
                ..
            } if vitals.contains(&vital) && (continuous || delay.is_zero()) => {
                let truth = limit_truth(*bound, value);
                // A partial BP may show a limit is met, but never ends a condition.
                if vital.is_nibp() && !complete_bp && truth != Truth::Violating {
                    Some(Verdict::InterruptClearing)
                } else {
                    Some(Verdict::Truth(truth, Some(value)))
                }
            }
            Signal::NotEvidence => Some(Verdict::InterruptClearing),
            _ => None,
        }
    }

    fn check_profile(&self, rules: &[Rule], origin: &Origin<'_>, errors: &mut Vec<ProfileError>) {
        check_limit_pairs(rules, origin, errors);
    }

    fn target<'a>(&self, spec: &'a RuleSpec) -> Option<(&'a [Vital], Option<Bound>)> {
        match spec {
            RuleSpec::Limit { vitals, bound, .. } => Some((vitals, Some(*bound))),
            _ => None,
        }
    }

    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        match spec {
            RuleSpec::Limit { delay, .. } => Some(("delay", *delay)),
            _ => None,
        }
    }

    fn clear_after(&self, spec: &RuleSpec) -> Option<Duration> {
        match spec {
            RuleSpec::Limit { clear_after, .. } => Some(*clear_after),
            _ => None,
        }
    }

    fn limits(&self, spec: &RuleSpec) -> Vec<(Vital, Bound, &'static str)> {
        let RuleSpec::Limit { vitals, bound, .. } = spec else {
            return Vec::new();
        };
        let key = match bound {
            Bound::Below(_) => "below",
            Bound::Above(_) => "above",
        };
        vitals.iter().map(|v| (*v, *bound, key)).collect()
    }
}

/// A valid sample against a limit. Back in range, whether inside the clearing margin or past
/// it, the condition ends only after the rule's clearing time of in-range evidence.
fn limit_truth(bound: Bound, value: f64) -> Truth {
    let violating = match bound {
        Bound::Below(limit) => value < limit,
        Bound::Above(limit) => value > limit,
    };
    if violating {
        Truth::Violating
    } else {
        Truth::InRange
    }
}

/// A low limit at or above a high limit for the same vital can never be in range.
fn check_limit_pairs(rules: &[Rule], origin: &Origin<'_>, errors: &mut Vec<ProfileError>) {
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
                    // Whichever limit an override moved is the one to name.
                    location: origin.locate(&high.id, "above", || {
                        origin.locate(&low.id, "below", || {
                            format!("{}: rule \"{}\"", origin.base, low.id)
                        })
                    }),
                    message: format!(
                        "low limit {lo} is not below the high limit {hi} of rule \"{}\"",
                        high.id
                    ),
                });
            }
        }
    }
}
