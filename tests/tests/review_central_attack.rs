//! The central station under attack and under faults: findings of the red-team pass over the
//! central (docs/hazards.md, "Found in review: the central under attack"). They need a real
//! `nats-server`; without one they print NOT RUN (and fail with `VIGIL_REQUIRE_NATS=1`).

#![allow(clippy::unwrap_used)]

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::stream::DiscardPolicy;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_daemon::daemon::Options;
use vigil_daemon::nats::signed::ActionKey;
use vigil_tests::fake_room::{central, signed_request, ACTION_KEY, PROVIDER, SITE};
use vigil_tests::nats::NatsServer;
use vigil_tests::{Display, Room, NURSE};

/// The central's display, after its `rooms` message.
async fn display(central: &vigil_daemon::station::Central) -> Display {
    let (d, first) = Display::open(&format!("ws://{}/ws?token={PROVIDER}", central.addr)).await;
    assert_eq!(first["type"], "rooms", "{first}");
    d
}

/// A room publishing to `nats`, with simulated devices (readings every second).
async fn room_publishing_to(nats: &NatsServer) -> Room {
    let room = Room::start(
        &format!(
            "[central]\nnats = \"{}\"\naction_key = \"{ACTION_KEY}\"\n",
            nats.url()
        ),
        Options::default(),
    )
    .await;
    room.devices_ready().await;
    room
}

/// The display's next message for which `want` holds, within `seconds` (the central's own
/// heartbeat arrives every second meanwhile).
async fn within(display: &mut Display, seconds: u64, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        let m = display.next().await;
        if want(&m) {
            return m;
        }
    }
    panic!("no matching message within {seconds} s");
}

fn link_lost(m: &Value, room_id: &str) -> bool {
    m["type"] == "alarm" && m["alarm"]["rule"] == "room-link-lost" && m["room"] == room_id
}

/// X1: the stream stops taking a room's messages (full with `discard: new`, a JetStream
/// cluster without a leader, a full disk, a revoked permission) while the room's connection to
/// NATS stands. The room went on sending heartbeats over that connection: the central showed
/// the room as watched while none of its alarm steps reached it, and the room's display said
/// the central was connected. Now the room sends no heartbeat while the stream refuses, so the
/// central raises `room-link-lost`, and the room's display shows the central disconnected; both
/// come back once the stream takes the room's messages again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_stream_refuses_its_messages_is_lost_at_the_central_and_knows_it() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let mut at_central = display(&central).await;
    let room = room_publishing_to(&nats).await;
    let (mut at_room, _) = Display::connect(&room, NURSE).await;
    let snapshot = at_central.until(|m| m["type"] == "snapshot").await;
    let room_id = snapshot["room"].as_str().unwrap().to_string();

    let js = async_nats::jetstream::new(nats.client().await);
    let mut stream = js.get_stream("VIGIL_CLINIC").await.unwrap();
    let info = stream.info().await.unwrap();
    let mut config = info.config.clone();
    config.discard = DiscardPolicy::New;
    config.max_messages = i64::try_from(info.state.messages).unwrap();
    js.update_stream(&config).await.unwrap();

    // The room's next readings are refused: it knows, and the central sounds.
    within(&mut at_room, 20, |m| {
        m["type"] == "central" && m["link"] == "disconnected"
    })
    .await;
    let lost = within(&mut at_central, 20, |m| link_lost(m, &room_id)).await;
    assert_eq!(lost["alarm"]["state"], "active", "{lost}");
    assert_eq!(lost["alarm"]["priority"], "high", "{lost}");

    // The stream takes messages again: the room is heard again.
    config.max_messages = -1;
    js.update_stream(&config).await.unwrap();
    within(&mut at_room, 20, |m| {
        m["type"] == "central" && m["link"] == "connected"
    })
    .await;
    let back = within(&mut at_central, 20, |m| link_lost(m, &room_id)).await;
    assert_eq!(back["alarm"]["state"], "latched", "{back}");
    central.stop().await;
}

