//! What people do: acknowledge, reset, pause audio.

use super::*;

impl Engine {
    /// Acknowledges the current occurrence of an alarm: its audio stops until the condition
    /// ends, a new occurrence begins, or its priority rises.
    pub fn acknowledge(&mut self, now: Instant, id: &str, by: &str) -> Result<(), ActionError> {
        let now = self.advance(now);
        let act = Act {
            by: by.to_string(),
            at: now,
        };
        if let Some(c) = self.find_condition(id) {
            let Some(o) = self.conditions[c].occurrence.as_mut() else {
                return Err(ActionError::UnknownAlarm(id.into()));
            };
            if o.declared.is_none() {
                return Err(ActionError::NotRaised(id.into()));
            }
            if let Some(prev) = &o.acknowledged {
                return Err(ActionError::AlreadyAcknowledged {
                    id: id.into(),
                    by: prev.by.clone(),
                });
            }
            o.acknowledged = Some(act);
            self.emit_alarm(c, AlarmChange::Acknowledged, Some(by.into()), now);
            return Ok(());
        }
        let l = self
            .latched
            .iter()
            .position(|l| self.alarm_id(l.rule, l.occurrence.seq) == id)
            .ok_or_else(|| ActionError::UnknownAlarm(id.into()))?;
        if let Some(prev) = &self.latched[l].occurrence.acknowledged {
            return Err(ActionError::AlreadyAcknowledged {
                id: id.into(),
                by: prev.by.clone(),
            });
        }
        self.latched[l].occurrence.acknowledged = Some(act);
        let alarm = self.view_latched(&self.latched[l]);
        self.events.push_back(EngineEvent::Alarm {
            change: AlarmChange::Acknowledged,
            alarm,
            by: Some(by.into()),
            at: now,
        });
        Ok(())
    }

    /// Resets a latched alarm whose condition has ended.
    pub fn reset(&mut self, now: Instant, id: &str, by: &str) -> Result<(), ActionError> {
        let now = self.advance(now);
        if self.find_condition(id).is_some() {
            return Err(ActionError::ConditionPresent(id.into()));
        }
        let l = self
            .latched
            .iter()
            .position(|l| self.alarm_id(l.rule, l.occurrence.seq) == id)
            .ok_or_else(|| ActionError::UnknownAlarm(id.into()))?;
        let latched = self.latched.remove(l);
        let mut alarm = self.view_latched(&latched);
        alarm.state = AlarmState::Cleared;
        self.events.push_back(EngineEvent::Alarm {
            change: AlarmChange::Reset,
            alarm,
            by: Some(by.into()),
            at: now,
        });
        Ok(())
    }

    /// Pauses audio for at most the profile's maximum. A new condition or a rise in priority
    /// ends the pause at once. Returns when it ends.
    pub fn pause_audio(&mut self, now: Instant, by: &str, requested: Option<Duration>) -> Instant {
        let now = self.advance(now);
        let max = self.profile.behaviour.audio_pause_max;
        let until = now + requested.map_or(max, |r| r.min(max));
        self.audio_paused_until = Some(until);
        self.events.push_back(EngineEvent::AudioPaused {
            by: by.into(),
            at: now,
            until,
        });
        until
    }
}
