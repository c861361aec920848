//! `record_unreadable`: part of the session record could not be read back after a restart.

use super::*;

pub(crate) struct RecordUnreadable;

impl Kind for RecordUnreadable {
    fn name(&self) -> &'static str {
        "record_unreadable"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn parse(&self, _f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::RecordUnreadable)
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    fn own_deadlines(&self) -> bool {
        false
    }

    /// Nothing will end it but a person: it latches until reset.
    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        matches!(signal, Signal::Unreadable).then_some(Verdict::Latch)
    }

    /// Names the rows.
    fn message(
        &self,
        message: &str,
        _baseline_missing: Option<&str>,
        unreadable: &[String],
    ) -> String {
        if unreadable.is_empty() {
            message.to_string()
        } else {
            format!("{message} ({})", unreadable.join(", "))
        }
    }
}
