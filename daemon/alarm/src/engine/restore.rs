//! Bringing a session back after a restart.

use super::*;

impl Engine {
    /// Restores the session and the alarms a previous run left active or latched (after a
    /// crash). Returns the ids it could not restore (their rule is no longer in the profile).
    pub fn restore(
        &mut self,
        dose: Option<Act>,
        baseline: Option<Bp>,
        alarms: Vec<RestoredAlarm>,
    ) -> Vec<String> {
        self.session.dose = dose;
        self.session.baseline = baseline;
        let mut skipped = Vec::new();
        for a in alarms {
            let Some(rule) = self.profile.rules.iter().position(|r| r.id == a.rule) else {
                skipped.push(format!("{}#{}", a.rule, a.seq));
                continue;
            };
            let device = match &a.device {
                Some(id) => Some(match self.device_index(id) {
                    Some(d) => d,
                    None => {
                        self.add_device(a.since, id, &[]);
                        self.devices.len() - 1
                    }
                }),
                None => None,
            };
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
            if a.latched {
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
}
