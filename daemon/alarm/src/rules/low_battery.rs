//! `low_battery`: the device reports a low battery; clears when the reports stop.

use super::*;
use crate::engine::Truth;

pub(crate) struct LowBattery;

impl Kind for LowBattery {
    fn name(&self) -> &'static str {
        "low_battery"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["clear_after"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::LowBattery {
            clear_after: f
                .duration("clear_after", HOUR)
                .unwrap_or(Duration::from_secs(60)),
        })
    }

    fn scope(&self) -> Scope {
        Scope::Device
    }

    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        matches!(signal, Signal::LowBattery).then_some(Verdict::Truth(Truth::Violating, None))
    }

    fn clear_deadline(
        &self,
        spec: &RuleSpec,
        low_battery_at: Option<Instant>,
        _clearing_since: Option<Instant>,
    ) -> Option<Instant> {
        match spec {
            RuleSpec::LowBattery { clear_after } => Some(low_battery_at? + *clear_after),
            _ => None,
        }
    }
}
