//! The occurrence state machine: delays, declaring, escalating, clearing, and the deadlines
//! that drive them.

use super::*;

impl Engine {
    /// The core state machine of one condition.
    pub(super) fn update(&mut self, c: usize, truth: Truth, now: Instant, value: Option<f64>) {
        let rule = &self.profile.rules[self.conditions[c].rule];
        let (delay, clear_after) = rule.spec.kind().timing(&rule.spec);
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

    /// Processes deadlines up to `now` and returns the engine's time: `now`, or the engine's
    /// current time if `now` is earlier (time never goes backwards for the engine).
    pub(super) fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |t| t.max(now));
        let mut last = None;
        while let Some((at, what)) = self.next_deadline().filter(|(t, _)| *t <= now) {
            // Every deadline changes the state it came from; the same one twice is a bug, and
            // looping on it would stop the alarms. Stop here instead.
            debug_assert_ne!(last, Some((at, what)), "deadline did not progress");
            if last == Some((at, what)) {
                break;
            }
            last = Some((at, what));
            // A deadline that passed while the engine was not running (before a restart) fires
            // at the engine's time, never in the past: what it raises carries the real time.
            let at = self.now.map_or(at, |t| t.max(at));
            self.now = Some(at);
            self.fire(at, what);
        }
        self.now = Some(now);
        now
    }

    pub(super) fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        let mut best: Option<(Instant, Deadline)> = None;
        let mut offer = |t: Instant, d: Deadline| {
            if best.as_ref().is_none_or(|(b, _)| t < *b) {
                best = Some((t, d));
            }
        };
        if let Some(until) = self.audio_paused_until {
            offer(until, Deadline::PauseEnds);
        }
        let session = self.session_view();
        for (c, cond) in self.conditions.iter().enumerate() {
            let rule = &self.profile.rules[cond.rule];
            let kind = rule.spec.kind();
            let (delay, _) = kind.timing(&rule.spec);
            match &cond.occurrence {
                Some(o) => {
                    // A limit is declared at the end of its delay only on fresh evidence: a cuff
                    // reading five minutes old does not make "sustained for five minutes".
                    // Otherwise the next sample decides.
                    let fresh = !kind.needs_fresh_evidence()
                        || o.last_violation + EVIDENCE_MAX_AGE >= o.onset + delay;
                    // Only while the latest evidence is a violation: a sample that is not evidence
                    // must not revive an older one.
                    if o.declared.is_none() && o.last_violation >= o.last_evidence && fresh {
                        offer(o.onset + delay, Deadline::Declare(c));
                    }
                    // No clearing deadline: a condition ends on in-range evidence only, never
                    // because time passed without any.
                    if o.declared.is_some()
                        && o.acknowledged.is_none()
                        && o.priority > Priority::Info
                        && o.priority < Priority::High
                    {
                        if let Some(after) = rule.escalate_after {
                            offer(o.priority_since + after, Deadline::Escalate(c));
                        }
                    }
                    let low_battery_at = cond.device.and_then(|d| self.devices[d].low_battery_at);
                    if let Some(t) = kind.clear_deadline(&rule.spec, low_battery_at) {
                        offer(t, Deadline::Clear(c));
                    }
                }
                None => {
                    if let Some(t) = self.idle_deadline(cond, &session) {
                        offer(t, Deadline::Violate(c));
                    }
                }
            }
        }
        best
    }

    /// When an idle time-driven condition starts to hold.
    fn idle_deadline(&self, cond: &Condition, session: &crate::rules::Session) -> Option<Instant> {
        let spec = &self.profile.rules[cond.rule].spec;
        let last_valid = cond.device.and_then(|d| {
            let vital = cond.vital?;
            let (_, last) = self.devices[d]
                .last_valid
                .iter()
                .find(|(v, _)| *v == vital)?;
            Some(*last)
        });
        spec.kind().idle_deadline(spec, session, last_valid)
    }

    pub(super) fn fire(&mut self, at: Instant, what: Deadline) {
        match what {
            Deadline::PauseEnds => {
                self.audio_paused_until = None;
                self.events.push_back(EngineEvent::AudioPauseEnded {
                    reason: PauseEnd::Expired,
                    at,
                });
            }
            Deadline::Declare(c) => self.declare(c, at),
            Deadline::Clear(c) => self.end(c, at),
            Deadline::Escalate(c) => {
                let next = self.conditions[c]
                    .occurrence
                    .as_ref()
                    .map(|o| o.priority.escalated());
                if let Some(p) = next {
                    self.set_priority(c, at, p);
                }
            }
            Deadline::Violate(c) => {
                let spec = &self.profile.rules[self.conditions[c].rule].spec;
                // Not ready at that time: re-evaluated at each later BP measurement.
                if spec.kind().holds_at_deadline(spec, &self.session_view()) {
                    self.update(c, Truth::Violating, at, None);
                }
            }
        }
    }
}
