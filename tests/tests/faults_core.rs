//! Faults of the core and the record, as a display and the session record see them: the
//! daemon in-process on loopback, every loop bounded in count and time. Each test prints what
//! it measured (`FIGURE ...` lines, with `--nocapture`); the README's "Faults" table comes
//! from them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use vigil_daemon::core::Fault;
use vigil_daemon::daemon::Options;
use vigil_tests::{Display, Room, NURSE, VIEWER};

/// The display raises loss of communication after this much silence.
const DISPLAY_LOSS: Duration = Duration::from_secs(3);
/// Three heartbeat periods without one: the display's session has stopped forwarding (the
/// core sends one every 500 ms; the suite's other gaps stay near that).
const FORWARDING_STOPPED: Duration = Duration::from_millis(1500);

/// Resident memory of this process (the daemon runs in it), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Heartbeats one display received: the worst gap between arrivals, and between the core's
/// own stamps (which the test machine's scheduling does not blur).
#[derive(Debug, Default)]
struct Beats {
    count: usize,
    last: Option<(Instant, SystemTime)>,
    worst_arrival: Duration,
    worst_stamp: Duration,
}

impl Beats {
    fn saw(&mut self, m: &Value) {
        if m["type"] != "heartbeat" {
            return;
        }
        let stamp = humantime::parse_rfc3339(m["at"].as_str().unwrap()).unwrap();
        let now = Instant::now();
        if let Some((at, then)) = self.last {
            self.worst_arrival = self.worst_arrival.max(now - at);
            self.worst_stamp = self
                .worst_stamp
                .max(stamp.duration_since(then).unwrap_or_default());
        }
        self.last = Some((now, stamp));
        self.count += 1;
    }
}

/// The next message for which `want` holds (within `within`), counting heartbeats on the way.
async fn until(
    d: &mut Display,
    beats: &mut Beats,
    within: Duration,
    want: impl FnMut(&Value) -> bool,
) -> Value {
    try_until(d, beats, within, want)
        .await
        .unwrap_or_else(|| panic!("nothing matching within {within:?}"))
}

/// As [`until`], `None` when nothing matched in time.
async fn try_until(
    d: &mut Display,
    beats: &mut Beats,
    within: Duration,
    mut want: impl FnMut(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, d.next()).await.ok()?;
        beats.saw(&m);
        if want(&m) {
            return Some(m);
        }
    }
}

fn heartbeat(m: &Value) -> bool {
    m["type"] == "heartbeat"
}