/// X2: the central's reading of the stream stalls (its durable consumer broken: here it
/// delivers nothing, as one whose filter was changed by hand; or far behind a flood from one
/// room) while the rooms' live heartbeats still arrive. The central showed every room as
/// watched, their links up, while no alarm step reached it. Now a heartbeat counts only while
/// the central has read the stream as far as the room's last stored message (`stream_seq`):
/// the room's link is lost, and its alarm sounds at the central.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_that_does_not_read_the_stream_shows_the_room_lost_not_watched() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let js = async_nats::jetstream::new(nats.client().await);
    let stream = vigil_daemon::nats::ensure_stream(&js, SITE).await.unwrap();
    stream
        .create_consumer(pull::Config {
            durable_name: Some("vigil-central-central".into()),
            filter_subject: format!("vigil.{SITE}.nobody.>"),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let central = central(&nats.url()).await;
    let mut at_central = display(&central).await;
    let room = room_publishing_to(&nats).await;
    let room_id = "test-room";
    // The room is heard (the central asks it for its state), then its link is lost: the
    // central does not read what the room stores.
    let lost = within(&mut at_central, 30, |m| link_lost(m, room_id)).await;
    assert_eq!(lost["alarm"]["state"], "active", "{lost}");
    drop(room);
    central.stop().await;
}

/// Publishes `message` (a display message without `v` and `seq`) on `room-1`'s `kind` subject as
/// its run `boot` would, numbered `seq`.
async fn publish(
    js: &async_nats::jetstream::Context,
    (boot, seq): (u64, u64),
    kind: &str,
    mut message: Value,
) {
    message["v"] = json!(1);
    message["seq"] = json!(seq);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("room-1.{boot}.{seq}").as_str());
    js.publish_with_headers(
        format!("vigil.{SITE}.room-1.{kind}"),
        headers,
        message.to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// Publishes a snapshot of `room-1` for its run `boot`, numbered 1, with `alarms`.
async fn publish_snapshot(js: &async_nats::jetstream::Context, boot: u64, alarms: Value) {
    let snapshot = json!({"type":"snapshot","room":"Room 1","user":{"name":"","role":""},
        "server_time":"2026-11-29T10:00:00.000Z",
        "session":{"phase":"post_dose","dose_at":null,"dose_by":null,"minutes_since_dose":null,"baseline":null},
        "devices":[],"vitals":[],"alarms":alarms,"audio_pause_remaining_s":null,
        "trend":{"minutes":0,"resolution_s":0,"series":[]},"limits":[]});
    publish(js, (boot, 1), "snapshot", snapshot).await;
}

/// A high SpO2 alarm `id` in `state` since `since`.
fn spo2_alarm(id: &str, state: &str, since: &str) -> Value {
    json!({"id":id,"rule":"spo2-low","kind":"physiological","vital":"spo2","device":"ox",
        "priority":"high","message":"SpO2 low","state":state,"since":since,"acknowledged_by":null,
        "acknowledged_at":null,"latching":false,"awaiting_confirmation":false,"value":85.0})
}

/// X6: the central never read the `boot` of a stored message (it looked the `Nats-Msg-Id`
/// header up by a name that never matches the header as read from the wire), so it never saw
/// a room restart: the restarted room numbers its messages from 1 again, and the central dropped
/// them all as already applied, its alarms included, until the new numbers passed the old ones
/// (hours, in a long session), while the room's heartbeats kept its link up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_rooms_alarm_reaches_the_central() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let js = async_nats::jetstream::new(nats.client().await);
    vigil_daemon::nats::ensure_stream(&js, SITE).await.unwrap();
    let central = central(&nats.url()).await;
    let mut at_central = display(&central).await;
    // The room's first run: a snapshot, then an alarm raised and cleared (seq 10 and 11).
    publish_snapshot(&js, 1, json!([])).await;
    let since = "2026-11-29T10:00:00.000Z";
    for (seq, event, state) in [(10, "raised", "active"), (11, "cleared", "cleared")] {
        let alarm = spo2_alarm("spo2-low#1", state, since);
        let step = json!({"type":"alarm","event":event,"alarm":alarm});
        publish(&js, (1, seq), "alarm", step).await;
    }
    within(&mut at_central, 20, |m| {
        m["type"] == "alarm" && m["event"] == "cleared"
    })
    .await;
    // It restarts: numbers from 1 again, and raises an alarm at seq 2.
    publish_snapshot(&js, 2, json!([])).await;
    let since = "2026-11-29T11:00:00.000Z";
    let step =
        json!({"type":"alarm","event":"raised","alarm":spo2_alarm("spo2-low#1", "active", since)});
    publish(&js, (2, 2), "alarm", step).await;
    let raised = within(&mut at_central, 20, |m| {
        m["type"] == "alarm" && m["event"] == "raised" && m["alarm"]["since"] == since
    })
    .await;
    assert_eq!(raised["room"], "room-1", "{raised}");
    central.stop().await;
}

/// X7: one room (or its credentials in other hands) floods its reading subject; the central
/// reads the site's one stream in order, so every other room's alarm waited behind the flood.
/// Readings beyond a room's budget for a second of the stream's time are dropped, counted as
/// malformed, before they are parsed; the next room's alarm step is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_reading_flood_is_cut_at_the_central_and_another_rooms_alarm_is_shown() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let js = async_nats::jetstream::new(nats.client().await);
    vigil_daemon::nats::ensure_stream(&js, SITE).await.unwrap();
    let central = central(&nats.url()).await;
    let mut at_central = display(&central).await;
    publish_snapshot(&js, 1, json!([])).await;
    // 5,000 readings as fast as the stream takes them: a few seconds of its time at most.
    let flood = 5_000u64;
    let mut acks = Vec::new();
    for seq in 2..2 + flood {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("room-1.1.{seq}").as_str());
        let reading = json!({"v":1,"type":"reading","seq":seq,"device":"ox","vital":"spo2",
            "value":97.0,"unit":"%","mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]});
        let ack = js
            .publish_with_headers(
                format!("vigil.{SITE}.room-1.reading"),
                headers,
                reading.to_string().into(),
            )
            .await
            .unwrap();
        acks.push(ack);
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let mut two = vigil_tests::fake_room::FakeRoom::start(&nats.url(), "room-2").await;
    two.snapshot().await;
    two.alarm("spo2-low#7", "2026-11-29T10:00:05.000Z").await;
    let raised = within(&mut at_central, 30, |m| {
        m["type"] == "alarm" && m["room"] == "room-2"
    })
    .await;
    assert_eq!(raised["alarm"]["id"], "spo2-low#7", "{raised}");
    let dropped = central.hub.malformed_count();
    assert!(
        dropped >= flood / 2,
        "{dropped} of {flood} flooding readings dropped"
    );
    central.stop().await;
}

/// X5: a message the durable consumer redelivers (its acknowledgement lost with the central's
/// connection, or in flight when an earlier central process was killed) arrives after newer
/// ones. When it came from a room's earlier run (another `boot`), the central took it for a
/// restart and applied it: the room's current state gave way to its earlier one, and an alarm
/// active at the room vanished from the central.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_from_a_rooms_earlier_run_does_not_undo_its_current_state() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let js = async_nats::jetstream::new(nats.client().await);
    let stream = vigil_daemon::nats::ensure_stream(&js, SITE).await.unwrap();
    // The room's first run had no alarm; its second run has a high one.
    publish_snapshot(&js, 1, json!([])).await;
    let alarm = spo2_alarm("spo2-low#5", "active", "2026-11-29T10:00:00.000Z");
    publish_snapshot(&js, 2, json!([alarm])).await;
    // An earlier central process had both delivered and acknowledged only the second.
    let earlier = stream
        .create_consumer(pull::Config {
            durable_name: Some("vigil-central-central".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut delivered = earlier.fetch().max_messages(2).messages().await.unwrap();
    let _first = delivered.next().await.unwrap().unwrap();
    let second = delivered.next().await.unwrap().unwrap();
    second.double_ack().await.unwrap();

    let central = central(&nats.url()).await;
    // The first is redelivered a second after its delivery; give the central time to get it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_d, rooms) = Display::open(&format!("ws://{}/ws?token={PROVIDER}", central.addr)).await;
    let alarms = &rooms["rooms"][0]["state"]["alarms"];
    assert!(
        alarms
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "spo2-low#5"),
        "{rooms}"
    );
    central.stop().await;
}

/// X9: the room answered the central's actions and reads (trends, snapshots) from one budget
/// (4 at once, 10 a second): trend requests, which any role at the central may send (a viewer
/// opening rooms, several displays at once), used it up, and a nurse's `ack` through the central
/// was refused as `rate_limited`. Actions now have their own budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trend_requests_never_use_up_what_an_action_from_the_central_needs() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let room = room_publishing_to(&nats).await;
    let client = nats.client().await;
    // The room answers requests once it has subscribed: its first snapshot is stored by then.
    let js = async_nats::jetstream::new(client.clone());
    for _ in 0..100 {
        if js.get_stream("VIGIL_CLINIC").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Trend requests, on and on, faster than the room's flood limit, until it refuses them.
    let trend = json!({"type":"trend","minutes":480,"request_id":"t"}).to_string();
    let mut answers = client.subscribe("central.inbox").await.unwrap();
    let (asking, stop) = (client.clone(), tokio_util::sync::CancellationToken::new());
    let stopped = stop.clone();
    tokio::spawn(async move {
        while !stopped.is_cancelled() {
            let subject = format!("vigil-live.{SITE}.test-room.trend");
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let headers = ActionKey::new(ACTION_KEY).sign(&subject, trend.as_bytes(), now_ms);
            let _ = asking
                .publish_with_reply_and_headers(
                    subject,
                    "central.inbox",
                    headers,
                    trend.clone().into(),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(m) = answers.next().await {
            let answer: Value = serde_json::from_slice(&m.payload).unwrap();
            if answer["code"] == "rate_limited" {
                return;
            }
        }
    })
    .await
    .expect("the room refuses trend requests beyond its limit");
    let ack = json!({"type":"ack","alarm_id":"spo2-low#99","request_id":"r1","user":"Dr Lee","role":"nurse"});
    let answer = signed_request(
        &client,
        &format!("vigil-live.{SITE}.test-room.action"),
        &ack.to_string(),
        ACTION_KEY,
    )
    .await;
    // The core's own answer (no such alarm), not a refusal for want of room.
    assert_eq!(answer["code"], "refused", "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("spo2-low#99"),
        "{answer}"
    );
    assert_eq!(answer["request_id"], "r1", "{answer}");
    drop(room);
}

fn metric(room: &Room, name: &str) -> f64 {
    let text = room.daemon.metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"));
    line[name.len() + 1..].parse().unwrap()
}

/// X1, the server side: a NATS server that accepts the room's connection and then stalls (here
/// stopped with SIGSTOP: the connection stays open, nothing is read or answered). The room's
/// connection counted as up until the client's pings failed, minutes later, so its display said
/// the central was connected. Now the first publication the stream does not acknowledge within
/// 5 s shows the central disconnected, and the room's own alarms go on regardless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_nats_server_shows_the_central_lost_at_the_room_which_goes_on() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let room = room_publishing_to(&nats).await;
    for _ in 0..100 {
        if metric(&room, "vigil_central_connected") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&room, "vigil_central_connected"), 1.0);
    let (mut at_room, _) = Display::connect(&room, NURSE).await;
    let pid = nats.pid().unwrap().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    within(&mut at_room, 20, |m| {
        m["type"] == "central" && m["link"] == "disconnected"
    })
    .await;
    room.bp(205, 100);
    let raised = at_room
        .until(|m| m["type"] == "alarm" && m["alarm"]["rule"] == "bp-crisis")
        .await;
    assert_eq!(raised["event"], "raised", "{raised}");
    signal("-CONT");
    drop(room);
}

/// X10: a central display's requests waited in one queue of 4: trend requests to rooms that
/// are slow to answer (each waits up to 5 s) made the same display's `ack` of an alarm `busy`,
/// for up to 5 s, while the alarm sounded. Actions and trends now wait apart, and `busy` names
/// the request it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_displays_own_trend_requests_never_make_its_ack_busy() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let mut at_central = display(&central).await;
    let mut room = vigil_tests::fake_room::FakeRoom::start(&nats.url(), "room-1").await;
    room.snapshot().await;
    at_central
        .until(|m| m["type"] == "snapshot" && m["room"] == "room-1")
        .await;
    // The room takes trend requests and is slow to answer them (here: never).
    let _slow = room
        .client
        .subscribe(format!("vigil-live.{SITE}.room-1.trend"))
        .await
        .unwrap();
    room.client.flush().await.unwrap();
    for i in 0..4 {
        at_central
            .send(
                json!({"type":"trend","room":"room-1","minutes":480,"request_id":format!("t{i}")}),
            )
            .await;
    }
    at_central
        .send(json!({"type":"ack","room":"room-1","alarm_id":"spo2-low#1","request_id":"a1"}))
        .await;
    let answer = at_central.until(|m| m["request_id"] == "a1").await;
    assert_eq!(answer["type"], "result", "{answer}");
    // A fifth trend while four wait is `busy`, and says which request it refuses.
    at_central
        .send(json!({"type":"trend","room":"room-1","minutes":480,"request_id":"t4"}))
        .await;
    let busy = at_central.until(|m| m["request_id"] == "t4").await;
    assert_eq!(busy["code"], "busy", "{busy}");
    central.stop().await;
}
