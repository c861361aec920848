//! The session record as a clinic relies on it: a real `vigil run` killed with SIGKILL mid-session
//! and restarted keeps its alarms and acknowledgements; the review commands read it back; a
//! database that cannot be written raises an alarm and monitoring goes on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};
use tokio_tungstenite::tungstenite::Message;

mod common;

const NURSE: &str = "record-nurse-token-0123";

fn config(dir: &Path, port: &str, db: &str) -> PathBuf {
    std::fs::write(
        dir.join("patient.toml"),
        "[rules.spo2-low]\ndelay = \"1s\"\n",
    )
    .unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\nroom = \"Record test\"\npatient_overrides = \"patient.toml\"\n\
         [storage]\npath = \"{db}\"\nretention_days = 30\n\
         [[user]]\nname = \"Nurse Okafor\"\nrole = \"nurse\"\ntoken = \"{NURSE}\"\n\
         [[device]]\nid = \"oximeter-1\"\nformat = \"masimo\"\nport = \"{port}\"\n"
    );
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).unwrap();
    path
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn display(addr: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={NURSE}"))
        .await
        .unwrap();
    let snapshot = next(&mut ws, |m| m["type"] == "snapshot").await;
    (ws, snapshot)
}

async fn next(ws: &mut Ws, mut want: impl FnMut(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if want(&v) {
            return v;
        }
    }
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

fn masimo(spo2: u32) -> Vec<u8> {
    format!("11/23/26 10:00:00 SPO2={spo2:03}% BPM=072 PI=02.10% ALARM=0000 EXC=000800\r\n")
        .into_bytes()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn vigil(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_resumes_its_session_alarms_and_acknowledgements() {
    let dir = std::env::temp_dir().join(format!("vigil-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut master, slave) = SerialStream::pair().unwrap();
    let port = slave.name().unwrap();
    drop(slave);
    let db = dir.join("record.db");
    let cfg = config(&dir, &port, &db.display().to_string());

    let common::Running {
        child: mut first,
        addr,
        ..
    } = common::start_run(&cfg).await;
    let (mut ws, _) = display(&addr).await;
    // The oximeter streams; SpO2 falls; the nurse acknowledges; the dose is marked.
    let feeder = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let spo2 = if n < 5 { 97 } else { 86 };
            if master.write_all(&masimo(spo2)).await.is_err() {
                return master;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if n > 400 {
                return master;
            }
        }
    });
    let raised = next(&mut ws, |m| {
        m["type"] == "alarm" && m["event"] == "raised" && m["alarm"]["rule"] == "spo2-low"
    })
    .await;
    let raised_at_ms = unix_ms();
    let id = raised["alarm"]["id"].as_str().unwrap().to_string();
    send(
        &mut ws,
        json!({"type": "ack", "alarm_id": id, "request_id": "a"}),
    )
    .await;
    let result = next(&mut ws, |m| m["type"] == "result" || m["type"] == "error").await;
    assert_eq!(result["type"], "result", "{result}");
    send(&mut ws, json!({"type": "mark_dose", "request_id": "d"})).await;
    next(&mut ws, |m| m["type"] == "result" && m["request_id"] == "d").await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Power cut: no shutdown, no final write. The snapshot's trend has one point per 10 s, so
    // the crash waits for the next 10-s bucket: readings of the alarm's bucket are then
    // only in the trend if the restart brought them back.
    while unix_ms() / 10_000 == raised_at_ms / 10_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed_at_ms = unix_ms();
    first.kill().await.unwrap();
    first.wait().await.unwrap();

    let common::Running {
        child: mut second,
        addr,
        log,
    } = common::start_run(&cfg).await;
    let (mut ws, snapshot) = display(&addr).await;
    let alarm = snapshot["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned();
    let alarm = alarm.unwrap_or_else(|| panic!("{id} not restored: {}", snapshot["alarms"]));
    assert_eq!(alarm["state"], "acknowledged");
    assert_eq!(alarm["acknowledged_by"], "Nurse Okafor");
    assert_eq!(snapshot["session"]["phase"], "post_dose");
    assert_eq!(snapshot["session"]["dose_by"], "Nurse Okafor");
    // The trend chart keeps the readings from before the crash.
    let spo2_trend = snapshot["trend"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["device"] == "oximeter-1" && s["vital"] == "spo2")
        .unwrap_or_else(|| panic!("no SpO2 trend after the restart: {}", snapshot["trend"]));
    let before_crash: Vec<f64> = spo2_trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0].as_u64().unwrap() / 10_000 < killed_at_ms / 10_000)
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert!(
        before_crash.contains(&86.0),
        "the trend lost the readings before the crash: {spo2_trend}"
    );
    // The stream goes on in the same session.
    next(&mut ws, |m| m["type"] == "reading" && m["vital"] == "spo2").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let pid = second.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(second.wait().await.unwrap().success());
    let log = log.await.unwrap();
    assert!(
        log.contains("resuming a session left open by a crash"),
        "{log}"
    );
    feeder.abort();

    // The record, read back: one session, readings on both sides of the crash, the nurse's
    // acknowledgement in every export.
    let db = db.display().to_string();
    let sessions = vigil(&["sessions", "--db", &db]);
    assert_eq!(sessions.lines().count(), 2, "one session:\n{sessions}");
    assert!(sessions.contains("Record test"), "{sessions}");
    let jsonl = vigil(&["export", "--db", &db, "--session", "1", "--format", "json"]);
    let times: Vec<f64> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "reading" && v["vital"] == "spo2")
        .map(|v| {
            let t = humantime::parse_rfc3339(v["received_at"].as_str().unwrap()).unwrap();
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        })
        .collect();
    assert!(times.len() > 10, "{} readings", times.len());
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        gap < 10.0,
        "readings continuous apart from the restart: largest gap {gap:.1} s"
    );
    assert!(jsonl.contains(r#""action":"ack""#) && jsonl.contains(r#""person":"Nurse Okafor""#));
    let hl7 = vigil(&["export", "--db", &db, "--session", "1", "--format", "hl7"]);
    assert!(hl7.contains("ORU^R01^ORU_R01") && hl7.contains("ORU^R40^ORU_R40"));
    // Each reading keeps the device's own clock beside the receive time; the session keeps the
    // profile in force with where each setting came from.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let device_time: String = conn
        .query_row(
            "SELECT device_time FROM readings WHERE device_time IS NOT NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(device_time.contains(r#""year":2026"#), "{device_time}");
    let profile: String = conn
        .query_row("SELECT profile FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!(
        profile.contains(r#""name":"kap-default""#) && profile.contains("patient.toml"),
        "{profile}"
    );
    let csv = vigil(&["export", "--db", &db, "--session", "1", "--format", "csv"]);
    assert!(csv.starts_with("session,received_at,device,vital"));
    let report = vigil(&["report", "--db", &db, "--session", "1"]);
    assert!(report.contains("acknowledged by Nurse Okafor"), "{report}");
    let pruned = vigil(&["prune", "--config", &cfg.display().to_string()]);
    assert!(
        pruned.contains("pruned 0 session(s)"),
        "a session from today is kept: {pruned}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_raises_recording_failed_and_monitoring_goes_on() {
    let dir = std::env::temp_dir().join(format!("vigil-record-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("corrupt.db");
    std::fs::write(
        &db,
        b"this is not an SQLite database, whatever its name says",
    )
    .unwrap();
    let (mut master, slave) = SerialStream::pair().unwrap();
    let port = slave.name().unwrap();
    drop(slave);
    let cfg = config(&dir, &port, &db.display().to_string());
    let common::Running {
        child: mut daemon,
        addr,
        ..
    } = common::start_run(&cfg).await;
    let (mut ws, snapshot) = display(&addr).await;
    let failing = snapshot["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["rule"] == "recording-failed");
    if !failing {
        next(&mut ws, |m| {
            m["type"] == "alarm" && m["alarm"]["rule"] == "recording-failed"
        })
        .await;
    }
    // Alarms still reach the display.
    for _ in 0..15 {
        master.write_all(&masimo(84)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spo2 = next(&mut ws, |m| {
        m["type"] == "alarm" && m["event"] == "raised" && m["alarm"]["rule"] == "spo2-low"
    })
    .await;
    // An acknowledgement still takes effect, and the display is told it was not recorded.
    let id = spo2["alarm"]["id"].as_str().unwrap();
    send(
        &mut ws,
        json!({"type": "ack", "alarm_id": id, "request_id": "a"}),
    )
    .await;
    let answer = next(&mut ws, |m| m["request_id"] == "a").await;
    assert_eq!(answer["code"], "not_recorded", "{answer}");
    daemon.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn review_commands_name_a_missing_or_foreign_file() {
    let dir = std::env::temp_dir().join(format!("vigil-record-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let foreign = dir.join("notes.db");
    std::fs::write(&foreign, "not a database").unwrap();
    let missing = dir.join("missing.db");
    for (db, says) in [
        (&foreign, "is not a Vigil session record"),
        (&missing, "no session record at"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["sessions", "--db"])
            .arg(db)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.contains(&*db.to_string_lossy()),
            "{err}"
        );
    }
    assert!(
        !missing.exists(),
        "a review command never creates a database"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
