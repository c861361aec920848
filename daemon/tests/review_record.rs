//! The session record under a flood, a finding of the review after the monitors, HL7 and
//! central issues (docs/hazards.md, "Found in review after the monitors, HL7 and central
//! issues").

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_daemon::storage::{self, Health, Record};
use vigil_protocol::model::{Reading, Unit, Vital};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vigil-review-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn reading(value: f64) -> Record {
    Record::Reading {
        device: "hl7-1".into(),
        reading: Box::new(Reading::number(Vital::Spo2, value, Unit::Percent)),
        at: 1_795_400_000_000,
    }
}

/// V8: readings fill the record's queue (an HL7 message may carry 5,000 OBX; a gateway
/// replaying its backlog sends thousands of messages; a slow disk), and a nurse's
/// acknowledgement, or an alarm step, that comes then was refused with the readings: the
/// record lost it, and the nurse was told her action was not recorded. Readings must leave
/// room for what matters.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_readings_leaves_room_in_the_record_for_a_persons_action() {
    let dir = temp_dir("reserve");
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let (store, writer) = storage::start(
        dir.join("v.db"),
        None,
        "Room 9".into(),
        "{}".into(),
        health_tx,
    );
    store.record(reading(95.0));
    let ok = tokio::time::timeout(Duration::from_secs(30), health.recv()).await;
    assert!(matches!(ok, Ok(Some(Health::Ok))), "{ok:?}");
    // Readings until the queue refuses one: it is full (of readings) now.
    let mut sent = 0;
    while store.dropped() == 0 {
        store.record(reading(95.0));
        sent += 1;
        assert!(sent < 10_000_000, "the queue never filled");
    }
    let ack = store.commit_action("ack".into(), "Nurse A".into(), Some("spo2-low#1".into()), 0);
    let committed = tokio::time::timeout(Duration::from_secs(60), ack)
        .await
        .expect("an answer");
    assert_eq!(committed, Ok(()));
    drop(store);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
