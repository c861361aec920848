//! The daemon in-process on port 0 with simulated devices, talked to as displays would.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use vigil_daemon::daemon::Options;
use vigil_tests::{Display, Room, NURSE, PROVIDER, VIEWER};

fn is(kind: &'static str) -> impl FnMut(&Value) -> bool {
    move |m| m["type"] == kind
}

#[tokio::test]
async fn snapshot_first_then_the_stream() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut d, snap) = Display::connect(&room, NURSE).await;
    assert_eq!(snap["room"], "Test room");
    assert_eq!(
        snap["user"],
        json!({"name": "Nurse Okafor", "role": "nurse"})
    );
    assert_eq!(snap["session"]["phase"], "pre_dose");
    let devices: Vec<&str> = snap["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["cuff-1", "oximeter-1"]);
    room.spo2(97, 72);
    let r = Display::until(&mut d, |m| m["type"] == "reading" && m["vital"] == "spo2").await;
    assert_eq!(r["device"], "oximeter-1");
    assert_eq!(r["value"], 97.0);
    assert_eq!(r["unit"], "%");
    assert_eq!(r["mdc"], 150456);
    assert!(r["at"].as_str().unwrap().ends_with('Z'));
    assert!(r["seq"].as_u64().unwrap() > snap["seq"].as_u64().unwrap());
    // A display that connects now sees the value in its snapshot, with its age.
    let (_d2, snap2) = Display::connect(&room, VIEWER).await;
    let spo2 = snap2["vitals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vital"] == "spo2")
        .unwrap();
    assert_eq!(spo2["value"], 97.0);
    assert!(spo2["age_s"].as_f64().unwrap() >= 0.0);
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_nurses_acknowledgement_reaches_every_display_with_her_name() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let (mut provider, _) = Display::connect(&room, PROVIDER).await;
    // A crisis BP is High at once.
    room.bp(205, 100);
    let raised = provider
        .until(|m| {
            m["type"] == "alarm" && m["event"] == "raised" && m["alarm"]["rule"] == "bp-crisis"
        })
        .await;
    let id = raised["alarm"]["id"].as_str().unwrap().to_string();
    assert_eq!(raised["alarm"]["priority"], "high");
    assert_eq!(raised["alarm"]["kind"], "physiological");
    assert_eq!(raised["alarm"]["state"], "active");
    nurse
        .send(json!({"type": "ack", "alarm_id": id, "request_id": "r-1"}))
        .await;
    let result = nurse.until(is("result")).await;
    assert_eq!(
        result,
        json!({"v": 1, "type": "result", "request_id": "r-1", "action": "ack"})
    );
    let acked = provider
        .until(|m| m["type"] == "alarm" && m["event"] == "acknowledged")
        .await;
    assert_eq!(acked["alarm"]["id"], id.as_str());
    assert_eq!(acked["alarm"]["state"], "acknowledged");
    assert_eq!(acked["alarm"]["acknowledged_by"], "Nurse Okafor");
    assert!(acked["alarm"]["acknowledged_at"].as_str().is_some());
    // Acknowledging twice is refused with the reason.
    nurse
        .send(json!({"type": "ack", "alarm_id": id, "request_id": "r-2"}))
        .await;
    let again = nurse.until(is("error")).await;
    assert_eq!(again["request_id"], "r-2");
    assert_eq!(again["code"], "refused");
    assert!(again["reason"]
        .as_str()
        .unwrap()
        .contains("already acknowledged by Nurse Okafor"));
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_viewer_cannot_act_and_no_token_gets_401() {
    let room = Room::start("", Options::default()).await;
    let (mut viewer, _) = Display::connect(&room, VIEWER).await;
    viewer
        .send(json!({"type": "ack", "alarm_id": "bp-crisis#1", "request_id": "v1"}))
        .await;
    let e = viewer.until(is("error")).await;
    assert_eq!(
        (e["code"].as_str(), e["request_id"].as_str()),
        (Some("forbidden"), Some("v1"))
    );
    assert!(e["reason"].as_str().unwrap().contains("viewer"));
    viewer.send(json!({"type": "mark_dose"})).await;
    assert_eq!(viewer.until(is("error")).await["code"], "forbidden");

    for url in [
        format!("ws://{}/ws", room.daemon.addr),
        format!("ws://{}/ws?token=not-a-real-token-000", room.daemon.addr),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401)
            }
            other => panic!("expected 401, got {other:?}"),
        }
    }
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn dose_marked_then_a_post_dose_rise_raises_the_alarm() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    room.bp(120, 78);
    nurse
        .until(|m| m["type"] == "reading" && m["vital"] == "nibp_diastolic")
        .await;
    nurse
        .send(json!({"type": "mark_dose", "request_id": "dose"}))
        .await;
    let session = nurse.until(is("session")).await;
    assert_eq!(session["event"], "dose_marked");
    assert_eq!(session["by"], "Nurse Okafor");
    assert_eq!(session["session"]["phase"], "post_dose");
    assert_eq!(
        session["session"]["baseline"],
        json!({"systolic": 120.0, "diastolic": 78.0})
    );
    assert_eq!(nurse.until(is("result")).await["action"], "mark_dose");
    room.bp(165, 105);
    let alarm = nurse
        .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "bp-rise")
        .await;
    assert_eq!(alarm["event"], "raised");
    assert_eq!(alarm["alarm"]["priority"], "medium");
    // The NIBP start request is refused clearly: a BLE cuff cannot be started remotely.
    nurse
        .send(json!({"type": "start_nibp", "device": "cuff-1", "request_id": "n"}))
        .await;
    let e = nurse.until(is("error")).await;
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("start it at the monitor"),
        "{e}"
    );
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn without_a_baseline_a_nurse_sets_one_from_a_later_reading() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let (mut provider, _) = Display::connect(&room, PROVIDER).await;
    nurse
        .send(json!({"type": "mark_dose", "request_id": "dose"}))
        .await;
    let session = nurse.until(is("session")).await;
    assert_eq!(session["session"]["baseline"], Value::Null);
    assert_eq!(
        session["session"]["baseline_missing"],
        "no valid pre-dose BP was taken"
    );
    let notice = nurse
        .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "no-baseline")
        .await;
    assert!(notice["alarm"]["message"]
        .as_str()
        .unwrap()
        .contains("no valid pre-dose BP was taken"));
    room.bp(124, 82);
    let reading = nurse
        .until(|m| m["type"] == "reading" && m["vital"] == "nibp_diastolic")
        .await;
    let taken = reading["at"].as_str().unwrap().to_string();
    // A time with no measurement is refused with the reason; a bad time is a bad message.
    nurse
        .send(json!({"type": "set_baseline", "reading_time": "2020-01-01T00:00:00Z", "request_id": "b0"}))
        .await;
    let e = nurse.until(is("error")).await;
    assert_eq!(
        (e["code"].as_str(), e["request_id"].as_str()),
        (Some("refused"), Some("b0"))
    );
    nurse
        .send(json!({"type": "set_baseline", "reading_time": "yesterday", "request_id": "b1"}))
        .await;
    assert_eq!(nurse.until(is("error")).await["code"], "bad_message");
    nurse
        .send(json!({"type": "set_baseline", "reading_time": taken, "request_id": "b2"}))
        .await;
    let set = provider
        .until(|m| m["type"] == "session" && m["event"] == "baseline_set")
        .await;
    assert_eq!(set["by"], "Nurse Okafor");
    assert_eq!(
        set["session"]["baseline"],
        json!({"systolic": 124.0, "diastolic": 82.0})
    );
    assert_eq!(set["session"]["baseline_taken_at"], taken.as_str());
    assert_eq!(set["session"]["baseline_set_by"], "Nurse Okafor");
    assert_eq!(set["session"]["baseline_missing"], Value::Null);
    // Answers arrive as each action is committed, so the dose's may come first.
    let result = nurse
        .until(|m| m["type"] == "result" && m["request_id"] == "b2")
        .await;
    assert_eq!(result["action"], "set_baseline");
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_stored_alarm_that_cannot_be_read_back_is_announced_after_a_restart() {
    // A session a crash left open, with an alarm row that is not an alarm.
    let db = vigil_tests::temp_db("unreadable");
    {
        let conn = vigil_daemon::storage::open(std::path::Path::new(&db)).unwrap();
        let session = vigil_daemon::storage::resume_or_start(&conn, "Test room", "{}")
            .unwrap()
            .session;
        conn.execute(
            "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at, seq)
             VALUES (?1, 'spo2-critical#3', 'raised', 'active', 'high', '{cut short', 1000, 3)",
            [session],
        )
        .unwrap(); // A readable row whose priority is not one the daemon knows: never lowered to info.
        let odd = json!({"id": "sbp-low#4", "rule": "sbp-low", "kind": "physiological",
            "vital": "nibp_systolic", "device": "cuff-1", "priority": "urgent",
            "message": "Systolic BP below 90", "state": "active",
            "since": "2026-11-29T10:00:00.000Z", "acknowledged_by": null,
            "acknowledged_at": null, "latching": false, "value": 84.0});
        conn.execute(
            "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at,
                 rule, seq, device, vital, since_at)
             VALUES (?1, 'sbp-low#4', 'raised', 'active', 'urgent', ?2, 1000,
                 'sbp-low', 4, 'cuff-1', 'nibp_systolic', 1795946400000)",
            (session, odd.to_string()),
        )
        .unwrap();
    }
    let room = Room::resume(&db).await;
    let (_nurse, snap) = Display::connect(&room, NURSE).await;
    let alarm = snap["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "record-unreadable")
        .unwrap_or_else(|| panic!("no record-unreadable alarm in {snap}"))
        .clone();
    assert_eq!(alarm["kind"], "technical");
    assert_eq!(alarm["priority"], "medium");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("spo2-critical#3"),
        "{alarm}"
    );
    assert!(
        alarm["message"].as_str().unwrap().contains("sbp-low#4"),
        "{alarm}"
    );
    let odd = snap["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "sbp-low#4")
        .unwrap_or_else(|| panic!("sbp-low#4 not restored: {snap}"));
    assert_eq!(odd["priority"], "high");
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn after_a_restart_an_overdue_nibp_is_raised_now_at_its_first_priority() {
    // The dose was marked 50 min before the crash-restart and no BP came since: the 40-min
    // reading is overdue. It is raised now, Low, not raised and escalated to High in one instant.
    let db = vigil_tests::temp_db("overdue");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    {
        let conn = vigil_daemon::storage::open(std::path::Path::new(&db)).unwrap();
        let session = vigil_daemon::storage::resume_or_start(&conn, "Test room", "{}")
            .unwrap()
            .session;
        conn.execute(
            "UPDATE sessions SET dose_at = ?1, dose_by = 'Dr Rivera' WHERE id = ?2",
            [now_ms - 50 * 60_000, session],
        )
        .unwrap();
    }
    let restarted = std::time::SystemTime::now();
    let room = Room::resume(&db).await;
    let (mut nurse, snap) = Display::connect(&room, NURSE).await;
    let overdue = match snap["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "nibp-overdue")
    {
        Some(a) => a.clone(),
        None => nurse
            .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "nibp-overdue")
            .await["alarm"]
            .clone(),
    };
    assert_eq!(overdue["priority"], "low", "{overdue}");
    // Raised at the restart, not at 42 min after the dose (8 min before it). The record keeps
    // milliseconds: allow for that rounding.
    let since = humantime::parse_rfc3339(overdue["since"].as_str().unwrap()).unwrap();
    assert!(
        since + Duration::from_millis(1) >= restarted,
        "raised before the restart: {overdue}"
    );
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn heartbeats_come_at_least_every_second() {
    let room = Room::start("", Options::default()).await;
    let (mut d, _) = Display::connect(&room, VIEWER).await;
    let mut stamps = Vec::new();
    while stamps.len() < 6 {
        let hb = d.until(is("heartbeat")).await;
        stamps.push(hb["at"].as_str().unwrap().to_string());
    }
    // Judge the daemon's own stamps, not the test machine's scheduling.
    let times: Vec<f64> = stamps
        .iter()
        .map(|s| {
            let t = s.trim_end_matches('Z');
            let (_, clock) = t.split_once('T').unwrap();
            let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
            parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
        })
        .collect();
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).rem_euclid(86_400.0);
        assert!(gap <= 1.0, "heartbeat gap {gap}s in {stamps:?}");
    }
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_errors_and_other_sessions_are_unaffected() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut bad, _) = Display::connect(&room, NURSE).await;
    let (mut good, _) = Display::connect(&room, PROVIDER).await;

    bad.send_text("{not json".into()).await;
    let e = bad.until(is("error")).await;
    assert_eq!(e["code"], "bad_message");
    bad.send(json!({"type": "self_destruct", "request_id": "x"}))
        .await;
    let e = bad.until(is("error")).await;
    assert_eq!(
        (e["code"].as_str(), e["request_id"].as_str()),
        (Some("bad_message"), Some("x"))
    );
    assert!(
        e["reason"].as_str().unwrap().contains("unknown variant"),
        "{e}"
    );
    bad.send(json!({"type": "pause_audio", "seconds": -3}))
        .await;
    assert_eq!(bad.until(is("error")).await["code"], "bad_message");
    bad.raw()
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(bad.until(is("error")).await["code"], "bad_message");

    // A flood is rate-limited with an error, not served.
    for _ in 0..40 {
        bad.send(json!({"type": "ack", "alarm_id": "nope#1"})).await;
    }
    bad.until(|m| m["type"] == "error" && m["code"] == "rate_limited")
        .await;

    // A frame over 64 KiB closes that session only.
    let big = format!(r#"{{"type":"ack","alarm_id":"{}"}}"#, "x".repeat(70 * 1024));
    let _ = bad.raw().send(Message::Text(big.into())).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), bad.raw().next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break None,
        }
    };
    if let Some(frame) = closed {
        assert_eq!(frame.code, CloseCode::Size);
    }

    room.spo2(95, 70);
    let r = good
        .until(|m| m["type"] == "reading" && m["vital"] == "spo2")
        .await;
    assert_eq!(r["value"], 95.0);
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_stalled_display_gets_a_fresh_snapshot_and_never_slows_the_others() {
    let room = Room::start(
        "",
        Options {
            broadcast_capacity: 256,
            ..Options::default()
        },
    )
    .await;
    room.devices_ready().await;
    let (mut stalled, snap) = Display::connect_slow(&room, VIEWER).await;
    let (mut live, _) = Display::connect(&room, NURSE).await;
    // The live display receives every reading, one by one, while the stalled one reads nothing:
    // about 2 MB, more than the stalled socket's buffers plus the broadcast queue hold.
    let mut caught_up_at = 0;
    for i in 0..5000u16 {
        room.spo2(90 + i % 10, 70);
        let r = live
            .until(|m| m["type"] == "reading" && m["vital"] == "spo2")
            .await;
        assert_eq!(r["value"], f64::from(90 + i % 10));
        caught_up_at = r["seq"].as_u64().unwrap();
    }
    // The stalled display, reading at last: what it missed is replaced by a snapshot, and the
    // sequence numbers after it continue without a gap.
    let mut last_seq = snap["seq"].as_u64().unwrap();
    let mut snapshots = 0;
    while last_seq < caught_up_at {
        let m = stalled.next().await;
        let seq = m["seq"].as_u64().unwrap();
        if m["type"] == "snapshot" {
            snapshots += 1;
        } else {
            assert_eq!(seq, last_seq + 1, "a silent gap before {m}");
        }
        last_seq = seq;
    }
    assert!(
        snapshots >= 1,
        "the stalled display was never resynchronised"
    );
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_a_close_frame() {
    let room = Room::start("", Options::default()).await;
    let (mut d, _) = Display::connect(&room, NURSE).await;
    let addr = room.daemon.addr;
    let metrics = reqwest_like_get(addr, "/metrics").await;
    assert!(metrics.contains("vigil_display_sessions 1"), "{metrics}");
    assert!(reqwest_like_get(addr, "/healthz")
        .await
        .contains(r#""status":"ok""#));
    let started = std::time::Instant::now();
    room.daemon.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let frame = loop {
        match d.raw().next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(frame.unwrap().code, CloseCode::Away);
}

/// A minimal HTTP GET over a TCP stream (no client library needed for two endpoints).
async fn reqwest_like_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}
