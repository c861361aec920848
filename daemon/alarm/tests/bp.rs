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
