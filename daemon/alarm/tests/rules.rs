//! Every rule and behaviour of the engine, with injected time.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use std::time::Duration;
use support::{Harness, CUFF, OXIMETER};
use vigil_alarm::AlarmChange::{Cleared, Escalated, Raised};
use vigil_alarm::{
    ActionError, AlarmKind, AlarmState, EngineEvent, Layer, PauseEnd, Priority, Profile,
    SessionPhase, Source,
};
use vigil_protocol::{Flag, Reading, Unit, Vital};

fn profile_with(overrides: &str) -> Profile {
    Profile::load(
        Layer {
            source: Source::Default,
            text: vigil_alarm::profile::KAP_DEFAULT,
        },
        &[Layer {
            source: Source::Patient("test".into()),
            text: overrides,
        }],
    )
    .expect("valid override")
}

#[test]
fn pending_alarm_is_in_the_snapshot_but_cannot_be_acknowledged() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 10.0, 86.0, 72.0);
    let a = h.alarm(10.0, "spo2-low").expect("pending alarm listed");
    assert_eq!(a.state, AlarmState::Pending);
    assert_eq!(a.kind, AlarmKind::Physiological);
    assert_eq!(a.vital, Some(Vital::Spo2));
    assert_eq!(a.device.as_deref(), Some(OXIMETER));
    assert_eq!(
        h.ack(10.0, &a.id),
        Err(ActionError::NotRaised(a.id.clone()))
    );
    assert!(h.raised().is_empty());
}

#[test]
fn the_next_deadline_is_the_end_of_the_delay() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 5.0, 98.0, 72.0);
    h.oximeter(5.0, 16.0, 86.0, 72.0);
    assert_eq!(h.engine.poll_timeout(), Some(h.at(20.0)));
    h.run_to(20.0);
    assert_eq!(
        h.raised(),
        vec![(20.0, "spo2-low".into(), Priority::Medium)]
    );
}

#[test]
fn acknowledge_covers_the_current_occurrence_only() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 20.0, 86.0, 72.0);
    let first = h.alarm(20.0, "spo2-low").unwrap();
    assert_eq!(first.state, AlarmState::Active);
    h.ack(21.0, &first.id).unwrap();
    let acked = h.alarm(21.0, "spo2-low").unwrap();
    assert_eq!(acked.state, AlarmState::Acknowledged);
    let by = acked.acknowledged.unwrap();
    assert_eq!((by.by.as_str(), h.secs(by.at)), ("Nurse Okafor", 21.0));
    assert!(matches!(
        h.ack(22.0, &first.id),
        Err(ActionError::AlreadyAcknowledged { .. })
    ));
    // Recovery (5 s in range) ends the occurrence; a new drop is a new occurrence that sounds
    // again.
    h.oximeter(22.0, 28.0, 98.0, 72.0);
    h.oximeter(28.0, 48.0, 86.0, 72.0);
    let second = h.alarm(48.0, "spo2-low").unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.state, AlarmState::Active);
    assert_eq!(
        h.ack(48.0, &first.id),
        Err(ActionError::UnknownAlarm(first.id.clone()))
    );
}

#[test]
fn acknowledging_never_hides_a_higher_priority_condition() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 20.0, 86.0, 72.0);
    let low = h.alarm(20.0, "spo2-low").unwrap().id;
    h.ack(20.0, &low).unwrap();
    h.oximeter(20.0, 40.0, 80.0, 72.0);
    let critical = h.alarm(40.0, "spo2-critical").unwrap();
    assert_eq!(critical.priority, Priority::High);
    assert_eq!(critical.state, AlarmState::Active);
    assert_eq!(h.state_of(40.0, "spo2-low"), Some(AlarmState::Acknowledged));
}

