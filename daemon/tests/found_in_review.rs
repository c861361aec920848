//! Findings of the red-team review (docs/hazards.md, "Found in review"): each test fails
//! without its control.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use rusqlite::params;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_daemon::storage::{self, Health, Record};
use vigil_protocol::model::{Reading, Unit, Vital};

/// A new empty folder for one test's database.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vigil-review-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// F1: one reading row that cannot be read back (a value stored as text, as a damaged or
/// hand-edited record may hold) made the whole resume fail: the session's dose and its active
/// alarm were not restored, and the writer, retrying the same resume, never recorded again.
/// The row must be named (record-unreadable) and the rest restored.
#[test]
fn one_unreadable_reading_row_does_not_stop_the_session_from_resuming() {
    let dir = temp_dir("unreadable-reading");
    let conn = storage::open(&dir.join("v.db")).unwrap();
    let session = storage::resume_or_start(&conn, "Room 9", "{}")
        .unwrap()
        .session;
    conn.execute(
        "UPDATE sessions SET dose_at = 1000, dose_by = 'Dr Rivera' WHERE id = ?1",
        params![session],
    )
    .unwrap();
    let alarm = r#"{"id":"spo2-critical#3","rule":"spo2-critical","kind":"physiological","vital":"spo2","device":"ox-1","priority":"high","message":"SpO2 critically low","state":"active","since":"2026-11-23T05:00:00.000Z","latching":true}"#;
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at,
             rule, seq, device, vital, since_at)
         VALUES (?1, 'spo2-critical#3', 'raised', 'active', 'high', ?2, 2000,
             'spo2-critical', 3, 'ox-1', 'spo2', 1795413600000)",
        params![session, alarm],
    )
    .unwrap();
    for (vital, value) in [
        ("spo2", "84"),
        ("nibp_systolic", "x"),
        ("nibp_diastolic", "80"),
    ] {
        // SQLite keeps a text that is not a number as text in a REAL column.
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
             VALUES (?1, 'ox-1', ?2, ?3, '%', '[]', 3000)",
            params![session, vital, value],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
         VALUES (?1, 'ox-1', 'spo2', 'garbage', '%', '[]', 3500)",
        params![session],
    )
    .unwrap();
    let resumed = storage::resume_or_start(&conn, "Room 9", "{}")
        .expect("the session resumes despite one unreadable reading row");
    assert_eq!(resumed.session, session);
    assert_eq!(resumed.dose, Some((1000, "Dr Rivera".into())));
    assert_eq!(resumed.alarms.len(), 1, "the active alarm comes back");
    assert!(
        resumed.unreadable.iter().any(|u| u.contains("reading")),
        "the unreadable row is named: {:?}",
        resumed.unreadable
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn reading(value: f64) -> Record {
    Record::Reading {
        device: "ox-1".into(),
        reading: Box::new(Reading::number(Vital::Spo2, value, Unit::Percent)),
        at: 1_795_400_000_000,
    }
}

/// F2: when the writer falls behind (a slow disk) and its queue is full, records (readings,
/// and alarm events and the dose alike) were dropped with only a counter nobody reads: no log,
/// no metric, no `recording-failed`. A lost record must be heard.
#[tokio::test(flavor = "multi_thread")]
async fn records_the_full_queue_refuses_raise_recording_failed() {
    let dir = temp_dir("queue-full");
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let (store, writer) = storage::start(
        dir.join("v.db"),
        None,
        "Room 9".into(),
        "{}".into(),
        health_tx,
    );
    // Writing works at first (the writer opens the database and starts the session).
    store.record(reading(95.0));
    let ok = tokio::time::timeout(Duration::from_secs(30), health.recv()).await;
    assert!(matches!(ok, Ok(Some(Health::Ok))), "{ok:?}");
    // A burst the writer cannot take in time: more than its queue holds.
    for _ in 0..30_000 {
        store.record(reading(95.0));
    }
    assert!(store.dropped() > 0, "the burst overflowed the queue");
    let heard = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(h) = health.recv().await {
            if let Health::Failing(why) = h {
                return Some(why);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let why = heard.expect("the loss raises recording-failed");
    assert!(why.contains("lost"), "{why}");
    drop(store);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// F8: the core formats every time it shows with `Clock::rfc3339`; humantime panics on a time
/// before 1970 and fails (a panic in `to_string`) after 9999. A dose time read back from the
/// record as a negative number of milliseconds (a damaged row), or a clock started at 1970
/// (a board without RTC before NTP), put such a time in the session the core shows: the
/// first snapshot panicked the core, the daemon exited, and came back to the same record.
#[test]
fn a_time_outside_what_rfc3339_can_show_does_not_panic_the_core() {
    let clock = vigil_daemon::clock::Clock::start();
    for ms in [-60_000, i64::MIN / 2, 253_402_300_800_000, i64::MAX / 2] {
        let at = clock.instant_of_unix_ms(ms);
        let shown = std::panic::catch_unwind(|| clock.rfc3339_std(at));
        assert!(shown.is_ok(), "formatting unix ms {ms} panicked");
        // The record's own formatting (`vigil record`, the review export) likewise.
        let stored = std::panic::catch_unwind(|| storage::rfc3339(ms));
        assert!(stored.is_ok(), "formatting stored unix ms {ms} panicked");
    }
}
