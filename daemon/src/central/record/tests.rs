use super::*;
use rusqlite::params;

fn temp_record() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vigil-central-record-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("vigil.db")
}

/// What a run records: an alarm step (as the display received it) or a link change.
fn alarm(conn: &Connection, id: &str, event: &str, at: i64) {
    let json = serde_json::json!({"id": id, "rule": "spo2-low", "kind": "physiological",
        "vital": "spo2", "device": "ox", "priority": "high", "message": "SpO2 low",
        "state": "active", "since": "2026-11-29T10:00:01.000Z", "acknowledged_by": null,
        "acknowledged_at": null, "latching": false, "awaiting_confirmation": false, "value": 85.0});
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at)
         VALUES (1, ?1, ?2, 'active', 'high', ?3, ?4)",
        params![id, event, json.to_string(), at],
    )
    .unwrap();
}

fn link(conn: &Connection, device: &str, state: &str, at: i64) {
    conn.execute(
        "INSERT INTO links (session, device, state, reason, at) VALUES (1, ?1, ?2, 'port closed', ?3)",
        params![device, state, at],
    )
    .unwrap();
}

fn described(replayed: &[Replayed]) -> Vec<String> {
    replayed
        .iter()
        .map(|r| match &r.message {
            ServerMessage::Alarm { event, alarm, .. } => format!("{} {event}", alarm.id),
            ServerMessage::Device { device, link, .. } => format!("{device} {link:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn what_a_run_recorded_and_did_not_publish_comes_back_after_a_restart_in_recorded_order() {
    let path = temp_record();
    let conn = crate::storage::open(&path).unwrap();
    conn.execute(
        "INSERT INTO sessions (id, room, started_at, profile) VALUES (1, 'Room 1', 0, '{}')",
        [],
    )
    .unwrap();
    alarm(&conn, "old#1", "raised", 500);
    // The first run with [central]: what was recorded before is not the central's.
    let first = RecordProgress::open(&path).unwrap();
    assert!(first.unpublished().await.is_empty());
    alarm(&conn, "spo2-low#1", "raised", 1000);
    link(&conn, "ox", "disconnected", 1500);
    alarm(&conn, "spo2-low#1", "acknowledged", 2000);
    alarm(&conn, "spo2-low#2", "raised", 3000);
    // JetStream acknowledged the first two live messages; the third was acknowledged before
    // its row was committed (it is looked for again).
    let live = |id: &str, event: &str| Done::Alarm {
        alarm_id: id.into(),
        event: event.into(),
    };
    {
        let conn2 = first.conn.lock().unwrap();
        assert!(note(&conn2, &live("spo2-low#1", "raised")).unwrap());
        let device = Done::Link {
            device: "ox".into(),
            state: "disconnected".into(),
        };
        assert!(note(&conn2, &device).unwrap());
        assert!(!note(&conn2, &live("spo2-low#3", "raised")).unwrap());
    }
    // Killed; the next run publishes what was not acknowledged, and only that.
    let second = RecordProgress::open(&path).unwrap();
    let replayed = second.unpublished().await;
    assert_eq!(
        described(&replayed),
        ["spo2-low#1 acknowledged", "spo2-low#2 raised"]
    );
    assert_eq!(replayed[0].done, Done::AlarmRow(3));
    // Rows this run records are its live ones, not replayed.
    alarm(&conn, "spo2-low#2", "cleared", 4000);
    assert_eq!(second.unpublished().await.len(), 2);
    // Published from the record and acknowledged: a third run has nothing left.
    {
        let c = second.conn.lock().unwrap();
        for r in &replayed {
            assert!(note(&c, &r.done).unwrap());
        }
        assert!(note(&c, &live("spo2-low#2", "cleared")).unwrap());
    }
    let third = RecordProgress::open(&path).unwrap();
    assert!(third.unpublished().await.is_empty());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn alarm_steps_and_link_changes_merge_by_time_and_a_live_step_never_skips_an_earlier_row() {
    let path = temp_record();
    let conn = crate::storage::open(&path).unwrap();
    conn.execute(
        "INSERT INTO sessions (id, room, started_at, profile) VALUES (1, 'Room 1', 0, '{}')",
        [],
    )
    .unwrap();
    let first = RecordProgress::open(&path).unwrap();
    link(&conn, "ox", "connected", 900);
    alarm(&conn, "spo2-low#1", "raised", 1000);
    link(&conn, "ox", "disconnected", 1000);
    alarm(&conn, "spo2-low#1", "raised", 2000); // the same step again (a repeat event)
    {
        // The acknowledgement of the second `raised` finds the first unpublished one: the
        // progress lags (the second is published again), it never jumps ahead.
        let c = first.conn.lock().unwrap();
        let done = Done::Alarm {
            alarm_id: "spo2-low#1".into(),
            event: "raised".into(),
        };
        assert!(note(&c, &done).unwrap());
    }
    let second = RecordProgress::open(&path).unwrap();
    assert_eq!(
        described(&second.unpublished().await),
        ["ox Connected", "ox Disconnected", "spo2-low#1 raised"]
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
