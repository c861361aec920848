//! Issue 14 §1 and §3: only a valid, plausible reading counts for or against a condition;
//! partial BP frames; technical conditions from the device's flags and silences.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use support::{Harness, CUFF, OXIMETER};
use vigil_alarm::AlarmChange::{Cleared, Raised};
use vigil_alarm::{AlarmState, Priority};
use vigil_protocol::{Flag, Flags, Reading, Unit, Vital};

fn flags(f: &[Flag]) -> Flags {
    f.iter().copied().collect()
}

fn spo2(v: f64, f: &[Flag]) -> Reading {
    Reading::number(Vital::Spo2, v, Unit::Percent).with_flags(flags(f))
}

fn pulse(v: f64) -> Reading {
    Reading::number(Vital::PulseRate, v, Unit::BeatsPerMinute)
}

#[test]
fn an_artefact_sample_every_9_s_neither_restarts_the_delay_nor_clears() {
    let mut h = Harness::kap();
    for s in 0..60 {
        let t = s as f64;
        if s % 9 == 8 {
            h.frame(t, OXIMETER, &[spo2(96.0, &[Flag::Artefact]), pulse(72.0)]);
        } else {
            h.frame(t, OXIMETER, &[spo2(80.0, &[]), pulse(72.0)]);
        }
    }
    let raised = h.raised();
    assert!(
        raised.contains(&(10.0, "spo2-critical".into(), Priority::High)),
        "{raised:?}"
    );
    assert!(
        raised.contains(&(15.0, "spo2-low".into(), Priority::Medium)),
        "{raised:?}"
    );
    assert!(h
        .alarm_log()
        .iter()
        .all(|(_, change, _, _)| *change != Cleared));
}

#[test]
fn questioned_samples_never_clear_an_active_alarm() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 20.0, 80.0, 72.0);
    let id = h.alarm(20.0, "spo2-low").unwrap().id;
    for (i, flag) in [
        Flag::Artefact,
        Flag::Questionable,
        Flag::PulseSearch,
        Flag::Interference,
        Flag::LowPerfusion,
        Flag::EarlyEstimate,
    ]
    .into_iter()
    .enumerate()
    {
        let from = 20 + 10 * i;
        for s in from..from + 10 {
            h.frame(s as f64, OXIMETER, &[spo2(97.0, &[flag]), pulse(72.0)]);
        }
        let now = (from + 10) as f64;
        h.run_to(now);
        assert_eq!(h.alarm(now, "spo2-low").unwrap().id, id, "{flag:?}");
    }
}

#[test]
fn an_implausible_value_is_never_evidence() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 20.0, 80.0, 72.0);
    let id = h.alarm(20.0, "spo2-low").unwrap().id;
    // SpO2 = 186 % (a Masimo line seen in the field): unavailable, implausible.
    for s in 20..50 {
        h.reading(s as f64, OXIMETER, Vital::Spo2, 186.0);
    }
    assert_eq!(h.alarm(50.0, "spo2-low").unwrap().id, id);
    // The last valid SpO2 was at 19 s: not current from 49 s.
    let stale = h
        .alarm(50.0, "not-current")
        .expect("implausible values keep nothing current");
    assert_eq!(stale.vital, Some(Vital::Spo2));
}

#[test]
fn clearing_needs_the_rules_clearing_time_of_valid_in_range_evidence() {
    let mut h = Harness::kap();
    h.oximeter(0.0, 20.0, 80.0, 72.0);
    // One good sample then silence: nothing clears by time alone, and evidence after a gap of
    // more than 10 s starts the clearing over.
    h.oximeter(20.0, 21.0, 98.0, 72.0);
    h.run_to(32.0);
    assert_eq!(h.state_of(32.0, "spo2-low"), Some(AlarmState::Active));
    // In range from 32 s on, but a questioned sample at 34 s starts the clearing over.
    h.oximeter(32.0, 34.0, 98.0, 72.0);
    assert_eq!(h.state_of(34.0, "spo2-low"), Some(AlarmState::Active));
    h.frame(
        34.0,
        OXIMETER,
        &[spo2(98.0, &[Flag::Artefact]), pulse(72.0)],
    );
    h.oximeter(35.0, 39.0, 98.0, 72.0);
    assert_eq!(h.state_of(39.0, "spo2-low"), Some(AlarmState::Active));
    h.oximeter(39.0, 41.0, 98.0, 72.0);
    assert!(h
        .alarm_log()
        .contains(&(40.0, Cleared, "spo2-low".into(), Priority::Medium)));
}

