//! What the engine shows: each alarm's view, found by its id, and the snapshot.

use super::*;

impl Engine {
    pub(super) fn find_condition(&self, id: &str) -> Option<usize> {
        self.conditions.iter().position(|c| {
            c.occurrence
                .as_ref()
                .is_some_and(|o| self.alarm_id(c.rule, o.seq) == id)
        })
    }

    pub(super) fn alarm_id(&self, rule: usize, seq: u64) -> String {
        format!("{}#{seq}", self.profile.rules[rule].id)
    }

    pub(super) fn view(
        &self,
        rule: usize,
        device: Option<usize>,
        vital: Option<Vital>,
        o: &Occurrence,
        state: AlarmState,
    ) -> AlarmView {
        let r = &self.profile.rules[rule];
        AlarmView {
            id: self.alarm_id(rule, o.seq),
            rule: r.id.clone(),
            kind: if r.spec.kind().physiological() {
                AlarmKind::Physiological
            } else {
                AlarmKind::Technical
            },
            vital,
            device: device.map(|d| self.devices[d].id.clone()),
            priority: o.priority,
            message: r.spec.kind().message(
                &r.message,
                self.session.baseline_missing.as_deref(),
                &self.unreadable,
            ),
            state,
            onset: o.onset,
            since: o.declared.unwrap_or(o.onset),
            acknowledged: o.acknowledged.clone(),
            latching: latches(r, o.priority),
            awaiting_confirmation: o.confirm_until.is_some(),
            value: o.value,
        }
    }

    pub(super) fn view_condition(&self, c: usize) -> Option<AlarmView> {
        let cond = &self.conditions[c];
        let o = cond.occurrence.as_ref()?;
        let state = match (o.declared, &o.acknowledged) {
            (None, _) => AlarmState::Pending,
            (Some(_), None) => AlarmState::Active,
            (Some(_), Some(_)) => AlarmState::Acknowledged,
        };
        Some(self.view(cond.rule, cond.device, cond.vital, o, state))
    }

    /// A pending condition of a kind that ends by its own deadline, while in-range evidence
    /// stands (a link back up, waiting out its clearing time): kept, so that a brief
    /// reconnect does not restart its delay (F11), but not shown, as nothing is wrong now.
    fn pending_but_clearing(&self, c: usize) -> bool {
        let cond = &self.conditions[c];
        cond.occurrence.as_ref().is_some_and(|o| {
            o.declared.is_none()
                && o.clearing_since.is_some()
                && self.facts[cond.rule].own_deadlines
        })
    }

    pub(super) fn view_latched(&self, l: &Latched) -> AlarmView {
        self.view(
            l.rule,
            l.device,
            l.vital,
            &l.occurrence,
            AlarmState::Latched,
        )
    }

    /// Every alarm (pending ones included) and the session at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let mut alarms: Vec<AlarmView> = (0..self.conditions.len())
            .filter(|c| !self.pending_but_clearing(*c))
            .filter_map(|c| self.view_condition(c))
            .chain(self.latched.iter().map(|l| self.view_latched(l)))
            .collect();
        alarms.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.since.cmp(&b.since)));
        let phase = match &self.session.dose {
            None => SessionPhase::PreDose,
            Some(d) => SessionPhase::PostDose {
                minutes_since_dose: now.saturating_duration_since(d.at).as_secs() / 60,
            },
        };
        Snapshot {
            alarms,
            audio_pause_remaining: self
                .audio_paused_until
                .map(|u| u.saturating_duration_since(now))
                .filter(|d| !d.is_zero()),
            session: SessionView {
                phase,
                dose: self.session.dose.clone(),
                baseline: self.session.baseline,
                baseline_taken: self.session.baseline_taken,
                baseline_set_by: self.session.baseline_set_by.clone(),
                baseline_missing: self.session.baseline_missing.clone(),
                last_bp: self.session.last_bp,
            },
        }
    }
}
