//! Issue 14 §2: blood-pressure confirmation, the repeat that does not come, and the baseline.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use support::Harness;
use vigil_alarm::AlarmChange::{Cleared, Escalated, Raised};
use vigil_alarm::{AlarmKind, AlarmState, Priority};

#[test]
fn a_repeat_after_the_window_that_still_meets_the_limit_confirms() {
    // Readings 5 min 5 s apart: the second one still confirms (today it stayed Low for ever).
    let mut h = Harness::cuff_only();
    h.bp(0.0, 182.0, 100.0);
    let first = h.alarm(0.0, "bp-severe").unwrap();
    assert_eq!(
        (first.priority, first.awaiting_confirmation),
        (Priority::Low, true)
    );
    h.ack(10.0, &first.id).unwrap();
    h.bp(305.0, 184.0, 102.0);
    let confirmed = h.alarm(305.0, "bp-severe").unwrap();
    assert_eq!(confirmed.id, first.id, "the same occurrence, now confirmed");
    assert_eq!(
        (
            confirmed.priority,
            confirmed.state,
            confirmed.awaiting_confirmation
        ),
        (Priority::High, AlarmState::Active, false),
        "confirmation sounds again even after an acknowledgement"
    );
    assert!(h
        .alarm_log()
        .contains(&(305.0, Escalated, "bp-severe".into(), Priority::High)));
}

#[test]
fn a_repeat_that_does_not_come_raises_nibp_repeat_overdue() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 182.0, 100.0);
    let severe = h.alarm(0.0, "bp-severe").unwrap();
    h.ack(10.0, &severe.id).unwrap();
    h.run_to(299.0);
    assert!(h.alarm(299.0, "nibp-repeat-overdue").is_none());
    h.run_to(301.0);
    assert!(h
        .raised()
        .contains(&(300.0, "nibp-repeat-overdue".into(), Priority::Medium)));
    let overdue = h.alarm(301.0, "nibp-repeat-overdue").unwrap();
    assert_eq!(overdue.kind, AlarmKind::Technical);
    // The unconfirmed occurrence stays visible, waiting.
    let still = h.alarm(301.0, "bp-severe").unwrap();
    assert_eq!(
        (still.id.as_str(), still.awaiting_confirmation),
        (severe.id.as_str(), true)
    );
    // A normal complete reading ends both.
    h.bp(400.0, 150.0, 90.0);
    assert!(h.alarm(400.0, "bp-severe").is_none());
    assert!(h.alarm(400.0, "nibp-repeat-overdue").is_none());
    assert!(h.alarm_log().contains(&(
        400.0,
        Cleared,
        "nibp-repeat-overdue".into(),
        Priority::Medium
    )));
}

#[test]
fn a_partial_repeat_is_not_the_requested_repeat() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 182.0, 100.0);
    h.frame(
        100.0,
        support::CUFF,
        &[vigil_protocol::Reading::number(
            vigil_protocol::Vital::NibpSystolic,
            150.0,
            vigil_protocol::Unit::MmHg,
        )],
    );
    h.run_to(301.0);
    assert!(h
        .raised()
        .iter()
        .any(|(_, rule, _)| rule == "nibp-repeat-overdue"));
    assert!(h.alarm(301.0, "bp-severe").unwrap().awaiting_confirmation);
    let _ = Raised;
}

fn flagged_bp(
    h: &mut Harness,
    secs: f64,
    systolic: f64,
    diastolic: f64,
    flag: vigil_protocol::Flag,
) {
    use vigil_protocol::{Reading, Unit, Vital};
    let flags: vigil_protocol::Flags = [flag].into_iter().collect();
    h.frame(
        secs,
        support::CUFF,
        &[
            Reading::number(Vital::NibpSystolic, systolic, Unit::MmHg).with_flags(flags),
            Reading::number(Vital::NibpDiastolic, diastolic, Unit::MmHg).with_flags(flags),
        ],
    );
}

fn no_baseline_message(h: &Harness, secs: f64) -> String {
    h.alarm(secs, "no-baseline")
        .expect("no-baseline notice")
        .message
}

#[test]
fn a_flagged_pre_dose_bp_is_not_the_baseline() {
    let mut h = Harness::cuff_only();
    flagged_bp(&mut h, 0.0, 120.0, 80.0, vigil_protocol::Flag::BodyMovement);
    h.dose(600.0);
    let s = h.engine.snapshot(h.at(600.0)).session;
    assert_eq!(s.baseline, None);
    assert!(
        no_baseline_message(&h, 600.0).contains("no valid pre-dose BP"),
        "{}",
        no_baseline_message(&h, 600.0)
    );
}

#[test]
fn a_bp_more_than_60_min_before_the_dose_is_not_the_baseline() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 120.0, 80.0);
    h.dose(61.0 * 60.0);
    assert_eq!(h.engine.snapshot(h.at(3660.0)).session.baseline, None);
    let message = no_baseline_message(&h, 3660.0);
    assert!(
        message.contains("61 min before the dose (at most 60 min)"),
        "{message}"
    );
    // Within the hour it is the baseline, with the time it was taken.
    let mut h = Harness::cuff_only();
    h.bp(0.0, 120.0, 80.0);
    h.dose(59.0 * 60.0);
    let s = h.engine.snapshot(h.at(3540.0)).session;
    assert_eq!(
        s.baseline.map(|b| (b.systolic, b.diastolic)),
        Some((120.0, 80.0))
    );
    assert_eq!(s.baseline_taken, Some(h.at(0.0)));
    assert!(h.alarm(3540.0, "no-baseline").is_none());
}

