//! Central-station findings of the review after the monitors, HL7 and central issues
//! (docs/hazards.md, "Found in review after the monitors, HL7 and central issues"). They need a
//! real `nats-server`; without one they print NOT RUN (and fail with `VIGIL_REQUIRE_NATS=1`).

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use std::time::Duration;
use vigil_daemon::daemon::Options;
use vigil_daemon::nats::signed::ActionKey;
use vigil_tests::browser::Browser;
use vigil_tests::fake_room::{central, signed_request, FakeRoom, ACTION_KEY, PROVIDER};
use vigil_tests::nats::NatsServer;
use vigil_tests::{Display, Room, NURSE};

fn metric(room: &Room, name: &str) -> f64 {
    let text = room.daemon.metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"));
    line[name.len() + 1..].parse().unwrap()
}

/// The `authorization` block of docs/nats/single.conf, the configuration the README tells a
/// clinic to use, with its example room `room-2` as two rooms: `test-room` (the room under test)
/// and `room-3` (another room's credentials).
fn documented_authorization() -> String {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/nats/single.conf"
    ))
    .unwrap();
    let block = &conf[conf
        .rfind("\nauthorization {")
        .expect("an authorization block")..];
    let start = block.find("users: [\n").unwrap() + "users: [\n".len();
    let end = block
        .find("    { user: central")
        .expect("the central's user");
    let room = &block[start..end];
    assert!(room.contains("room-2"), "{room}");
    block.replace(
        room,
        &format!(
            "{}{}",
            room.replace("room-2", "test-room"),
            room.replace("room-2", "room-3")
        ),
    )
}

/// V6: the room takes an action request from anything that can publish on its action subject,
/// and believes the person and role the request names. With the NATS users and permissions the
/// README gives (docs/nats/single.conf: one user per room, allowed only its own subjects; one
/// for the central), nobody but the central can: a client without credentials is not let in,
/// and another room's credentials cannot publish on this room's action subject. The same
/// configuration lets the room publish, answer the central, and the central act.
#[tokio::test]
async fn only_the_central_can_act_on_a_room_under_the_documented_nats_permissions() {
    let Some(server) =
        NatsServer::start_with_config(&documented_authorization(), "central", "change-me-central")
            .await
    else {
        return;
    };
    let central = format!(
        "[central]\nnats = \"{}\"\nuser = \"test-room\"\npassword = \"change-me-test-room\"\n\
         action_key = \"{ACTION_KEY}\"\n",
        server.url()
    );
    let room = Room::start(&central, Options::default()).await;
    room.devices_ready().await;
    for _ in 0..100 {
        if metric(&room, "vigil_central_connected") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&room, "vigil_central_connected"), 1.0);
    let (mut display, _) = Display::connect(&room, NURSE).await;
    room.bp(205, 100);
    display
        .until(|m| m["type"] == "alarm" && m["event"] == "raised")
        .await;
    let pause = |user: &str| {
        json!({"type": "pause_audio", "request_id": "x-1", "user": user, "role": "provider"})
            .to_string()
    };
    // No credentials: not let in.
    assert!(async_nats::connect(server.url()).await.is_err());
    // Another room's credentials: the server refuses the publish, nothing reaches the room.
    let intruder = server
        .client_as("room-3", "change-me-room-3")
        .await
        .unwrap();
    let forged = tokio::time::timeout(
        Duration::from_secs(3),
        intruder.request(
            "vigil-live.clinic.test-room.action",
            pause("Dr Nobody").into(),
        ),
    )
    .await;
    assert!(
        !matches!(forged, Ok(Ok(_))),
        "another room's credentials acted on this room"
    );
    // The central: the room answers, and the pause is the central's person's.
    let the_central = server.client().await;
    let reply = signed_request(&the_central, ACTION, &pause("Dr Lee"), ACTION_KEY).await;
    assert_eq!(reply["type"], "result", "{reply}");
    let paused = display
        .until(|m| m["type"] == "audio_pause" && m["paused"] == true)
        .await;
    assert_eq!(paused["by"], "Dr Lee (central)", "{paused}");
    room.daemon.shutdown().await;
}

const ACTION: &str = "vigil-live.clinic.test-room.action";

