//! Timers: the engine's deadlines (delays, escalation, clearing, idle conditions that start
//! to hold, the audio pause), offered through `poll_timeout` and fired in order by `advance`.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    PauseEnds,
    Declare(usize),
    Clear(usize),
    Escalate(usize),
    Violate(usize),
}

impl Engine {
    /// Advances time to `now`, processing every deadline in order. Call at
    /// [`Engine::poll_timeout`]; every other entry point calls it too.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.advance(now);
    }

    /// The next time the engine needs [`Engine::handle_timeout`], if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline().map(|(t, _)| t)
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
        let session = self.session_facts();
        for (c, cond) in self.conditions.iter().enumerate() {
            let rule = &self.profile.rules[cond.rule];
            let facts = &self.facts[cond.rule];
            let (delay, _) = facts.timing;
            match &cond.occurrence {
                Some(o) => {
                    // A limit is declared at the end of its delay only on fresh evidence: a cuff
                    // reading five minutes old does not make "sustained for five minutes".
                    // Otherwise the next sample decides.
                    let fresh = !facts.needs_fresh_evidence
                        || o.last_violation + EVIDENCE_MAX_AGE >= o.onset + delay;
                    // Only while the latest evidence is a violation: a sample that is not evidence
                    // must not revive an older one. A kind that ends by its own deadline after
                    // in-range evidence (a link back up) is not declared while that evidence
                    // stands, even when it came at the same instant (added, then connected).
                    let clearing = facts.own_deadlines && o.clearing_since.is_some();
                    if o.declared.is_none()
                        && o.last_violation >= o.last_evidence
                        && !clearing
                        && fresh
                    {
                        offer(o.onset + delay, Deadline::Declare(c));
                    }
                    // No clearing deadline here: a condition ends on in-range evidence only,
                    // never because time passed without any (a kind whose evidence is a state,
                    // such as a link that came back up, gives its own below).
                    if o.declared.is_some()
                        && o.acknowledged.is_none()
                        && o.priority > Priority::Info
                        && o.priority < Priority::High
                    {
                        if let Some(after) = rule.escalate_after {
                            offer(o.priority_since + after, Deadline::Escalate(c));
                        }
                    }
                    if !facts.own_deadlines {
                        continue;
                    }
                    let low_battery_at = cond.device.and_then(|d| self.devices[d].low_battery_at);
                    if let Some(t) =
                        facts
                            .kind
                            .clear_deadline(&rule.spec, low_battery_at, o.clearing_since)
                    {
                        offer(t, Deadline::Clear(c));
                    }
                }
                None if !facts.own_deadlines => {}
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
    pub(super) fn idle_deadline(
        &self,
        cond: &Condition,
        session: &crate::rules::SessionFacts,
    ) -> Option<Instant> {
        let spec = &self.profile.rules[cond.rule].spec;
        // Looked up only by the kinds that ask.
        let last_valid = || {
            let vital = cond.vital?;
            let (_, last) = self.devices[cond.device?]
                .last_valid
                .iter()
                .find(|(v, _)| *v == vital)?;
            Some(*last)
        };
        self.facts[cond.rule]
            .kind
            .idle_deadline(spec, session, &last_valid)
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
                if self.facts[self.conditions[c].rule]
                    .kind
                    .holds_at_deadline(spec, &self.session_facts())
                {
                    self.update(c, Truth::Violating, at, None);
                }
            }
        }
    }
}
