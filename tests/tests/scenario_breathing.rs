//! The `respiratory-depression` scenario (issue 17) held to the alarms it declares.
//!
//! No serial or BLE format can carry a respiratory rate or EtCO2, so unlike
//! `tests/scenarios.rs` this does not run the scenario's devices through the daemon: it drives
//! the alarm engine directly, under the default KAP profile, with the readings the scenario's
//! devices would send every second (the oximeter's SpO2 and pulse rate, a monitor's rate and
//! EtCO2, the cuff's BP on its schedule) and the dose marked when the scenario gives it. The
//! same check applies: each declared alarm near its time at its highest priority, no others.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::time::{Duration, Instant};
use vigil_alarm::{AlarmChange, Engine, EngineEvent, Profile};
use vigil_protocol::{Reading, Unit, Vital};
use vigil_simulator::patient::{measured, measured_breathing, Noise};
use vigil_simulator::Scenario;

#[derive(Debug)]
struct Raised {
    rule: String,
    at: f64,
    max_priority: String,
}

/// Runs the scenario through the engine; the monitor sends EtCO2 in kPa when `kpa`.
fn run(scenario: &Scenario, kpa: bool) -> Vec<Raised> {
    let t0 = Instant::now();
    let at = |secs: f64| t0 + Duration::from_secs_f64(secs);
    let mut engine = Engine::new(Profile::kap_default().unwrap());
    for (id, continuous) in [
        ("oximeter", &[Vital::Spo2, Vital::PulseRate][..]),
        ("cuff", &[][..]),
        ("monitor", &[Vital::RespiratoryRate, Vital::Etco2][..]),
    ] {
        engine.add_device(t0, id, continuous);
        engine.handle_link(t0, id, true);
    }
    let (mut oximeter_noise, mut cuff_noise, mut monitor_noise) =
        (Noise::new(7, 0), Noise::new(7, 1), Noise::new(7, 2));
    let mut nibp = scenario.nibp_times().into_iter().peekable();
    let mut dosed = false;
    let mut raised: Vec<Raised> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut t = 0.0;
    while t <= scenario.duration {
        let now = at(t);
        engine.handle_timeout(now);
        if !dosed && scenario.dose_at.is_some_and(|d| t >= d) {
            engine.mark_dose(now, "Scenario nurse").unwrap();
            dosed = true;
        }
        let v = measured(scenario, t, &mut oximeter_noise, false);
        engine.handle_readings(
            now,
            "oximeter",
            &[
                Reading::number(Vital::Spo2, v.spo2, Unit::Percent),
                Reading::number(Vital::PulseRate, v.heart_rate, Unit::BeatsPerMinute),
            ],
        );
        let breathing = measured_breathing(scenario, t, &mut monitor_noise);
        engine.handle_readings(now, "monitor", &breathing.readings(kpa));
        if nibp.next_if(|n| *n <= t).is_some() {
            let bp = measured(scenario, t, &mut cuff_noise, false);
            engine.handle_readings(
                now,
                "cuff",
                &[
                    Reading::number(Vital::NibpSystolic, bp.systolic, Unit::MmHg),
                    Reading::number(Vital::NibpDiastolic, bp.diastolic, Unit::MmHg),
                ],
            );
        }
        while let Some(event) = engine.poll_event() {
            let EngineEvent::Alarm {
                change, alarm, at, ..
            } = event
            else {
                continue;
            };
            let priority = serde_json::to_value(alarm.priority).unwrap();
            let priority = priority.as_str().unwrap().to_string();
            if priority == "info" {
                continue;
            }
            match change {
                AlarmChange::Raised => {
                    ids.insert(alarm.id.clone(), raised.len());
                    raised.push(Raised {
                        rule: alarm.rule.clone(),
                        at: (at - t0).as_secs_f64(),
                        max_priority: priority,
                    });
                }
                AlarmChange::Escalated => raised[ids[&alarm.id]].max_priority = priority,
                _ => {}
            }
        }
        t += 1.0;
    }
    raised
}

fn check(name: &str, kpa: bool) {
    let scenario = Scenario::load(name).unwrap();
    let raised = run(&scenario, kpa);
    let mut matched = vec![false; raised.len()];
    for e in &scenario.expect {
        let hits: Vec<usize> = raised
            .iter()
            .enumerate()
            .filter(|(_, r)| r.rule == e.rule && (r.at - e.at).abs() <= e.within)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            hits.len(),
            e.count,
            "{name}: expected {} {} near {} s, got {raised:?}",
            e.count,
            e.rule,
            e.at
        );
        for i in hits {
            assert_eq!(
                raised[i].max_priority, e.priority,
                "{name}: {:?}",
                raised[i]
            );
            matched[i] = true;
        }
    }
    let others: Vec<&Raised> = raised
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(r, _)| r)
        .collect();
    assert!(
        others.is_empty(),
        "{name}: alarms the scenario does not declare: {others:?}"
    );
}

#[test]
fn respiratory_depression_raises_its_declared_alarms() {
    check("respiratory-depression", false);
}

#[test]
fn respiratory_depression_with_etco2_in_kpa_raises_the_same_alarms() {
    check("respiratory-depression", true);
}
