//! The central's picture of the rooms under attack: findings of the red-team pass over the
//! central station (docs/hazards.md, "Found in review: the central under attack").

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::{json, Value};
use tokio::time::Instant;
use vigil_daemon::station::rooms::{
    Malformed, Rooms, LINK_TIMEOUT, MAX_ALARMS, MAX_DEVICES, MAX_MESSAGE, MAX_NAME, MAX_STEP,
    MAX_VITALS,
};

fn alarm(seq: u64, id: &str, priority: &str) -> Vec<u8> {
    json!({"v":1,"type":"alarm","seq":seq,"event":"raised","alarm":{
        "id":id,"rule":"spo2-low","kind":"physiological","vital":"spo2","device":"ox",
        "priority":priority,"message":"SpO2 low","state":"active","since":"2026-11-29T10:00:00.000Z",
        "acknowledged_by":null,"acknowledged_at":null,"latching":false,"value":85.0}})
    .to_string()
    .into_bytes()
}

fn reading(seq: u64, device: &str) -> Vec<u8> {
    json!({"v":1,"type":"reading","seq":seq,"device":device,"vital":"spo2",
        "value":97.0,"unit":"%","mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]})
    .to_string()
    .into_bytes()
}

fn device(seq: u64, device: &str) -> Vec<u8> {
    json!({"v":1,"type":"device","seq":seq,"device":device,"link":"connected","reason":null})
        .to_string()
        .into_bytes()
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

fn too_much(result: Result<Option<String>, Malformed>) -> bool {
    matches!(result, Err(Malformed::TooMuch(_)))
}

/// X3: a room (or anything with its credentials) publishing ever-new device ids, alarm ids or
/// huge snapshots grew its state at the central without bound: memory, the `rooms` message
/// every display is resynchronised with, and the search each reading does. The central keeps at
/// most so much of a room, refuses the rest as malformed, and another room goes on.
#[test]
fn one_room_cannot_grow_its_state_at_the_central_without_bound() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    rooms
        .apply("room-1", Some("1"), &snapshot(next(), json!([])), now)
        .unwrap();
    let (mut refused_readings, mut refused_devices, mut refused_alarms) = (0, 0, 0);
    for i in 0..2_000 {
        let s = next();
        refused_readings += usize::from(too_much(rooms.apply(
            "room-1",
            Some("1"),
            &reading(s, &format!("d{i}")),
            now,
        )));
        let s = next();
        refused_devices += usize::from(too_much(rooms.apply(
            "room-1",
            Some("1"),
            &device(s, &format!("d{i}")),
            now,
        )));
        let s = next();
        refused_alarms += usize::from(too_much(rooms.apply(
            "room-1",
            Some("1"),
            &alarm(s, &format!("spo2-low#{i}"), "high"),
            now,
        )));
    }
    let state = rooms.get("room-1").unwrap().display_state();
    assert_eq!(state.vitals.len(), MAX_VITALS);
    assert_eq!(state.devices.len(), MAX_DEVICES);
    assert_eq!(state.alarms.len(), MAX_ALARMS);
    assert_eq!(refused_readings, 2_000 - MAX_VITALS);
    assert_eq!(refused_devices, 2_000 - MAX_DEVICES);
    assert_eq!(refused_alarms, 2_000 - MAX_ALARMS);
    // What the room already has still changes: a known device vital's reading.
    let s = next();
    assert!(rooms
        .apply("room-1", Some("1"), &reading(s, "d0"), now)
        .unwrap()
        .is_some());

    // Snapshots in between do not let reading positions pile up.
    for round in 0..20 {
        let s = next();
        rooms
            .apply("room-1", Some("1"), &snapshot(s, json!([])), now)
            .unwrap();
        for i in 0..MAX_VITALS {
            let s = next();
            rooms
                .apply(
                    "room-1",
                    Some("1"),
                    &reading(s, &format!("r{round}-{i}")),
                    now,
                )
                .unwrap();
        }
    }
    assert!(rooms.get("room-1").unwrap().reading_positions() <= MAX_VITALS);

    // A snapshot with 100,000 alarms, and a message beyond MAX_MESSAGE, are refused.
    let one = serde_json::from_slice::<Value>(&alarm(1, "a#1", "high")).unwrap()["alarm"].clone();
    let many = snapshot(next(), Value::Array(vec![one; 100_000]));
    assert!(many.len() > MAX_MESSAGE);
    assert!(too_much(rooms.apply("room-1", Some("1"), &many, now)));
    let one = serde_json::from_slice::<Value>(&alarm(1, "a#1", "high")).unwrap()["alarm"].clone();
    let s = next();
    assert!(too_much(rooms.apply(
        "room-1",
        Some("1"),
        &snapshot(s, Value::Array(vec![one; MAX_ALARMS + 1])),
        now
    )));
    assert!(too_much(rooms.apply_live_snapshot("room-2", &many, now)));

    // An alarm step or a heartbeat cannot carry a large text for the central to keep.
    let mut long = serde_json::from_slice::<Value>(&alarm(next(), "spo2-low#0", "high")).unwrap();
    long["alarm"]["message"] = Value::String("x".repeat(MAX_STEP));
    let long = long.to_string().into_bytes();
    assert!(too_much(rooms.apply("room-1", Some("1"), &long, now)));
    let name = "x".repeat(MAX_NAME + 1);
    assert!(matches!(
        rooms.heartbeat_from("room-1", &name, Some("1"), now),
        Err(Malformed::TooMuch(_))
    ));
    assert!(matches!(
        rooms.heartbeat_from("room-1", "Room 1", Some(&name), now),
        Err(Malformed::TooMuch(_))
    ));
    assert!(rooms
        .heartbeat_from("room-1", "Room 1", Some("1"), now)
        .is_ok());

    // Another room's alarm is applied as ever.
    let frame = rooms
        .apply("room-3", Some("9"), &alarm(1, "spo2-low#1", "high"), now)
        .unwrap()
        .unwrap();
    assert!(frame.contains("spo2-low#1"));
}

/// X4: the room's answer to the central's snapshot request skipped the check every stored
/// alarm gets (V9): an alarm whose priority the pages cannot turn into a style stopped the
/// overview's rendering, and another room's real alarm was not shown.
#[test]
fn a_live_snapshot_with_an_alarm_the_pages_cannot_use_is_refused() {
    let now = Instant::now();
    let mut rooms = Rooms::default();
    let bad =
        serde_json::from_slice::<Value>(&alarm(1, "x#1", "very high")).unwrap()["alarm"].clone();
    assert!(matches!(
        rooms.apply_live_snapshot("room-1", &snapshot(5, json!([bad])), now),
        Err(Malformed::Alarm(_))
    ));
    assert!(rooms
        .get("room-1")
        .is_none_or(|r| r.display_state().alarms.is_empty()));
}

/// X8: a room's alarm step posing as the central's own "room link lost" (its rule, or an id
/// `room-link-lost#N`) went to the pages, which go by rule and id: a `cleared` one showed the
/// room's link up and took the central's active alarm off the list while the link was lost.
#[test]
fn a_rooms_alarm_cannot_pose_as_the_centrals_room_link_lost() {
    let start = Instant::now();
    let mut rooms = Rooms::default();
    rooms.heartbeat("room-1", "Room 1", start).unwrap();
    let raised = rooms.tick(start + LINK_TIMEOUT, "2026-11-29T10:00:05.000Z");
    assert_eq!(raised.len(), 1);
    let id = serde_json::from_str::<Value>(&raised[0]).unwrap()["alarm"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (rule, id) in [("room-link-lost", "x#1"), ("spo2-low", id.as_str())] {
        let mut step = serde_json::from_slice::<Value>(&alarm(7, id, "high")).unwrap();
        step["event"] = json!("cleared");
        step["alarm"]["rule"] = json!(rule);
        step["alarm"]["state"] = json!("cleared");
        let step = step.to_string().into_bytes();
        assert!(
            matches!(
                rooms.apply("room-1", Some("1"), &step, start + LINK_TIMEOUT),
                Err(Malformed::Alarm(_))
            ),
            "{rule} {id}"
        );
    }
    let state = rooms.get("room-1").unwrap().display_state();
    assert_eq!(state.alarms[0].id, id);
    assert_eq!(state.alarms[0].state, "active");
}