#[test]
fn unacknowledged_alarm_escalates_and_acknowledged_one_does_not() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 200.0, 86.0, 72.0); // raised at 15 s
    assert!(h
        .alarm_log()
        .contains(&(195.0, Escalated, "spo2-low".into(), Priority::High)));
    let escalated = h.alarm(200.0, "spo2-low").unwrap();
    assert_eq!(escalated.priority, Priority::High);
    assert!(escalated.latching, "a High alarm latches");

    let mut h = Harness::kap();
    h.oximeter(0.0, 16.0, 86.0, 72.0);
    let id = h.alarm(16.0, "spo2-low").unwrap().id;
    h.ack(16.0, &id).unwrap();
    h.oximeter(16.0, 400.0, 86.0, 72.0);
    assert_eq!(
        h.alarm(400.0, "spo2-low").unwrap().priority,
        Priority::Medium
    );
}

#[test]
fn escalation_clears_an_acknowledgement_so_it_sounds_again() {
    // bp-severe: acknowledged while unconfirmed (Low), then a confirming repeat (High).
    let mut h = Harness::cuff_only();
    h.bp(0.0, 185.0, 100.0);
    let id = h.alarm(0.0, "bp-severe").unwrap().id;
    h.ack(10.0, &id).unwrap();
    h.bp(120.0, 190.0, 100.0);
    let a = h.alarm(120.0, "bp-severe").unwrap();
    assert_eq!((a.priority, a.state), (Priority::High, AlarmState::Active));
    assert!(a.acknowledged.is_none());
}

#[test]
fn unconfirmed_high_bp_clears_on_a_normal_repeat() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 182.0, 100.0);
    h.bp(120.0, 150.0, 90.0);
    assert!(h.alarm(120.0, "bp-severe").is_none());
    // A new high reading is a new first reading: it asks for a repeat again.
    h.bp(200.0, 182.0, 100.0);
    let a = h.alarm(200.0, "bp-severe").unwrap();
    assert_eq!(a.priority, Priority::Low);
    assert!(a.awaiting_confirmation);
    let requests = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, EngineEvent::NibpRequested { .. }))
        .count();
    assert_eq!(requests, 2);
}

#[test]
fn single_crisis_reading_is_high_at_once_and_latches() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 205.0, 100.0);
    let a = h.alarm(0.0, "bp-crisis").unwrap();
    assert_eq!((a.priority, a.state), (Priority::High, AlarmState::Active));
    h.bp(300.0, 130.0, 80.0);
    assert_eq!(h.state_of(300.0, "bp-crisis"), Some(AlarmState::Latched));
    assert_eq!(
        h.reset(301.0, "bp-severe#999"),
        Err(ActionError::UnknownAlarm("bp-severe#999".into()))
    );
    h.reset(301.0, &a.id).unwrap();
    assert!(h.alarm(301.0, "bp-crisis").is_none());
}

#[test]
fn reset_is_refused_while_the_condition_holds_and_latched_alarms_can_be_acknowledged() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 210.0, 125.0);
    let id = h.alarm(0.0, "bp-crisis").unwrap().id;
    assert_eq!(
        h.reset(5.0, &id),
        Err(ActionError::ConditionPresent(id.clone()))
    );
    h.bp(300.0, 130.0, 80.0);
    h.ack(301.0, &id).unwrap();
    let a = h.alarm(301.0, "bp-crisis").unwrap();
    assert_eq!(a.state, AlarmState::Latched);
    assert!(a.acknowledged.is_some());
}

#[test]
fn low_systolic_is_evaluated_per_measurement() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 85.0, 55.0);
    assert_eq!(h.raised(), vec![(0.0, "sbp-low".into(), Priority::Medium)]);
    h.bp(120.0, 100.0, 60.0);
    assert!(h
        .alarm_log()
        .contains(&(120.0, Cleared, "sbp-low".into(), Priority::Medium)));
    assert!(h.alarms_now(120.0).is_empty(), "Medium does not latch");
}

