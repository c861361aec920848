//! Model-based property tests: random sequences of readings (valid, questioned by a quality
//! flag, implausible), complete and partial BP frames, link events, acknowledgements, resets,
//! audio pauses, dose marks, restarts and time steps, checked against a small reference model of
//! the SpO2 limit rules and against the invariants every alarm must keep: a condition present
//! beyond its delay is announced, and stays announced until valid evidence ends it or a person
//! acts.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use proptest::prelude::*;
use std::collections::HashMap;
use support::{Harness, CUFF, OXIMETER};
use vigil_alarm::{AlarmChange, AlarmState, EngineEvent, Priority};
use vigil_protocol::{Flag, Reading, Unavailable, Unit, Vital};

#[derive(Debug, Clone)]
enum Op {
    Spo2(f64),
    /// An SpO2 sample the device questions (artefact, low perfusion, ...): shown, never evidence.
    QuestionedSpo2(f64, Flag),
    /// An SpO2 number the vital cannot have: unavailable as implausible.
    ImplausibleSpo2(f64),
    Wait(f64),
    AckNewest,
    ResetOldest,
    Pause,
    Link(bool),
    SensorOff,
    Bp(f64, f64),
    /// A cuff frame with its systolic only (the diastolic missing).
    PartialBp(f64),
    Dose,
    /// The daemon restarts: a new engine from what the session record keeps.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::sample::select(vec![78.0, 84.0, 85.0, 86.0, 89.0, 90.0, 91.0, 92.0, 97.0])
            .prop_map(Op::Spo2),
        2 => (prop::sample::select(vec![80.0, 92.0, 96.0, 99.0]),
              prop::sample::select(vec![Flag::Artefact, Flag::LowPerfusion, Flag::PulseSearch, Flag::Questionable, Flag::Interference]))
            .prop_map(|(v, f)| Op::QuestionedSpo2(v, f)),
        1 => prop::sample::select(vec![186.0, -3.0, f64::NAN, f64::INFINITY]).prop_map(Op::ImplausibleSpo2),
        4 => prop::sample::select(vec![0.5, 1.0, 3.0, 5.0, 9.0, 15.0, 40.0, 200.0]).prop_map(Op::Wait),
        2 => Just(Op::AckNewest),
        1 => Just(Op::ResetOldest),
        1 => Just(Op::Pause),
        1 => any::<bool>().prop_map(Op::Link),
        1 => Just(Op::SensorOff),
        1 => (prop::sample::select(vec![85.0, 120.0, 150.0, 185.0, 205.0]), prop::sample::select(vec![60.0, 80.0, 100.0, 112.0]))
            .prop_map(|(s, d)| Op::Bp(s, d)),
        1 => prop::sample::select(vec![85.0, 120.0, 185.0, 205.0]).prop_map(Op::PartialBp),
        1 => Just(Op::Dose),
        1 => Just(Op::Restart),
    ]
}

/// The reference model of one "below" limit rule, written from the rule's definition:
/// an occurrence starts at the first valid sample below the limit; it is declared once it has
/// lasted the delay (on evidence at most 10 s old then); it ends only after valid in-range
/// samples for `clear_after`, without a gap of more than 10 s and without a sample that is not
/// evidence in between. A sample that is not evidence never starts, declares or ends it.
#[derive(Debug, Clone)]
struct LimitModel {
    limit: f64,
    delay: f64,
    clear_after: f64,
    onset: Option<f64>,
    declared: bool,
    clearing_since: Option<f64>,
    last_violation: f64,
    last_evidence: f64,
}

impl LimitModel {
    fn new(limit: f64, delay: f64) -> Self {
        LimitModel {
            limit,
            delay,
            clear_after: 5.0,
            onset: None,
            declared: false,
            clearing_since: None,
            last_violation: f64::NEG_INFINITY,
            last_evidence: f64::NEG_INFINITY,
        }
    }

    /// Time passes to `t` with no new sample: it may declare, it never ends anything.
    fn advance(&mut self, t: f64) {
        let Some(onset) = self.onset else { return };
        // Declared by time only while the latest evidence is a violation.
        if self.last_violation >= self.last_evidence
            && !self.declared
            && t >= onset + self.delay
            && self.last_violation + 10.0 >= onset + self.delay
        {
            self.declared = true;
        }
    }

