//! A central display that falls behind (hazard CS9): it gets a fresh `rooms` message and then
//! the broadcast from that moment, never the old frames still queued behind it. No NATS is
//! needed: the central serves its displays at once and the test feeds its rooms directly.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use vigil_daemon::station::hub::BROADCAST_CAPACITY;

const TOKEN: &str = "provider-token-0123456789";

fn reading(seq: u64, value: f64) -> Vec<u8> {
    json!({"v":1,"type":"reading","seq":seq,"device":"ox","vital":"spo2",
        "value":value,"unit":"%","mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]})
    .to_string()
    .into_bytes()
}

async fn next_text(
    ws: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the central keeps sending")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The old way: a display that fell behind got the state and then the oldest frames the queue
/// still held, values older than that state, and stayed as far behind as before, so at a
/// 256-room site each resync of every room's state kept it behind (1,434 resyncs in 20 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_fell_behind_restarts_from_the_state_and_gets_no_older_frame() {
    // Nothing listens on port 1: the central serves its displays without NATS.
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nsite = \"clinic\"\n[nats]\nnats = \"nats://127.0.0.1:1\"\n\
         action_key = \"site-action-key-0123456789\"\n\
         [[user]]\nname = \"Dr Lee\"\nrole = \"provider\"\ntoken = \"{TOKEN}\"\n"
    );
    let config = vigil_daemon::config::CentralConfig::parse(
        &toml,
        "central.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    let central = vigil_daemon::station::Central::start(config).await.unwrap();
    let hub = central.hub.clone();

    // A display whose socket takes little before it stops reading: the central's connection
    // task then waits on its write and falls behind the broadcast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(central.addr).await.unwrap();
    let url = format!("ws://{}/ws?token={TOKEN}", central.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let first = next_text(&mut ws).await;
    assert_eq!(first["type"], "rooms");

    // Three queues' worth of readings while the display reads nothing: megabytes, far more
    // than the sockets hold.
    let behind = 3 * BROADCAST_CAPACITY as u64;
    for seq in 1..=behind {
        let value = 80.0 + (seq % 20) as f64;
        hub.apply("room-1", Some("100"), &reading(seq, value));
    }
    let last_value = 80.0 + (behind % 20) as f64;

    // The display reads again: what the sockets held, then a fresh start.
    let mut before = 0u64;
    let rooms = loop {
        let frame = next_text(&mut ws).await;
        if frame["type"] == "rooms" {
            break frame;
        }
        before += 1;
    };
    assert!(before < behind, "the display fell behind ({before} frames)");
    let room = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "room-1")
        .expect("the fresh start lists the room");
    let spo2 = &room["state"]["vitals"][0];
    assert_eq!(
        spo2["value"],
        json!(last_value),
        "the current state: {spo2}"
    );

    // What follows the fresh start is newer than it: the next reading published.
    hub.apply("room-1", Some("100"), &reading(behind + 1, 77.0));
    let next = loop {
        let frame = next_text(&mut ws).await;
        if frame["type"] == "reading" {
            break frame;
        }
    };
    assert_eq!(
        next["seq"],
        json!(behind + 1),
        "a frame older than the state followed it: {next}"
    );
    assert_eq!(next["room"], "room-1");
    central.stop().await;
}
