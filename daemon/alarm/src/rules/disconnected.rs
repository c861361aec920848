//! `disconnected`: a device's link is down.

use super::*;
use crate::engine::Truth;

pub(crate) struct Disconnected;

impl Kind for Disconnected {
    fn name(&self) -> &'static str {
        "disconnected"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["delay", "clear_after"]
    }

    fn parse(&self, f: &mut Fields<'_>, _priority: Option<Priority>) -> Option<RuleSpec> {
        let delay = f.duration("delay", 5 * MINUTE).unwrap_or_default();
        // The link must stay up this long to end the condition (F11); by default as long as
        // it must stay down to raise it, and never less (see `clearing`).
        let clear_after = f.duration("clear_after", 10 * MINUTE).unwrap_or(delay);
        Some(RuleSpec::Disconnected { delay, clear_after })
    }

    fn scope(&self) -> Scope {
        Scope::Device
    }

    fn timing(&self, spec: &RuleSpec) -> (Duration, Duration) {
        match spec {
            RuleSpec::Disconnected { delay, .. } => (*delay, clearing(spec)),
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }

    /// Loss of communication latches unless the profile says otherwise.
    fn latches_by_default(&self) -> bool {
        true
    }

    /// A device's link starts down: if it does not connect within the delay, it alarms. Back
    /// up, the condition (pending or raised) ends only once the link has stayed up for the
    /// clearing time: a brief reconnect neither ends it nor restarts its delay (F11).
    fn on(&self, _spec: &RuleSpec, signal: &Signal, _session: &SessionFacts) -> Option<Verdict> {
        match *signal {
            Signal::DeviceAdded | Signal::Link { up: false } => {
                Some(Verdict::Truth(Truth::Violating, None))
            }
            Signal::Link { up: true } => Some(Verdict::Truth(Truth::InRange, None)),
            _ => None,
        }
    }

    /// Ends when the link has stayed up for the clearing time: no further signal will come.
    fn clear_deadline(
        &self,
        spec: &RuleSpec,
        _low_battery_at: Option<Instant>,
        clearing_since: Option<Instant>,
    ) -> Option<Instant> {
        match spec {
            RuleSpec::Disconnected { .. } => Some(clearing_since? + clearing(spec)),
            _ => None,
        }
    }

    fn delay(&self, spec: &RuleSpec) -> Option<(&'static str, Duration)> {
        match spec {
            RuleSpec::Disconnected { delay, .. } => Some(("delay", *delay)),
            _ => None,
        }
    }

    fn clear_after(&self, spec: &RuleSpec) -> Option<Duration> {
        match spec {
            RuleSpec::Disconnected { clear_after, .. } => Some(*clear_after),
            _ => None,
        }
    }
}

/// How long the link must stay up to end the condition: its `clear_after`, but never less than
/// its delay. Down a little under the delay and up a little under the clearing time, over and
/// over, a link down most of the time would otherwise never alarm.
fn clearing(spec: &RuleSpec) -> Duration {
    match spec {
        RuleSpec::Disconnected { delay, clear_after } => (*delay).max(*clear_after),
        _ => Duration::ZERO,
    }
}
