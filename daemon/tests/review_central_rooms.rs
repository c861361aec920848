//! The central's picture of the rooms, findings of the review after the monitors, HL7 and
//! central issues (docs/hazards.md, "Found in review after the monitors, HL7 and central
//! issues").

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;
use tokio::time::Instant;
use vigil_daemon::station::rooms::{Link, Rooms, LINK_TIMEOUT};

const UTC: &str = "2026-11-29T10:00:00.000Z";

/// V7: two rooms configured with one `room_id` (a copied configuration). Their heartbeats keep
/// the one room "up" even when one of them is dead, their alarms and snapshots overwrite each
/// other at the central, and an acknowledgement at the central reaches both. The central must
/// say so, loudly, rather than show a mixture as one healthy room.
#[test]
fn two_rooms_with_one_room_id_raise_an_alarm_at_the_central() {
    let start = Instant::now();
    let mut rooms = Rooms::default();
    let second = Duration::from_secs(1);
    let mut raised = Vec::new();
    for i in 0..12u32 {
        let now = start + second * i;
        // Both rooms beat every second, each with its own boot.
        rooms
            .heartbeat_from("room-1", "Room 1", Some("1000"), now)
            .unwrap();
        rooms
            .heartbeat_from("room-1", "Room 1", Some("2000"), now + second / 2)
            .unwrap();
        raised.extend(rooms.tick(now + second / 2, UTC));
    }
    assert_eq!(raised.len(), 1, "{raised:?}");
    let alarm: serde_json::Value = serde_json::from_str(&raised[0]).unwrap();
    assert_eq!(alarm["alarm"]["priority"], "high");
    assert!(
        alarm["alarm"]["message"]
            .as_str()
            .unwrap()
            .contains("room_id"),
        "{alarm}"
    );
    assert_eq!(rooms.get("room-1").unwrap().link, Link::Lost);
}

/// V7, the other side: a room that restarts (a new boot, the old one never heard again) is
/// one room, and its link stays up.
#[test]
fn a_room_that_restarts_is_not_two_rooms() {
    let start = Instant::now();
    let mut rooms = Rooms::default();
    let second = Duration::from_secs(1);
    let mut raised = Vec::new();
    for i in 0..12u32 {
        let boot = if i < 3 { "1000" } else { "2000" };
        let now = start + second * i;
        rooms
            .heartbeat_from("room-1", "Room 1", Some(boot), now)
            .unwrap();
        raised.extend(rooms.tick(now, UTC));
    }
    assert!(raised.is_empty(), "{raised:?}");
    assert_eq!(rooms.get("room-1").unwrap().link, Link::Up);
    assert!(LINK_TIMEOUT > second * 2);
}