/// Polls `/healthz` (every 100 ms, at most `within`) until its status is `want`; how long it
/// took and the body.
async fn healthz_until(room: &Room, want: u16, within: Duration) -> (Duration, Value) {
    let start = Instant::now();
    loop {
        let (status, body) = vigil_tests::http_get(room.daemon.addr, "/healthz").await;
        if status == want {
            return (start.elapsed(), body);
        }
        assert!(
            start.elapsed() < within,
            "/healthz still {status} {body} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(db: &str, sql: &str) -> i64 {
    try_count(db, sql).unwrap()
}

/// `None` while the file is not there or not yet a session record.
fn try_count(db: &str, sql: &str) -> Option<i64> {
    let conn = vigil_daemon::storage::open_read_only(Path::new(db)).ok()?;
    conn.query_row(sql, [], |r| r.get(0)).ok()
}

/// Polls the record (every 100 ms, at most `within`) until `sql` counts at least one row.
async fn record_holds(db: &str, sql: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if Path::new(db).exists() && try_count(db, sql).is_some_and(|n| n > 0) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "the record never held: {sql}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A number no pause can last (1e20 s) once panicked the core: every number from a display is
/// now checked in one place, refused with a clear `error`, and nothing else happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_refused_and_the_core_goes_on() {
    let room = Room::start("", Options::default()).await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let mut beats = Beats::default();
    for (i, message) in [
        json!({"type": "pause_audio", "seconds": 1e20}),
        json!({"type": "pause_audio", "seconds": 1.7e308}),
        json!({"type": "pause_audio", "seconds": -5}),
        json!({"type": "pause_audio", "seconds": 0}),
        json!({"type": "pause_audio", "seconds": 3600.5}),
        json!({"type": "trend", "minutes": 0}),
        json!({"type": "trend", "minutes": 481}),
        json!({"type": "trend", "minutes": 4_000_000_000u32}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut message = message;
        message["request_id"] = json!(format!("n-{i}"));
        nurse.send(message.clone()).await;
        let answer = until(&mut nurse, &mut beats, Duration::from_secs(10), |m| {
            m["request_id"] == format!("n-{i}") || m["type"] == "audio_pause"
        })
        .await;
        assert_eq!(answer["type"], "error", "{message} -> {answer}");
        assert_eq!(answer["code"], "bad_message", "{answer}");
        assert!(answer["reason"].as_str().unwrap().contains("must be"));
    }
    // A number too big for the field at all is not understood.
    nurse
        .send_text(r#"{"type":"trend","minutes":99999999999,"request_id":"big"}"#.into())
        .await;
    let answer = until(&mut nurse, &mut beats, Duration::from_secs(10), |m| {
        m["request_id"] == "big"
    })
    .await;
    assert_eq!(answer["code"], "bad_message");
    // The core lives: heartbeats go on, `/healthz` is fine, and a good pause still works.
    for _ in 0..2 {
        until(&mut nurse, &mut beats, Duration::from_secs(10), heartbeat).await;
    }
    nurse
        .send(json!({"type": "pause_audio", "seconds": 30, "request_id": "ok"}))
        .await;
    let paused = until(&mut nurse, &mut beats, Duration::from_secs(10), |m| {
        m["type"] == "audio_pause"
    })
    .await;
    assert_eq!(paused["paused"], true);
    assert!(paused["remaining_s"].as_f64().unwrap() <= 30.0);
    let (status, body) = vigil_tests::http_get(room.daemon.addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    room.daemon.shutdown().await;
}

/// A panic in the core is fatal (so `vigil run` exits non-zero and is restarted), and
/// `/healthz` answers 503 naming the core once its heartbeat is more than 2 s old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_panic_is_fatal_and_healthz_names_the_late_core() {
    let room = Room::start("", Options::default()).await;
    let (status, body) = vigil_tests::http_get(room.daemon.addr, "/healthz").await;
    assert_eq!((status, &body["late"]), (200, &json!([])), "{body}");
    room.daemon.core().inject(Fault::PanicCore).await;
    let why = tokio::time::timeout(Duration::from_secs(10), room.daemon.failed())
        .await
        .expect("the panic is reported, not left silent");
    assert!(why.contains("core task panicked"), "{why}");
    let (took, body) = healthz_until(&room, 503, Duration::from_secs(10)).await;
    assert_eq!(body["status"], "late");
    assert_eq!(body["late"], json!(["core"]));
    assert!(
        body["core_heartbeat_age_s"].as_f64().unwrap() >= 2.0,
        "{body}"
    );
    println!("FIGURE core panic: fatal at once; /healthz 503 after {took:.1?}");
    // What `vigil run` does with it: shuts down and fails, so that its exit status is non-zero.
    let run = room
        .daemon
        .run_until(std::future::pending::<()>())
        .await
        .expect_err("a dead core ends the run with an error");
    assert!(run.to_string().contains("core task panicked"), "{run}");
}

/// A core that stalls (a bug that blocks its thread for 4 s) shows in `/healthz` while it
/// lasts, and the displays' heartbeats resume after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_core_shows_in_healthz_and_recovers() {
    let room = Room::start("", Options::default()).await;
    let (mut viewer, _) = Display::connect(&room, VIEWER).await;
    let mut beats = Beats::default();
    until(&mut viewer, &mut beats, Duration::from_secs(10), heartbeat).await;
    room.daemon
        .core()
        .inject(Fault::StallCore(Duration::from_secs(4)))
        .await;
    let (took, body) = healthz_until(&room, 503, Duration::from_secs(10)).await;
    assert_eq!(body["late"], json!(["core"]));
    healthz_until(&room, 200, Duration::from_secs(15)).await;
    for _ in 0..3 {
        until(&mut viewer, &mut beats, Duration::from_secs(10), heartbeat).await;
    }
    println!(
        "FIGURE core stalled 4 s: /healthz 503 after {took:.1?}; display's worst heartbeat gap {:.1?}",
        beats.worst_arrival
    );
    room.daemon.shutdown().await;
}

/// A panic in the record writer is fatal too: the record must not stop quietly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_panic_is_fatal() {
    let room = Room::start("", Options::default()).await;
    room.daemon.core().inject(Fault::PanicWriter).await;
    let why = tokio::time::timeout(Duration::from_secs(10), room.daemon.failed())
        .await
        .expect("the panic is reported, not left silent");
    assert!(why.contains("session record writer panicked"), "{why}");
    let run = room
        .daemon
        .run_until(std::future::pending::<()>())
        .await
        .expect_err("a dead writer ends the run with an error");
    assert!(run.to_string().contains("writer panicked"), "{run}");
}

/// A driver that panics is restarted: its device shows disconnected meanwhile (with why),
/// the record keeps the loss, and readings flow again from the new driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_panic_shows_the_device_disconnected_and_restarts_it() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let mut beats = Beats::default();
    room.daemon
        .core()
        .inject(Fault::PanicDriver("oximeter-1"))
        .await;
    let lost = until(&mut nurse, &mut beats, Duration::from_secs(10), |m| {
        m["type"] == "device" && m["device"] == "oximeter-1" && m["link"] == "disconnected"
    })
    .await;
    assert!(
        lost["reason"].as_str().unwrap().contains("driver failed"),
        "{lost}"
    );
    let start = Instant::now();
    until(&mut nurse, &mut beats, Duration::from_secs(15), |m| {
        m["type"] == "device" && m["device"] == "oximeter-1" && m["link"] == "connected"
    })
    .await;
    let back = start.elapsed();
    // The new driver subscribes again; its readings reach the display.
    let mut reading = None;
    for _ in 0..50 {
        room.oximeter.notify(
            vigil_protocol::ble::uuid::PLX_CONTINUOUS,
            &[0, 93, 0, 70, 0],
        );
        let got = tokio::time::timeout(Duration::from_millis(200), nurse.next()).await;
        if let Ok(m) = got {
            beats.saw(&m);
            if m["type"] == "reading" && m["value"] == 93.0 {
                reading = Some(m);
                break;
            }
        }
    }
    assert!(reading.is_some(), "no reading from the restarted driver");
    record_holds(
        &room.db,
        "SELECT COUNT(*) FROM links WHERE device = 'oximeter-1' AND state = 'disconnected' AND reason LIKE 'driver failed%'",
        Duration::from_secs(10),
    )
    .await;
    println!(
        "FIGURE driver panic: device back {back:.1?} after the loss; display's worst heartbeat gap {:.1?}",
        beats.worst_arrival
    );
    room.daemon.shutdown().await;
}

/// A record holding 2 h 10 min of 12 series at 1 Hz, left open as by a crash, so that the
/// daemon starts with full trends.
fn full_trends(db: &Path) {
    let conn = vigil_daemon::storage::open(db).unwrap();
    let session = vigil_daemon::storage::resume_or_start(&conn, "Test room", "{}")
        .unwrap()
        .session;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
                 VALUES (?1, ?2, 'spo2', ?3, '%', '[]', ?4)",
            )
            .unwrap();
        for device in 0..12 {
            let name = format!("history-{device}");
            for i in 0..vigil_daemon::trend::TREND_POINTS as i64 {
                let at = now - 5000 - i * 1000;
                insert
                    .execute((session, &name, 90.0 + (i % 9) as f64, at))
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// 200 viewers each keep 4 requests for 8-hour trends waiting (within their own limits):
/// answered off the core, a few at a time daemon-wide, while every display's heartbeat keeps
/// coming. (Answered on the core, this stopped every display's heartbeat for 20 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_asking_for_long_trends_do_not_stop_heartbeats() {
    let room = Room::with_record(full_trends, Options::default()).await;
    let (mut nurse, snapshot) = Display::connect(&room, NURSE).await;
    assert_eq!(
        snapshot["trend"]["series"].as_array().unwrap().len(),
        12,
        "the trends came back from the record"
    );
    let rss_before = rss_mib();
    const VIEWERS: usize = 200;
    const EACH: usize = 4;
    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        viewers.push(Display::connect(&room, VIEWER).await.0);
    }
    let mut beats = Beats::default();
    until(&mut nurse, &mut beats, Duration::from_secs(10), heartbeat).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut viewer in viewers {
        tasks.spawn(async move {
            for i in 0..EACH {
                viewer
                    .send(json!({"type": "trend", "minutes": 480, "request_id": format!("t-{i}")}))
                    .await;
            }
            let mut answers = 0;
            let mut points = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            while answers < EACH {
                let m = tokio::time::timeout_at(deadline, viewer.next())
                    .await
                    .expect("every trend request is answered");
                assert_ne!(m["type"], "error", "{m}");
                if m["type"] == "trend" {
                    answers += 1;
                    points += m["trend"]["series"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["points"].as_array().unwrap().len())
                        .sum::<usize>();
                }
            }
            (answers, points)
        });
    }
    let mut answered = 0;
    let mut points = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => {
                let (a, p) = done.unwrap().unwrap();
                answered += a;
                points += p;
            }
            m = tokio::time::timeout_at(deadline, nurse.next()) => beats.saw(&m.expect("bounded")),
        }
    }
    let took = started.elapsed();
    assert_eq!(answered, VIEWERS * EACH, "every request answered");
    // 12 series of 2 h 10 min at 30 s: 260 or 261 points each.
    assert!(points >= answered * 12 * 260, "{points}");
    assert!(
        beats.count >= 2,
        "the nurse's heartbeats kept coming ({} during {took:?})",
        beats.count
    );
    assert!(
        beats.worst_stamp < Duration::from_millis(1500),
        "the core's heartbeat paused {:?} during the load",
        beats.worst_stamp
    );
    assert!(
        beats.worst_arrival < DISPLAY_LOSS,
        "the nurse's display heard nothing for {:?}",
        beats.worst_arrival
    );
    println!(
        "FIGURE {VIEWERS} viewers x {EACH} 8-h trends: all {answered} answered in {took:.1?}; nurse's worst heartbeat gap {:.2?} (core stamps {:.2?}), {} heartbeats; RSS {rss_before:.0} -> {:.0} MiB",
        beats.worst_arrival,
        beats.worst_stamp,
        beats.count,
        rss_mib()
    );
    room.daemon.shutdown().await;
}

