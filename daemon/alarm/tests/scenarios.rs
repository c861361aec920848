//! The scenario table of the alarm-engine issue: each scenario with the alarms it must raise,
//! their priorities and times, and no others.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use support::{Harness, CUFF, OXIMETER};
use vigil_alarm::AlarmChange::{Acknowledged, Cleared, Escalated, Raised, Reset};
use vigil_alarm::{AlarmState, EngineEvent, Priority};

fn log(h: &Harness) -> Vec<(f64, vigil_alarm::AlarmChange, String, Priority)> {
    h.alarm_log()
}

fn row(
    t: f64,
    c: vigil_alarm::AlarmChange,
    rule: &str,
    p: Priority,
) -> (f64, vigil_alarm::AlarmChange, String, Priority) {
    (t, c, rule.to_string(), p)
}

#[test]
fn hypertensive_spike_after_dose() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 120.0, 78.0); // pre-dose baseline
    h.dose(300.0);
    h.bp(2400.0, 165.0, 105.0); // +45/+27 over baseline at 40 min
    let rise = h.alarm(2400.0, "bp-rise").expect("rise alarm").id;
    h.ack(2430.0, &rise).unwrap();
    h.bp(2700.0, 185.0, 112.0); // ≥ 180/110: asks for a repeat
    assert!(h.alarm(2700.0, "bp-severe").unwrap().awaiting_confirmation);
    assert!(h.events.iter().any(|(t, e)| *t == 2700.0
        && matches!(e, EngineEvent::NibpRequested { rule, .. } if rule == "bp-severe")));
    h.bp(2820.0, 186.0, 113.0); // the repeat within 5 min confirms: High
    h.run_to(2900.0);
    assert_eq!(
        log(&h),
        vec![
            row(2400.0, Raised, "bp-rise", Priority::Medium),
            row(2430.0, Acknowledged, "bp-rise", Priority::Medium),
            row(2700.0, Raised, "bp-severe", Priority::Low),
            row(2820.0, Escalated, "bp-severe", Priority::High),
        ]
    );
    let severe = h.alarm(2900.0, "bp-severe").unwrap();
    assert_eq!(severe.state, AlarmState::Active);
    assert!(!severe.awaiting_confirmation);
    assert!(severe.latching, "High alarms latch");
}

#[test]
fn desaturation_to_86_for_20_seconds() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 60.0, 98.0, 72.0);
    h.oximeter(60.0, 80.0, 86.0, 72.0);
    h.oximeter(80.0, 120.0, 98.0, 72.0);
    assert_eq!(
        log(&h),
        vec![
            row(75.0, Raised, "spo2-low", Priority::Medium),
            // Five seconds of valid in-range samples end it, never the first one alone.
            row(85.0, Cleared, "spo2-low", Priority::Medium),
        ]
    );
}

#[test]
fn brief_dip_to_89_for_5_seconds_does_not_alarm() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 60.0, 98.0, 72.0);
    h.oximeter(60.0, 65.0, 89.0, 72.0);
    h.oximeter(65.0, 120.0, 98.0, 72.0);
    assert_eq!(log(&h), vec![]);
    assert!(h.alarms_now(120.0).is_empty());
}

#[test]
fn pulse_rate_130_for_6_minutes() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 60.0, 98.0, 72.0);
    h.oximeter(60.0, 420.0, 98.0, 130.0);
    h.oximeter(420.0, 440.0, 98.0, 72.0);
    assert_eq!(
        log(&h),
        vec![
            row(360.0, Raised, "pr-high", Priority::Medium),
            row(435.0, Cleared, "pr-high", Priority::Medium),
        ]
    );
}

#[test]
fn probe_off() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 60.0, 98.0, 72.0);
    h.sensor_off(60.0);
    h.run_to(100.0);
    h.oximeter(100.0, 105.0, 98.0, 72.0);
    assert_eq!(
        log(&h),
        vec![
            row(70.0, Raised, "sensor-off", Priority::Medium),
            row(89.0, Raised, "not-current", Priority::Medium),
            row(89.0, Raised, "not-current", Priority::Medium),
            row(100.0, Cleared, "sensor-off", Priority::Medium),
            row(100.0, Cleared, "not-current", Priority::Medium),
            row(100.0, Cleared, "not-current", Priority::Medium),
        ]
    );
}

#[test]
fn device_unplugged_for_a_minute() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 60.0, 98.0, 72.0);
    h.link(60.0, OXIMETER, false);
    h.link(120.0, OXIMETER, true);
    h.oximeter(120.0, 125.0, 98.0, 72.0);
    // The link must stay up for the clearing time (10 s) before the condition ends (F11).
    let id = h.alarm(125.0, "device-disconnected").expect("active").id;
    assert_eq!(
        h.state_of(125.0, "device-disconnected"),
        Some(AlarmState::Active)
    );
    h.run_to(130.0);
    assert_eq!(
        h.state_of(130.0, "device-disconnected"),
        Some(AlarmState::Latched)
    );
    h.reset(130.0, &id).unwrap();
    assert_eq!(
        log(&h),
        vec![
            row(65.0, Raised, "device-disconnected", Priority::High),
            row(89.0, Raised, "not-current", Priority::Medium),
            row(89.0, Raised, "not-current", Priority::Medium),
            row(120.0, Cleared, "not-current", Priority::Medium),
            row(120.0, Cleared, "not-current", Priority::Medium),
            row(130.0, Cleared, "device-disconnected", Priority::High),
            row(130.0, Reset, "device-disconnected", Priority::High),
        ]
    );
    assert!(h.alarms_now(130.0).is_empty());
    let _ = CUFF;
}
