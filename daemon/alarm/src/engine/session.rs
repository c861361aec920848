//! The dose session: BP measurements, confirmation by repeat, the dose and the baseline.

use super::*;

#[derive(Debug, Clone, Default)]
pub(super) struct Session {
    pub(super) dose: Option<Act>,
    pub(super) baseline: Option<Bp>,
    pub(super) baseline_taken: Option<Instant>,
    pub(super) baseline_set_by: Option<Act>,
    /// Why the dose was marked without a baseline.
    pub(super) baseline_missing: Option<String>,
    pub(super) last_bp: Option<(Instant, Bp)>,
    /// The latest complete valid measurements, oldest first, for `set_baseline`.
    pub(super) bp_history: VecDeque<(Instant, Bp)>,
    /// A repeat NIBP was asked for and must come by then.
    pub(super) repeat_due: Option<Instant>,
}

/// How many complete BP measurements the engine keeps for `set_baseline` (a session has a few
/// dozen at most).
pub(super) const BP_HISTORY: usize = 64;

impl Engine {
    /// What the kinds may read of the session when they decide.
    pub(super) fn session_facts(&self) -> crate::rules::SessionFacts {
        crate::rules::SessionFacts {
            now: self.now,
            dose: self.session.dose.as_ref().map(|a| a.at),
            baseline: self.session.baseline,
            last_bp: self.session.last_bp,
            repeat_due: self.session.repeat_due,
        }
    }

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
            if self.session.bp_history.len() == BP_HISTORY {
                self.session.bp_history.pop_front();
            }
            self.session.bp_history.push_back((now, bp));
            // A complete measurement is the repeat any rule asked for.
            self.session.repeat_due = None;
        }
        self.signal_existing(
            now,
            None,
            &Signal::Bp {
                systolic,
                diastolic,
            },
        );
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

    /// Marks the dose and starts the session clock. The baseline is the last complete, valid
    /// pre-dose measurement taken at most the profile's `baseline_max_age` before; without one
    /// the no-baseline notice says why.
    pub fn mark_dose(&mut self, now: Instant, by: &str) -> Result<Option<Bp>, ActionError> {
        let now = self.advance(now);
        if self.session.dose.is_some() {
            return Err(ActionError::DoseAlreadyMarked);
        }
        let max_age = self.profile.behaviour.baseline_max_age;
        let (baseline, missing) = match self.session.last_bp {
            None => (None, Some("no valid pre-dose BP was taken".to_string())),
            Some((taken, _)) if now.saturating_duration_since(taken) > max_age => (
                None,
                Some(format!(
                    "the last valid pre-dose BP was taken {} min before the dose (at most {} min)",
                    now.saturating_duration_since(taken).as_secs() / 60,
                    max_age.as_secs() / 60
                )),
            ),
            Some((taken, bp)) => (Some((bp, taken)), None),
        };
        self.session.dose = Some(Act {
            by: by.into(),
            at: now,
        });
        self.session.baseline = baseline.map(|(bp, _)| bp);
        self.session.baseline_taken = baseline.map(|(_, t)| t);
        self.session.baseline_missing = missing;
        self.events.push_back(EngineEvent::DoseMarked {
            by: by.into(),
            at: now,
            baseline: self.session.baseline,
            baseline_taken: self.session.baseline_taken,
        });
        let baseline = baseline.is_some();
        self.signal_existing(now, None, &Signal::Dose { baseline });
        Ok(self.session.baseline)
    }

    /// A provider or nurse sets the baseline from a complete valid measurement taken at
    /// `taken` (the dose having been marked without a baseline). Ends the no-baseline notice.
    pub fn set_baseline(
        &mut self,
        now: Instant,
        taken: Instant,
        by: &str,
    ) -> Result<Bp, ActionError> {
        let now = self.advance(now);
        let Some(dose) = self.session.dose.as_ref().map(|d| d.at) else {
            return Err(ActionError::DoseNotMarked);
        };
        if let Some(b) = self.session.baseline {
            return Err(ActionError::BaselineAlreadySet(format!(
                "{:.0}/{:.0}",
                b.systolic, b.diastolic
            )));
        }
        // Times cross the display as UTC milliseconds: match to the nearest within a second.
        // Only a reading after the dose: a pre-dose one is the baseline only by the age rule
        // (`mark_dose`), which this must not walk around.
        let (at, bp) = self
            .session
            .bp_history
            .iter()
            .copied()
            .filter(|(t, _)| *t >= dose)
            .filter(|(t, _)| {
                t.saturating_duration_since(taken)
                    .max(taken.saturating_duration_since(*t))
                    <= Duration::from_secs(1)
            })
            .min_by_key(|(t, _)| {
                t.saturating_duration_since(taken)
                    .max(taken.saturating_duration_since(*t))
            })
            .ok_or(ActionError::NoSuchReading)?;
        let act = Act {
            by: by.into(),
            at: now,
        };
        self.session.baseline = Some(bp);
        self.session.baseline_taken = Some(at);
        self.session.baseline_set_by = Some(act);
        self.session.baseline_missing = None;
        self.events.push_back(EngineEvent::BaselineSet {
            by: by.into(),
            at: now,
            taken: at,
            baseline: bp,
        });
        self.signal_existing(now, None, &Signal::BaselineSet);
        Ok(bp)
    }
}
