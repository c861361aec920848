//! `nibp_overdue`: no NIBP measurement by a scheduled time after the dose.

use super::*;
use crate::engine::Truth;

pub(crate) struct NibpOverdue;

impl Kind for NibpOverdue {
    fn name(&self) -> &'static str {
        "nibp_overdue"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "first_after_dose",
            "every",
            "until",
            "early_tolerance",
            "grace",
        ]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
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
        Some(RuleSpec::NibpOverdue {
            first_after_dose: first?,
            every: every.filter(|e| *e >= MINUTE)?,
            until: until?,
            early_tolerance: early,
            grace,
        })
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    /// A complete measurement is the scheduled reading.
    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        signal
            .complete_bp_systolic()
            .map(|s| Verdict::Truth(Truth::ClearNow, Some(s)))
    }

    fn idle_deadline(
        &self,
        spec: &RuleSpec,
        session: &SessionFacts,
        _last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        let RuleSpec::NibpOverdue {
            first_after_dose,
            every,
            until,
            early_tolerance,
            grace,
        } = *spec
        else {
            return None;
        };
        let dose = session.dose?;
        // The first scheduled time that no measurement satisfies.
        let satisfied_until = session
            .last_bp
            .map(|(t, _)| t + early_tolerance)
            .filter(|t| *t >= dose);
        let mut due = dose + first_after_dose;
        while due <= dose + until {
            if satisfied_until.is_none_or(|s| due > s) {
                return Some(due + grace);
            }
            due += every;
        }
        None
    }

    /// A sparser schedule (a first check after the session) never sounds in time.
    fn at_most(&self, spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        match *spec {
            RuleSpec::NibpOverdue {
                first_after_dose,
                every,
                early_tolerance,
                grace,
                ..
            } => vec![
                ("first_after_dose", first_after_dose),
                ("every", every),
                ("early_tolerance", early_tolerance),
                ("grace", grace),
            ],
            _ => Vec::new(),
        }
    }

    /// A schedule that stops earlier leaves the rest of the session unwatched.
    fn at_least(&self, spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        match *spec {
            RuleSpec::NibpOverdue { until, .. } => vec![("until", until)],
            _ => Vec::new(),
        }
    }
}
