//! Every JSON example in docs/display-protocol.md parses as the message type it illustrates and
//! says what the code would say.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use vigil_protocol::display::{ClientMessage, ServerMessage};

#[test]
fn every_example_in_the_protocol_document_parses() {
    let doc = include_str!("../../docs/display-protocol.md");
    let mut blocks = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").unwrap();
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    assert!(blocks.len() >= 17, "found {} examples", blocks.len());
    let mut server_types = std::collections::BTreeSet::new();
    let mut client_types = std::collections::BTreeSet::new();
    for block in &blocks {
        let value: serde_json::Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}: {block}"));
        if value.get("v").is_some() {
            assert_eq!(value["v"], 1);
            let m: ServerMessage =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {block}"));
            // Serialising it back gives the same JSON: the document shows exact wire frames.
            let again: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
            assert_eq!(again, value, "{block}");
            server_types.insert(value["type"].as_str().unwrap().to_string());
        } else {
            let m: ClientMessage =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {block}"));
            assert_eq!(serde_json::to_value(&m).unwrap()["type"], value["type"]);
            client_types.insert(value["type"].as_str().unwrap().to_string());
        }
    }
    let all_server = [
        "snapshot",
        "reading",
        "alarm",
        "device",
        "session",
        "audio_pause",
        "central",
        "heartbeat",
        "trend",
        "result",
        "error",
    ];
    assert_eq!(
        server_types,
        all_server.iter().map(|s| s.to_string()).collect()
    );
    let all_client = [
        "ack",
        "pause_audio",
        "reset",
        "mark_dose",
        "set_baseline",
        "start_nibp",
        "trend",
    ];
    assert_eq!(
        client_types,
        all_client.iter().map(|s| s.to_string()).collect()
    );
}
