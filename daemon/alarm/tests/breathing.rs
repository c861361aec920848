//! The breathing rows of the default profile (docs/breathing.md): `rr-low`, `apnea`,
//! `etco2-high`, `not-current` on the breathing vitals, and the envelope around them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use support::Harness;
use vigil_alarm::AlarmChange::{Cleared, Raised};
use vigil_alarm::{Layer, Priority, Profile, Source};
use vigil_protocol::{DeviceEvent, Flag, Reading, Unit, Vital};

const CAPNO: &str = "capnograph-1";

/// The default profile, a cuff (no oximeter, so that no SpO2 alarm joins in) and a
/// capnograph that streams `streams`.
fn harness(streams: &[Vital]) -> Harness {
    let mut h = Harness::cuff_only();
    let t0 = h.at(0.0);
    h.engine.add_device(t0, CAPNO, streams);
    h.engine.handle_link(t0, CAPNO, true);
    h
}

fn capnograph() -> Harness {
    harness(&[Vital::RespiratoryRate, Vital::Etco2])
}

fn rr(rate: f64) -> Reading {
    Reading::number(Vital::RespiratoryRate, rate, Unit::BreathsPerMinute)
}

fn etco2(mmhg: f64) -> Reading {
    Reading::number(Vital::Etco2, mmhg, Unit::MmHg)
}

/// The same frame once a second from `from` to `to` (exclusive).
fn every_second(h: &mut Harness, from: f64, to: f64, frame: &[Reading]) {
    let mut t = from;
    while t < to {
        h.frame(t, CAPNO, frame);
        t += 1.0;
    }
}

fn apnea_event(h: &mut Harness, secs: f64) {
    h.run_to(secs);
    let t = h.at(secs);
    h.engine.handle_device_event(t, CAPNO, &DeviceEvent::Apnea);
}

/// (time, change) of one rule's alarm events.
fn log_of(h: &Harness, rule: &str) -> Vec<(f64, vigil_alarm::AlarmChange, Priority)> {
    h.alarm_log()
        .into_iter()
        .filter(|(_, _, r, _)| r == rule)
        .map(|(t, c, _, p)| (t, c, p))
        .collect()
}

#[test]
fn a_low_respiratory_rate_sounds_after_30_s_and_clears_after_10_s_of_breathing() {
    let mut h = capnograph();
    every_second(&mut h, 0.0, 45.0, &[rr(6.0), etco2(40.0)]);
    assert_eq!(log_of(&h, "rr-low"), vec![(30.0, Raised, Priority::Medium)]);
    let a = h.alarm(45.0, "rr-low").unwrap();
    assert_eq!(a.vital, Some(Vital::RespiratoryRate));
    assert_eq!(a.device.as_deref(), Some(CAPNO));
    // Back to 14/min: one breath does not end it, 10 s of them do.
    every_second(&mut h, 45.0, 60.0, &[rr(14.0), etco2(40.0)]);
    assert_eq!(
        log_of(&h, "rr-low"),
        vec![
            (30.0, Raised, Priority::Medium),
            (55.0, Cleared, Priority::Medium)
        ]
    );
    assert!(log_of(&h, "apnea").is_empty());
}

#[test]
fn a_rate_that_recovers_within_the_delay_never_sounds() {
    let mut h = capnograph();
    every_second(&mut h, 0.0, 25.0, &[rr(7.0), etco2(40.0)]);
    every_second(&mut h, 25.0, 40.0, &[rr(12.0), etco2(40.0)]);
    every_second(&mut h, 40.0, 65.0, &[rr(7.0), etco2(40.0)]);
    assert!(h.raised().is_empty(), "{:?}", h.raised());
}

#[test]
fn the_devices_apnea_event_sounds_high_after_20_s_and_breaths_end_it() {
    let mut h = capnograph();
    // The monitor reports apnea once and sends no rate while it lasts.
    apnea_event(&mut h, 0.0);
    h.run_to(19.0);
    assert!(log_of(&h, "apnea").is_empty());
    h.run_to(20.0);
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
    assert_eq!(
        h.alarm(20.0, "apnea").unwrap().vital,
        Some(Vital::RespiratoryRate)
    );
    every_second(&mut h, 25.0, 36.0, &[rr(12.0), etco2(38.0)]);
    assert_eq!(
        log_of(&h, "apnea"),
        vec![
            (20.0, Raised, Priority::High),
            (35.0, Cleared, Priority::High)
        ]
    );
}