/// A nurse acts while the disk cannot take writes (another process holds the database's
/// write lock): her display keeps getting heartbeats while her action waits for the record,
/// she is told it was done but not recorded, `recording-failed` is raised, and the action is
/// written once the disk works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_acting_while_the_disk_fails_keeps_her_heartbeat() {
    let room = Room::start("", Options::default()).await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let mut beats = Beats::default();
    until(&mut nurse, &mut beats, Duration::from_secs(10), heartbeat).await;
    let lock = vigil_daemon::storage::open(Path::new(&room.db)).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let rss_before = rss_mib();
    // Two actions: while the record cannot take them, each waits for its commit to fail
    // (2 s of SQLite's busy wait, then a retry for the second).
    for id in ["p1", "p2"] {
        nurse
            .send(json!({"type": "pause_audio", "seconds": 60, "request_id": id}))
            .await;
    }
    let sent = Instant::now();
    let mut during = Beats::default();
    let failed = |m: &Value| {
        m["type"] == "alarm" && m["alarm"]["rule"] == "recording-failed" && m["event"] == "raised"
    };
    let mut raised = false;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let answer = until(&mut nurse, &mut during, Duration::from_secs(30), |m| {
            raised |= failed(m);
            m["request_id"] == "p1" || m["request_id"] == "p2"
        })
        .await;
        answers.push(answer);
    }
    let waited = sent.elapsed();
    for answer in &answers {
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["code"], "not_recorded", "{answer}");
    }
    let gap_while_waiting = during.worst_arrival;
    assert!(
        during.count >= 2 && gap_while_waiting < FORWARDING_STOPPED,
        "{} heartbeats, the longest silence {:?}, while her actions waited {waited:?} for the record",
        during.count,
        during.worst_arrival
    );
    if !raised {
        until(&mut nurse, &mut during, Duration::from_secs(15), failed).await;
    }
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let recovered = record_holds(
        &room.db,
        "SELECT COUNT(*) - 1 FROM actions WHERE action = 'pause_audio' AND person = 'Nurse Okafor'",
        Duration::from_secs(20),
    )
    .await;
    until(&mut nurse, &mut during, Duration::from_secs(15), |m| {
        m["type"] == "alarm" && m["alarm"]["rule"] == "recording-failed" && m["event"] == "cleared"
    })
    .await;
    println!(
        "FIGURE disk failing (write lock held): 2 actions answered after {waited:.1?} with {} heartbeats meanwhile; worst heartbeat gap {:.2?}; both recorded {recovered:.1?} after the disk recovered; RSS {rss_before:.0} -> {:.0} MiB",
        during.count,
        gap_while_waiting,
        rss_mib()
    );
    room.daemon.shutdown().await;
}

