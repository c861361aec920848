//! The NATS contract's shared part against a real `nats-server -js`: `connect`, `ensure_stream`
//! and the msg-id dedupe both sides rely on.

#![allow(clippy::unwrap_used)]

use async_nats::jetstream::message::PublishMessage as Publish;
use std::time::Duration;
use vigil_daemon::nats::{connect, ensure_stream, msg_id, stream_name, NatsSettings, Subjects};
use vigil_tests::nats::{stored_messages, NatsServer};

#[tokio::test]
async fn ensure_stream_makes_the_contract_stream_once_and_msg_ids_dedupe() {
    let Some(server) = NatsServer::start().await else {
        return;
    };
    let client = connect(&NatsSettings::url(server.url()), "test")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = ensure_stream(&js, "north-site").await.unwrap();
    // Both sides call it: the second call finds the same stream.
    ensure_stream(&js, "north-site").await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.name, "VIGIL_NORTH_SITE");
    assert_eq!(config.name, stream_name("north-site"));
    assert_eq!(config.subjects, vec!["vigil.north-site.>".to_string()]);
    assert_eq!(config.max_age, Duration::from_secs(86_400));
    assert_eq!(config.max_bytes, 1 << 30);
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );

    // The same message published twice (a replay after a reconnect) is stored once.
    let subjects = Subjects::new("north-site", "room-1");
    for _ in 0..2 {
        let publish = Publish::build()
            .payload(r#"{"v":1,"type":"alarm","seq":7}"#.into())
            .message_id(msg_id("room-1", 1, 7));
        js.send_publish(subjects.alarm(), publish)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let stored = stored_messages(&client, "VIGIL_NORTH_SITE", &subjects.alarm()).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "room-1.1.7");
    assert_eq!(stored[0].1["seq"], 7);
}

#[tokio::test]
async fn connect_returns_at_once_without_a_server_and_connects_when_it_comes() {
    let Some(mut server) = NatsServer::start().await else {
        return;
    };
    server.kill();
    let client = connect(&NatsSettings::url(server.url()), "test")
        .await
        .unwrap();
    assert_ne!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );
    server.restart().await;
    for _ in 0..100 {
        if client.connection_state() == async_nats::connection::State::Connected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the client did not connect once the server was up");
}
