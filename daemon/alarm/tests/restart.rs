//! Issue 14 §5: everything the engine needs to go on is restored; conditions raised after a
//! restart carry the real current time; unreadable stored rows raise a technical alarm.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use support::Harness;
use vigil_alarm::AlarmChange::{Escalated, Raised};
use vigil_alarm::{Act, AlarmState, Bp, Priority, RestoredAlarm, RestoredSession};

const MIN: f64 = 60.0;

fn session(h: &Harness, now: f64) -> RestoredSession {
    RestoredSession {
        now: h.at(now),
        dose: Some(Act {
            by: "Dr Rivera".into(),
            at: h.at(0.0),
        }),
        baseline: None,
        bp_measurements: vec![],
        alarms: vec![],
        next_seq: 1,
    }
}

fn bp(systolic: f64, diastolic: f64) -> Bp {
    Bp {
        systolic,
        diastolic,
    }
}

#[test]
fn an_overdue_nibp_after_a_restart_is_raised_now_and_escalates_later() {
    // Dose at 0, no BP since; the daemon comes back 50 min after the dose (due at 40 + 2).
    let mut h = Harness::cuff_only();
    h.engine.restore(session(&h, 50.0 * MIN));
    h.run_to(50.0 * MIN);
    let log: Vec<_> = h
        .alarm_log()
        .into_iter()
        .filter(|(_, _, rule, _)| rule == "nibp-overdue")
        .collect();
    assert_eq!(
        log,
        vec![(50.0 * MIN, Raised, "nibp-overdue".into(), Priority::Low)]
    );
    h.run_to(53.0 * MIN);
    assert!(h.alarm_log().contains(&(
        53.0 * MIN,
        Escalated,
        "nibp-overdue".into(),
        Priority::Medium
    )));
}

#[test]
fn the_last_bp_and_its_time_are_restored_for_the_schedule() {
    // A measurement 38 min after the dose covers the 40-min reading (5 min early tolerance).
    let mut h = Harness::cuff_only();
    let mut s = session(&h, 41.0 * MIN);
    s.bp_measurements = vec![(h.at(38.0 * MIN), bp(130.0, 85.0))];
    h.engine.restore(s);
    h.run_to(50.0 * MIN);
    assert!(h.alarm(50.0 * MIN, "nibp-overdue").is_none());
    let last = h.engine.snapshot(h.at(50.0 * MIN)).session.last_bp.unwrap();
    assert_eq!(last.0, h.at(38.0 * MIN));
}

#[test]
fn the_baseline_is_restored_with_its_time() {
    let mut h = Harness::cuff_only();
    let mut s = session(&h, 10.0 * MIN);
    s.baseline = Some((bp(120.0, 80.0), h.at(0.0), None));
    h.engine.restore(s);
    let view = h.engine.snapshot(h.at(10.0 * MIN)).session;
    assert_eq!(view.baseline_taken, Some(h.at(0.0)));
    h.bp(11.0 * MIN, 165.0, 85.0);
    assert!(h
        .raised()
        .contains(&(11.0 * MIN, "bp-rise".into(), Priority::Medium)));
}

fn unconfirmed_severe(h: &Harness, since: f64) -> RestoredAlarm {
    RestoredAlarm {
        rule: "bp-severe".into(),
        seq: 5,
        device: None,
        vital: None,
        priority: Priority::Low,
        onset: h.at(since),
        since: h.at(since),
        acknowledged: Some(Act {
            by: "Nurse Okafor".into(),
            at: h.at(since + 5.0),
        }),
        latched: false,
        value: Some(184.0),
        awaiting_confirmation: true,
    }
}

