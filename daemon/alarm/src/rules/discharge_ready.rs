//! `discharge_ready`: time since dose and BP back near baseline (informational).

use super::*;

pub(crate) struct DischargeReady;

impl Kind for DischargeReady {
    fn name(&self) -> &'static str {
        "discharge_ready"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["after", "systolic_margin", "diastolic_margin"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::DischargeReady {
            after: f.required_duration("after", 12 * HOUR)?,
            systolic_margin: f.number("systolic_margin", 0.0..=60.0).unwrap_or(0.0),
            diastolic_margin: f.number("diastolic_margin", 0.0..=60.0).unwrap_or(0.0),
        })
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    fn physiological(&self) -> bool {
        true
    }

    /// Re-evaluated at each complete BP measurement.
    fn on(&self, spec: &RuleSpec, signal: &Signal, session: &SessionFacts) -> Option<Verdict> {
        signal
            .complete_bp_systolic()
            .map(|_| Verdict::Truth(truth(ready(spec, session)), None))
    }

    fn idle_deadline(
        &self,
        spec: &RuleSpec,
        session: &SessionFacts,
        _last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        let RuleSpec::DischargeReady { after, .. } = spec else {
            return None;
        };
        let at = session.dose? + *after;
        (session.now.is_none_or(|n| n < at)).then_some(at)
    }

    /// Not ready at that time: re-evaluated at each later BP measurement.
    fn holds_at_deadline(&self, spec: &RuleSpec, session: &SessionFacts) -> bool {
        ready(spec, session)
    }
}

fn truth(ready: bool) -> crate::engine::Truth {
    if ready {
        crate::engine::Truth::Violating
    } else {
        crate::engine::Truth::ClearNow
    }
}

fn ready(spec: &RuleSpec, session: &SessionFacts) -> bool {
    let RuleSpec::DischargeReady {
        after,
        systolic_margin,
        diastolic_margin,
    } = *spec
    else {
        return false;
    };
    let (Some(now), Some(dose), Some(base), Some((_, last))) =
        (session.now, session.dose, session.baseline, session.last_bp)
    else {
        return false;
    };
    now >= dose + after
        && last.systolic <= base.systolic + systolic_margin
        && last.diastolic <= base.diastolic + diastolic_margin
}
