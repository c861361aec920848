//! `bp`: a completed BP measurement at or above thresholds, optionally confirmed by a repeat.

use super::*;
use crate::engine::Truth;

pub(crate) struct Bp;

impl Kind for Bp {
    fn name(&self) -> &'static str {
        "bp"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "phase",
            "compare",
            "systolic",
            "diastolic",
            "confirm_within",
            "unconfirmed_priority",
        ]
    }

    fn parse(&self, f: &mut Fields<'_>, priority: Option<Priority>) -> Option<RuleSpec> {
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
        let unconfirmed_priority = if f.table.contains_key("unconfirmed_priority") {
            f.priority("unconfirmed_priority")
        } else {
            priority
        };
        Some(RuleSpec::Bp {
            phase: phase?,
            compare: compare?,
            systolic: systolic?,
            diastolic: diastolic?,
            confirm_within,
            unconfirmed_priority: unconfirmed_priority?,
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
        let RuleSpec::Bp {
            phase,
            compare,
            systolic: s_lim,
            diastolic: d_lim,
            confirm_within,
            ..
        } = *spec
        else {
            return None;
        };
        match *signal {
            Signal::Bp {
                systolic,
                diastolic,
            } => {
                let dosed = session.dose.is_some();
                let in_phase = match phase {
                    Phase::Any => true,
                    Phase::PreDose => !dosed,
                    Phase::PostDose => dosed,
                };
                if !in_phase {
                    return None;
                }
                let shown = systolic.or(diastolic);
                let meets = systolic.is_some_and(|s| compare.meets(s, s_lim))
                    || diastolic.is_some_and(|d| compare.meets(d, d_lim));
                if !meets {
                    // A partial measurement never ends it.
                    (systolic.is_some() && diastolic.is_some())
                        .then_some(Verdict::Truth(Truth::ClearNow, shown))
                } else if let Some(within) = confirm_within {
                    Some(Verdict::Confirm(within, shown))
                } else {
                    Some(Verdict::Truth(Truth::Violating, shown))
                }
            }
            Signal::Dose { .. } if phase == Phase::PreDose => {
                Some(Verdict::Truth(Truth::ClearNow, None))
            }
            _ => None,
        }
    }

    fn declared_priority(
        &self,
        spec: &RuleSpec,
        priority: Priority,
    ) -> (Priority, Option<Duration>) {
        match *spec {
            RuleSpec::Bp {
                confirm_within: Some(within),
                unconfirmed_priority,
                ..
            } => (unconfirmed_priority, Some(within)),
            _ => (priority, None),
        }
    }

    fn confirm_within(&self, spec: &RuleSpec) -> Option<Duration> {
        match *spec {
            RuleSpec::Bp { confirm_within, .. } => confirm_within,
            _ => None,
        }
    }

    /// A repeat given longer to confirm never sounds in time.
    fn at_most(&self, spec: &RuleSpec) -> Vec<(&'static str, Duration)> {
        match *spec {
            RuleSpec::Bp {
                confirm_within: Some(w),
                ..
            } => vec![("confirm_within", w)],
            _ => Vec::new(),
        }
    }

    fn limits(&self, spec: &RuleSpec) -> Vec<(Vital, Bound, &'static str)> {
        match *spec {
            RuleSpec::Bp {
                systolic,
                diastolic,
                ..
            } => vec![
                (Vital::NibpSystolic, Bound::Above(systolic), "systolic"),
                (Vital::NibpDiastolic, Bound::Above(diastolic), "diastolic"),
            ],
            _ => Vec::new(),
        }
    }

    fn unconfirmed_priority(&self, spec: &RuleSpec) -> Option<Priority> {
        match *spec {
            RuleSpec::Bp {
                unconfirmed_priority,
                ..
            } => Some(unconfirmed_priority),
            _ => None,
        }
    }
}