/// The database file deleted while the daemon runs: noticed within 10 s, `recording-failed`
/// raised, and the session goes on in a new file at the path with the readings that followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_raises_recording_failed_and_a_new_file_takes_the_session() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let mut beats = Beats::default();
    room.spo2(97, 70);
    until(&mut nurse, &mut beats, Duration::from_secs(10), |m| {
        m["type"] == "reading" && m["vital"] == "spo2"
    })
    .await;
    record_holds(
        &room.db,
        "SELECT COUNT(*) FROM readings",
        Duration::from_secs(10),
    )
    .await;
    let rss_before = rss_mib();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", room.db));
    }
    let deleted = Instant::now();
    // Readings go on arriving, once a second.
    let mut raised = None;
    for _ in 0..12 {
        room.spo2(95, 71);
        let got = try_until(&mut nurse, &mut beats, Duration::from_secs(1), |m| {
            m["type"] == "alarm" && m["alarm"]["rule"] == "recording-failed"
        })
        .await;
        if let Some(m) = got {
            raised = Some(m);
            break;
        }
    }
    let detected = deleted.elapsed();
    let raised = raised.expect("recording-failed raised within the bound");
    assert_eq!(raised["event"], "raised");
    assert!(detected < Duration::from_secs(10), "{detected:?}");
    room.spo2(94, 72);
    let rewritten = record_holds(
        &room.db,
        "SELECT COUNT(*) FROM readings WHERE value = 94",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(count(&room.db, "SELECT COUNT(*) FROM sessions"), 1);
    for _ in 0..4 {
        until(&mut nurse, &mut beats, Duration::from_secs(10), heartbeat).await;
    }
    assert!(
        count(
            &room.db,
            "SELECT COUNT(*) FROM alarm_events WHERE alarm_id LIKE 'recording-failed%' AND event = 'raised'"
        ) >= 1,
        "the new file records the alarm"
    );
    assert!(
        count(&room.db, "SELECT COUNT(*) FROM readings WHERE value = 95") >= 1,
        "the readings after the deletion are in the new file"
    );
    println!(
        "FIGURE database deleted: recording-failed after {detected:.1?}; new file holding new readings {rewritten:.1?} later; worst heartbeat gap {:.2?}; RSS {rss_before:.0} -> {:.0} MiB",
        beats.worst_arrival,
        rss_mib()
    );
    room.daemon.shutdown().await;
}

