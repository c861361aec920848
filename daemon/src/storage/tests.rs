//! The session record's tests.

use super::*;
use vigil_protocol::model::{Unit, Vital};

fn reading(value: f64) -> Record {
    Record::Reading {
        device: "ox-1".into(),
        reading: Box::new(
            vigil_protocol::Reading::number(Vital::Spo2, value, Unit::Percent).with_mdc(150456),
        ),
        at: 1_795_400_000_000,
    }
}

/// A new empty folder for one test's database.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vigil-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Dana acknowledges alarm A1; `done` hears whether it was committed.
fn ack(done: oneshot::Sender<Result<(), String>>) -> Record {
    Record::Action {
        action: "ack".into(),
        person: "Dana".into(),
        target: Some("A1".into()),
        at: 1_795_400_001_000,
        done: Some(done),
    }
}

/// Closes the queue and waits for the writer to finish.
async fn finish(storage: Storage, writer: std::thread::JoinHandle<()>) {
    drop(storage);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
}

/// A database that cannot be opened at first (its directory is missing) and then can:
/// what queued meanwhile is written once it works, and the person was told in between.
#[tokio::test(flavor = "multi_thread")]
async fn records_queued_while_the_database_fails_are_written_when_it_recovers() {
    let dir = temp_dir("storage");
    let path = dir.join("missing").join("v.db");
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let (storage, writer) = start(
        path.clone(),
        None,
        "Room 2".into(),
        "kap-default".into(),
        health_tx,
    );
    storage.record(reading(97.0));
    let (done, committed) = oneshot::channel();
    storage.record(ack(done));
    let refused = committed.await.expect("the writer answers");
    let reason = refused.expect_err("the database cannot be opened yet");
    assert!(
        reason.contains("written once recording works again"),
        "{reason}"
    );

    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    storage.record(reading(96.0));
    assert_eq!(health.recv().await, Some(Health::Ok));
    finish(storage, writer).await;

    let conn = open_read_only(&path).unwrap();
    let values: Vec<f64> = conn
        .prepare("SELECT value FROM readings ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(values, vec![97.0, 96.0]);
    let unit: String = conn
        .query_row("SELECT unit FROM readings LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        unit, "%",
        "units are kept by their symbol, as the review reads them"
    );
    let by: String = conn
        .query_row("SELECT person FROM actions WHERE action = 'ack'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(by, "Dana");
    let _ = std::fs::remove_dir_all(dir);
}

/// Readings wait to be committed together, but a person's action does not wait for them:
/// its commit takes the readings queued before it along, in order, and more than a
/// transaction's worth of readings queued at once is all written.
#[tokio::test(flavor = "multi_thread")]
async fn an_action_commits_at_once_with_the_readings_queued_before_it() {
    let dir = temp_dir("storage");
    let path = dir.join("v.db");
    let (health_tx, _health) = mpsc::unbounded_channel();
    let (storage, writer) = start(
        path.clone(),
        None,
        "Room 3".into(),
        "kap-default".into(),
        health_tx,
    );
    let queued = BATCH + 10;
    for i in 0..queued {
        storage.record(reading(90.0 + (i % 10) as f64));
    }
    let (done, committed) = oneshot::channel();
    storage.record(ack(done));
    committed
        .await
        .expect("the writer answers")
        .expect("committed");
    let conn = open_read_only(&path).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        count, queued as i64,
        "the action's commit includes every reading queued before it"
    );
    assert_eq!(storage.dropped(), 0);
    finish(storage, writer).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A resumed session brings back the last value of each second of every trend, leaving out
/// values an alarm would not act on (a sensor-off reading) and those outside the window.
#[test]
fn a_resumed_session_brings_back_its_trends() {
    let dir = temp_dir("trend");
    let conn = open(&dir.join("v.db")).unwrap();
    let session = resume_or_start(&conn, "Room 4", "{}").unwrap().session;
    let last = 1_795_400_000_000_i64;
    let too_old = last - crate::trend::TREND_POINTS as i64 * 1000 - 1000;
    for (value, flags, at) in [
        (80.0, "[]", too_old),
        (96.0, "[]", last - 2000),
        (95.0, "[]", last - 1500),
        (97.0, "[]", last - 1200),
        (50.0, "[\"sensor_off\"]", last - 1000),
        (98.0, "[]", last),
    ] {
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
             VALUES (?1, 'ox-1', 'spo2', ?2, '%', ?3, ?4)",
            params![session, value, flags, at],
        )
        .unwrap();
    }
    let resumed = resume_or_start(&conn, "Room 4", "{}").unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.trend.len(), 1, "{:?}", resumed.trend);
    let series = &resumed.trend[0];
    assert_eq!(
        (series.device.as_str(), series.vital),
        ("ox-1", Vital::Spo2)
    );
    // 96, 95 and 97 share a second, whose last value is kept; the sensor-off second is left out.
    assert_eq!(series.points, vec![(last - 1200, 97.0), (last, 98.0)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn prune_deletes_only_sessions_that_ended_before_the_retention_period() {
    let dir = temp_dir("prune");
    let conn = open(&dir.join("v.db")).unwrap();
    let day = 86_400_000;
    let mut ids = Vec::new();
    for ended in [Some(now_ms() - 40 * day), Some(now_ms() - 20 * day), None] {
        conn.execute(
            "INSERT INTO sessions (room, started_at, ended_at, profile) VALUES ('Room 2', 0, ?1, '')",
            params![ended],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
             VALUES (?1, 'ox-1', 'spo2', 97, '%', '[]', 0)",
            params![id],
        )
        .unwrap();
        ids.push(id);
    }
    assert_eq!(prune(&conn, 30).unwrap(), 1);
    let left: Vec<i64> = conn
        .prepare("SELECT DISTINCT session FROM readings ORDER BY session")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(left, ids[1..]);
    assert_eq!(sessions(&conn).unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// R23 for the central's publisher: pruning every session empties the tables, new rows are
/// numbered from 1 again, and a remembered position above them would take the next session's
/// alarm steps and link changes as already published to the central.
#[test]
fn pruning_the_whole_record_brings_the_central_publishers_positions_down() {
    let dir = temp_dir("prune-central");
    let conn = open(&dir.join("v.db")).unwrap();
    conn.execute(
        "INSERT INTO sessions (room, started_at, ended_at, profile) VALUES ('Room 2', 0, 1, '')",
        [],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO links (session, device, state, at) VALUES (?1, 'ox-1', 'connected', 0)",
        params![id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at)
         VALUES (?1, 'spo2-low#1', 'raised', 'active', 'medium', '{}', 0)",
        params![id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO central_progress (id, alarm_after, link_after) VALUES (1, 1, 1)",
        [],
    )
    .unwrap();
    assert_eq!(prune(&conn, 30).unwrap(), 1);
    let positions: (i64, i64) = conn
        .query_row(
            "SELECT alarm_after, link_after FROM central_progress WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(positions, (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_resumed_session_records_a_profile_changed_in_between() {
    let dir = temp_dir("profile");
    let conn = open(&dir.join("v.db")).unwrap();
    let first = resume_or_start(&conn, "Room 2", "{\"spo2-low\":90}").unwrap();
    assert!(!first.resumed);
    let again = resume_or_start(&conn, "Room 2", "{\"spo2-low\":90}").unwrap();
    assert_eq!((again.session, again.resumed), (first.session, true));
    let changed = resume_or_start(&conn, "Room 2", "{\"spo2-low\":88}").unwrap();
    assert_eq!(changed.session, first.session);
    resume_or_start(&conn, "Room 2", "{\"spo2-low\":88}").unwrap();
    let changes: Vec<String> = conn
        .prepare("SELECT target FROM actions WHERE action = 'profile_changed'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(changes, ["{\"spo2-low\":88}"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A writer for `path` that waits an hour between retries of a failing database, so that only
/// an urgent record can make it try again in a test's lifetime.
fn slow_retry_writer(
    path: PathBuf,
    health: mpsc::UnboundedSender<Health>,
) -> (Storage, std::thread::JoinHandle<()>) {
    Writer {
        path,
        session: None,
        room: "Room 5".into(),
        profile: "{}".into(),
        health,
        retry: Duration::from_secs(3600),
        fatal: Fatal::default(),
    }
    .start()
}

/// While the database fails, the writer waits between retries; a person's action does not
/// wait for that: it is tried at once, and committed once the disk works again.
#[tokio::test(flavor = "multi_thread")]
async fn the_retry_wait_never_delays_a_persons_action() {
    let dir = temp_dir("retry");
    let path = dir.join("missing").join("v.db");
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let (storage, writer) = slow_retry_writer(path.clone(), health_tx);
    storage.record(reading(97.0));
    // The first attempt fails (no folder): the writer now waits out its hour.
    let (done, committed) = oneshot::channel();
    storage.record(ack(done));
    assert!(committed.await.expect("answered").is_err());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let (done, committed) = oneshot::channel();
    storage.record(ack(done));
    let answer = tokio::time::timeout(Duration::from_secs(60), committed)
        .await
        .expect("the action is tried at once, not after the retry wait");
    answer.expect("answered").expect("committed");
    assert_eq!(health.recv().await, Some(Health::Ok));
    finish(storage, writer).await;
    let _ = std::fs::remove_dir_all(dir);
}

fn count(path: &Path, sql: &str) -> i64 {
    open_read_only(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// A database file deleted under the writer is noticed before the next commit: the health
/// turns to failing (the core raises `recording-failed`), and what follows is written into a
/// new file at the path, in a session of its own, rather than into the unlinked file.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_database_is_noticed_and_a_new_one_written_at_the_path() {
    let dir = temp_dir("deleted");
    let path = dir.join("v.db");
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let (storage, writer) = slow_retry_writer(path.clone(), health_tx);
    storage.record(reading(97.0));
    let (done, committed) = oneshot::channel();
    storage.record(ack(done));
    committed.await.unwrap().expect("committed");
    assert_eq!(health.recv().await, Some(Health::Ok), "the session started");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    storage.record(reading(96.0));
    let failing = tokio::time::timeout(Duration::from_secs(30), health.recv())
        .await
        .expect("noticed within the bound");
    assert!(
        matches!(&failing, Some(Health::Failing(why)) if why.contains("deleted or replaced")),
        "{failing:?}"
    );
    let (done, committed) = oneshot::channel();
    storage.record(ack(done));
    committed
        .await
        .unwrap()
        .expect("committed into the new file");
    assert!(path.exists(), "a new database at the path");
    assert_eq!(count(&path, "SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM actions"), 1);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM readings WHERE value = 96"),
        1,
        "the reading queued after the deletion is in the new file"
    );
    // Writing works again, but `recording-failed` stays up for people to see (the writer
    // goes round its idle loop several times meanwhile).
    tokio::time::sleep(COMMIT_EVERY * 3).await;
    assert!(health.try_recv().is_err(), "recording-failed held");
    assert!(REPLACED_ALARM_HOLD >= Duration::from_secs(30));
    finish(storage, writer).await;
    let _ = std::fs::remove_dir_all(dir);
}