#[test]
fn the_confirmation_window_and_requested_repeat_survive_a_restart() {
    // bp-severe raised at 10 min and unconfirmed; the daemon restarts at 12 min.
    let mut h = Harness::cuff_only();
    let mut s = session(&h, 12.0 * MIN);
    s.bp_measurements = vec![(h.at(10.0 * MIN), bp(184.0, 100.0))];
    s.alarms = vec![unconfirmed_severe(&h, 10.0 * MIN)];
    h.engine.restore(s);
    let a = h.alarm(12.0 * MIN, "bp-severe").unwrap();
    assert!(a.awaiting_confirmation);
    // The repeat it asked for is due at 15 min.
    h.run_to(15.0 * MIN + 1.0);
    assert!(h
        .raised()
        .contains(&(15.0 * MIN, "nibp-repeat-overdue".into(), Priority::Medium)));
    // A late repeat that still meets the limit confirms it.
    h.bp(16.0 * MIN, 186.0, 104.0);
    let a = h.alarm(16.0 * MIN, "bp-severe").unwrap();
    assert_eq!((a.priority, a.state), (Priority::High, AlarmState::Active));
    assert!(h.alarm(16.0 * MIN, "nibp-repeat-overdue").is_none());
}

#[test]
fn unreadable_stored_rows_raise_a_technical_alarm_naming_them() {
    let mut h = Harness::cuff_only();
    h.engine.restore(session(&h, 5.0 * MIN));
    let now = h.at(5.0 * MIN);
    h.engine
        .record_unreadable(now, vec!["alarm spo2-low#7".into()]);
    h.run_to(5.0 * MIN);
    let a = h
        .alarm(5.0 * MIN, "record-unreadable")
        .expect("technical alarm");
    assert_eq!(a.kind, vigil_alarm::AlarmKind::Technical);
    assert_eq!(a.priority, Priority::Medium);
    assert_eq!(a.state, AlarmState::Latched);
    assert!(a.message.contains("spo2-low#7"), "{}", a.message);
    assert!(h
        .raised()
        .contains(&(5.0 * MIN, "record-unreadable".into(), Priority::Medium)));
    h.reset(6.0 * MIN, &a.id).unwrap();
    assert!(h.alarm(6.0 * MIN, "record-unreadable").is_none());
}

#[test]
fn an_alarm_id_is_never_given_twice_in_a_session() {
    // not-current#12 was raised and ended before the crash: it is not restored, but its number
    // is used; the next occurrence after the restart must not be #12 again.
    let mut h = Harness::kap();
    let mut s = session(&h, 60.0);
    s.next_seq = 13;
    h.engine.restore(s);
    h.run_to(100.0);
    let a = h.alarm(100.0, "not-current").unwrap();
    let seq: u64 = a.id.rsplit('#').next().unwrap().parse().unwrap();
    assert!(seq >= 13, "{}", a.id);
}

/// F3: the record's times are wall-clock times. When the previous run's clock was ahead (a
/// wrong RTC corrected by NTP across the restart), they map to instants after the restart. The
/// schedule and escalation then counted from that future: an overdue NIBP waited hours, and an
/// unacknowledged alarm did not escalate. A time after the restart is taken as the restart.
#[test]
fn times_from_the_record_after_the_restart_count_from_the_restart() {
    let mut h = Harness::cuff_only();
    let restart = 3.0 * 60.0 * MIN;
    let ahead = restart + 2.0 * 60.0 * MIN;
    let mut s = session(&h, restart);
    s.dose = Some(Act {
        by: "Dr Rivera".into(),
        at: h.at(ahead),
    });
    // bp-rise (medium, escalates unacknowledged after 3 min), raised "in the future".
    s.alarms = vec![RestoredAlarm {
        rule: "bp-rise".into(),
        seq: 4,
        device: None,
        vital: None,
        priority: Priority::Medium,
        onset: h.at(ahead),
        since: h.at(ahead),
        acknowledged: None,
        latched: false,
        value: Some(170.0),
        awaiting_confirmation: false,
    }];
    h.engine.restore(s);
    h.run_to(restart + 43.0 * MIN);
    assert!(
        h.alarm_log()
            .iter()
            .any(|(_, change, rule, _)| *change == Escalated && rule == "bp-rise"),
        "the unacknowledged bp-rise escalates 3 min after the restart: {:?}",
        h.alarm_log()
    );
    assert!(
        h.alarm(restart + 43.0 * MIN, "nibp-overdue").is_some(),
        "the NIBP schedule counts from the restart at the latest"
    );
}