/// V6 without the permissions: a NATS server configured with none (anyone may publish on a
/// room's action subject). The room answers only what the central signed with the site's
/// `action_key`: an unsigned request, one signed with another key, and a replay of one it
/// answered are refused, `unauthenticated`, and change nothing; the central's own is carried out.
#[tokio::test]
async fn a_room_answers_only_requests_signed_with_the_sites_key_even_on_an_open_nats_server() {
    let Some(server) = NatsServer::start().await else {
        return;
    };
    let central = format!(
        "[central]\nnats = \"{}\"\naction_key = \"{ACTION_KEY}\"\n",
        server.url()
    );
    let room = Room::start(&central, Options::default()).await;
    room.devices_ready().await;
    let (mut display, _) = Display::connect(&room, NURSE).await;
    room.bp(205, 100);
    display
        .until(|m| m["type"] == "alarm" && m["event"] == "raised")
        .await;
    let anyone = server.client().await;
    let pause = |request_id: &str| {
        json!({"type": "pause_audio", "request_id": request_id, "user": "Dr Nobody", "role": "provider"})
            .to_string()
    };
    // The room subscribes once connected: until then nobody answers.
    let mut unsigned = None;
    for _ in 0..100 {
        match anyone.request(ACTION, pause("u-1").into()).await {
            Ok(reply) => {
                unsigned = Some(serde_json::from_slice::<Value>(&reply.payload).unwrap());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let unsigned = unsigned.expect("the room answers on its action subject");
    assert_eq!(unsigned["code"], "unauthenticated", "{unsigned}");
    assert_eq!(unsigned["request_id"], "u-1", "{unsigned}");
    let forged = signed_request(
        &anyone,
        ACTION,
        &pause("u-2"),
        "another-sites-key-0123456789",
    )
    .await;
    assert_eq!(forged["code"], "unauthenticated", "{forged}");
    // A capture of the central's signed request, sent again.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let genuine = json!({"type": "reset", "alarm_id": "none#1", "request_id": "c-1",
        "user": "Dr Lee", "role": "provider"})
    .to_string();
    let headers = ActionKey::new(ACTION_KEY).sign(ACTION, genuine.as_bytes(), now_ms);
    let first = anyone
        .request_with_headers(ACTION, headers.clone(), genuine.clone().into())
        .await
        .unwrap();
    let first: Value = serde_json::from_slice(&first.payload).unwrap();
    assert_ne!(first["code"], "unauthenticated", "{first}");
    let again = anyone
        .request_with_headers(ACTION, headers, genuine.into())
        .await
        .unwrap();
    let again: Value = serde_json::from_slice(&again.payload).unwrap();
    assert_eq!(again["code"], "unauthenticated", "{again}");
    assert!(
        again["reason"].as_str().unwrap().contains("replay"),
        "{again}"
    );
    // Nothing paused the sound; the central's signed request does.
    let signed = signed_request(&anyone, ACTION, &pause("c-2"), ACTION_KEY).await;
    assert_eq!(signed["type"], "result", "{signed}");
    let paused = display
        .until(|m| m["type"] == "audio_pause" && m["paused"] == true)
        .await;
    assert_eq!(paused["by"], "Dr Nobody (central)", "{paused}");
    room.daemon.shutdown().await;
}

/// V9: one malformed alarm on a room's subject (a priority with a space in it, from a buggy
/// or hostile publisher) made the central page's overview throw on every render: the tiles
/// after it vanished and the banner no longer followed, so another room's real high alarm was
/// not shown. The central must refuse such a message as malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_alarm_from_one_room_does_not_blind_the_central_to_another() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let mut one = FakeRoom::start(&nats.url(), "room-1").await;
    let mut two = FakeRoom::start(&nats.url(), "room-2").await;
    one.snapshot().await;
    two.snapshot().await;
    let page = browser
        .open(&format!("http://{}/?token={PROVIDER}", central.addr))
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelectorAll('#rooms .room').length === 2",
            Duration::from_secs(10),
            "two room tiles",
        )
        .await;
    one.publish(
        "alarm",
        json!({"type":"alarm","event":"raised","alarm":{"id":"x#1","rule":"x",
            "kind":"physiological","vital":null,"device":null,"priority":"high x","message":"x",
            "state":"active","since":"2026-11-29T10:00:01.000Z","acknowledged_by":null,
            "acknowledged_at":null,"latching":false,"awaiting_confirmation":false,"value":null}}),
    )
    .await;
    two.alarm("spo2-low#1", "2026-11-29T10:00:02.000Z").await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#banner').className === 'prio-high' \
             && document.querySelectorAll('#rooms .room').length === 2 \
             && document.querySelector('#rooms .room').dataset.room === 'room-2'",
            Duration::from_secs(10),
            "room 2's high alarm on the overview",
        )
        .await;
    assert!(central.hub.malformed_count() >= 1);
}
