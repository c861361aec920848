//! `baseline_rise`: a post-dose rise over the session's pre-dose baseline.

use super::*;
use crate::engine::Truth;

pub(crate) struct BaselineRise;

impl Kind for BaselineRise {
    fn name(&self) -> &'static str {
        "baseline_rise"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["systolic_rise", "diastolic_rise"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::BaselineRise {
            systolic_rise: f.required_number("systolic_rise", 5.0..=100.0)?,
            diastolic_rise: f.required_number("diastolic_rise", 5.0..=100.0)?,
        })
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    fn own_deadlines(&self) -> bool {
        false
    }

    fn physiological(&self) -> bool {
        true
    }

    fn on(&self, spec: &RuleSpec, signal: &Signal, session: &SessionFacts) -> Option<Verdict> {
        let (
            RuleSpec::BaselineRise {
                systolic_rise,
                diastolic_rise,
            },
            Signal::Bp {
                systolic,
                diastolic,
            },
        ) = (spec, *signal)
        else {
            return None;
        };
        let (Some(base), true) = (session.baseline, session.dose.is_some()) else {
            return None;
        };
        let shown = systolic.or(diastolic);
        let meets = systolic.is_some_and(|s| s - base.systolic >= *systolic_rise)
            || diastolic.is_some_and(|d| d - base.diastolic >= *diastolic_rise);
        if meets {
            Some(Verdict::Truth(Truth::Violating, shown))
        } else {
            (systolic.is_some() && diastolic.is_some())
                .then_some(Verdict::Truth(Truth::ClearNow, shown))
        }
    }
}
