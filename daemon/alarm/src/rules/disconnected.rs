//! `disconnected`: a device's link is down.

use super::*;
use crate::engine::Truth;

pub(crate) struct Disconnected;

impl Kind for Disconnected {
    fn name(&self) -> &'static str {
        "disconnected"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["delay"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        Some(RuleSpec::Disconnected {
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

    /// Loss of communication latches unless the profile says otherwise.
    fn latches_by_default(&self) -> bool {
        true
    }

    /// A device's link starts down: if it does not connect within the delay, it alarms.
    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &Session) -> Option<Verdict> {
        match *signal {
            Signal::DeviceAdded | Signal::Link { up: false } => {
                Some(Verdict::Truth(Truth::Violating, None))
            }
            Signal::Link { up: true } => Some(Verdict::Truth(Truth::ClearNow, None)),
            _ => None,
        }
    }

    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        match spec {
            RuleSpec::Disconnected { delay } => Some(("delay", *delay)),
            _ => None,
        }
    }
}
