//! The central's room state and link alarm, with the time given.

use super::rooms::{LinkAction, Rooms, LINK_TIMEOUT};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

fn alarm(seq: u64, id: &str, state: &str, since: &str) -> Vec<u8> {
    json!({"v":1,"type":"alarm","seq":seq,"event":"raised","alarm":{
        "id":id,"rule":"spo2-low","kind":"physiological","vital":"spo2","device":"ox",
        "priority":"high","message":"SpO2 low","state":state,"since":since,
        "acknowledged_by":null,"acknowledged_at":null,"latching":false,"value":85.0}})
    .to_string()
    .into_bytes()
}

fn frame(text: &str) -> Value {
    serde_json::from_str(text).expect("a frame is JSON")
}

#[test]
fn messages_apply_in_seq_order_and_replays_are_skipped() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    let first = rooms
        .apply(
            "room-1",
            Some("100"),
            &alarm(5, "spo2-low#1", "active", "2026-11-29T10:00:00.000Z"),
            now,
        )
        .expect("applies")
        .expect("a frame");
    let first = frame(&first);
    assert_eq!(first["room"], "room-1");
    assert_eq!(first["type"], "alarm");
    assert_eq!(first["alarm"]["since"], "2026-11-29T10:00:00.000Z");
    // The same message again (a replay after a reconnect) and an older one change nothing.
    assert_eq!(
        rooms.apply(
            "room-1",
            Some("100"),
            &alarm(5, "spo2-low#1", "active", "x"),
            now
        ),
        Ok(None)
    );
    assert_eq!(
        rooms.apply(
            "room-1",
            Some("100"),
            &alarm(4, "spo2-low#1", "cleared", "x"),
            now
        ),
        Ok(None)
    );
    // A restarted room (new boot) numbers from the start again.
    assert!(rooms
        .apply(
            "room-1",
            Some("200"),
            &alarm(1, "spo2-low#1", "cleared", "x"),
            now
        )
        .expect("applies")
        .is_some());
    let state = rooms.get("room-1").expect("room").display_state();
    assert!(state.alarms.is_empty(), "{:?}", state.alarms);
}

#[test]
fn malformed_messages_are_refused_not_applied() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    for bad in [
        &b"not json"[..],
        b"{}",
        b"{\"type\":\"alarm\",\"seq\":1}",
        b"\xff\xfe",
        br#"{"v":1,"type":"heartbeat","seq":1,"at":"x"}"#,
    ] {
        assert!(rooms.apply("room-1", None, bad, now).is_err(), "{bad:?}");
    }
    assert!(rooms
        .get("room-1")
        .is_none_or(|r| r.display_state().alarms.is_empty()));
}

#[test]
fn a_silent_room_raises_link_lost_after_5_s_latched_until_reset() {
    let start = Instant::now();
    let utc = "2026-11-29T10:00:00.000Z";
    let mut rooms = Rooms::default();
    rooms.heartbeat("room-1", "Room 1", start).expect("a room");
    assert!(rooms
        .tick(start + LINK_TIMEOUT - Duration::from_millis(1), utc)
        .is_empty());
    let raised = rooms.tick(start + LINK_TIMEOUT, utc);
    assert_eq!(raised.len(), 1);
    let raised = frame(&raised[0]);
    assert_eq!(raised["room"], "room-1");
    assert_eq!(raised["alarm"]["rule"], "room-link-lost");
    assert_eq!(raised["alarm"]["priority"], "high");
    assert_eq!(raised["alarm"]["kind"], "technical");
    assert_eq!(raised["alarm"]["state"], "active");
    let id = raised["alarm"]["id"].as_str().expect("id").to_string();
    assert!(Rooms::is_link_alarm(&id));
    // Once raised, it is not raised again while the room stays silent.
    assert!(rooms.tick(start + LINK_TIMEOUT * 3, utc).is_empty());
    // Cannot be reset while the link is lost.
    assert!(matches!(
        rooms.reset_link("room-1", &id, "Nurse A"),
        LinkAction::Refused("refused", _)
    ));
    match rooms.ack_link("room-1", &id, "Nurse A", utc) {
        LinkAction::Done(f) => assert_eq!(frame(&f)["alarm"]["acknowledged_by"], "Nurse A"),
        other => panic!("{other:?}"),
    }
    // The room is heard again: the alarm holds, latched, until reset.
    let back = rooms
        .heartbeat("room-1", "Room 1", start + LINK_TIMEOUT * 4)
        .expect("a room")
        .expect("a frame");
    assert_eq!(frame(&back)["alarm"]["state"], "latched");
    let state = rooms.get("room-1").expect("room").display_state();
    assert_eq!(state.alarms[0].id, id);
    match rooms.reset_link("room-1", &id, "Nurse A") {
        LinkAction::Done(f) => {
            assert_eq!(frame(&f)["event"], "reset");
            assert_eq!(frame(&f)["alarm"]["state"], "cleared");
        }
        other => panic!("{other:?}"),
    }
    assert!(rooms
        .get("room-1")
        .expect("room")
        .display_state()
        .alarms
        .is_empty());
}