#[test]
fn the_baseline_age_limit_is_configurable() {
    let profile = vigil_alarm::Profile::load(
        vigil_alarm::Layer {
            source: vigil_alarm::Source::Default,
            text: vigil_alarm::profile::KAP_DEFAULT,
        },
        &[vigil_alarm::Layer {
            source: vigil_alarm::Source::Clinic("clinic.toml".into()),
            text: "[behaviour]\nbaseline_max_age = \"90m\"\n",
        }],
    )
    .unwrap();
    assert_eq!(
        profile.behaviour.baseline_max_age,
        std::time::Duration::from_secs(90 * 60)
    );
    let mut h = Harness::with_profile(profile);
    h.bp(0.0, 120.0, 80.0);
    h.dose(75.0 * 60.0);
    assert!(h.engine.snapshot(h.at(4500.0)).session.baseline.is_some());
}

#[test]
fn set_baseline_takes_a_later_valid_reading_and_is_recorded_with_the_person() {
    let mut h = Harness::cuff_only();
    let at = h.at(0.0);
    assert_eq!(
        h.engine.set_baseline(at, at, "Nurse Okafor"),
        Err(vigil_alarm::ActionError::DoseNotMarked)
    );
    h.dose(60.0);
    assert!(h.alarm(60.0, "no-baseline").is_some());
    h.bp(300.0, 124.0, 82.0);
    flagged_bp(&mut h, 400.0, 118.0, 78.0, vigil_protocol::Flag::CuffLoose);
    let now = h.at(500.0);
    // Only a complete valid measurement can be the baseline.
    assert_eq!(
        h.engine.set_baseline(now, h.at(400.0), "Nurse Okafor"),
        Err(vigil_alarm::ActionError::NoSuchReading)
    );
    let bp = h
        .engine
        .set_baseline(now, h.at(300.0), "Nurse Okafor")
        .unwrap();
    assert_eq!((bp.systolic, bp.diastolic), (124.0, 82.0));
    h.run_to(500.0);
    let s = h.engine.snapshot(h.at(500.0)).session;
    assert_eq!(s.baseline_taken, Some(h.at(300.0)));
    assert_eq!(s.baseline_set_by.unwrap().by, "Nurse Okafor");
    assert!(h.alarm(500.0, "no-baseline").is_none());
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        vigil_alarm::EngineEvent::BaselineSet { by, .. } if by == "Nurse Okafor"
    )));
    assert!(matches!(
        h.engine.set_baseline(h.at(501.0), h.at(300.0), "Dr Rivera"),
        Err(vigil_alarm::ActionError::BaselineAlreadySet(_))
    ));
    // The post-dose rise alarm now has its reference.
    h.bp(900.0, 170.0, 90.0);
    assert!(h
        .raised()
        .contains(&(900.0, "bp-rise".into(), Priority::Medium)));
}

/// F13: the baseline age rule (B3) could be walked around by `set_baseline` (B4), which is for
/// a *later* reading: the pre-dose BP refused as 90 min old at the dose was accepted as the
/// baseline when picked by its time, so the rise alarm judged against the stale value the
/// rule refuses. Only a measurement taken after the dose may be set as the baseline.
#[test]
fn set_baseline_refuses_the_stale_pre_dose_reading_the_age_rule_refused() {
    let mut h = Harness::cuff_only();
    h.bp(0.0, 150.0, 95.0);
    h.dose(90.0 * 60.0);
    let s = h.engine.snapshot(h.at(90.0 * 60.0)).session;
    assert!(s.baseline.is_none(), "90 min old: no baseline");
    assert_eq!(
        h.engine
            .set_baseline(h.at(91.0 * 60.0), h.at(0.0), "Nurse Okafor"),
        Err(vigil_alarm::ActionError::NoSuchReading)
    );
}

/// G12: a monitor that sends its last determination again (an IntelliVue after a replug, a BLE
/// cuff replaying its stored records) sends no new measurement: the same device time does not
/// confirm `bp-severe` and is not the requested repeat; a new determination is.
#[test]
fn the_same_determination_sent_again_is_not_the_repeat_measurement() {
    use vigil_protocol::{DeviceTime, Reading, Unit, Vital};
    let at = |minute| {
        Some(DeviceTime {
            year: Some(2026),
            month: Some(11),
            day: Some(29),
            hour: 10,
            minute,
            second: 0,
        })
    };
    let frame = |h: &mut Harness, secs: f64, time, systolic: f64| {
        h.frame(
            secs,
            support::CUFF,
            &[
                Reading::number(Vital::NibpSystolic, systolic, Unit::MmHg).with_device_time(time),
                Reading::number(Vital::NibpDiastolic, 100.0, Unit::MmHg).with_device_time(time),
            ],
        );
    };
    let mut h = Harness::cuff_only();
    frame(&mut h, 0.0, at(0), 182.0);
    let first = h.alarm(0.0, "bp-severe").unwrap();
    assert!(first.awaiting_confirmation);
    // The same determination again, 5 min 5 s later: nothing new was measured.
    frame(&mut h, 305.0, at(0), 182.0);
    let still = h.alarm(305.0, "bp-severe").unwrap();
    assert_eq!(
        (still.id.as_str(), still.awaiting_confirmation),
        (first.id.as_str(), true),
        "a repeated determination confirmed bp-severe"
    );
    assert!(
        h.raised()
            .iter()
            .any(|(_, rule, _)| rule == "nibp-repeat-overdue"),
        "a repeated determination counted as the requested repeat"
    );
    // A new determination (a later device time) confirms.
    frame(&mut h, 320.0, at(5), 184.0);
    let confirmed = h.alarm(320.0, "bp-severe").unwrap();
    assert_eq!(
        (confirmed.id.as_str(), confirmed.awaiting_confirmation),
        (first.id.as_str(), false)
    );
}
