//! Philips IntelliVue end to end (issue 20): the daemon's serial driver talks to the simulated
//! monitor over a pseudo-terminal, and its numerics reach the display; a monitor that refuses
//! the association shows on the display as disconnected with the reason, then recovers.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use vigil_daemon::daemon::Options;
use vigil_protocol::Format;
use vigil_simulator::pty::PtyPort;
use vigil_simulator::run::{serve_serial, SimClock};
use vigil_simulator::{Device, Scenario};
use vigil_tests::{Display, Room, NURSE};

/// A room with the simulated IntelliVue `monitor-1` on a pseudo-terminal, playing `scenario`.
async fn room_with_monitor(scenario: Scenario) -> (Room, CancellationToken) {
    let dir = std::path::PathBuf::from(vigil_tests::temp_db("intellivue"))
        .parent()
        .unwrap()
        .to_path_buf();
    let link = dir.join("intellivue");
    let port = PtyPort::open(&link).unwrap();
    let monitor = Device::new(Format::Intellivue, Arc::new(scenario), 3, 0);
    let cancel = CancellationToken::new();
    tokio::spawn(serve_serial(
        monitor,
        port,
        SimClock::start(1.0),
        f64::INFINITY,
        cancel.clone(),
    ));
    let extra = format!(
        "[[device]]\nid = \"monitor-1\"\nformat = \"intellivue\"\nport = \"{}\"\n",
        link.display()
    );
    (Room::start(&extra, Options::default()).await, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_intellivue_s_numerics_reach_the_display() {
    let (room, sim) = room_with_monitor(Scenario::load("kap-typical").unwrap()).await;
    let (mut nurse, snapshot) = Display::connect(&room, NURSE).await;
    let monitor = snapshot["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "monitor-1")
        .cloned()
        .unwrap();
    assert_eq!(monitor["format"], "intellivue");
    // Read-only: the display offers no cuff buttons for it.
    assert!(monitor["commands"].is_null(), "{monitor}");
    for vital in ["spo2", "pulse_rate", "etco2", "respiratory_rate"] {
        let reading = nurse
            .until(|m| m["type"] == "reading" && m["device"] == "monitor-1" && m["vital"] == vital)
            .await;
        assert!(reading["value"].as_f64().unwrap() > 0.0, "{reading}");
    }
    sim.cancel();
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_intellivue_shows_disconnected_with_the_reason_then_its_readings() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../simulator/scenarios/kap-typical.toml"
    ))
    .unwrap();
    let text =
        format!("{text}\n[[fault]]\nkind = \"association_refused\"\nat = \"0s\"\nfor = \"3s\"\n");
    let (room, sim) = room_with_monitor(Scenario::parse("refusing", &text).unwrap()).await;
    let (mut nurse, _) = Display::connect(&room, NURSE).await;
    let shown = nurse
        .until(|m| {
            m["type"] == "device" && m["device"] == "monitor-1" && m["link"] == "disconnected"
        })
        .await;
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("refused the association"),
        "{shown}"
    );
    nurse
        .until(|m| m["type"] == "device" && m["device"] == "monitor-1" && m["link"] == "connected")
        .await;
    nurse
        .until(|m| m["type"] == "reading" && m["device"] == "monitor-1" && m["vital"] == "spo2")
        .await;
    sim.cancel();
    room.daemon.shutdown().await;
}