#[test]
fn kpa_cuff_values_are_compared_in_mmhg() {
    let mut h = Harness::cuff_only();
    let t = h.at(0.0);
    h.engine.handle_readings(
        t,
        CUFF,
        &[
            Reading::number(Vital::NibpSystolic, 27.0, Unit::KPa), // 202.5 mmHg
            Reading::number(Vital::NibpDiastolic, 12.0, Unit::KPa), // 90 mmHg
        ],
    );
    h.run_to(0.0);
    assert_eq!(h.alarm(0.0, "bp-crisis").unwrap().priority, Priority::High);
}

#[test]
fn pre_dose_review_is_informational_and_ends_with_the_dose() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 150.0, 85.0);
    assert_eq!(
        h.raised(),
        vec![(0.0, "predose-bp-review".into(), Priority::Info)]
    );
    h.dose(60.0);
    assert!(h.alarm(60.0, "predose-bp-review").is_none());
    let s = h.engine.snapshot(h.at(660.0)).session;
    assert_eq!(
        s.phase,
        SessionPhase::PostDose {
            minutes_since_dose: 10
        }
    );
    assert_eq!(
        s.baseline.map(|b| (b.systolic, b.diastolic)),
        Some((150.0, 85.0))
    );
    assert!(h.engine.mark_dose(h.at(700.0), "x") == Err(ActionError::DoseAlreadyMarked));
}

#[test]
fn dose_without_baseline_is_flagged_and_rise_rule_stays_quiet() {
    let mut h = Harness::cuff_only();
    h.dose(0.0);
    assert_eq!(
        h.raised(),
        vec![(0.0, "no-baseline".into(), Priority::Info)]
    );
    h.bp(600.0, 170.0, 100.0);
    assert!(h.alarm(600.0, "bp-rise").is_none());
}

#[test]
fn baseline_rise_needs_either_systolic_or_diastolic() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 120.0, 78.0);
    h.dose(60.0);
    h.bp(600.0, 150.0, 103.0); // +30 / +25
    assert_eq!(
        h.alarm(600.0, "bp-rise").unwrap().priority,
        Priority::Medium
    );
    h.bp(700.0, 150.0, 95.0); // +30 / +17, before the 3-minute escalation
    assert!(h.alarm(700.0, "bp-rise").is_none());
}

#[test]
fn nibp_overdue_follows_the_schedule_and_escalates() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 120.0, 78.0);
    h.dose(0.0);
    // Due at 40 min, with 2 min of grace for the cuff cycle.
    h.run_to(2519.0);
    assert!(h.raised().is_empty());
    h.run_to(2520.0);
    assert_eq!(
        h.raised(),
        vec![(2520.0, "nibp-overdue".into(), Priority::Low)]
    );
    h.run_to(2700.0); // 5 min overdue and unacknowledged: Medium
    assert_eq!(
        h.alarm(2700.0, "nibp-overdue").unwrap().priority,
        Priority::Medium
    );
    h.bp(2760.0, 125.0, 80.0);
    assert!(h.alarm(2760.0, "nibp-overdue").is_none());
    // Next due at 55 min; the reading at 46 min does not cover it.
    h.run_to(3419.0);
    assert!(h.alarm(3419.0, "nibp-overdue").is_none());
    h.run_to(3420.0);
    assert!(h.alarm(3420.0, "nibp-overdue").is_some());
    // A reading just before the due time satisfies it; one at the due time too.
    h.bp(3430.0, 125.0, 80.0);
    h.bp(4140.0, 125.0, 80.0); // 69 min: covers the 70-min reading (5 min early tolerance)
    h.run_to(4400.0);
    assert!(h.alarm(4400.0, "nibp-overdue").is_none());
    h.bp(5100.0, 125.0, 80.0); // exactly at 85 min
                               // Nothing is due after 90 min.
    h.run_to(9000.0);
    assert!(h.alarm(9000.0, "nibp-overdue").is_none());
}

