//! Bringing back what a crashed run left open.

use super::*;

impl Core {
    /// Brings back the session, alarms and trends a crashed run left open.
    pub fn restore(&mut self, resumed: &crate::storage::Resumed) {
        for s in &resumed.trend {
            self.hub.restore_trend(&s.device, s.vital, &s.points);
        }
        let parse_priority = |p: &str| match p {
            "high" => Some(Priority::High),
            "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            "info" => Some(Priority::Info),
            _ => None,
        };
        let instant = |iso: &str| {
            humantime::parse_rfc3339(iso)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| self.clock.instant_of_unix_ms(d.as_millis() as i64))
        };
        let now = self.clock.now().into_std();
        // Nothing stored is dropped or lowered silently: what cannot be read is named, logged,
        // and raises `record-unreadable`; an alarm whose priority or time cannot be read comes
        // back at High, now.
        let mut unreadable = resumed.unreadable.clone();
        let mut alarms = Vec::new();
        for (a, _) in &resumed.alarms {
            let seq = a.id.rsplit('#').next().and_then(|s| s.parse().ok());
            let (Some(seq), Some(priority), Some(since)) =
                (seq, parse_priority(&a.priority), instant(&a.since))
            else {
                tracing::error!(alarm = %a.id, "stored alarm could not be read back");
                unreadable.push(format!("alarm {}", a.id));
                if let Some(seq) = seq {
                    alarms.push(vigil_alarm::RestoredAlarm {
                        rule: a.rule.clone(),
                        seq,
                        device: a.device.clone(),
                        vital: a.vital,
                        priority: Priority::High,
                        onset: now,
                        since: now,
                        acknowledged: None,
                        latched: a.state == "latched",
                        value: a.value,
                        awaiting_confirmation: a.awaiting_confirmation,
                    });
                }
                continue;
            };
            alarms.push(vigil_alarm::RestoredAlarm {
                rule: a.rule.clone(),
                seq,
                device: a.device.clone(),
                vital: a.vital,
                priority,
                onset: since,
                since,
                acknowledged: match (&a.acknowledged_by, &a.acknowledged_at) {
                    (Some(by), Some(at)) => Some(vigil_alarm::Act {
                        by: by.clone(),
                        at: instant(at).unwrap_or(now),
                    }),
                    _ => None,
                },
                latched: a.state == "latched",
                value: a.value,
                awaiting_confirmation: a.awaiting_confirmation,
            });
        }
        let dose = resumed.dose.as_ref().map(|(at, by)| vigil_alarm::Act {
            by: by.clone(),
            at: self.clock.instant_of_unix_ms(*at),
        });
        let baseline = resumed.baseline.map(|(systolic, diastolic)| {
            let taken = resumed
                .baseline_taken
                .map_or(now, |ms| self.clock.instant_of_unix_ms(ms));
            let set_by = resumed
                .baseline_by
                .clone()
                .map(|by| vigil_alarm::Act { by, at: taken });
            (
                vigil_alarm::Bp {
                    systolic,
                    diastolic,
                },
                taken,
                set_by,
            )
        });
        let bp_measurements = resumed
            .bp_measurements
            .iter()
            .map(|&(ms, systolic, diastolic)| {
                let bp = vigil_alarm::Bp {
                    systolic,
                    diastolic,
                };
                (self.clock.instant_of_unix_ms(ms), bp)
            })
            .collect();
        let restored = vigil_alarm::RestoredSession {
            now,
            dose,
            baseline,
            bp_measurements,
            alarms,
            next_seq: resumed.next_alarm_seq,
        };
        for id in self.engine.restore(restored) {
            tracing::error!(alarm = %id, "not restored: its rule is no longer in the profile");
            unreadable.push(format!("alarm {id} (its rule is no longer in the profile)"));
        }
        // Restored alarms are not new events: drain them without publishing.
        while self.engine.poll_event().is_some() {}
        // What could not be read back is new, and must be heard.
        self.engine.record_unreadable(now, unreadable);
        self.publish_engine_events();
    }
}
