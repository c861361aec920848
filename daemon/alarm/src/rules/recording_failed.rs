//! `recording_failed`: the session record cannot be written.

use super::*;
use crate::engine::Truth;

pub(crate) struct RecordingFailed;

impl Kind for RecordingFailed {
    fn name(&self) -> &'static str {
        "recording_failed"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn parse(&self, _f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::RecordingFailed)
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    fn own_deadlines(&self) -> bool {
        false
    }

    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        match *signal {
            Signal::Recording { failing: true } => Some(Verdict::Truth(Truth::Violating, None)),
            Signal::Recording { failing: false } => Some(Verdict::Truth(Truth::ClearNow, None)),
            _ => None,
        }
    }
}
