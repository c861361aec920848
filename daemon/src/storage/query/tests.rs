//! The record's readers over a real file: typed alarm steps, the older rows' JSON, unknown
//! names, and reading on by position.

use super::*;
use crate::core::UnknownName;
use crate::storage::{self, RecordedAlarm};
use vigil_alarm::{AlarmChange, AlarmKind, AlarmState, Priority};
use vigil_protocol::Vital;

fn temp_db() -> (std::path::PathBuf, Connection, i64) {
    let dir = std::env::temp_dir().join(format!(
        "vigil-query-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let conn = storage::open(&dir.join("v.db")).unwrap();
    let session = storage::resume_or_start(&conn, "Room 2", "{}")
        .unwrap()
        .session;
    (dir, conn, session)
}

fn spo2_low() -> RecordedAlarm {
    RecordedAlarm {
        id: "spo2-low#3".into(),
        rule: "spo2-low".into(),
        kind: AlarmKind::Physiological,
        vital: Some(Vital::Spo2),
        device: Some("ox-1".into()),
        priority: Priority::Medium,
        message: "SpO2 below 90%".into(),
        state: AlarmState::Acknowledged,
        since: 1_795_400_075_000,
        acknowledged_by: Some("Nurse Okafor".into()),
        acknowledged_at: Some(1_795_400_090_000),
        latching: true,
        awaiting_confirmation: false,
        value: Some(86.0),
    }
}

/// The display JSON of [`spo2_low`], as a row recorded before migration 5 holds it.
const SPO2_LOW_JSON: &str = r#"{"id":"spo2-low#3","rule":"spo2-low","kind":"physiological","vital":"spo2","device":"ox-1","priority":"medium","message":"SpO2 below 90%","state":"acknowledged","since":"2026-11-23T02:14:35.000Z","acknowledged_by":"Nurse Okafor","acknowledged_at":"2026-11-23T02:14:50.000Z","latching":true,"awaiting_confirmation":false,"value":86.0}"#;

fn display_copy() -> vigil_protocol::display::AlarmInfo {
    serde_json::from_str(SPO2_LOW_JSON).unwrap()
}

/// A step the writer records comes back as the engine's values from the typed columns alone:
/// the display JSON beside it is not read (here it is overwritten with nothing).
#[test]
fn a_new_alarm_step_reads_back_typed_from_its_columns_alone() {
    let (dir, conn, s) = temp_db();
    let alarm = spo2_low();
    crate::storage::alarms::write(
        &conn,
        s,
        AlarmChange::Acknowledged,
        &alarm,
        &display_copy(),
        1_795_400_090_000,
    )
    .unwrap();
    conn.execute("UPDATE alarm_events SET alarm = '{}'", [])
        .unwrap();
    let steps = alarm_steps(&conn, s).unwrap();
    assert_eq!(steps.len(), 1);
    let step = steps[0].as_ref().unwrap();
    assert_eq!(
        step,
        &AlarmStep {
            position: 1,
            session: s,
            change: AlarmChange::Acknowledged,
            alarm,
            at: 1_795_400_090_000,
        }
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A step recorded before migration 5 (only its display JSON says its kind, message and
/// latching) reads back as the same typed values a new row gives.
#[test]
fn a_step_recorded_before_migration_5_reads_back_from_its_display_json() {
    let (dir, conn, s) = temp_db();
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at)
         VALUES (?1, 'spo2-low#3', 'acknowledged', 'acknowledged', 'medium', ?2, 1795400090000)",
        params![s, SPO2_LOW_JSON],
    )
    .unwrap();
    let steps = alarm_steps_after(&conn, 0, 10).unwrap();
    assert_eq!(steps.len(), 1);
    let step = steps[0].as_ref().unwrap();
    assert_eq!(step.alarm, spo2_low());
    assert_eq!(step.change, AlarmChange::Acknowledged);
    let _ = std::fs::remove_dir_all(dir);
}

/// A stored name that is none of the engine's is an error naming the step and the name, in a
/// typed row and in an older row's JSON alike: never read as `info` or any other value.
#[test]
fn an_unknown_stored_name_is_an_error_naming_the_step_and_the_name() {
    let (dir, conn, s) = temp_db();
    let mut alarm = spo2_low();
    for change in [AlarmChange::Raised, AlarmChange::Cleared] {
        crate::storage::alarms::write(&conn, s, change, &alarm, &display_copy(), 1000).unwrap();
    }
    alarm.id = "spo2-low#4".into();
    crate::storage::alarms::write(&conn, s, AlarmChange::Raised, &alarm, &display_copy(), 2000)
        .unwrap();
    conn.execute(
        "UPDATE alarm_events SET priority = 'urgent' WHERE rowid = 1",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE alarm_events SET event = 'vanished' WHERE rowid = 2",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at)
         VALUES (?1, 'spo2-low#3', 'acknowledged', 'acknowledged', 'medium', ?2, 3000)",
        params![
            s,
            SPO2_LOW_JSON.replace("\"physiological\"", "\"clinical\"")
        ],
    )
    .unwrap();
    let steps = alarm_steps(&conn, s).unwrap();
    let errors: Vec<(i64, String, UnknownName)> = steps
        .iter()
        .filter_map(|step| match step {
            Err(UnreadableStep {
                position,
                alarm_id,
                error: StepError::UnknownName(name),
            }) => Some((*position, alarm_id.clone(), name.clone())),
            _ => None,
        })
        .collect();
    let unknown = |what, name: &str| UnknownName {
        what,
        name: name.into(),
    };
    assert_eq!(
        errors,
        [
            (1, "spo2-low#3".into(), unknown("priority", "urgent")),
            (2, "spo2-low#3".into(), unknown("alarm change", "vanished")),
            (4, "spo2-low#3".into(), unknown("alarm kind", "clinical")),
        ]
    );
    assert!(steps[2].is_ok(), "the readable step still reads");
    assert_eq!(
        steps[0].as_ref().unwrap_err().to_string(),
        "alarm event 1 (spo2-low#3) cannot be read back: unknown priority `urgent`"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The readers by position give what follows a position, of every session, in the order it was
/// recorded, at most a batch at a time: reading on from the last position seen misses nothing
/// and gives nothing twice.
#[test]
fn reading_on_by_position_gives_everything_once_in_order_in_bounded_batches() {
    let (dir, conn, first) = temp_db();
    conn.execute("UPDATE sessions SET ended_at = 1 WHERE id = ?1", [first])
        .unwrap();
    let second = storage::resume_or_start(&conn, "Room 2", "{}")
        .unwrap()
        .session;
    assert_ne!(first, second);
    for (i, session) in [first, first, second, first, second]
        .into_iter()
        .enumerate()
    {
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, mdc, flags, received_at)
             VALUES (?1, 'ox-1', 'spo2', ?2, '%', 150456, '[]', ?3)",
            params![session, 90 + i as i64, 1000 - i as i64],
        )
        .unwrap();
        let mut alarm = spo2_low();
        alarm.id = format!("spo2-low#{}", i + 1);
        crate::storage::alarms::write(
            &conn,
            session,
            AlarmChange::Raised,
            &alarm,
            &display_copy(),
            1000 - i as i64,
        )
        .unwrap();
    }
    assert_eq!(last_reading_position(&conn).unwrap(), 5);
    assert_eq!(last_alarm_step_position(&conn).unwrap(), 5);

    let (mut values, mut after) = (Vec::new(), 0);
    loop {
        let batch = readings_after(&conn, after, 2).unwrap();
        assert!(batch.len() <= 2);
        let Some(last) = batch.last() else { break };
        after = last.position;
        values.extend(batch.iter().map(|r| (r.session, r.reading.value)));
    }
    let sessions = [first, first, second, first, second];
    let expected: Vec<(i64, Option<f64>)> = (0..5)
        .map(|i| (sessions[i], Some(90.0 + i as f64)))
        .collect();
    assert_eq!(values, expected, "in the order recorded, not by time");

    let (mut ids, mut after) = (Vec::new(), 0);
    loop {
        let batch = alarm_steps_after(&conn, after, 2).unwrap();
        assert!(batch.len() <= 2);
        let Some(Ok(last)) = batch.last() else { break };
        after = last.position;
        ids.extend(
            batch
                .into_iter()
                .map(|s| s.map(|s| (s.session, s.alarm.id)).unwrap()),
        );
    }
    let expected: Vec<(i64, String)> = (0..5)
        .map(|i| (sessions[i], format!("spo2-low#{}", i + 1)))
        .collect();
    assert_eq!(ids, expected);
    assert!(readings_after(&conn, 5, 10).unwrap().is_empty());
    assert!(alarm_steps_after(&conn, 5, 10).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
