//! `no_baseline`: the dose was marked with no pre-dose BP to serve as baseline.

use super::*;
use crate::engine::Truth;

pub(crate) struct NoBaseline;

impl Kind for NoBaseline {
    fn name(&self) -> &'static str {
        "no_baseline"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn parse(&self, _f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::NoBaseline)
    }

    fn scope(&self) -> Scope {
        Scope::Session
    }

    fn own_deadlines(&self) -> bool {
        false
    }

    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        match *signal {
            Signal::Dose { baseline: false } => Some(Verdict::Truth(Truth::Violating, None)),
            Signal::BaselineSet => Some(Verdict::Truth(Truth::ClearNow, None)),
            _ => None,
        }
    }

    /// Says why there is none.
    fn message(
        &self,
        message: &str,
        baseline_missing: Option<&str>,
        _unreadable: &[String],
    ) -> String {
        match baseline_missing {
            Some(why) => format!("{message}: {why}"),
            None => message.to_string(),
        }
    }
}