#[test]
fn a_partial_bp_frame_clears_nothing_and_is_not_the_scheduled_reading() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 120.0, 80.0);
    h.dose(60.0);
    // bp-rise (baseline 120/80) and an unconfirmed bp-severe.
    h.bp(600.0, 182.0, 100.0);
    assert!(h.alarm(600.0, "bp-rise").is_some());
    assert!(h.alarm(600.0, "bp-severe").is_some());
    // Systolic only, diastolic missing: neither clears.
    let sys_only = [
        Reading::number(Vital::NibpSystolic, 118.0, Unit::MmHg),
        Reading::unavailable(Vital::NibpDiastolic, vigil_protocol::Unavailable::Missing),
    ];
    h.frame(660.0, CUFF, &sys_only);
    assert!(
        h.alarm(660.0, "bp-rise").is_some(),
        "partial frame cleared bp-rise"
    );
    assert!(
        h.alarm(660.0, "bp-severe").is_some(),
        "partial frame cleared bp-severe"
    );
    // nibp-overdue: due at 40 min after the dose (+2 min grace); a reading at 10 min covers
    // nothing of it. Raised at 42 min after the dose, acknowledged, then a partial frame.
    let due = 60.0 + 42.0 * 60.0;
    h.run_to(due);
    let overdue = h.alarm(due, "nibp-overdue").unwrap();
    h.ack(due + 1.0, &overdue.id).unwrap();
    h.frame(due + 10.0, CUFF, &sys_only);
    let after = h.alarm(due + 11.0, "nibp-overdue").unwrap();
    assert_eq!(
        after.id, overdue.id,
        "partial frame cleared and re-raised nibp-overdue"
    );
    assert_eq!(after.state, AlarmState::Acknowledged);
    // A complete measurement is the scheduled reading.
    h.bp(due + 20.0, 124.0, 82.0);
    assert!(h.alarm(due + 21.0, "nibp-overdue").is_none());
}

#[test]
fn a_partial_bp_frame_still_shows_a_crisis() {
    let mut h = Harness::cuff_only();
    h.frame(
        0.0,
        CUFF,
        &[
            Reading::number(Vital::NibpSystolic, 210.0, Unit::MmHg),
            Reading::unavailable(Vital::NibpDiastolic, vigil_protocol::Unavailable::Missing),
        ],
    );
    assert!(h
        .raised()
        .contains(&(0.0, "bp-crisis".into(), Priority::High)));
}

#[test]
fn a_chest_strap_without_contact_raises_sensor_off() {
    let mut h = Harness::kap();
    let t = h.at(0.0);
    h.engine.add_device(t, "strap", &[Vital::HeartRate]);
    h.engine.handle_link(t, "strap", true);
    for s in 0..20 {
        h.reading(s as f64, OXIMETER, Vital::Spo2, 97.0);
        h.frame(
            s as f64,
            "strap",
            &[
                Reading::number(Vital::HeartRate, 72.0, Unit::BeatsPerMinute)
                    .with_flags(flags(&[Flag::NoContact])),
            ],
        );
    }
    let a = h
        .alarm(20.0, "sensor-off")
        .expect("sensor-off from no contact");
    assert_eq!(a.device.as_deref(), Some("strap"));
    assert_eq!(a.state, AlarmState::Active);
}

#[test]
fn a_silent_heart_rate_is_not_current_after_30_s() {
    let mut h = Harness::kap();
    let t = h.at(0.0);
    h.engine.add_device(t, "strap", &[Vital::HeartRate]);
    h.engine.handle_link(t, "strap", true);
    h.reading(0.0, "strap", Vital::HeartRate, 72.0);
    for s in 0..40 {
        h.oximeter(s as f64, s as f64 + 1.0, 97.0, 72.0);
    }
    let raised: Vec<_> = h
        .alarm_log()
        .into_iter()
        .filter(|(_, c, r, _)| *c == Raised && r == "not-current")
        .collect();
    assert_eq!(
        raised,
        vec![(30.0, Raised, "not-current".into(), Priority::Medium)]
    );
    let a = h.alarm(40.0, "not-current").unwrap();
    assert_eq!(
        (a.device.as_deref(), a.vital),
        (Some("strap"), Some(Vital::HeartRate))
    );
}

