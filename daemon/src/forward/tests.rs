//! The queue over a real record file: thinning at the bound, and where a new forward starts.

use super::queue::{Queue, THIN_SECONDS};
use crate::storage;
use rusqlite::{params, Connection};

const START: i64 = 1_795_400_000_000;

/// A record with `seconds` of an oximeter at 1 Hz (SpO2 and pulse), and an alarm raised at
/// second `alarm_at`.
fn record(seconds: i64, alarm_at: i64) -> (std::path::PathBuf, Connection) {
    let dir = std::env::temp_dir().join(format!(
        "vigil-forward-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("v.db");
    let conn = storage::open(&path).unwrap();
    let s = storage::resume_or_start(&conn, "Room 2", "{}")
        .unwrap()
        .session;
    for i in 0..seconds {
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, mdc, flags, received_at) VALUES
             (?1, 'ox-1', 'spo2', 97, '%', 150456, '[]', ?2), (?1, 'ox-1', 'pulse_rate', 70, 'bpm', 149530, '[]', ?2)",
            params![s, START + i * 1000],
        )
        .unwrap();
        if i == alarm_at {
            conn.execute(
                "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at) VALUES (?1, 'spo2-low#1', 'raised', 'active', 'medium', ?2, ?3)",
                params![s, r#"{"id":"spo2-low#1","rule":"spo2-low","kind":"physiological","vital":"spo2","device":"ox-1","priority":"medium","message":"SpO2 below 90%","state":"active","since":"2026-11-23T02:13:20.000Z","latching":false,"awaiting_confirmation":false,"value":86.0}"#, START + i * 1000 + 500],
            )
            .unwrap();
        }
    }
    (dir, conn)
}

#[test]
fn at_the_bound_readings_are_thinned_and_counted_and_alarm_steps_kept() {
    let (dir, conn) = record(200, 20);
    conn.execute(
        "INSERT INTO forward_progress (forward, reading_after, block_done, alarm_after) VALUES ('ris', 0, 0, 0)",
        [],
    )
    .unwrap();
    // 400 readings pending, a bound of 100.
    let mut q = Queue::open(
        storage::open(&dir.join("v.db")).unwrap(),
        "ris",
        "Room 2",
        100,
    )
    .unwrap();
    assert_eq!(q.pending().unwrap(), 401);
    let now = START + 3_600_000;
    let (mut sent, mut thinned, mut alarms) = (Vec::new(), 0u64, 0);
    loop {
        let (item, backlog) = q.next(now).unwrap();
        thinned += backlog.thinned;
        let Some(item) = item else { break };
        if item.alarm {
            alarms += 1;
        } else {
            let second = item
                .message
                .split('\r')
                .find(|s| s.starts_with("OBX|1|"))
                .and_then(|s| s.split('|').nth(14))
                .unwrap()[..14]
                .to_string();
            sent.push(second);
        }
        q.done(&item).unwrap();
    }
    assert_eq!(alarms, 1, "the alarm step is never thinned");
    assert_eq!(q.pending().unwrap(), 0);
    // Everything is accounted for: sent (2 readings a message) or counted as thinned.
    assert_eq!(sent.len() as u64 * 2 + thinned, 400);
    assert!(thinned >= 200, "thinned {thinned}");
    // Down to the bound, one second in THIN_SECONDS; after it, every second.
    let tail: Vec<String> = (150..200)
        .map(|i| crate::pcd::hl7_time(START + i * 1000)[..14].to_string())
        .collect();
    assert!(
        tail.iter().all(|s| sent.contains(s)),
        "every second once under the bound"
    );
    let head = sent.iter().filter(|s| **s < tail[0]).count() as i64;
    assert!(
        head <= 150 / THIN_SECONDS + 1,
        "{head} of the first 150 seconds"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_new_forward_starts_at_the_end_of_the_record() {
    let (dir, _conn) = record(30, 10);
    let mut q = Queue::open(
        storage::open(&dir.join("v.db")).unwrap(),
        "new",
        "Room 2",
        100,
    )
    .unwrap();
    assert_eq!(q.pending().unwrap(), 0);
    assert_eq!(q.next(START + 3_600_000).unwrap().0, None);
    std::fs::remove_dir_all(dir).unwrap();
}

/// An alarm step the record cannot give back (a priority none of the engine's) is not sent
/// made up, and does not hold up the queue: it is skipped (and logged) and the next step goes
/// out, read from its typed columns alone.
#[test]
fn an_alarm_step_the_record_cannot_give_back_is_skipped_and_the_next_goes_out() {
    let (dir, conn) = record(0, 0);
    conn.execute(
        "INSERT INTO forward_progress (forward, reading_after, block_done, alarm_after) VALUES ('ris', 0, 0, 0)",
        [],
    )
    .unwrap();
    for (priority, at) in [("urgent", START), ("high", START + 1000)] {
        conn.execute(
            "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at,
                 rule, seq, device, vital, since_at, awaiting_confirmation, kind, message, latching)
             VALUES (1, 'spo2-low#1', 'raised', 'active', ?1, '{}', ?2, 'spo2-low', 1, 'ox-1',
                 'spo2', ?2, 0, 'physiological', 'SpO2 below 90%', 1)",
            params![priority, at],
        )
        .unwrap();
    }
    let mut q = Queue::open(
        storage::open(&dir.join("v.db")).unwrap(),
        "ris",
        "Room 2",
        100,
    )
    .unwrap();
    let item = q
        .next(START + 60_000)
        .unwrap()
        .0
        .expect("the readable step");
    assert_eq!(item.control, "A2");
    assert!(item.message.contains("|L~PH~SP|"), "{}", item.message);
    q.done(&item).unwrap();
    assert_eq!(q.pending().unwrap(), 0);
    assert_eq!(q.next(START + 60_000).unwrap().0, None);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Pruning every session the record held (a room unused past its retention) does not make the
/// forward take the next session's readings and alarm steps for sent ones: SQLite numbers the
/// new rows from 1 again, below the position the forward remembered.
#[test]
fn after_pruning_the_whole_record_the_next_sessions_steps_are_still_forwarded() {
    let (dir, conn) = record(30, 10);
    conn.execute(
        "INSERT INTO forward_progress (forward, reading_after, block_done, alarm_after)
         VALUES ('ris', (SELECT max(rowid) FROM readings), 0, (SELECT max(rowid) FROM alarm_events))",
        [],
    )
    .unwrap();
    conn.execute("UPDATE sessions SET ended_at = 1", [])
        .unwrap();
    assert_eq!(storage::prune(&conn, 30).unwrap(), 1);
    let s = storage::resume_or_start(&conn, "Room 2", "{}")
        .unwrap()
        .session;
    conn.execute(
        "INSERT INTO readings (session, device, vital, value, unit, mdc, flags, received_at)
         VALUES (?1, 'ox-1', 'spo2', 88, '%', 150456, '[]', ?2)",
        params![s, START],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at,
             rule, seq, device, vital, since_at, awaiting_confirmation, kind, message, latching)
         VALUES (?1, 'spo2-low#1', 'raised', 'active', 'medium', '{}', ?2, 'spo2-low', 1, 'ox-1',
             'spo2', ?2, 0, 'physiological', 'SpO2 below 90%', 0)",
        params![s, START + 500],
    )
    .unwrap();
    let mut q = Queue::open(
        storage::open(&dir.join("v.db")).unwrap(),
        "ris",
        "Room 2",
        100,
    )
    .unwrap();
    assert_eq!(q.pending().unwrap(), 2);
    let mut controls = Vec::new();
    while let Some(item) = q.next(START + 60_000).unwrap().0 {
        controls.push(item.control.clone());
        q.done(&item).unwrap();
    }
    assert_eq!(controls, ["R1", "A1"]);
    std::fs::remove_dir_all(dir).unwrap();
}