#[test]
fn the_rooms_message_lists_every_room_with_its_link_and_state() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    rooms.heartbeat("room-1", "Room 1", now).expect("a room");
    rooms
        .apply("room-2", None, &alarm(1, "spo2-low#1", "active", "t"), now)
        .expect("applies");
    let user = vigil_protocol::display::UserInfo {
        name: "Dr Lee".into(),
        role: "provider".into(),
    };
    let message = frame(&rooms.rooms_message(&user, "t"));
    assert_eq!(message["type"], "rooms");
    assert_eq!(message["user"]["name"], "Dr Lee");
    let list = message["rooms"].as_array().expect("rooms");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["room"], "room-1");
    assert_eq!(list[0]["name"], "Room 1");
    assert_eq!(list[0]["link"], "up");
    assert_eq!(list[1]["state"]["alarms"][0]["id"], "spo2-low#1");
}

/// The messages the central sends (`rooms`, its `heartbeat`, what rooms publish, answers) and
/// takes: `docs/central-protocol.md` must show an example of each.
const SENT: [&str; 10] = [
    "rooms",
    "snapshot",
    "reading",
    "alarm",
    "device",
    "session",
    "heartbeat",
    "trend",
    "result",
    "error",
];
const TAKEN: [&str; 6] = [
    "ack",
    "reset",
    "pause_audio",
    "start_nibp",
    "mark_dose",
    "trend",
];

#[test]
fn the_protocol_document_shows_every_message_and_each_example_parses() {
    use vigil_protocol::display::{ClientMessage, ServerMessage};
    let doc = include_str!("../../../docs/central-protocol.md");
    let mut sent = std::collections::BTreeSet::new();
    let mut taken = std::collections::BTreeSet::new();
    for block in doc.split("```json\n").skip(1) {
        let block = &block[..block.find("```").expect("closed block")];
        let mut value: Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}: {block}"));
        let kind = value["type"].as_str().expect("type").to_string();
        let map = value.as_object_mut().expect("object");
        if map.contains_key("v") {
            match kind.as_str() {
                "rooms" => {
                    for room in map["rooms"].as_array().expect("rooms") {
                        let mut state = room["state"].clone();
                        state["type"] = json!("snapshot");
                        serde_json::from_value::<ServerMessage>(state)
                            .unwrap_or_else(|e| panic!("{e}: {block}"));
                        assert!(
                            room["room"].is_string() && room["link"].is_string(),
                            "{block}"
                        );
                    }
                }
                "heartbeat" => assert!(
                    map["at"].is_string() && !map.contains_key("room"),
                    "{block}"
                ),
                _ => {
                    // Every message about a room names it; the rest is the room display protocol.
                    let room = map.remove("room");
                    assert!(room.is_some() || kind == "error", "{block}");
                    if let Some(name) = map.remove("room_name") {
                        map.insert("room".into(), name);
                    }
                    serde_json::from_value::<ServerMessage>(value.clone())
                        .unwrap_or_else(|e| panic!("{e}: {block}"));
                }
            }
            sent.insert(kind);
        } else {
            assert!(map.remove("room").is_some_and(|r| r.is_string()), "{block}");
            serde_json::from_value::<ClientMessage>(value)
                .unwrap_or_else(|e| panic!("{e}: {block}"));
            taken.insert(kind);
        }
    }
    assert_eq!(sent, SENT.iter().map(|s| s.to_string()).collect());
    assert_eq!(taken, TAKEN.iter().map(|s| s.to_string()).collect());
}

