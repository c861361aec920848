//! The central station with a real `nats-server`: fake rooms publish what the NATS contract
//! says (stored messages with their `Nats-Msg-Id`, live heartbeats, answers to actions), and a
//! display at the central's `/ws` sees them.
//!
//! Needs `nats-server` (Debian's package): without it these print NOT RUN and pass, unless
//! `VIGIL_REQUIRE_NATS=1` (CI), which makes them fail.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_daemon::station::Central;
use vigil_tests::fake_room::{central, FakeRoom, ACTION_KEY, PROVIDER, VIEWER};
use vigil_tests::nats::NatsServer;
use vigil_tests::Display;

async fn display(central: &Central, token: &str) -> (Display, Value) {
    let (d, first) = Display::open(&format!("ws://{}/ws?token={token}", central.addr)).await;
    assert_eq!(first["type"], "rooms", "{first}");
    (d, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_and_alarms_of_two_rooms_reach_the_central_display() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut d, _) = display(&central, PROVIDER).await;
    let mut one = FakeRoom::start(&nats.url(), "room-1").await;
    let mut two = FakeRoom::start(&nats.url(), "room-2").await;
    one.snapshot().await;
    one.reading("spo2", 97.0).await;
    two.snapshot().await;
    two.alarm("spo2-low#1", "2026-11-29T09:59:30.000Z").await;
    let reading = d
        .until(|m| m["type"] == "reading" && m["room"] == "room-1")
        .await;
    assert_eq!(reading["value"], 97.0);
    let alarm = d
        .until(|m| m["type"] == "alarm" && m["room"] == "room-2")
        .await;
    assert_eq!(alarm["alarm"]["id"], "spo2-low#1");
    assert_eq!(alarm["alarm"]["since"], "2026-11-29T09:59:30.000Z");
    // The central's own heartbeat, for the page's CONNECTION LOST watch.
    let beat = d.until(|m| m["type"] == "heartbeat").await;
    assert!(
        beat["at"].is_string() && beat.get("room").is_none(),
        "{beat}"
    );
    // A display connecting now gets both rooms' state in its `rooms` message.
    let (_late, rooms) = display(&central, VIEWER).await;
    let rooms = rooms["rooms"].as_array().unwrap();
    let of = |id: &str| rooms.iter().find(|r| r["room"] == id).unwrap().clone();
    assert_eq!(of("room-1")["name"], "Room room-1");
    assert_eq!(of("room-1")["state"]["vitals"][0]["value"], 97.0);
    assert_eq!(of("room-2")["state"]["alarms"][0]["id"], "spo2-low#1");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_at_the_central_reaches_the_room_with_the_person_and_a_viewer_is_refused() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let room = FakeRoom::start(&nats.url(), "room-1").await;
    let (mut viewer, _) = display(&central, VIEWER).await;
    viewer
        .send(json!({"type":"ack","room":"room-1","alarm_id":"spo2-low#1","request_id":"v1"}))
        .await;
    let refused = viewer.until(|m| m["request_id"] == "v1").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(refused["room"], "room-1");

    let (mut d, _) = display(&central, PROVIDER).await;
    d.send(json!({"type":"ack","room":"room-1","alarm_id":"spo2-low#1","request_id":"r1"}))
        .await;
    let answer = d.until(|m| m["request_id"] == "r1").await;
    assert_eq!(answer["type"], "result", "{answer}");
    assert_eq!(answer["room"], "room-1");
    let requests = room.requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        1,
        "only the provider's ack reached the room: {requests:?}"
    );
    assert_eq!(requests[0]["type"], "ack");
    assert_eq!(requests[0]["alarm_id"], "spo2-low#1");
    assert_eq!(requests[0]["user"], "Dr Lee");
    assert_eq!(requests[0]["role"], "provider");
    assert!(requests[0].get("room").is_none(), "{}", requests[0]);
    // A room nobody answers for: the display is told to act at the room.
    d.send(json!({"type":"ack","room":"room-9","alarm_id":"x#1","request_id":"r2"}))
        .await;
    let unanswered = d.until(|m| m["request_id"] == "r2").await;
    assert_eq!(unanswered["code"], "unavailable", "{unanswered}");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_room_raises_room_link_lost_latched_until_a_nurse_resets_it() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut d, _) = display(&central, PROVIDER).await;
    let mut room = FakeRoom::start(&nats.url(), "room-1").await;
    room.snapshot().await;
    d.until(|m| m["type"] == "snapshot" && m["room"] == "room-1")
        .await;
    room.silence();
    // Raised 5 s after the last heartbeat (the display's `until` waits up to 15 s).
    let lost = d
        .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "room-link-lost")
        .await;
    assert_eq!(lost["room"], "room-1");
    assert_eq!(lost["alarm"]["state"], "active");
    assert_eq!(lost["alarm"]["priority"], "high");
    let id = lost["alarm"]["id"].as_str().unwrap().to_string();
    // Not resettable while the room is silent; acknowledged at the central, not sent to the room.
    d.send(json!({"type":"reset","room":"room-1","alarm_id":id,"request_id":"r1"}))
        .await;
    assert_eq!(
        d.until(|m| m["request_id"] == "r1").await["code"],
        "refused"
    );
    room.beat();
    let back = d
        .until(|m| m["type"] == "alarm" && m["alarm"]["id"] == id.as_str())
        .await;
    assert_eq!(back["alarm"]["state"], "latched", "{back}");
    d.send(json!({"type":"reset","room":"room-1","alarm_id":id,"request_id":"r2"}))
        .await;
    let reset = d
        .until(|m| m["type"] == "alarm" && m["event"] == "reset")
        .await;
    assert_eq!(reset["alarm"]["id"], id.as_str());
    assert_eq!(d.until(|m| m["request_id"] == "r2").await["type"], "result");
    assert!(room.requests.lock().unwrap().is_empty());
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_central_catches_up_from_its_durable_consumer_in_order() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let first = central(&nats.url()).await;
    let (mut d, _) = display(&first, PROVIDER).await;
    let mut room = FakeRoom::start(&nats.url(), "room-1").await;
    room.snapshot().await;
    room.alarm("spo2-low#1", "2026-11-29T10:00:01.000Z").await;
    d.until(|m| m["type"] == "alarm").await;
    first.stop().await;
    // While the central is down the room raises two more.
    room.alarm("spo2-low#2", "2026-11-29T10:00:02.000Z").await;
    room.alarm("spo2-low#3", "2026-11-29T10:00:03.000Z").await;
    let second = central(&nats.url()).await;
    let (_d, _) = display(&second, PROVIDER).await;
    // Everything missed is in the new central's state, in the order raised, with its time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let ids = loop {
        let (_, rooms) = display(&second, PROVIDER).await;
        let alarms = rooms["rooms"][0]["state"]["alarms"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ids: Vec<(String, String)> = alarms
            .iter()
            .map(|a| {
                (
                    a["id"].as_str().unwrap().to_string(),
                    a["since"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if ids.len() == 3 || tokio::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        ids,
        vec![
            (
                "spo2-low#1".to_string(),
                "2026-11-29T10:00:01.000Z".to_string()
            ),
            (
                "spo2-low#2".to_string(),
                "2026-11-29T10:00:02.000Z".to_string()
            ),
            (
                "spo2-low#3".to_string(),
                "2026-11-29T10:00:03.000Z".to_string()
            ),
        ]
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_from_a_room_are_counted_and_the_central_goes_on() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut d, _) = display(&central, PROVIDER).await;
    let mut room = FakeRoom::start(&nats.url(), "room-1").await;
    let js = room.js.clone();
    for (subject, payload) in [
        ("vigil.clinic.room-1.alarm", &b"not json"[..]),
        (
            "vigil.clinic.room-1.reading",
            br#"{"v":1,"type":"result","request_id":null,"action":"ack"}"#,
        ),
        ("vigil.clinic.room-1.device", b"\xff\xfe{"),
    ] {
        js.publish(subject, payload.to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    room.client
        .publish("vigil-live.clinic.room-1.heartbeat", "{".into())
        .await
        .unwrap();
    room.client
        .publish(
            "vigil-live.clinic.room-1.heartbeat",
            json!({"room_id":"room-2","room":"Other"})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    room.reading("spo2", 93.0).await;
    let reading = d.until(|m| m["type"] == "reading").await;
    assert_eq!(reading["value"], 93.0);
    // The heartbeats come by another path than the stream: wait for their count too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let health = loop {
        let (status, health) = vigil_tests::http_get(central.addr, "/healthz").await;
        assert_eq!(status, 200);
        if health["malformed_from_rooms"] == 5 || tokio::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["malformed_from_rooms"], 5, "{health}");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_raises_room_link_lost_and_what_rooms_publish_after_reaches_the_central_in_order()
{
    let Some(mut nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut d, _) = display(&central, PROVIDER).await;
    let mut one = FakeRoom::start(&nats.url(), "room-1").await;
    let mut two = FakeRoom::start(&nats.url(), "room-2").await;
    one.snapshot().await;
    two.snapshot().await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let m = d.until(|m| m["type"] == "snapshot").await;
        seen.insert(m["room"].as_str().unwrap().to_string());
    }
    nats.kill();
    // Both rooms are lost to the central (5 s without a heartbeat; `until` waits up to 15 s).
    let mut lost = std::collections::BTreeSet::new();
    while lost.len() < 2 {
        let m = d
            .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "room-link-lost")
            .await;
        assert_eq!(m["alarm"]["state"], "active");
        lost.insert(m["room"].as_str().unwrap().to_string());
    }
    nats.restart().await;
    for room in [&one, &two] {
        while room.client.connection_state() != async_nats::connection::State::Connected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // What room 2 raised meanwhile, published on reconnect as a room does, arrives in order with
    // its original times.
    two.alarm("spo2-low#1", "2026-11-29T10:00:05.000Z").await;
    two.alarm("spo2-low#2", "2026-11-29T10:00:06.000Z").await;
    // The heartbeats are back too: the link alarms hold, latched, until someone resets them.
    // (Which of the two reaches the display first is a race; each in its own order.)
    let (mut raised, mut latched) = (Vec::new(), 0);
    while raised.len() < 2 || latched < 2 {
        let m = d
            .until(|m| {
                m["type"] == "alarm"
                    && (m["alarm"]["rule"] == "spo2-low" || m["alarm"]["state"] == "latched")
            })
            .await;
        if m["alarm"]["rule"] == "spo2-low" {
            raised.push((m["alarm"]["id"].clone(), m["alarm"]["since"].clone()));
        } else {
            latched += 1;
        }
    }
    assert_eq!(
        raised,
        vec![
            (json!("spo2-low#1"), json!("2026-11-29T10:00:05.000Z")),
            (json!("spo2-low#2"), json!("2026-11-29T10:00:06.000Z")),
        ]
    );
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_rooms_alarm_acknowledged_at_the_central_shows_on_the_rooms_display_with_the_person()
{
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut at_central, _) = display(&central, PROVIDER).await;
    let room = vigil_tests::Room::start(
        &format!(
            "[central]\nnats = \"{}\"\naction_key = \"{ACTION_KEY}\"\n",
            nats.url()
        ),
        vigil_daemon::daemon::Options::default(),
    )
    .await;
    room.devices_ready().await;
    let (mut at_room, _) = Display::connect(&room, vigil_tests::NURSE).await;
    // The room's own snapshot reaches the central once the room is connected to NATS.
    let snapshot = at_central.until(|m| m["type"] == "snapshot").await;
    let room_id = snapshot["room"].as_str().unwrap().to_string();
    room.bp(205, 100);
    // The crisis reaches the central as its raised step: never only inside a snapshot (the
    // room queues a snapshot behind the steps it includes, and the central's live snapshot
    // never makes it skip a stored step).
    let raised = at_central
        .until(|m| {
            m["type"] == "alarm"
                && m["event"] == "raised"
                && m["room"] == room_id.as_str()
                && m["alarm"]["rule"] == "bp-crisis"
        })
        .await;
    let alarm = raised["alarm"].clone();
    let id = alarm["id"].as_str().unwrap().to_string();
    at_central
        .send(json!({"type":"ack","room":room_id,"alarm_id":id,"request_id":"r1"}))
        .await;
    // At the central: the room's answer, and the acknowledged step the room publishes (in
    // either order: the room publishes the step as it happens).
    let (mut answer, mut acked_at_central) = (None, None);
    while answer.is_none() || acked_at_central.is_none() {
        let m = at_central
            .until(|m| {
                m["request_id"] == "r1" || (m["type"] == "alarm" && m["event"] == "acknowledged")
            })
            .await;
        if m["request_id"] == "r1" {
            answer = Some(m);
        } else {
            acked_at_central = Some(m);
        }
    }
    let answer = answer.unwrap();
    assert_eq!(answer["type"], "result", "{answer}");
    assert_eq!(
        acked_at_central.unwrap()["alarm"]["acknowledged_by"],
        "Dr Lee (central)"
    );
    // At the room's own display, with the person.
    let acked = at_room
        .until(|m| m["type"] == "alarm" && m["event"] == "acknowledged")
        .await;
    assert_eq!(acked["alarm"]["id"], id.as_str());
    assert_eq!(acked["alarm"]["acknowledged_by"], "Dr Lee (central)");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_live_snapshot_never_makes_the_central_skip_a_stored_alarm_step() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut d, _) = display(&central, PROVIDER).await;
    // The room answers the central's snapshot request with its current state (seq 10), which
    // already holds the alarm it raised at seq 2 and the stream has not delivered yet.
    let answering = nats.client().await;
    let mut requests = answering
        .subscribe("vigil-live.clinic.room-1.snapshot")
        .await
        .unwrap();
    answering.flush().await.unwrap();
    let replier = answering.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let snapshot = json!({"v":1,"type":"snapshot","room":"Room room-1","user":{"name":"","role":""},
                "server_time":"2026-11-29T10:00:10.000Z","seq":10,
                "session":{"phase":"pre_dose","dose_at":null,"dose_by":null,"minutes_since_dose":null,"baseline":null},
                "devices":[],"vitals":[],"alarms":[{"id":"spo2-low#1","rule":"spo2-low","kind":"physiological",
                    "vital":"spo2","device":"oximeter-1","priority":"high","message":"SpO2 low","state":"active",
                    "since":"2026-11-29T10:00:02.000Z","acknowledged_by":null,"acknowledged_at":null,
                    "latching":false,"awaiting_confirmation":false,"value":85.0}],
                "audio_pause_remaining_s":null,"trend":{"minutes":0,"resolution_s":0,"series":[]},"limits":[]});
            if let Some(to) = request.reply {
                replier
                    .publish(to, snapshot.to_string().into())
                    .await
                    .unwrap();
            }
        }
    });
    let mut room = FakeRoom::start(&nats.url(), "room-1").await;
    // Its heartbeat makes the central ask; the answer is the room's state at the central.
    let live = d
        .until(|m| m["type"] == "snapshot" && m["room"] == "room-1")
        .await;
    assert_eq!(live["seq"], 10, "{live}");
    // Then the stream delivers what the room published before (seq 1 and 2): the raised step
    // still reaches the display, with its time.
    room.snapshot().await;
    room.alarm("spo2-low#1", "2026-11-29T10:00:02.000Z").await;
    let raised = d
        .until(|m| m["type"] == "alarm" && m["room"] == "room-1")
        .await;
    assert_eq!(raised["event"], "raised");
    assert_eq!(raised["seq"], 2);
    assert_eq!(raised["alarm"]["since"], "2026-11-29T10:00:02.000Z");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_asks_a_real_room_for_its_trend_from_the_sessions_start() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let (mut at_central, _) = display(&central, PROVIDER).await;
    let room = vigil_tests::Room::start(
        &format!(
            "[central]\nnats = \"{}\"\naction_key = \"{ACTION_KEY}\"\n",
            nats.url()
        ),
        vigil_daemon::daemon::Options::default(),
    )
    .await;
    room.devices_ready().await;
    let snapshot = at_central.until(|m| m["type"] == "snapshot").await;
    let room_id = snapshot["room"].as_str().unwrap().to_string();
    // Readings the room had before any central display asked.
    room.spo2(93, 71);
    at_central
        .until(|m| m["type"] == "reading" && m["vital"] == "spo2" && m["value"] == 93.0)
        .await;
    // A viewer opening the room's detail view asks for its trend: the room's own, from the
    // session's start, through the central.
    let (mut viewer, _) = display(&central, VIEWER).await;
    viewer
        .send(json!({"type":"trend","room":room_id,"minutes":480,"request_id":"t1"}))
        .await;
    let trend = viewer.until(|m| m["request_id"] == "t1").await;
    assert_eq!(trend["type"], "trend", "{trend}");
    assert_eq!(trend["room"], room_id.as_str());
    assert_eq!(trend["trend"]["minutes"], 480);
    let series = trend["trend"]["series"].as_array().unwrap();
    let spo2 = series
        .iter()
        .find(|s| s["device"] == "oximeter-1" && s["vital"] == "spo2")
        .unwrap_or_else(|| panic!("no SpO2 series: {trend}"));
    assert!(
        spo2["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[1] == 93.0),
        "{spo2}"
    );
    // Out of range: refused at the central as at the room, naming the room.
    viewer
        .send(json!({"type":"trend","room":room_id,"minutes":481,"request_id":"t2"}))
        .await;
    let refused = viewer.until(|m| m["request_id"] == "t2").await;
    assert_eq!(refused["code"], "bad_message", "{refused}");
    assert_eq!(refused["room"], room_id.as_str());
    // A room nobody answers for.
    viewer
        .send(json!({"type":"trend","room":"room-9","minutes":60,"request_id":"t3"}))
        .await;
    assert_eq!(
        viewer.until(|m| m["request_id"] == "t3").await["code"],
        "unavailable"
    );
    central.stop().await;
}