/// F10: the daemon adds its devices (each link down, so `device-disconnected` starts pending
/// with the next number) before it restores the session. Those pending occurrences took
/// numbers 1, 2, … from the fresh engine, and a device that did not reconnect in time raised
/// `device-disconnected#1` again, though the record already held a `device-disconnected#1`:
/// an acknowledgement or reset could hit the wrong one, and the record mixes them (R4).
#[test]
fn a_device_that_does_not_come_back_after_a_restart_gets_a_fresh_alarm_id() {
    let t0 = std::time::Instant::now();
    let at = |s: u64| t0 + std::time::Duration::from_secs(s);
    let mut engine = vigil_alarm::Engine::new(vigil_alarm::Profile::kap_default().unwrap());
    // As `Core::new` does: devices first, links down.
    engine.add_device(
        at(0),
        "oximeter",
        &[
            vigil_protocol::Vital::Spo2,
            vigil_protocol::Vital::PulseRate,
        ],
    );
    engine.add_device(at(0), "cuff", &[]);
    engine.restore(RestoredSession {
        now: at(0),
        dose: None,
        baseline: None,
        bp_measurements: vec![],
        alarms: vec![],
        next_seq: 13,
    });
    engine.handle_timeout(at(10));
    let ids: Vec<String> = engine
        .snapshot(at(10))
        .alarms
        .into_iter()
        .filter(|a| a.rule == "device-disconnected")
        .map(|a| a.id)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    for id in &ids {
        let seq: u64 = id.rsplit('#').next().unwrap().parse().unwrap();
        assert!(seq >= 13, "{id} reuses a number the record already holds");
    }
}

/// F14: an alarm restored for a device that is no longer configured can never be judged again
/// (no reading or link of it will come). It used to be restored active, and the device it named
/// was added back with its link down, raising `device-disconnected` for it too: two alarms no
/// one could ever clear or reset. Now it comes back latched, for a person to reset (recorded),
/// and the device is not watched again.
#[test]
fn an_alarm_of_a_device_no_longer_configured_is_restored_resettable() {
    let mut h = Harness::kap();
    h.engine
        .add_device(h.at(0.0), "old-ox", &[vigil_protocol::Vital::Spo2]);
    h.engine.handle_link(h.at(0.0), "old-ox", true);
    let mut t = 0.0;
    while t < 20.0 {
        let low = vigil_protocol::Reading::number(
            vigil_protocol::Vital::Spo2,
            80.0,
            vigil_protocol::Unit::Percent,
        );
        h.frame(t, "old-ox", &[low]);
        h.oximeter(t, t + 1.0, 98.0, 72.0);
        t += 1.0;
    }
    let of_old = |h: &Harness, secs: f64| -> Vec<(String, AlarmState)> {
        h.alarms_now(secs)
            .into_iter()
            .filter(|a| a.device.as_deref() == Some("old-ox"))
            .map(|a| (a.rule, a.state))
            .collect()
    };
    assert!(of_old(&h, 20.0).contains(&("spo2-low".into(), AlarmState::Active)));
    // The restart's configuration no longer has "old-ox".
    h.restart(20.0);
    h.oximeter(20.0, 60.0, 98.0, 72.0);
    let alarms = of_old(&h, 60.0);
    assert!(
        alarms.iter().all(|(_, s)| *s == AlarmState::Latched),
        "{alarms:?}"
    );
    assert!(alarms.iter().any(|(r, _)| r == "spo2-low"), "{alarms:?}");
    for a in h.alarms_now(60.0) {
        if a.device.as_deref() == Some("old-ox") {
            h.reset(60.0, &a.id).unwrap();
        }
    }
    assert_eq!(of_old(&h, 61.0), vec![]);
}