#[test]
fn not_current_covers_a_continuous_vital_any_limit_watches_even_if_the_rule_omits_it() {
    // The envelope refuses a profile that narrows `not-current` when it is loaded; the engine
    // does not rely on that: a narrowed rule built in memory still covers every watched vital.
    let mut profile = vigil_alarm::Profile::load(
        vigil_alarm::Layer {
            source: vigil_alarm::Source::Default,
            text: vigil_alarm::profile::KAP_DEFAULT,
        },
        &[],
    )
    .unwrap();
    for rule in &mut profile.rules {
        if let vigil_alarm::RuleSpec::NotCurrent { vitals, .. } = &mut rule.spec {
            *vitals = vec![Vital::Spo2];
        }
    }
    let mut h = Harness::with_profile(profile);
    h.oximeter(0.0, 40.0, 97.0, 72.0);
    let t = h.at(40.0);
    h.engine.add_device(t, "strap", &[Vital::HeartRate]);
    h.engine.handle_link(t, "strap", true);
    h.oximeter(40.0, 71.0, 97.0, 72.0);
    let a = h
        .alarm(71.0, "not-current")
        .expect("heart rate watched by pr-* rules");
    assert_eq!(a.vital, Some(Vital::HeartRate));
}

/// F4 (what the envelope refuses, shown on the engine): with a clearing time of zero, a
/// saturation alternating 85 % and 95 % each second never sounds `spo2-low`, though it is under
/// the limit half the time for minutes. The envelope refuses such a profile
/// (`tests/envelope.rs::a_clearing_time_shorter_than_the_defaults_is_refused`); the default's
/// 5 s raises it.
#[test]
fn an_alternating_saturation_alarms_with_the_default_clearing_time() {
    use std::time::Duration;
    use vigil_alarm::RuleSpec;
    let run = |clear_after: Duration| {
        let mut profile = vigil_alarm::Profile::kap_default().unwrap();
        for rule in &mut profile.rules {
            if let RuleSpec::Limit { clear_after: c, .. } = &mut rule.spec {
                *c = clear_after;
            }
        }
        let mut h = Harness::with_profile(profile);
        let mut t = 0.0;
        while t < 120.0 {
            let spo2 = if (t as u64) % 2 == 0 { 85.0 } else { 95.0 };
            h.oximeter(t, t + 1.0, spo2, 80.0);
            t += 1.0;
        }
        h.raised().iter().any(|(_, rule, _)| rule == "spo2-low")
    };
    assert!(
        run(Duration::from_secs(5)),
        "the default clearing time raises it"
    );
    assert!(!run(Duration::ZERO), "a zero clearing time never does");
}

/// F5 (what the envelope refuses, shown on the engine): with `latching = false`, a critical
/// desaturation that recovers before anyone looks is gone from the screen, unseen. The envelope
/// refuses such a profile (`tests/envelope.rs::an_override_cannot_switch_latching_off`).
#[test]
fn a_critical_desaturation_latches_unless_latching_is_switched_off() {
    let run = |latching: Option<bool>| {
        let mut profile = vigil_alarm::Profile::kap_default().unwrap();
        for rule in &mut profile.rules {
            if rule.id == "spo2-critical" {
                rule.latching = latching;
            }
        }
        let mut h = Harness::with_profile(profile);
        h.oximeter(0.0, 30.0, 80.0, 80.0);
        h.oximeter(30.0, 60.0, 97.0, 80.0);
        h.state_of(60.0, "spo2-critical")
    };
    assert_eq!(run(None), Some(AlarmState::Latched));
    assert_eq!(run(Some(false)), None, "switched off, it vanishes unseen");
}

