//! Bringing a session back after a restart.

use super::*;

impl Engine {
    /// Restores the session and the alarms a previous run left active or latched (after a
    /// crash): the dose, the baseline, the BP measurements (the last one for the schedule), each
    /// confirmation window and the requested repeat. From here the engine's time is
    /// `restored.now`: a deadline that passed while it was down fires now, once. Add every
    /// configured device first: an alarm of a device that is not comes back latched, for a
    /// person to reset. Returns the ids it could not restore (their rule is no longer in the
    /// profile).
    pub fn restore(&mut self, restored: RestoredSession) -> Vec<String> {
        let RestoredSession {
            now,
            dose,
            baseline,
            bp_measurements,
            alarms,
            next_seq,
        } = restored;
        self.next_seq = self.next_seq.max(next_seq);
        // Occurrences already begun (each device's link, added before the restore, starts
        // down) took numbers from the fresh engine that the record may already hold.
        for o in self
            .conditions
            .iter_mut()
            .filter_map(|c| c.occurrence.as_mut())
        {
            if o.seq < next_seq {
                o.seq = self.next_seq;
                self.next_seq += 1;
            }
        }
        let now = self.advance(now);
        // The record's times are wall-clock times: one after the restart (the previous run's
        // clock was ahead) would hold the schedule and escalation back until then. Nothing
        // recorded can have happened after now.
        let past = |t: Instant| t.min(now);
        let act = |a: Act| Act {
            at: past(a.at),
            ..a
        };
        self.session.dose = dose.map(act);
        if let Some((bp, taken, by)) = baseline {
            self.session.baseline = Some(bp);
            self.session.baseline_taken = Some(past(taken));
            self.session.baseline_set_by = by.map(act);
        } else if self.session.dose.is_some() {
            self.session.baseline_missing =
                Some("none was recorded before the restart".to_string());
        }
        let skip = bp_measurements.len().saturating_sub(BP_HISTORY);
        self.session.bp_history = bp_measurements
            .into_iter()
            .skip(skip)
            .map(|(t, bp)| (past(t), bp))
            .collect();
        self.session.last_bp = self.session.bp_history.back().copied();
        let mut skipped = Vec::new();
        let configured = self.devices.len();
        for mut a in alarms {
            (a.onset, a.since) = (past(a.onset), past(a.since));
            a.acknowledged = a.acknowledged.map(act);
            let Some(rule) = self.profile.rules.iter().position(|r| r.id == a.rule) else {
                skipped.push(format!("{}#{}", a.rule, a.seq));
                continue;
            };
            // A device no longer configured (the caller adds every configured one before
            // restoring) will send nothing to judge or end the alarm by: it is restored
            // latched, for a person to reset, and the device is named but not watched (F14).
            let device = a.device.as_ref().map(|id| {
                self.device_index(id).unwrap_or_else(|| {
                    self.devices.push(Device {
                        id: id.clone(),
                        last_valid: Vec::new(),
                        low_battery_at: None,
                        last_nibp_time: None,
                        last_sample: Vec::new(),
                    });
                    self.devices.len() - 1
                })
            });
            let gone = device.is_some_and(|d| d >= configured);
            self.next_seq = self.next_seq.max(a.seq + 1);
            let occurrence = Occurrence {
                seq: a.seq,
                onset: a.onset,
                declared: Some(a.since),
                priority: a.priority,
                priority_since: a.since,
                acknowledged: a.acknowledged,
                clearing_since: None,
                last_evidence: a.since,
                last_violation: a.since,
                confirm_until: None,
                value: a.value,
            };
            let mut occurrence = occurrence;
            let spec = &self.profile.rules[rule].spec;
            if let (true, Some(within)) =
                (a.awaiting_confirmation, spec.kind().confirm_within(spec))
            {
                // The window runs from when it was raised; the repeat it asked for is still due
                // unless a complete measurement came after.
                occurrence.confirm_until = Some(a.since + within);
                if self.session.last_bp.is_none_or(|(t, _)| t <= a.since) {
                    let due = a.since + within;
                    self.session.repeat_due =
                        Some(self.session.repeat_due.map_or(due, |d| d.min(due)));
                }
            }
            if a.latched || gone {
                self.latched.push(Latched {
                    rule,
                    device,
                    vital: a.vital,
                    occurrence,
                });
            } else {
                let c = self.condition(rule, device, a.vital);
                self.conditions[c].occurrence = Some(occurrence);
            }
        }
        skipped
    }

    /// Stored alarm or session rows (named by `ids`) could not be read back after a restart:
    /// raises `record_unreadable`, which names them and latches until a person resets it.
    pub fn record_unreadable(&mut self, now: Instant, ids: Vec<String>) {
        let now = self.advance(now);
        if ids.is_empty() {
            return;
        }
        self.unreadable = ids;
        self.signal_existing(now, None, &Signal::Unreadable);
    }
}

impl Engine {
    /// The running session as a restart would read it back from the record (see
    /// [`Engine::restore`]): a reload that changes the profile or the devices builds a new
    /// engine and restores this into it, so that nothing is lost, re-announced or
    /// un-acknowledged; `now` becomes the new engine's time. Alarms still inside their delay are not carried: their condition is
    /// judged afresh under the new rules with the next samples.
    pub fn carry_over(&self, now: Instant) -> RestoredSession {
        let rule_id = |r: usize| self.profile.rules[r].id.clone();
        let device_id = |d: Option<usize>| d.map(|d| self.devices[d].id.clone());
        let alarm = |rule, device, vital, o: &Occurrence, latched| {
            o.declared.map(|since| RestoredAlarm {
                rule: rule_id(rule),
                seq: o.seq,
                device: device_id(device),
                vital,
                priority: o.priority,
                onset: o.onset,
                since,
                acknowledged: o.acknowledged.clone(),
                latched,
                value: o.value,
                awaiting_confirmation: o.confirm_until.is_some(),
            })
        };
        let active = self.conditions.iter().filter_map(|c| {
            let o = c.occurrence.as_ref()?;
            alarm(c.rule, c.device, c.vital, o, false)
        });
        let latched = self
            .latched
            .iter()
            .filter_map(|l| alarm(l.rule, l.device, l.vital, &l.occurrence, true));
        let s = &self.session;
        RestoredSession {
            now,
            dose: s.dose.clone(),
            baseline: s
                .baseline
                .zip(s.baseline_taken)
                .map(|(bp, taken)| (bp, taken, s.baseline_set_by.clone())),
            bp_measurements: s.bp_history.iter().copied().collect(),
            alarms: active.chain(latched).collect(),
            next_seq: self.next_seq,
        }
    }
}