#[test]
fn an_apnea_event_between_breaths_starts_their_clearing_over() {
    let mut h = capnograph();
    apnea_event(&mut h, 0.0);
    every_second(&mut h, 20.0, 26.0, &[rr(10.0), etco2(38.0)]);
    apnea_event(&mut h, 26.0);
    every_second(&mut h, 27.0, 36.0, &[rr(10.0), etco2(38.0)]);
    // 9 s of breaths since the last apnea event: still sounding.
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
    every_second(&mut h, 36.0, 38.0, &[rr(10.0), etco2(38.0)]);
    assert_eq!(log_of(&h, "apnea").last().unwrap().1, Cleared);
}

#[test]
fn a_respiratory_rate_of_zero_is_apnea() {
    let mut h = capnograph();
    every_second(&mut h, 0.0, 21.0, &[rr(0.0), etco2(0.0)]);
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
    assert_eq!(h.alarm(20.0, "apnea").unwrap().value, Some(0.0));
}

#[test]
fn the_apnea_event_works_from_a_device_that_streams_no_rate() {
    let mut h = harness(&[]);
    apnea_event(&mut h, 0.0);
    h.run_to(20.0);
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
}

#[test]
fn high_etco2_sounds_after_30_s_in_mmhg_or_kpa() {
    let mut h = capnograph();
    every_second(&mut h, 0.0, 31.0, &[rr(12.0), etco2(55.0)]);
    assert_eq!(
        log_of(&h, "etco2-high"),
        vec![(30.0, Raised, Priority::Medium)]
    );
    let a = h.alarm(30.0, "etco2-high").unwrap();
    assert_eq!(a.vital, Some(Vital::Etco2));
    assert_eq!(a.value, Some(55.0));
    every_second(&mut h, 31.0, 42.0, &[rr(12.0), etco2(42.0)]);
    assert_eq!(log_of(&h, "etco2-high").last().unwrap().1, Cleared);

    // 7.0 kPa is 52.5 mmHg: over the limit, though the number is small.
    let mut h = capnograph();
    let kpa = Reading::number(Vital::Etco2, 7.0, Unit::KPa);
    every_second(&mut h, 0.0, 31.0, &[rr(12.0), kpa]);
    assert_eq!(
        log_of(&h, "etco2-high"),
        vec![(30.0, Raised, Priority::Medium)]
    );
}

#[test]
fn questioned_or_implausible_breathing_values_never_raise() {
    let mut h = capnograph();
    let questioned = |r: Reading, f: Flag| r.with_flags([f].into_iter().collect());
    every_second(
        &mut h,
        0.0,
        29.0,
        &[
            questioned(rr(0.0), Flag::Questionable),
            questioned(etco2(60.0), Flag::Artefact),
        ],
    );
    // 200 breaths/min and 180 mmHg are past what the vitals can be: implausible, not evidence.
    every_second(&mut h, 29.0, 60.0, &[rr(200.0), etco2(180.0)]);
    let breathing: Vec<_> = h
        .alarm_log()
        .into_iter()
        .filter(|(_, _, r, _)| ["rr-low", "apnea", "etco2-high"].contains(&r.as_str()))
        .collect();
    assert!(breathing.is_empty(), "{breathing:?}");
    // Neither keeps the vitals current: the device is streaming nothing usable.
    assert!(h
        .alarms_now(60.0)
        .iter()
        .any(|a| a.rule == "not-current" && a.vital == Some(Vital::RespiratoryRate)));
}

#[test]
fn questioned_or_implausible_breaths_never_clear_apnea() {
    let mut h = capnograph();
    every_second(&mut h, 0.0, 21.0, &[rr(0.0), etco2(0.0)]);
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
    let artefact = rr(14.0).with_flags([Flag::Artefact].into_iter().collect());
    every_second(&mut h, 21.0, 40.0, &[artefact, etco2(38.0)]);
    every_second(&mut h, 40.0, 60.0, &[rr(151.0), etco2(38.0)]);
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
    // A questioned breath in the middle of valid ones starts their clearing over.
    every_second(&mut h, 60.0, 65.0, &[rr(14.0), etco2(38.0)]);
    h.frame(
        65.0,
        CAPNO,
        &[rr(14.0).with_flags([Flag::Questionable].into_iter().collect())],
    );
    every_second(&mut h, 66.0, 75.0, &[rr(14.0), etco2(38.0)]);
    assert_eq!(log_of(&h, "apnea").len(), 1, "{:?}", log_of(&h, "apnea"));
    every_second(&mut h, 75.0, 77.0, &[rr(14.0), etco2(38.0)]);
    assert_eq!(log_of(&h, "apnea").last().unwrap().1, Cleared);
}