    fn sample(&mut self, t: f64, v: f64) {
        self.advance(t);
        let gap = t - self.last_evidence > 10.0;
        self.last_evidence = t;
        if v < self.limit {
            self.clearing_since = None;
            self.last_violation = t;
            match self.onset {
                None => {
                    self.onset = Some(t);
                    self.declared = self.delay == 0.0;
                }
                Some(onset) => self.declared |= t >= onset + self.delay,
            }
        } else if self.onset.is_some() {
            if gap {
                self.clearing_since = None;
            }
            let since = *self.clearing_since.get_or_insert(t);
            if t >= since + self.clear_after {
                *self = LimitModel::new(self.limit, self.delay);
            }
        }
    }

    /// A reading of the vital that is not evidence.
    fn not_evidence(&mut self, t: f64) {
        self.advance(t);
        self.clearing_since = None;
    }

    /// Declared and not ended: the engine must show it Active or Acknowledged.
    fn annunciated(&self) -> bool {
        self.onset.is_some() && self.declared
    }

    fn pending(&self) -> bool {
        self.onset.is_some() && !self.declared
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::kap();
    let mut t = 0.0f64;
    let mut models = [
        ("spo2-low", LimitModel::new(90.0, 15.0)),
        ("spo2-critical", LimitModel::new(85.0, 10.0)),
    ];
    // Latest valid SpO2 sample, for "nothing clears without an in-range reading".
    let mut last_spo2: Option<f64> = None;
    let mut last_spo2_at = 0.0f64;
    let mut seen = 0usize;
    let mut paused = false;
    let mut lifecycle: HashMap<String, Vec<(AlarmChange, Priority, AlarmState)>> = HashMap::new();

    for op in ops {
        match op {
            Op::Spo2(v) => {
                h.reading(t, OXIMETER, Vital::Spo2, *v);
                last_spo2 = Some(*v);
                last_spo2_at = t;
                for (_, m) in models.iter_mut() {
                    m.sample(t, *v);
                }
            }
            Op::QuestionedSpo2(v, flag) => {
                h.run_to(t);
                let r = Reading::number(Vital::Spo2, *v, Unit::Percent)
                    .with_flags([*flag].into_iter().collect());
                h.engine.handle_readings(h.at(t), OXIMETER, &[r]);
                h.run_to(t);
                for (_, m) in models.iter_mut() {
                    m.not_evidence(t);
                }
            }
            Op::ImplausibleSpo2(v) => {
                h.reading(t, OXIMETER, Vital::Spo2, *v);
                for (_, m) in models.iter_mut() {
                    m.not_evidence(t);
                }
            }
            Op::Wait(dt) => {
                t += dt;
                h.run_to(t);
                for (_, m) in models.iter_mut() {
                    m.advance(t);
                }
            }
            Op::AckNewest => {
                let alarms = h.alarms_now(t);
                if let Some(a) = alarms
                    .iter()
                    .filter(|a| a.state == AlarmState::Active)
                    .max_by_key(|a| a.since)
                {
                    let id = a.id.clone();
                    prop_assert!(h.ack(t, &id).is_ok());
                    let after = h.alarms_now(t).into_iter().find(|x| x.id == id);
                    prop_assert!(after.is_some_and(|x| x.acknowledged.is_some()));
                }
            }
            Op::ResetOldest => {
                if let Some(a) = h.alarms_now(t).into_iter().min_by_key(|a| a.since) {
                    let r = h.reset(t, &a.id);
                    prop_assert_eq!(r.is_ok(), a.state == AlarmState::Latched, "{:?}", a);
                }
            }
            Op::Pause => {
                let at = h.at(t);
                let until = h.engine.pause_audio(at, "Nurse Okafor", None);
                prop_assert!(h.secs(until) - t <= 120.0 + 1e-9);
                h.run_to(t);
            }
            Op::Link(up) => h.link(t, OXIMETER, *up),
            Op::SensorOff => {
                h.sensor_off(t);
                for (_, m) in models.iter_mut() {
                    m.not_evidence(t);
                }
            }
            Op::Bp(s, d) => h.bp(t, *s, *d),
            Op::PartialBp(s) => h.frame(
                t,
                CUFF,
                &[
                    Reading::number(Vital::NibpSystolic, *s, Unit::MmHg),
                    Reading::unavailable(Vital::NibpDiastolic, Unavailable::Missing),
                ],
            ),
            Op::Restart => {
                h.restart(t);
                // What was pending is not in the record: it starts again with the next sample.
                // What was announced comes back, its clearing starting over.
                for (_, m) in models.iter_mut() {
                    if m.pending() {
                        *m = LimitModel::new(m.limit, m.delay);
                    } else {
                        m.clearing_since = None;
                    }
                }
            }
            Op::Dose => {
                let at = h.at(t);
                let _ = h.engine.mark_dose(at, "Dr Rivera");
                h.run_to(t);
            }
        }

        // The model and the engine agree on the SpO2 rules.
        let snapshot = h.alarms_now(t);
        for (rule, m) in &models {
            let live: Vec<_> = snapshot
                .iter()
                .filter(|a| a.rule == *rule && a.state != AlarmState::Latched)
                .collect();
            prop_assert!(live.len() <= 1, "one occurrence per condition: {:?}", live);
            let state = live.first().map(|a| a.state);
            if m.annunciated() {
                prop_assert!(
                    matches!(state, Some(AlarmState::Active | AlarmState::Acknowledged)),
                    "t={} {}: model annunciated, engine {:?}",
                    t,
                    rule,
                    state
                );
            } else if m.pending() {
                prop_assert_eq!(state, Some(AlarmState::Pending), "t={} {}", t, rule);
            } else {
                prop_assert_eq!(state, None, "t={} {}", t, rule);
            }
        }

        // Invariants over the events since the last step.
        for (at, e) in &h.events[seen..] {
            let EngineEvent::Alarm { change, alarm, .. } = e else {
                continue;
            };
            let history = lifecycle.entry(alarm.id.clone()).or_default();
            match change {
                AlarmChange::Raised => {
                    prop_assert!(history.is_empty(), "raised twice: {}", alarm.id);
                    prop_assert_eq!(alarm.state, AlarmState::Active);
                    prop_assert!(
                        alarm.acknowledged.is_none(),
                        "a new occurrence is never pre-acknowledged"
                    );
                    // No alarm before its delay.
                    let delay = match alarm.rule.as_str() {
                        "spo2-low" | "pr-low" | "pr-very-high" => 15.0,
                        "spo2-critical" | "pr-critical-low" | "sensor-off" => 10.0,
                        "device-disconnected" => 5.0,
                        _ => 0.0,
                    };
                    // "Not current" holds from 30 s after the last valid sample.
                    if alarm.rule == "not-current" && alarm.vital == Some(Vital::Spo2) {
                        prop_assert!(
                            *at - last_spo2_at >= 30.0 - 1e-9,
                            "SpO2 not current {}s after a sample",
                            *at - last_spo2_at
                        );
                    }
                    prop_assert!(
                        (alarm.since - alarm.onset).as_secs_f64() + 1e-9 >= delay,
                        "{} raised {}s after onset",
                        alarm.id,
                        (alarm.since - alarm.onset).as_secs_f64()
                    );
                }
                AlarmChange::Escalated => {
                    let last = history.last().map(|(_, p, _)| *p);
                    prop_assert!(
                        last.is_some_and(|p| alarm.priority > p),
                        "escalation must rise"
                    );
                    prop_assert!(alarm.acknowledged.is_none(), "escalation sounds again");
                }
                AlarmChange::Acknowledged => {
                    prop_assert!(!history.is_empty(), "acknowledged before raised");
                }
                AlarmChange::Cleared => {
                    prop_assert!(
                        !history.iter().any(|(c, _, _)| *c == AlarmChange::Cleared),
                        "cleared twice"
                    );
                    // Only valid evidence ends a condition: never time alone, a questioned or
                    // implausible sample, a partial BP frame, an acknowledgement or a pause.
                    if alarm.rule.starts_with("spo2-") {
                        prop_assert!(
                            matches!(op, Op::Spo2(_)),
                            "{} cleared at {} by {:?}",
                            alarm.id,
                            at,
                            op
                        );
                    }
                    if alarm.rule.starts_with("bp-") || alarm.rule.starts_with("nibp-") {
                        prop_assert!(
                            matches!(op, Op::Bp(..) | Op::Dose),
                            "{} cleared at {} by {:?}",
                            alarm.id,
                            at,
                            op
                        );
                    }
                    if alarm.rule.starts_with("spo2-") {
                        let limit = if alarm.rule == "spo2-low" { 90.0 } else { 85.0 };
                        prop_assert!(
                            last_spo2.is_some_and(|v| v >= limit),
                            "{} cleared at {} without an in-range reading (last {:?})",
                            alarm.id,
                            at,
                            last_spo2
                        );
                    }
                }
                AlarmChange::Reset => {
                    prop_assert!(
                        history
                            .last()
                            .is_some_and(|(c, _, s)| *c != AlarmChange::Reset
                                && history.iter().any(|(c, _, _)| *c == AlarmChange::Cleared)
                                && (*s == AlarmState::Latched || *c == AlarmChange::Acknowledged)),
                        "reset of an alarm that was not latched: {:?}",
                        history
                    );
                }
            }
            if let Some((c, _, s)) = history.last() {
                let ended = *c == AlarmChange::Reset
                    || (*c == AlarmChange::Cleared && *s == AlarmState::Cleared);
                prop_assert!(!ended, "event after the end of {}: {:?}", alarm.id, change);
            }
            history.push((*change, alarm.priority, alarm.state));
        }
        // A pause never blocks a new condition: a sounding raise or escalation while paused is
        // followed at once by the end of the pause. A restart ends any pause (the new engine has
        // none, so everything sounds).
        if matches!(op, Op::Restart) {
            paused = false;
        }
        for i in seen..h.events.len() {
            match &h.events[i].1 {
                EngineEvent::AudioPaused { .. } => paused = true,
                EngineEvent::AudioPauseEnded { .. } => paused = false,
                EngineEvent::Alarm {
                    change: AlarmChange::Raised | AlarmChange::Escalated,
                    alarm,
                    ..
                } if paused && alarm.priority > Priority::Info => {
                    prop_assert!(
                        matches!(
                            h.events.get(i + 1).map(|e| &e.1),
                            Some(EngineEvent::AudioPauseEnded {
                                reason: vigil_alarm::PauseEnd::NewCondition,
                                ..
                            })
                        ),
                        "{} sounded during a pause that went on",
                        alarm.id
                    );
                }
                _ => {}
            }
        }
        seen = h.events.len();
    }
    // Every alarm in the snapshot is the continuation of a raised one, or pending.
    for a in h.alarms_now(t) {
        if a.state != AlarmState::Pending {
            prop_assert!(
                lifecycle.contains_key(&a.id),
                "{} shown but never raised",
                a.id
            );
        }
    }
    let _ = (
        CUFF,
        Flag::Demo,
        Reading::number(Vital::Spo2, 0.0, Unit::Percent),
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn engine_matches_the_model_and_keeps_its_invariants(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}

#[test]
fn the_model_itself_follows_the_scenarios() {
    // Guard against a model that agrees with the engine by being wrong the same way.
    let mut m = LimitModel::new(90.0, 15.0);
    for s in 0..20 {
        m.sample(s as f64, 86.0);
    }
    assert!(m.annunciated());
    // One in-range sample never ends it; five seconds of them do.
    m.sample(20.0, 98.0);
    assert!(m.annunciated());
    for s in 21..25 {
        m.sample(s as f64, 98.0);
    }
    assert!(m.annunciated());
    m.sample(25.0, 98.0);
    assert!(!m.annunciated() && !m.pending());
    // A questioned sample in between starts the clearing over.
    let mut q = LimitModel::new(90.0, 15.0);
    for s in 0..20 {
        q.sample(s as f64, 86.0);
    }
    for s in 20..24 {
        q.sample(s as f64, 98.0);
    }
    q.not_evidence(24.0);
    q.sample(25.0, 98.0);
    assert!(q.annunciated());
    let mut brief = LimitModel::new(90.0, 15.0);
    for s in 0..5 {
        brief.sample(s as f64, 89.0);
    }
    for s in 5..=10 {
        brief.sample(s as f64, 97.0);
    }
    brief.advance(60.0);
    assert!(!brief.annunciated() && !brief.pending());
}
