#![allow(clippy::unwrap_used)]
use serde_json::json;
use std::time::{Duration, Instant};
use vigil_tests::fake_room::{central, FakeRoom, PROVIDER};
use vigil_tests::nats::NatsServer;
use vigil_tests::Display;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_measure() {
    let nats = NatsServer::start().await.unwrap();
    let central = central(&nats.url()).await;
    let (mut d, _) = Display::open(&format!("ws://{}/ws?token={PROVIDER}", central.addr)).await;
    let mut room = FakeRoom::start(&nats.url(), "room-1").await;
    room.snapshot().await;
    let url = nats.url();
    let flooding = tokio::spawn(async move {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let start = Instant::now();
        let mut n: u64 = 0;
        let mut acks = Vec::new();
        while start.elapsed() < Duration::from_secs(20) {
            n += 1;
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("room-9.1.{n}").as_str());
            let m = json!({"v":1,"type":"reading","seq":n,"device":format!("d{}", n % 200),"vital":"spo2","value":97.0,"unit":"%","mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]});
            acks.push(
                js.publish_with_headers("vigil.clinic.room-9.reading", h, m.to_string().into())
                    .await
                    .unwrap(),
            );
            if acks.len() >= 256 {
                for a in acks.drain(..) {
                    let _ = a.await;
                }
            }
        }
        n
    });
    let mut lags = Vec::new();
    for i in 0..9 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let id = format!("spo2-low#{i}");
        let t = Instant::now();
        room.alarm(&id, "2026-11-29T10:00:00.000Z").await;
        let stored = t.elapsed();
        let user = vigil_protocol::display::UserInfo {
            name: "x".into(),
            role: "viewer".into(),
        };
        while !central.hub.rooms_message(&user).contains(&id) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at_hub = t.elapsed().as_millis();
        d.until(|m| m["type"] == "alarm" && m["alarm"]["id"] == id.as_str())
            .await;
        lags.push((stored.as_millis(), at_hub, t.elapsed().as_millis()));
    }
    let n = flooding.await.unwrap();
    println!(
        "flood published {n} messages in 20 s; (stored ms, at hub ms, at display ms) {lags:?}"
    );
    println!("malformed {}", central.hub.malformed_count());
    central.stop().await;
}
