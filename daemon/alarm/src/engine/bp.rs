//! Blood pressure: measurements, confirmation by repeat, the dose and the baseline.

use super::*;

impl Engine {
    /// One cuff measurement's systolic and diastolic (evidence only). A partial one (either
    /// missing) may show a limit is met, but it ends no condition, does not become the last BP
    /// and is not the scheduled NIBP reading.
    pub(super) fn handle_bp(
        &mut self,
        now: Instant,
        systolic: Option<f64>,
        diastolic: Option<f64>,
    ) {
        let pair = systolic.zip(diastolic).map(|(s, d)| Bp {
            systolic: s,
            diastolic: d,
        });
        if let Some(bp) = pair {
            self.session.last_bp = Some((now, bp));
            // A complete measurement is the repeat any rule asked for.
            self.session.repeat_due = None;
        }
        let dosed = self.session.dose.is_some();
        for c in 0..self.conditions.len() {
            let rule = &self.profile.rules[self.conditions[c].rule];
            let shown = systolic.or(diastolic);
            match rule.spec.clone() {
                RuleSpec::Bp {
                    phase,
                    compare,
                    systolic: s_lim,
                    diastolic: d_lim,
                    confirm_within,
                    ..
                } => {
                    let in_phase = match phase {
                        Phase::Any => true,
                        Phase::PreDose => !dosed,
                        Phase::PostDose => dosed,
                    };
                    if !in_phase {
                        continue;
                    }
                    let meets = systolic.is_some_and(|s| compare.meets(s, s_lim))
                        || diastolic.is_some_and(|d| compare.meets(d, d_lim));
                    if !meets {
                        if pair.is_some() {
                            self.update(c, Truth::ClearNow, now, shown);
                        }
                    } else if let Some(within) = confirm_within {
                        self.confirm_bp(c, now, within, shown);
                    } else {
                        self.update(c, Truth::Violating, now, shown);
                    }
                }
                RuleSpec::BaselineRise {
                    systolic_rise,
                    diastolic_rise,
                } => {
                    let (Some(base), true) = (self.session.baseline, dosed) else {
                        continue;
                    };
                    let meets = systolic.is_some_and(|s| s - base.systolic >= systolic_rise)
                        || diastolic.is_some_and(|d| d - base.diastolic >= diastolic_rise);
                    if meets {
                        self.update(c, Truth::Violating, now, shown);
                    } else if pair.is_some() {
                        self.update(c, Truth::ClearNow, now, shown);
                    }
                }
                RuleSpec::NibpOverdue { .. } | RuleSpec::NibpRepeatOverdue if pair.is_some() => {
                    self.update(c, Truth::ClearNow, now, shown)
                }
                RuleSpec::DischargeReady { .. } if pair.is_some() => {
                    let truth = self.discharge_truth(c, now);
                    self.update(c, truth, now, None);
                }
                _ => {}
            }
        }
    }

    /// A BP reading that meets a rule with confirmation. The first one raises the rule at its
    /// unconfirmed priority and asks for a repeat within the window; any later reading that
    /// still meets the limit confirms it, whenever it comes (a rise in priority, so it sounds
    /// again even if acknowledged). A repeat that has not come when the window ends is the
    /// `nibp_repeat_overdue` technical alarm; the occurrence stays, unconfirmed, until a normal
    /// reading ends it.
    pub(super) fn confirm_bp(
        &mut self,
        c: usize,
        now: Instant,
        within: Duration,
        value: Option<f64>,
    ) {
        let rule = self.conditions[c].rule;
        let full = self.profile.rules[rule].priority;
        match self.conditions[c].occurrence.as_mut() {
            Some(o) if o.confirm_until.is_some() => {
                o.confirm_until = None;
                o.value = value;
                self.set_priority(c, now, full);
            }
            Some(_) => self.update(c, Truth::Violating, now, value),
            None => {
                self.update(c, Truth::Violating, now, value);
                self.request_nibp(rule, now);
                let due = now + within;
                self.session.repeat_due = Some(self.session.repeat_due.map_or(due, |d| d.min(due)));
            }
        }
    }

    pub(super) fn request_nibp(&mut self, rule: usize, at: Instant) {
        self.events.push_back(EngineEvent::NibpRequested {
            rule: self.profile.rules[rule].id.clone(),
            at,
        });
    }

    pub(super) fn discharge_truth(&self, c: usize, now: Instant) -> Truth {
        let RuleSpec::DischargeReady {
            after,
            systolic_margin,
            diastolic_margin,
        } = self.profile.rules[self.conditions[c].rule].spec
        else {
            return Truth::ClearNow;
        };
        let (Some(dose), Some(base), Some((_, last))) = (
            &self.session.dose,
            self.session.baseline,
            self.session.last_bp,
        ) else {
            return Truth::ClearNow;
        };
        let ready = now >= dose.at + after
            && last.systolic <= base.systolic + systolic_margin
            && last.diastolic <= base.diastolic + diastolic_margin;
        if ready {
            Truth::Violating
        } else {
            Truth::ClearNow
        }
    }

    /// Marks the dose: fixes the baseline from the last pre-dose BP and starts the session clock.
    pub fn mark_dose(&mut self, now: Instant, by: &str) -> Result<Option<Bp>, ActionError> {
        let now = self.advance(now);
        if self.session.dose.is_some() {
            return Err(ActionError::DoseAlreadyMarked);
        }
        let baseline = self.session.last_bp.map(|(_, bp)| bp);
        self.session.dose = Some(Act {
            by: by.into(),
            at: now,
        });
        self.session.baseline = baseline;
        self.events.push_back(EngineEvent::DoseMarked {
            by: by.into(),
            at: now,
            baseline,
        });
        for c in 0..self.conditions.len() {
            match self.profile.rules[self.conditions[c].rule].spec {
                RuleSpec::Bp {
                    phase: Phase::PreDose,
                    ..
                } => self.update(c, Truth::ClearNow, now, None),
                RuleSpec::NoBaseline if baseline.is_none() => {
                    self.update(c, Truth::Violating, now, None)
                }
                _ => {}
            }
        }
        Ok(baseline)
    }
}