#[test]
fn room_ids_must_be_slugs_and_rooms_are_bounded() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    for bad in ["Room 1", "", "a.b", "*"] {
        assert!(rooms.heartbeat(bad, "x", now).is_err(), "{bad:?}");
    }
    for n in 0..super::rooms::MAX_ROOMS {
        rooms
            .heartbeat(&format!("room-{n}"), "x", now)
            .expect("within the bound");
    }
    assert!(rooms.heartbeat("one-too-many", "x", now).is_err());
    assert!(rooms
        .apply("one-too-many", None, &alarm(1, "a#1", "active", "t"), now)
        .is_err());
    // Rooms already known go on.
    assert!(rooms.heartbeat("room-0", "x", now).is_ok());
    assert_eq!(rooms.iter().count(), super::rooms::MAX_ROOMS);
}

fn snapshot(seq: u64, alarms: Value) -> Vec<u8> {
    json!({"v":1,"type":"snapshot","room":"Room 1","user":{"name":"","role":""},
        "server_time":"2026-11-29T10:00:10.000Z","seq":seq,
        "session":{"phase":"pre_dose","dose_at":null,"dose_by":null,"minutes_since_dose":null,"baseline":null},
        "devices":[],"vitals":[],"alarms":alarms,"audio_pause_remaining_s":null,
        "trend":{"minutes":0,"resolution_s":0,"series":[]},"limits":[]})
    .to_string()
    .into_bytes()
}

/// A room's answer to the central's snapshot request is newer than what the durable consumer
/// may still deliver: it must not make the central drop those stored alarm steps.
#[test]
fn a_live_snapshot_never_absorbs_a_stored_alarm_step() {
    let now = Instant::now();
    let raised = |seq| alarm(seq, "spo2-low#1", "active", "2026-11-29T10:00:05.000Z");
    let active = serde_json::from_slice::<Value>(&raised(5)).unwrap()["alarm"].clone();

    // The stream has given the room's state: the live answer (seq 10, holding the alarm raised
    // at seq 5) is ignored, and the stored step still reaches the displays, with its time.
    let mut rooms = Rooms::default();
    assert!(rooms
        .apply("room-1", Some("100"), &snapshot(1, json!([])), now)
        .unwrap()
        .is_some());
    assert_eq!(
        rooms.apply_live_snapshot("room-1", &snapshot(10, json!([active])), now),
        Ok(None)
    );
    let step = rooms
        .apply("room-1", Some("100"), &raised(5), now)
        .unwrap()
        .expect("the stored step is applied, not absorbed");
    assert_eq!(frame(&step)["alarm"]["since"], "2026-11-29T10:00:05.000Z");

    // Nothing from the stream yet: the live answer is the room's state at once, and the stored
    // step after it is still applied and sent.
    let mut rooms = Rooms::default();
    let live = rooms
        .apply_live_snapshot("room-1", &snapshot(10, json!([active])), now)
        .unwrap()
        .expect("the room's state");
    assert_eq!(frame(&live)["alarms"][0]["id"], "spo2-low#1");
    let step = rooms
        .apply("room-1", Some("100"), &raised(5), now)
        .unwrap()
        .expect("the stored step is applied, not absorbed");
    assert_eq!(frame(&step)["event"], "raised");
    assert_eq!(rooms.get("room-1").unwrap().display_state().alarms.len(), 1);
    // The stream's order goes on: an older or repeated stored message is still skipped.
    assert_eq!(
        rooms.apply("room-1", Some("100"), &raised(5), now),
        Ok(None)
    );
    // The stream gave steps but no snapshot (it aged out of the stream): the live answer is
    // the room's state, the stream's position unchanged.
    let mut rooms = Rooms::default();
    assert!(rooms
        .apply("room-3", Some("100"), &raised(5), now)
        .unwrap()
        .is_some());
    assert!(rooms
        .apply_live_snapshot("room-3", &snapshot(10, json!([active])), now)
        .unwrap()
        .is_some());
    assert!(rooms
        .apply("room-3", Some("100"), &raised(6), now)
        .unwrap()
        .is_some());
    // A live answer that is not a snapshot is malformed.
    assert!(rooms
        .apply_live_snapshot("room-2", &raised(1), now)
        .is_err());
}