#[test]
fn streamed_breathing_vitals_must_stay_current() {
    let mut h = capnograph();
    // The last samples come at 9 s.
    every_second(&mut h, 0.0, 10.0, &[rr(12.0), etco2(38.0)]);
    h.run_to(38.0);
    assert!(h.alarm(38.0, "not-current").is_none());
    h.run_to(39.0);
    let mut stale: Vec<_> = h
        .alarms_now(39.0)
        .into_iter()
        .filter(|a| a.rule == "not-current")
        .map(|a| (a.device.unwrap(), a.vital.unwrap()))
        .collect();
    stale.sort();
    assert_eq!(
        stale,
        vec![
            (CAPNO.to_string(), Vital::Etco2),
            (CAPNO.to_string(), Vital::RespiratoryRate)
        ]
    );
}

#[test]
fn breathing_vitals_a_device_does_not_stream_are_not_held_current() {
    // A device whose format cannot carry them (every oximeter and cuff today).
    let mut h = harness(&[]);
    h.run_to(120.0);
    assert!(h.alarm(120.0, "not-current").is_none(), "{:?}", h.raised());
}

fn load(patient_override: &str) -> Result<Profile, Vec<String>> {
    Profile::load(
        Layer {
            source: Source::Default,
            text: vigil_alarm::profile::KAP_DEFAULT,
        },
        &[Layer {
            source: Source::Patient("p.toml".into()),
            text: patient_override,
        }],
    )
    .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn the_envelope_holds_the_breathing_rows() {
    for (text, location, message) in [
        (
            "[rules.apnea]\npriority = \"medium\"",
            "rules.apnea.priority",
            "below this alarm's floor high",
        ),
        (
            "[rules.rr-low]\npriority = \"low\"",
            "rules.rr-low.priority",
            "below this alarm's floor medium",
        ),
        (
            "[rules.etco2-high]\npriority = \"low\"",
            "rules.etco2-high.priority",
            "below this alarm's floor medium",
        ),
        ("[rules.apnea]\ndelay = \"21s\"", "rules.apnea.delay", ""),
        ("[rules.rr-low]\ndelay = \"61s\"", "rules.rr-low.delay", ""),
        (
            "[rules.etco2-high]\ndelay = \"2m\"",
            "rules.etco2-high.delay",
            "",
        ),
        ("[rules.rr-low]\nbelow = 5", "rules.rr-low.below", ""),
        (
            "[rules.etco2-high]\nabove = 61",
            "rules.etco2-high.above",
            "",
        ),
        (
            "[rules.etco2-high]\nvital = \"respiratory_rate\"",
            "rules.etco2-high.vital",
            "cannot stop watching etco2",
        ),
        (
            "[rules.not-current]\nvital = [\"spo2\", \"pulse_rate\", \"heart_rate\"]",
            "rules.not-current.vital",
            "cannot stop watching etco2, respiratory_rate",
        ),
        (
            "[rules.apnea]\nclear_after = \"5s\"",
            "rules.apnea.clear_after",
            "",
        ),
    ] {
        let lines = load(text).expect_err(text);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("patient p.toml: {location}: "))
                    && l.contains(message)),
            "{text}: {lines:#?}"
        );
    }
    let tightened = load(
        "[rules.apnea]\ndelay = \"10s\"\nclear_after = \"30s\"\n\
         [rules.rr-low]\nbelow = 10\ndelay = \"15s\"\n\
         [rules.etco2-high]\nabove = 45\npriority = \"high\"\n",
    )
    .unwrap();
    assert_eq!(
        tightened.rule("etco2-high").unwrap().priority,
        Priority::High
    );
}

#[test]
fn an_apnea_alarm_survives_a_restart_and_breaths_still_end_it() {
    let mut h = capnograph();
    every_second(&mut h, 0.0, 21.0, &[rr(0.0), etco2(0.0)]);
    assert_eq!(log_of(&h, "apnea"), vec![(20.0, Raised, Priority::High)]);
    h.restart_with(22.0, &[(CAPNO, &[Vital::RespiratoryRate, Vital::Etco2])]);
    let a = h.alarm(22.0, "apnea").expect("restored");
    assert_eq!(
        (a.device.as_deref(), a.vital),
        (Some(CAPNO), Some(Vital::RespiratoryRate))
    );
    // Still no breath: it is the same occurrence, not a new one.
    every_second(&mut h, 22.0, 30.0, &[rr(0.0), etco2(0.0)]);
    assert_eq!(log_of(&h, "apnea").len(), 1, "{:?}", log_of(&h, "apnea"));
    every_second(&mut h, 30.0, 41.0, &[rr(12.0), etco2(38.0)]);
    assert_eq!(log_of(&h, "apnea").last().unwrap().1, Cleared);
}
