//! `nibp_repeat_overdue`: a repeat NIBP a BP rule asked for has not come in its window.

use super::*;
use crate::engine::Truth;

pub(crate) struct NibpRepeatOverdue;

impl Kind for NibpRepeatOverdue {
    fn name(&self) -> &'static str {
        "nibp_repeat_overdue"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn parse(&self, _f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::NibpRepeatOverdue)
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    /// A complete measurement is the repeat.
    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        signal
            .complete_bp_systolic()
            .map(|s| Verdict::Truth(Truth::ClearNow, Some(s)))
    }

    fn idle_deadline(
        &self,
        _spec: &RuleSpec,
        session: &SessionFacts,
        _last_valid: &dyn Fn() -> Option<Instant>,
    ) -> Option<Instant> {
        session.repeat_due
    }
}
