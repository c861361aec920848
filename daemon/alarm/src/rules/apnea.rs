//! `apnea`: no breath. The device reports its own apnea event, or a valid respiratory rate of 0.
//!
//! One condition per device on its respiratory rate, so that the rate's samples (a breath ends
//! it, a questioned or implausible one interrupts its clearing) and the device's apnea event
//! meet in the same place, and so that `not-current` keeps a streamed rate current.

use super::*;
use crate::engine::Truth;

pub(crate) struct Apnea;

impl Kind for Apnea {
    fn name(&self) -> &'static str {
        "apnea"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["delay", "clear_after"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::Apnea {
            delay: f.duration("delay", 2 * MINUTE).unwrap_or_default(),
            clear_after: f.duration("clear_after", 2 * MINUTE).unwrap_or_default(),
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
            RuleSpec::Apnea { delay, clear_after } => (*delay, *clear_after),
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }

    fn judges_samples_of(&self, spec: &RuleSpec, vital: Vital) -> bool {
        matches!(spec, RuleSpec::Apnea { .. }) && vital == Vital::RespiratoryRate
    }

    /// The apnea event or a rate of 0 meets it; a rate above 0 is a breath, and only breaths
    /// for `clear_after` without a gap end it (an apnea event in between starts that over).
    fn on(&self, spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        if !matches!(spec, RuleSpec::Apnea { .. }) {
            return None;
        }
        match *signal {
            Signal::Apnea => Some(Verdict::Truth(Truth::Violating, None)),
            Signal::Sample {
                vital: Vital::RespiratoryRate,
                value,
                ..
            } => {
                let truth = if value <= 0.0 {
                    Truth::Violating
                } else {
                    Truth::InRange
                };
                Some(Verdict::Truth(truth, Some(value)))
            }
            Signal::NotEvidence => Some(Verdict::InterruptClearing),
            _ => None,
        }
    }

    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        match spec {
            RuleSpec::Apnea { delay, .. } => Some(("delay", *delay)),
            _ => None,
        }
    }

    fn clear_after(&self, spec: &RuleSpec) -> Option<Duration> {
        match spec {
            RuleSpec::Apnea { clear_after, .. } => Some(*clear_after),
            _ => None,
        }
    }
}
