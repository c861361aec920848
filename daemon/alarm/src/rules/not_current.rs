//! `not_current`: no valid sample of a vital from a device for too long.

use super::*;
use crate::engine::Truth;

pub(crate) struct NotCurrent;

impl Kind for NotCurrent {
    fn name(&self) -> &'static str {
        "not_current"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["vital", "after"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        let vitals = f.vitals("vital");
        let after = f.required_duration("after", 5 * MINUTE);
        Some(RuleSpec::NotCurrent {
            vitals: vitals?,
            after: after?,
        })
    }

    fn scope(&self) -> Scope {
        Scope::Vital
    }

    /// Every continuous vital a limit rule watches must stay current, whether or not this rule
    /// lists it: a limit on a silent value would never sound.
    fn watched_vitals(&self, spec: &RuleSpec, continuous: &[Vital], rules: &[Rule]) -> Vec<Vital> {
        let RuleSpec::NotCurrent { vitals, .. } = spec else {
            return Vec::new();
        };
        continuous
            .iter()
            .copied()
            .filter(|v| {
                vitals.contains(v)
                    || rules
                        .iter()
                        .any(|r| r.spec.kind().judges_samples_of(&r.spec, *v))
            })
            .collect()
    }

    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        match *signal {
            Signal::Current { value } => Some(Verdict::Truth(Truth::ClearNow, Some(value))),
            _ => None,
        }
    }

    fn idle_deadline(
        &self,
        spec: &RuleSpec,
        _session: &SessionFacts,
        last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        match spec {
            RuleSpec::NotCurrent { after, .. } => Some(last_valid()? + *after),
            _ => None,
        }
    }

    fn target<'a>(&self, spec: &'a RuleSpec) -> Option<(&'a [Vital], Option<Bound>)> {
        match spec {
            RuleSpec::NotCurrent { vitals, .. } => Some((vitals, None)),
            _ => None,
        }
    }

    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        match spec {
            RuleSpec::NotCurrent { after, .. } => Some(("after", *after)),
            _ => None,
        }
    }
}