#[test]
fn discharge_gate_needs_two_hours_and_bp_near_baseline() {
    let mut h = Harness::cuff_only();
    // One scheduled check at 40 min: a sparser schedule than the envelope allows at load, so
    // the profile is built in memory.
    let mut p = Profile::kap_default().unwrap();
    for rule in &mut p.rules {
        if let vigil_alarm::RuleSpec::NibpOverdue { until, .. } = &mut rule.spec {
            *until = Duration::from_secs(2400);
        }
    }
    h.engine = vigil_alarm::Engine::new(p);
    h.engine.add_device(h.at(0.0), CUFF, &[]);
    h.engine.handle_link(h.at(0.0), CUFF, true);
    h.bp(0.0, 120.0, 78.0);
    h.dose(0.0);
    h.bp(2400.0, 150.0, 95.0);
    h.bp(6600.0, 128.0, 85.0); // 1 h 50 min, near baseline
    h.run_to(7199.0);
    assert!(h.alarm(7199.0, "discharge-ready").is_none());
    h.run_to(7200.0);
    let a = h.alarm(7200.0, "discharge-ready").expect("ready at 2 h");
    assert_eq!(a.priority, Priority::Info);
    h.bp(7500.0, 145.0, 90.0);
    assert!(h.alarm(7500.0, "discharge-ready").is_none());
}

#[test]
fn audio_pause_is_capped_and_ends_on_a_new_condition() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 10.0, 98.0, 72.0);
    let until = h
        .engine
        .pause_audio(h.at(10.0), "Nurse Okafor", Some(Duration::from_secs(600)));
    assert_eq!(h.secs(until), 130.0, "capped at 2 minutes");
    let snap = h.engine.snapshot(h.at(40.0));
    assert_eq!(snap.audio_pause_remaining, Some(Duration::from_secs(90)));
    h.oximeter(10.0, 140.0, 98.0, 72.0);
    assert!(h.events.iter().any(|(t, e)| *t == 130.0
        && matches!(
            e,
            EngineEvent::AudioPauseEnded {
                reason: PauseEnd::Expired,
                ..
            }
        )));

    h.engine.pause_audio(h.at(140.0), "Nurse Okafor", None);
    h.oximeter(140.0, 160.0, 86.0, 72.0);
    assert!(h.events.iter().any(|(t, e)| *t == 155.0
        && matches!(
            e,
            EngineEvent::AudioPauseEnded {
                reason: PauseEnd::NewCondition,
                ..
            }
        )));
    assert_eq!(h.engine.snapshot(h.at(156.0)).audio_pause_remaining, None);
}

#[test]
fn hysteresis_keeps_one_occurrence_while_hovering_near_the_limit() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 20.0, 86.0, 72.0);
    let id = h.alarm(20.0, "spo2-low").unwrap().id;
    h.oximeter(20.0, 24.0, 91.0, 72.0); // in range, within the 2 % band, for 4 s
    h.oximeter(24.0, 26.0, 88.0, 72.0);
    assert_eq!(h.alarm(26.0, "spo2-low").unwrap().id, id, "same occurrence");
    h.oximeter(26.0, 40.0, 91.0, 72.0); // 5 s in the band clears
    assert!(h
        .alarm_log()
        .contains(&(31.0, Cleared, "spo2-low".into(), Priority::Medium)));
}

#[test]
fn demo_and_invalid_readings_neither_raise_nor_clear() {
    let mut h = Harness::kap();
    let t = h.at(0.0);
    for s in 0..25 {
        let t = t + Duration::from_secs(s);
        let demo = Reading::number(Vital::Spo2, 80.0, Unit::Percent)
            .with_flags([Flag::Demo].into_iter().collect());
        h.engine.handle_readings(t, OXIMETER, &[demo]);
    }
    h.run_to(25.0);
    assert!(h.alarm(25.0, "spo2-critical").is_none());
    // Demo data does not keep SpO2 current either.
    h.run_to(31.0);
    assert!(h.alarm(31.0, "not-current").is_some());
}

