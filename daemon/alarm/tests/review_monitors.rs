//! Findings of the review after the monitors, HL7 and central issues that the engine holds
//! (docs/hazards.md, "Found in review after the monitors, HL7 and central issues").

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use support::Harness;
use vigil_alarm::AlarmChange::Raised;
use vigil_protocol::{Format, Reading, Unit, Vital};

const MONITOR: &str = "monitor-1";

/// The default profile, a cuff, and a multiparameter monitor of `format` added with what its
/// format assumes it streams (an HL7 monitor: SpO2 only; an IntelliVue: SpO2 and pulse).
fn monitor(format: Format) -> Harness {
    let mut h = Harness::cuff_only();
    let t0 = h.at(0.0);
    h.engine.add_device(t0, MONITOR, format.continuous_vitals());
    h.engine.handle_link(t0, MONITOR, true);
    h
}

fn reading(vital: Vital, value: f64, unit: Unit) -> Reading {
    Reading::number(vital, value, unit)
}

/// One message every 2 s from `from` to `to` (exclusive).
fn every_2_s(h: &mut Harness, from: f64, to: f64, frame: &[Reading]) {
    let mut t = from;
    while t < to {
        h.frame(t, MONITOR, frame);
        t += 2.0;
    }
}

/// When `rule` was raised, if it was.
fn raised_at(h: &Harness, rule: &str) -> Option<f64> {
    h.alarm_log()
        .into_iter()
        .find(|(_, c, r, _)| r == rule && *c == Raised)
        .map(|(t, ..)| t)
}

/// V1: a monitor's respiratory rate, EtCO2 and pulse are streamed although its format can only
/// assume SpO2 (what else it sends depends on what is plugged in). The delayed limits on them
/// must judge what it streams.
#[test]
fn a_monitor_streaming_vitals_its_format_does_not_assume_sounds_their_delayed_limits() {
    for format in [Format::Hl7, Format::Intellivue] {
        let mut h = monitor(format);
        let frame = [
            reading(Vital::Spo2, 96.0, Unit::Percent),
            reading(Vital::PulseRate, 38.0, Unit::BeatsPerMinute),
            reading(Vital::HeartRate, 38.0, Unit::BeatsPerMinute),
            reading(Vital::RespiratoryRate, 5.0, Unit::BreathsPerMinute),
            reading(Vital::Etco2, 62.0, Unit::MmHg),
        ];
        every_2_s(&mut h, 0.0, 60.0, &frame);
        for rule in ["rr-low", "etco2-high", "pr-critical-low", "pr-low"] {
            let at = raised_at(&h, rule);
            assert!(
                at.is_some_and(|t| t <= 40.0),
                "{format:?}: {rule} raised at {at:?}"
            );
        }
    }
}

/// V1: once a monitor has streamed a vital, that vital must stay current: a capnography line
/// pulled out (the monitor stops sending RR and EtCO2) is said within 30 s.
#[test]
fn a_vital_a_monitor_streamed_and_stopped_sending_is_not_current() {
    let mut h = monitor(Format::Hl7);
    let full = [
        reading(Vital::Spo2, 96.0, Unit::Percent),
        reading(Vital::RespiratoryRate, 14.0, Unit::BreathsPerMinute),
        reading(Vital::Etco2, 38.0, Unit::MmHg),
    ];
    every_2_s(&mut h, 0.0, 20.0, &full);
    every_2_s(&mut h, 20.0, 80.0, &full[..1]);
    let not_current: Vec<_> = h
        .alarms_now(80.0)
        .into_iter()
        .filter(|a| a.rule == "not-current")
        .filter_map(|a| a.vital)
        .collect();
    assert!(
        not_current.contains(&Vital::RespiratoryRate) && not_current.contains(&Vital::Etco2),
        "{not_current:?}"
    );
}

/// V1, the other side: a cuff's pulse rate, one per determination, never becomes a stream
/// (else `not-current` would sound between determinations).
#[test]
fn a_cuffs_pulse_rate_never_becomes_a_stream() {
    let mut h = Harness::cuff_only();
    let bp = |pr: f64| {
        [
            reading(Vital::NibpSystolic, 120.0, Unit::MmHg),
            reading(Vital::NibpDiastolic, 80.0, Unit::MmHg),
            reading(Vital::PulseRate, pr, Unit::BeatsPerMinute),
        ]
    };
    // Stored determinations replayed in a burst, then nothing for two minutes.
    for i in 0..5 {
        h.frame(
            1.0 + f64::from(i) * 0.2,
            support::CUFF,
            &bp(70.0 + f64::from(i)),
        );
    }
    h.run_to(120.0);
    assert!(
        h.alarms_now(120.0).iter().all(|a| a.rule != "not-current"),
        "{:?}",
        h.alarms_now(120.0)
    );
}

/// V2: a capnograph in kPa whose monitor leaves out the unit sends EtCO2 that is no number to
/// alarm on (the HL7 reader makes it implausible); the room must hear that EtCO2 is not
/// current, not see a silent tile.
#[test]
fn a_vital_streamed_only_as_unusable_numbers_is_not_current() {
    let mut h = monitor(Format::Hl7);
    let frame = [
        reading(Vital::Spo2, 96.0, Unit::Percent),
        Reading::unavailable(Vital::Etco2, vigil_protocol::Unavailable::Implausible),
    ];
    every_2_s(&mut h, 0.0, 60.0, &frame);
    let at = h
        .alarm_log()
        .into_iter()
        .find(|(_, c, r, _)| r == "not-current" && *c == Raised)
        .map(|(t, ..)| t);
    assert!(
        at.is_some_and(|t| t <= 40.0),
        "not-current raised at {at:?}"
    );
    let a = h.alarm(60.0, "not-current").unwrap();
    assert_eq!(a.vital, Some(Vital::Etco2));
}
