//! Telling the rule kinds what happened: each kind answers for its own condition with a
//! verdict, which the occurrence state machine applies.

use super::*;

impl Engine {
    /// A signal about device `d` (and `vital`): every rule of that scope (per device, or per
    /// device and vital) that answers gets its condition (made on first use) updated.
    pub(super) fn signal_device(
        &mut self,
        now: Instant,
        d: usize,
        vital: Option<Vital>,
        signal: &Signal,
    ) {
        let session = self.session_facts();
        // Only the rules of that scope: per device and vital, or per device.
        let count = if vital.is_some() {
            self.vital_rules.len()
        } else {
            self.device_rules.len()
        };
        for i in 0..count {
            let rule = if vital.is_some() {
                self.vital_rules[i]
            } else {
                self.device_rules[i]
            };
            let hears = match signal {
                Signal::Sample { vital, .. } => self.facts[rule].judges & vital_bit(*vital) != 0,
                _ => true,
            };
            if hears {
                self.signal_rule(now, rule, d, vital, signal, &session);
            }
        }
    }

    #[inline(always)]
    pub(super) fn signal_rule(
        &mut self,
        now: Instant,
        rule: usize,
        d: usize,
        vital: Option<Vital>,
        signal: &Signal,
        session: &crate::rules::SessionFacts,
    ) {
        let spec = &self.profile.rules[rule].spec;
        if let Some(verdict) = self.facts[rule].kind.on(spec, signal, session) {
            let c = self.condition(rule, Some(d), vital);
            self.apply(c, verdict, now);
        }
    }

    /// A signal to the conditions that exist: all of them, or those on `on` (device, vital).
    pub(super) fn signal_existing(
        &mut self,
        now: Instant,
        on: Option<(usize, Vital)>,
        signal: &Signal,
    ) {
        let session = self.session_facts();
        for c in 0..self.conditions.len() {
            let cond = &self.conditions[c];
            if on.is_some_and(|(d, v)| cond.device != Some(d) || cond.vital != Some(v)) {
                continue;
            }
            let spec = &self.profile.rules[cond.rule].spec;
            if let Some(verdict) = self.facts[cond.rule].kind.on(spec, signal, &session) {
                self.apply(c, verdict, now);
            }
        }
    }

    #[inline(always)]
    pub(super) fn apply(&mut self, c: usize, verdict: Verdict, now: Instant) {
        match verdict {
            Verdict::Truth(truth, value) => self.update(c, truth, now, value),
            Verdict::InterruptClearing => self.interrupt_clearing(c),
            Verdict::Confirm(within, value) => self.confirm_bp(c, now, within, value),
            Verdict::Latch => {
                self.update(c, Truth::Violating, now, None);
                self.update(c, Truth::ClearNow, now, None);
            }
            Verdict::Measured(violating, value) => self.measured(c, now, violating, value),
        }
    }
}
