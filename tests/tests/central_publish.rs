//! A room with `[central]` publishing to a real `nats-server -js` (issue 18, the room side):
//! the contract's subjects, actions from the central answered through the core, and an outage
//! of NATS while alarms rise. Without nats-server these print NOT RUN (they fail with
//! `VIGIL_REQUIRE_NATS=1`).

#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_daemon::daemon::Options;
use vigil_tests::fake_room::{signed_request, ACTION_KEY};
use vigil_tests::nats::{stored_messages, NatsServer};
use vigil_tests::{Display, Room, NURSE};

const STREAM: &str = "VIGIL_CLINIC";
const ALARMS: &str = "vigil.clinic.test-room.alarm";

/// A room publishing to `server`, once connected to it.
async fn room_publishing_to(server: &NatsServer) -> Room {
    let central = format!(
        "[central]\nnats = \"{}\"\naction_key = \"{}\"\n",
        server.url(),
        ACTION_KEY
    );
    let room = Room::start(&central, Options::default()).await;
    room.devices_ready().await;
    for _ in 0..100 {
        if metric(&room, "vigil_central_connected") == 1.0 {
            return room;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the room never connected to NATS");
}

/// Waits for the display's next message that `want` holds, noting every alarm step on the way.
async fn until_noting(
    display: &mut Display,
    seen: &mut Vec<Value>,
    want: impl Fn(&Value) -> bool,
) -> Value {
    display
        .until(|m| {
            if m["type"] == "alarm" {
                seen.push(m.clone());
            }
            want(m)
        })
        .await
}

/// Polls (at most 20 s) until the stream's messages on `subject` satisfy `done`.
async fn stored_until(
    client: &async_nats::Client,
    subject: &str,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let mut last = Vec::new();
    for _ in 0..100 {
        if client.connection_state() == async_nats::connection::State::Connected {
            let js = async_nats::jetstream::new(client.clone());
            if js.get_stream(STREAM).await.is_ok() {
                last = stored_messages(client, STREAM, subject).await;
                if done(&last) {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the stream never held what was expected on {subject}: {last:#?}");
}

/// Waits until the room's display shows the central link as `link`.
async fn central_link(display: &mut Display, link: &str) {
    display
        .until(|m| m["type"] == "central" && m["link"] == link)
        .await;
}

fn metric(room: &Room, name: &str) -> f64 {
    let text = room.daemon.metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"));
    line[name.len() + 1..].parse().unwrap()
}

#[tokio::test]
async fn a_room_publishes_alarms_readings_snapshots_and_heartbeats_on_the_contracts_subjects() {
    let Some(server) = NatsServer::start().await else {
        return;
    };
    let client = server.client().await;
    let mut heartbeats = client
        .subscribe("vigil-live.clinic.test-room.heartbeat")
        .await
        .unwrap();
    let room = room_publishing_to(&server).await;
    let (mut display, snapshot) = Display::connect(&room, NURSE).await;
    // The display shows the central link: in its snapshot, then as it changes.
    assert!(snapshot["central"].is_string(), "{snapshot}");
    if snapshot["central"] != "connected" {
        central_link(&mut display, "connected").await;
    }
    assert_eq!(metric(&room, "vigil_central_connected"), 1.0);

    // The heartbeat, live, each second.
    let beat: Value = tokio::time::timeout(Duration::from_secs(10), heartbeats.next())
        .await
        .unwrap()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .unwrap();
    assert_eq!(beat["v"], 1);
    assert_eq!(beat["type"], "heartbeat");
    assert_eq!(beat["room"], "Test room");
    assert_eq!(beat["room_id"], "test-room");
    assert!(beat["boot"].as_u64().unwrap() > 0);
    assert!(beat["seq"].as_u64().is_some());
    assert!(beat["at"].as_str().unwrap().ends_with('Z'));

    // Twenty SpO2 values at once: the central gets the latest, not twenty.
    for spo2 in 80..100 {
        room.spo2(spo2, 70);
    }
    room.bp(205, 100);
    let raised = display
        .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "bp-crisis")
        .await;
    let alarms = stored_until(&client, ALARMS, |s| s.iter().any(|(_, m)| m == &raised)).await;
    // The payload is exactly the display's message, with the room's seq in its msg-id.
    let seq = raised["seq"].as_u64().unwrap();
    let boot = beat["boot"].as_u64().unwrap();
    let (id, _) = alarms.iter().find(|(_, m)| m == &raised).unwrap();
    assert_eq!(id, &format!("test-room.{boot}.{seq}"));

    let readings = stored_until(&client, "vigil.clinic.test-room.reading", |s| {
        s.iter()
            .any(|(_, r)| r["vital"] == "spo2" && r["value"] == 99.0)
    })
    .await;
    let spo2: Vec<_> = readings
        .iter()
        .filter(|(_, r)| r["vital"] == "spo2")
        .map(|(_, r)| r["value"].clone())
        .collect();
    assert!(spo2.len() <= 2, "readings not throttled: {spo2:?}");
    assert_eq!(spo2.last(), Some(&json!(99.0)));

    let snapshots = stored_until(&client, "vigil.clinic.test-room.snapshot", |s| {
        !s.is_empty()
    })
    .await;
    assert_eq!(snapshots[0].1["type"], "snapshot");
    assert_eq!(snapshots[0].1["room"], "Test room");
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn an_action_over_nats_acks_an_alarm_as_the_central_person_and_refuses_as_a_display_would() {
    let Some(server) = NatsServer::start().await else {
        return;
    };
    let client = server.client().await;
    let room = room_publishing_to(&server).await;
    let (mut display, _) = Display::connect(&room, NURSE).await;
    room.bp(205, 100);
    let raised = display
        .until(|m| m["type"] == "alarm" && m["event"] == "raised")
        .await;
    let id = raised["alarm"]["id"].as_str().unwrap().to_string();
    let request = |body: Value| {
        let client = client.clone();
        async move {
            signed_request(
                &client,
                "vigil-live.clinic.test-room.action",
                &body.to_string(),
                ACTION_KEY,
            )
            .await
        }
    };
    // A viewer at the central may look, not act.
    let forbidden = request(json!({"type": "ack", "alarm_id": id, "request_id": "c-0",
        "user": "Lobby", "role": "viewer"}))
    .await;
    assert_eq!(forbidden["type"], "error");
    assert_eq!(forbidden["code"], "forbidden");
    assert_eq!(forbidden["request_id"], "c-0");
    // A malformed request gets an error, and the room goes on.
    let bad = request(json!({"type": "ack", "request_id": "c-x", "role": "nurse"})).await;
    assert_eq!(bad["code"], "bad_message");
    let bad = signed_request(
        &client,
        "vigil-live.clinic.test-room.action",
        "{not json",
        ACTION_KEY,
    )
    .await;
    assert_eq!(bad["code"], "bad_message");

    let ok = request(json!({"type": "ack", "alarm_id": id, "request_id": "c-1",
        "user": "Dr Ames", "role": "nurse"}))
    .await;
    assert_eq!(
        ok,
        json!({"v": 1, "type": "result", "request_id": "c-1", "action": "ack"})
    );
    let acked = display
        .until(|m| m["type"] == "alarm" && m["event"] == "acknowledged")
        .await;
    assert_eq!(acked["alarm"]["acknowledged_by"], "Dr Ames (central)");
    // The core's own refusal, with the same code a display gets.
    let again = request(json!({"type": "ack", "alarm_id": id, "request_id": "c-2",
        "user": "Dr Ames", "role": "nurse"}))
    .await;
    assert_eq!(again["code"], "refused");
    assert!(again["reason"]
        .as_str()
        .unwrap()
        .contains("Dr Ames (central)"));

    // The snapshot request: the room's current state.
    let snapshot = signed_request(
        &client,
        "vigil-live.clinic.test-room.snapshot",
        "",
        ACTION_KEY,
    )
    .await;
    assert_eq!(snapshot["type"], "snapshot");
    let alarm = snapshot["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap();
    assert_eq!(alarm["acknowledged_by"], "Dr Ames (central)");
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn an_outage_of_nats_while_an_alarm_rises_loses_no_alarm_step_and_duplicates_none() {
    let Some(mut server) = NatsServer::start().await else {
        return;
    };
    let room = room_publishing_to(&server).await;
    let (mut display, snapshot) = Display::connect(&room, NURSE).await;
    let from = snapshot["seq"].as_u64().unwrap();
    let mut seen = Vec::new();
    if snapshot["central"] != "connected" {
        until_noting(&mut display, &mut seen, |m| m["type"] == "central").await;
    }

    server.kill();
    let killed = tokio::time::Instant::now();
    until_noting(&mut display, &mut seen, |m| {
        m["type"] == "central" && m["link"] == "disconnected"
    })
    .await;
    // The room keeps alarming on its own: a crisis is raised, a nurse acknowledges it.
    room.bp(205, 100);
    let raised = until_noting(&mut display, &mut seen, |m| {
        m["type"] == "alarm" && m["alarm"]["rule"] == "bp-crisis"
    })
    .await;
    let id = raised["alarm"]["id"].as_str().unwrap().to_string();
    display
        .send(json!({"type": "ack", "alarm_id": id, "request_id": "r-1"}))
        .await;
    until_noting(&mut display, &mut seen, |m| {
        m["type"] == "alarm" && m["event"] == "acknowledged"
    })
    .await;
    // Any further steps of these, then count what waits. The outage outlasts a publication's
    // timeout (5 s), so the publisher has given up on what it was sending and must keep it.
    let drained = killed + Duration::from_secs(7);
    while tokio::time::Instant::now() < drained {
        let m = display.next().await;
        if m["type"] == "alarm" {
            seen.push(m);
        }
    }
    assert!(seen.len() >= 2, "{seen:#?}");
    assert!(metric(&room, "vigil_central_pending") >= seen.len() as f64);
    assert_eq!(metric(&room, "vigil_central_connected"), 0.0);

    server.restart().await;
    let client = server.client().await;
    let after = |s: &[(String, Value)]| -> Vec<Value> {
        s.iter()
            .map(|(_, m)| m.clone())
            .filter(|m| m["seq"].as_u64().unwrap() > from)
            .collect()
    };
    let stored = stored_until(&client, ALARMS, |s| after(s).len() >= seen.len()).await;
    // Every alarm step the display saw, in order, each once: the same messages.
    let seqs = |v: &[Value]| -> Vec<u64> { v.iter().map(|m| m["seq"].as_u64().unwrap()).collect() };
    assert_eq!(
        seqs(&after(&stored)),
        seqs(&seen),
        "every alarm step, in order, once"
    );
    assert_eq!(after(&stored), seen);
    // The display says the link is back, and nothing waits any more.
    until_noting(&mut display, &mut seen, |m| {
        m["type"] == "central" && m["link"] == "connected"
    })
    .await;
    for _ in 0..50 {
        if metric(&room, "vigil_central_pending") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&room, "vigil_central_pending"), 0.0);
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_room_without_central_runs_alone_and_its_display_shows_no_central_link() {
    let room = Room::start("", Options::default()).await;
    let (_display, snapshot) = Display::connect(&room, NURSE).await;
    assert!(snapshot.get("central").is_none(), "{snapshot}");
    assert_eq!(metric(&room, "vigil_central_connected"), 0.0);
    assert_eq!(metric(&room, "vigil_central_pending"), 0.0);
    room.daemon.shutdown().await;
}