/// `start_nibp` is recorded like every other action, before the display hears it worked
/// (a Suntech cuff, the one kind the daemon can start, from the demo's simulated room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_nibp_is_recorded_before_its_result() {
    let dir = std::env::temp_dir().join(format!("vigil-nibp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let args = vigil_daemon::demo::DemoArgs {
        scenario: "kap-typical".into(),
        speed: 1.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: 1,
        db: Some(db.clone()),
    };
    let demo = vigil_daemon::demo::Demo::start(&args).await.unwrap();
    let url = format!("ws://{}/ws?token={}", demo.daemon.addr, demo.nurse_token);
    let (mut nurse, _) = Display::connect_url(&url).await;
    let mut beats = Beats::default();
    // The simulated cuff's port opens shortly after start: ask until it can start.
    let mut result = None;
    for i in 0..30 {
        let id = format!("n-{i}");
        nurse
            .send(json!({"type": "start_nibp", "device": "cuff-serial", "request_id": id}))
            .await;
        let answer = until(&mut nurse, &mut beats, Duration::from_secs(10), |m| {
            m["request_id"] == id.as_str()
        })
        .await;
        if answer["type"] == "result" {
            result = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let result = result.expect("the simulated cuff started a measurement");
    assert_eq!(result["action"], "start_nibp");
    // Committed before the result was sent: it is in the record now.
    let db = db.display().to_string();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM actions WHERE action = 'start_nibp' AND target = 'cuff-serial'"
        ),
        1
    );
    demo.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