#[test]
fn an_intermittent_source_is_held_only_to_instantaneous_limits() {
    // A cuff's pulse rate of 130 twice, five minutes apart, is not "sustained for 5 minutes".
    let mut h = Harness::cuff_only();
    h.reading(0.0, CUFF, Vital::PulseRate, 130.0);
    h.reading(300.0, CUFF, Vital::PulseRate, 131.0);
    h.reading(600.0, CUFF, Vital::PulseRate, 132.0);
    assert!(h.raised().is_empty(), "{:?}", h.raised());
    // Instantaneous limits still apply to it.
    h.bp(700.0, 85.0, 50.0);
    assert_eq!(
        h.raised(),
        vec![(700.0, "sbp-low".into(), Priority::Medium)]
    );
}

#[test]
fn a_pending_limit_needs_fresh_evidence_when_its_delay_ends() {
    // The oximeter goes quiet right after one high sample: the delay ends on stale evidence.
    let mut h = Harness::kap();
    h.oximeter(0.0, 5.0, 98.0, 72.0);
    h.reading(5.0, OXIMETER, Vital::PulseRate, 145.0);
    h.run_to(100.0);
    assert!(
        h.raised().iter().all(|(_, rule, _)| rule != "pr-very-high"),
        "{:?}",
        h.raised()
    );
    assert_eq!(h.state_of(100.0, "pr-very-high"), Some(AlarmState::Pending));
    // Fresh evidence past the delay declares it at once.
    h.reading(101.0, OXIMETER, Vital::PulseRate, 146.0);
    assert!(h
        .raised()
        .contains(&(101.0, "pr-very-high".into(), Priority::Medium)));
}

#[test]
fn heart_rate_from_a_chest_strap_is_held_to_the_pulse_limits() {
    let mut h = Harness::kap();
    let t = h.at(0.0);
    h.engine.add_device(t, "strap", &[Vital::HeartRate]);
    h.engine.handle_link(t, "strap", true);
    for s in 0..20u64 {
        h.reading(s as f64, "strap", Vital::HeartRate, 35.0);
    }
    let a = h.alarm(20.0, "pr-critical-low").unwrap();
    assert_eq!(
        (a.vital, a.device.as_deref()),
        (Some(Vital::HeartRate), Some("strap"))
    );
}

#[test]
fn low_battery_clears_a_minute_after_the_last_report() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 10.0, 98.0, 72.0);
    let t = h.at(10.0);
    h.engine
        .handle_device_event(t, OXIMETER, &vigil_protocol::DeviceEvent::LowBattery);
    h.oximeter(10.0, 50.0, 98.0, 72.0);
    let a = h.alarm(50.0, "low-battery").unwrap();
    assert_eq!((a.kind, a.priority), (AlarmKind::Technical, Priority::Low));
    h.oximeter(50.0, 72.0, 98.0, 72.0);
    assert!(h.alarm(71.0, "low-battery").is_none());
    assert!(h
        .alarm_log()
        .contains(&(70.0, Cleared, "low-battery".into(), Priority::Low)));
}

#[test]
fn an_input_stamped_before_the_engine_time_counts_as_now() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 100.0, 98.0, 72.0);
    let late = h.at(10.0);
    h.engine
        .handle_device_event(late, OXIMETER, &vigil_protocol::DeviceEvent::LowBattery);
    h.oximeter(100.0, 150.0, 98.0, 72.0);
    assert!(
        h.alarm(150.0, "low-battery").is_some(),
        "cleared from the stale time"
    );
}

#[test]
fn a_device_that_never_connects_raises_the_disconnect_alarm() {
    let mut h = Harness::cuff_only();
    let t = h.at(0.0);
    h.engine.add_device(t, "oximeter-2", &[]);
    h.run_to(4.9);
    assert_eq!(
        h.state_of(4.9, "device-disconnected"),
        Some(AlarmState::Pending)
    );
    h.run_to(5.0);
    assert_eq!(
        h.raised(),
        vec![(5.0, "device-disconnected".into(), Priority::High)]
    );
}

