//! The occurrence state machine (IEC 60601-1-8): onset, delay, declaring, escalating,
//! acknowledgement cleared by a rise, clearing and latching.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Occurrence {
    pub(super) seq: u64,
    pub(super) onset: Instant,
    pub(super) declared: Option<Instant>,
    pub(super) priority: Priority,
    /// When the priority was last set (for escalation timing).
    pub(super) priority_since: Instant,
    pub(super) acknowledged: Option<Act>,
    /// Valid in-range evidence without a gap since.
    pub(super) clearing_since: Option<Instant>,
    /// The latest valid sample that bore on it (for or against).
    pub(super) last_evidence: Instant,
    /// The latest sample that met the condition.
    pub(super) last_violation: Instant,
    /// Unconfirmed BP: a confirming repeat must come by then.
    pub(super) confirm_until: Option<Instant>,
    pub(super) value: Option<f64>,
}

impl Engine {
    /// The core state machine of one condition.
    pub(super) fn update(&mut self, c: usize, truth: Truth, now: Instant, value: Option<f64>) {
        let rule = &self.profile.rules[self.conditions[c].rule];
        let (delay, clear_after) = self.facts[self.conditions[c].rule].timing;
        let priority = rule.priority;
        enum Next {
            Stay,
            Declare,
            End,
        }
        let next = match (&mut self.conditions[c].occurrence, truth) {
            (None, Truth::Violating) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.conditions[c].occurrence = Some(Occurrence {
                    seq,
                    onset: now,
                    declared: None,
                    priority,
                    priority_since: now,
                    acknowledged: None,
                    clearing_since: None,
                    last_evidence: now,
                    last_violation: now,
                    confirm_until: None,
                    value,
                });
                if delay.is_zero() {
                    Next::Declare
                } else {
                    Next::Stay
                }
            }
            (None, _) => Next::Stay,
            (Some(o), truth) => {
                if value.is_some() {
                    o.value = value;
                }
                let gap = now.saturating_duration_since(o.last_evidence) > EVIDENCE_MAX_AGE;
                o.last_evidence = now;
                match truth {
                    Truth::Violating => {
                        o.clearing_since = None;
                        o.last_violation = now;
                        if o.declared.is_none() && now >= o.onset + delay {
                            Next::Declare
                        } else {
                            Next::Stay
                        }
                    }
                    Truth::InRange => {
                        // Clearing needs evidence without a gap: after a silence it starts over.
                        if gap {
                            o.clearing_since = None;
                        }
                        let since = *o.clearing_since.get_or_insert(now);
                        if now >= since + clear_after {
                            Next::End
                        } else {
                            Next::Stay
                        }
                    }
                    Truth::ClearNow => Next::End,
                }
            }
        };
        match next {
            Next::Stay => {}
            Next::Declare => self.declare(c, now),
            Next::End => self.end(c, now),
        }
    }

    /// A settled measurement (a spot-check): nothing more will come to sustain or clear it
    /// before the next one, so it is judged at once. Meeting the limit declares the condition
    /// without its delay; back in range ends it.
    pub(super) fn measured(&mut self, c: usize, now: Instant, violating: bool, value: Option<f64>) {
        if violating {
            self.update(c, Truth::Violating, now, value);
            if self.conditions[c]
                .occurrence
                .as_ref()
                .is_some_and(|o| o.declared.is_none())
            {
                self.declare(c, now);
            }
        } else {
            self.update(c, Truth::ClearNow, now, value);
        }
    }

    /// A reading bore on the condition but is not evidence (flagged, implausible, missing): it
    /// neither counts for it nor restarts its delay, and it interrupts the in-range evidence
    /// that would clear it.
    pub(super) fn interrupt_clearing(&mut self, c: usize) {
        if let Some(o) = self.conditions[c].occurrence.as_mut() {
            o.clearing_since = None;
        }
    }

    /// The delay has passed: annunciate.
    pub(super) fn declare(&mut self, c: usize, at: Instant) {
        let rule = &self.profile.rules[self.conditions[c].rule];
        let (initial, confirm_within) = rule
            .spec
            .kind()
            .declared_priority(&rule.spec, rule.priority);
        let confirm_until = confirm_within.map(|within| at + within);
        let Some(o) = self.conditions[c].occurrence.as_mut() else {
            return;
        };
        o.declared = Some(at);
        o.priority = initial;
        o.priority_since = at;
        o.confirm_until = confirm_until;
        let sounds = initial > Priority::Info;
        self.emit_alarm(c, AlarmChange::Raised, None, at);
        if sounds {
            self.end_pause(at);
        }
    }

    pub(super) fn set_priority(&mut self, c: usize, at: Instant, priority: Priority) {
        let Some(o) = self.conditions[c].occurrence.as_mut() else {
            return;
        };
        if priority <= o.priority || o.declared.is_none() {
            return;
        }
        o.priority = priority;
        o.priority_since = at;
        // A rise in priority must be heard again: it clears the acknowledgement.
        o.acknowledged = None;
        self.emit_alarm(c, AlarmChange::Escalated, None, at);
        self.end_pause(at);
    }

    /// The condition has ended.
    pub(super) fn end(&mut self, c: usize, at: Instant) {
        let cond = &mut self.conditions[c];
        let Some(o) = cond.occurrence.take() else {
            return;
        };
        if o.declared.is_none() {
            // Never annunciated: it leaves no trace.
            return;
        }
        let rule = &self.profile.rules[cond.rule];
        let latched = Latched {
            rule: cond.rule,
            device: cond.device,
            vital: cond.vital,
            occurrence: o,
        };
        if latches(rule, latched.occurrence.priority) {
            let view = self.view_latched(&latched);
            self.latched.push(latched);
            self.events.push_back(EngineEvent::Alarm {
                change: AlarmChange::Cleared,
                alarm: view,
                by: None,
                at,
            });
        } else {
            let mut view = self.view_latched(&latched);
            view.state = AlarmState::Cleared;
            self.events.push_back(EngineEvent::Alarm {
                change: AlarmChange::Cleared,
                alarm: view,
                by: None,
                at,
            });
        }
    }

    pub(super) fn end_pause(&mut self, at: Instant) {
        if self.audio_paused_until.take().is_some() {
            self.events.push_back(EngineEvent::AudioPauseEnded {
                reason: PauseEnd::NewCondition,
                at,
            });
        }
    }

    pub(super) fn emit_alarm(
        &mut self,
        c: usize,
        change: AlarmChange,
        by: Option<String>,
        at: Instant,
    ) {
        if let Some(alarm) = self.view_condition(c) {
            self.events.push_back(EngineEvent::Alarm {
                change,
                alarm,
                by,
                at,
            });
        }
    }
}