fn reading(seq: u64, vital: &str, value: f64) -> Vec<u8> {
    json!({"v":1,"type":"reading","seq":seq,"device":"cuff","vital":vital,
        "value":value,"unit":"mmHg","mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]})
    .to_string()
    .into_bytes()
}

/// A room publishes each vital's latest reading up to a second after it happened, and its alarm
/// steps at once: the cuff's 205 mmHg (seq 7) arrives after the `bp-high` step it caused (seq
/// 8). The central dropped it as already applied, and showed the previous determination beside
/// the alarm until the next one, minutes later (hazard CS8).
#[test]
fn a_reading_published_after_a_later_alarm_step_is_still_shown() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    let boot = Some("100");
    rooms
        .apply("room-1", boot, &reading(3, "nibp_systolic", 120.0), now)
        .expect("applies");
    rooms
        .apply("room-1", boot, &alarm(8, "bp-high#1", "active", "t"), now)
        .expect("applies");
    let late = rooms
        .apply("room-1", boot, &reading(7, "nibp_systolic", 205.0), now)
        .expect("applies")
        .expect("the late reading goes to the displays");
    assert_eq!(frame(&late)["value"], 205.0);
    let shown = |rooms: &Rooms| {
        rooms.get("room-1").expect("room").display_state().vitals[0]
            .reading
            .value
    };
    assert_eq!(shown(&rooms), Some(205.0));
    // Its replay, and an older reading of the same vital, change nothing; an alarm step
    // numbered before one already applied is still a replay.
    for old in [
        reading(7, "nibp_systolic", 205.0),
        reading(5, "nibp_systolic", 150.0),
        alarm(6, "bp-high#1", "cleared", "t"),
    ] {
        assert_eq!(rooms.apply("room-1", boot, &old, now), Ok(None));
    }
    assert_eq!(shown(&rooms), Some(205.0));
}

/// A snapshot holds every reading numbered before it; a reading numbered after it is newer than
/// the snapshot's value and stays when the snapshot is applied after it.
#[test]
fn a_snapshot_keeps_readings_newer_than_itself() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    let boot = Some("100");
    rooms
        .apply("room-1", boot, &alarm(2, "spo2-low#1", "active", "t"), now)
        .expect("applies");
    rooms
        .apply("room-1", boot, &reading(9, "nibp_systolic", 205.0), now)
        .expect("applies");
    let mut state = rooms.get("room-1").expect("room").display_state();
    state.seq = 5;
    state.vitals[0].reading.value = Some(120.0);
    let snapshot = serde_json::to_vec(&vigil_protocol::display::ServerMessage::Snapshot(Box::new(
        state,
    )))
    .expect("JSON");
    rooms
        .apply("room-1", boot, &snapshot, now)
        .expect("applies")
        .expect("a frame");
    let vitals = rooms.get("room-1").expect("room").display_state().vitals;
    assert_eq!(vitals.len(), 1);
    assert_eq!(vitals[0].reading.value, Some(205.0));
    // A reading numbered before the snapshot is in it.
    assert_eq!(
        rooms.apply("room-1", boot, &reading(4, "nibp_systolic", 99.0), now),
        Ok(None)
    );
}