#[test]
fn a_brief_link_drop_inside_the_delay_leaves_no_trace() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 10.0, 98.0, 72.0);
    h.link(10.0, OXIMETER, false);
    h.link(12.0, OXIMETER, true);
    h.oximeter(12.0, 30.0, 98.0, 72.0);
    assert!(h.alarm_log().is_empty());
}

#[test]
fn profile_overrides_change_engine_behaviour() {
    let mut h = Harness::with_profile(profile_with(
        "[rules.spo2-low]\nbelow = 88\ndelay = \"5s\"\n",
    ));
    h.oximeter(0.0, 20.0, 89.0, 72.0);
    assert!(h.alarm(20.0, "spo2-low").is_none());
    h.oximeter(20.0, 30.0, 87.0, 72.0);
    assert_eq!(
        h.raised(),
        vec![(25.0, "spo2-low".into(), Priority::Medium)]
    );
    let _ = Raised;
}

#[test]
fn recording_failure_is_a_technical_alarm_that_clears_when_writing_resumes() {
    let mut h = Harness::cuff_only();
    let t = h.at(5.0);
    h.engine.set_recording_failed(t, true);
    h.run_to(5.0);
    let a = h.alarm(5.0, "recording-failed").unwrap();
    assert_eq!(
        (a.kind, a.priority),
        (AlarmKind::Technical, Priority::Medium)
    );
    let t = h.at(30.0);
    h.engine.set_recording_failed(t, false);
    h.run_to(30.0);
    assert!(h.alarm(30.0, "recording-failed").is_none());
}

#[test]
fn restored_alarms_keep_their_state_ids_and_acknowledgement() {
    let mut h = Harness::kap();
    let t0 = h.at(0.0);
    let skipped = h.engine.restore(vigil_alarm::RestoredSession {
        now: t0,
        dose: None,
        baseline: None,
        bp_measurements: vec![],
        next_seq: 1,
        alarms: vec![
            vigil_alarm::RestoredAlarm {
                rule: "spo2-low".into(),
                seq: 41,
                device: Some(OXIMETER.into()),
                vital: Some(Vital::Spo2),
                priority: Priority::Medium,
                onset: t0,
                since: t0,
                acknowledged: Some(vigil_alarm::Act {
                    by: "Nurse Okafor".into(),
                    at: t0,
                }),
                latched: false,
                value: Some(86.0),
                awaiting_confirmation: false,
            },
            vigil_alarm::RestoredAlarm {
                rule: "bp-crisis".into(),
                seq: 42,
                device: None,
                vital: None,
                priority: Priority::High,
                onset: t0,
                since: t0,
                acknowledged: None,
                latched: true,
                value: Some(205.0),
                awaiting_confirmation: false,
            },
            vigil_alarm::RestoredAlarm {
                rule: "no-such-rule".into(),
                seq: 7,
                device: None,
                vital: None,
                priority: Priority::Low,
                onset: t0,
                since: t0,
                acknowledged: None,
                latched: false,
                value: None,
                awaiting_confirmation: false,
            },
        ],
    });
    assert_eq!(skipped, vec!["no-such-rule#7".to_string()]);
    let low = h.alarm(1.0, "spo2-low").unwrap();
    assert_eq!(
        (low.id.as_str(), low.state),
        ("spo2-low#41", AlarmState::Acknowledged)
    );
    assert_eq!(h.state_of(1.0, "bp-crisis"), Some(AlarmState::Latched));
    // The restored occurrence lives on: in-range readings clear it; ids continue after it.
    h.oximeter(1.0, 7.0, 98.0, 72.0);
    assert!(h.alarm(7.0, "spo2-low").is_none());
    h.reset(8.0, "bp-crisis#42").unwrap();
    h.oximeter(8.0, 30.0, 86.0, 72.0);
    let next = h.alarm(30.0, "spo2-low").unwrap();
    let seq: u64 = next.id.split('#').nth(1).unwrap().parse().unwrap();
    assert!(seq > 42, "{}", next.id);
}
