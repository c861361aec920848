//! `sensor_off`: the device reports its sensor off, disconnected or defective.

use super::*;
use crate::engine::Truth;

pub(crate) struct SensorOff;

impl Kind for SensorOff {
    fn name(&self) -> &'static str {
        "sensor_off"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["delay"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::SensorOff {
            delay: f.duration("delay", 5 * MINUTE).unwrap_or_default(),
        })
    }

    fn scope(&self) -> Scope {
        Scope::Device
    }

    fn own_deadlines(&self) -> bool {
        false
    }

    fn timing(&self, spec: &RuleSpec) -> (Duration, Duration) {
        (
            self.delay(spec).map_or(Duration::ZERO, |(_, d)| d),
            Duration::ZERO,
        )
    }

    /// Off is reported; a valid sample shows it on.
    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        match *signal {
            Signal::SensorOff(true) => Some(Verdict::Truth(Truth::Violating, None)),
            Signal::SensorOff(false) => Some(Verdict::Truth(Truth::ClearNow, None)),
            _ => None,
        }
    }

    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        match spec {
            RuleSpec::SensorOff { delay } => Some(("delay", *delay)),
            _ => None,
        }
    }
}