/// F11: a device whose link flaps (down 4 s, up for an instant, down again) never raised
/// `device-disconnected`: each brief reconnect ended the pending condition and its 5 s delay
/// started over, though the link was down 80 % of the time. A cuff has no continuous vital for
/// `not-current` to catch. Now a disconnect ends only after the link has stayed up for the
/// rule's `clear_after` (10 s in the default).
#[test]
fn a_link_that_flaps_faster_than_the_disconnect_delay_still_raises_device_disconnected() {
    let mut h = Harness::kap();
    let mut t = 10.0;
    while t < 600.0 {
        h.link(t, CUFF, false);
        h.oximeter(t, t + 4.0, 97.0, 72.0);
        h.link(t + 4.0, CUFF, true);
        h.oximeter(t + 4.0, t + 5.0, 97.0, 72.0);
        t += 5.0;
    }
    assert!(
        h.raised()
            .iter()
            .any(|(_, rule, _)| rule == "device-disconnected"),
        "the cuff's link was down 80 % of 10 minutes: {:?}",
        h.raised()
    );
}

/// F12: a spot-check oximeter (`ble-plx-spot`: no continuous vitals) never raised an SpO2
/// alarm, as every SpO2 rule has a delay and an intermittent value was held only to limits
/// without one. A spot-check is a settled measurement: it is judged at once.
#[test]
fn a_spot_check_oximeters_desaturation_raises_an_alarm() {
    // The room's only oximeter is a spot-check one, as the config allows.
    let mut h = Harness::cuff_only();
    h.engine.add_device(h.at(0.0), "spot-ox", &[]);
    h.engine.handle_link(h.at(0.0), "spot-ox", true);
    let mut t = 60.0;
    while t < 600.0 {
        h.frame(t, "spot-ox", &[spo2(72.0, &[])]);
        t += 60.0;
    }
    assert!(
        h.raised()
            .iter()
            .any(|(_, rule, _)| rule == "spo2-critical"),
        "nine measurements of 72 % raised: {:?}",
        h.raised()
    );
}

/// F12: a spot-check measurement is judged at once, and the next one back in range ends its
/// condition (no stream will bring the clearing time of in-range samples).
#[test]
fn a_spot_check_in_range_ends_the_spot_desaturation() {
    let mut h = Harness::cuff_only();
    h.engine.add_device(h.at(0.0), "spot-ox", &[]);
    h.engine.handle_link(h.at(0.0), "spot-ox", true);
    h.frame(60.0, "spot-ox", &[spo2(72.0, &[])]);
    assert!(h
        .raised()
        .contains(&(60.0, "spo2-critical".into(), Priority::High)));
    assert_eq!(h.state_of(60.0, "spo2-low"), Some(AlarmState::Active));
    h.frame(120.0, "spot-ox", &[spo2(97.0, &[])]);
    // The condition has ended; a high-priority one stays latched until a person resets it.
    assert_eq!(h.state_of(120.0, "spo2-low"), None);
    assert_eq!(
        h.state_of(120.0, "spo2-critical"),
        Some(AlarmState::Latched)
    );
}

/// F11: a reconnect that lasts the clearing time ends a pending disconnect without a trace,
/// and the link must then be down for the whole delay again to alarm.
#[test]
fn a_link_back_up_for_the_clearing_time_ends_a_pending_disconnect() {
    let mut h = Harness::cuff_only();
    h.link(10.0, CUFF, false);
    assert_eq!(
        h.state_of(12.0, "device-disconnected"),
        Some(AlarmState::Pending)
    );
    h.link(14.0, CUFF, true);
    // Waiting out its clearing time while connected, it is kept but not shown.
    h.run_to(15.0);
    assert_eq!(h.state_of(15.0, "device-disconnected"), None);
    h.run_to(24.0);
    assert_eq!(h.state_of(24.0, "device-disconnected"), None);
    h.link(24.0, CUFF, false);
    h.link(28.0, CUFF, true);
    h.run_to(60.0);
    assert!(h.raised().is_empty(), "{:?}", h.raised());
    // Up for less than the clearing time: the next outage continues the same condition.
    h.link(60.0, CUFF, false);
    h.link(63.0, CUFF, true);
    h.link(66.0, CUFF, false);
    h.run_to(70.0);
    assert_eq!(
        h.raised(),
        vec![(66.0, "device-disconnected".into(), Priority::High)]
    );
}
