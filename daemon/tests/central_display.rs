//! A central display that falls behind (hazard CS9): it gets a fresh `rooms` message and then
//! the broadcast from that moment, never the old frames still queued behind it. No NATS is
//! needed: the central serves its displays at once and the test feeds its rooms directly.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use vigil_daemon::station::hub::BROADCAST_CAPACITY;
use vigil_daemon::station::subscription;

const TOKEN: &str = "provider-token-0123456789";

fn reading(seq: u64, value: f64) -> Vec<u8> {
    json!({"v":1,"type":"reading","seq":seq,"device":"ox","vital":"spo2",
        "value":value,"unit":"%","mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]})
    .to_string()
    .into_bytes()
}

async fn next_text(ws: &mut Ws) -> Value {
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

/// A central with no NATS (nothing listens on port 1: it serves its displays anyway), and a
/// display whose socket takes little before it stops reading: the central's connection task then
/// waits on its write and falls behind the broadcast. The display has read its `rooms` message.
async fn central_and_slow_display() -> (vigil_daemon::station::Central, Ws) {
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
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(central.addr).await.unwrap();
    let url = format!("ws://{}/ws?token={TOKEN}", central.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let first = next_text(&mut ws).await;
    assert_eq!(first["type"], "rooms");
    (central, ws)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Three queues' worth of readings, seq `from` on, while the display reads nothing: megabytes,
/// far more than the sockets hold. Returns the last seq and its value.
fn flood(hub: &vigil_daemon::station::hub::Hub, from: u64) -> (u64, f64) {
    let last = from + 3 * BROADCAST_CAPACITY as u64 - 1;
    for seq in from..=last {
        let value = 80.0 + (seq % 20) as f64;
        hub.apply("room-1", Some("100"), &reading(seq, value));
    }
    (last, 80.0 + (last % 20) as f64)
}

/// Reads until the fresh start; how many frames came before it, and the `rooms` message.
async fn until_fresh_start(ws: &mut Ws) -> (u64, Value) {
    let mut before = 0u64;
    loop {
        let frame = next_text(ws).await;
        if frame["type"] == "rooms" {
            return (before, frame);
        }
        before += 1;
    }
}

/// The old way: a display that fell behind got the state and then the oldest frames the queue
/// still held, values older than that state, and stayed as far behind as before, so at a
/// 256-room site each resync of every room's state kept it behind (1,434 resyncs in 20 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_fell_behind_restarts_from_the_state_and_gets_no_older_frame() {
    let (central, mut ws) = central_and_slow_display().await;
    let hub = central.hub.clone();
    let (last, last_value) = flood(&hub, 1);

    // The display reads again: what the sockets held, then a fresh start.
    let (before, rooms) = until_fresh_start(&mut ws).await;
    assert!(before < last, "the display fell behind ({before} frames)");
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
    hub.apply("room-1", Some("100"), &reading(last + 1, 77.0));
    let next = loop {
        let frame = next_text(&mut ws).await;
        if frame["type"] == "reading" {
            break frame;
        }
    };
    assert_eq!(
        next["seq"],
        json!(last + 1),
        "a frame older than the state followed it: {next}"
    );
    assert_eq!(next["room"], "room-1");
    central.stop().await;
}

/// Each fresh start writes every room's state under the rooms' lock: a display that keeps
/// falling behind (a client reading just slowly enough, or a link that cannot carry the site)
/// would make the central do that again and again. The second time within 10 s it is closed,
/// and says why; its page reconnects and starts from the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_falls_behind_again_at_once_is_closed() {
    let (central, mut ws) = central_and_slow_display().await;
    let hub = central.hub.clone();
    let (last, _) = flood(&hub, 1);
    until_fresh_start(&mut ws).await;
    flood(&hub, last + 1);
    let close = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the central keeps sending");
        match message {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close reason"),
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_ne!(frame["type"], "rooms", "a second fresh start at once");
            }
            Some(Ok(_)) => {}
            other => panic!("closed without a reason: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("cannot keep up"), "{}", close.reason);
    central.stop().await;
}

/// A display that stops reading never falls behind the broadcast (its connection waits on the
/// write first), so nothing closed it: it held its connection, counted against the caps, for
/// ever. After 10 s of taking nothing it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_stops_reading_is_closed() {
    let (central, mut ws) = central_and_slow_display().await;
    let hub = central.hub.clone();
    // Enough to fill the sockets: the central's write waits.
    for seq in 1..=4_000 {
        hub.apply("room-1", Some("100"), &reading(seq, 95.0));
    }
    tokio::time::sleep(subscription::WRITE_PATIENCE + Duration::from_secs(2)).await;
    // What the sockets held, then the end of the connection.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the display that stopped reading is still connected"
    );
    central.stop().await;
}
