//! The display server over TLS with the certificate and key the config names.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use vigil_daemon::daemon::Options;
use vigil_tests::{Room, NURSE};

#[tokio::test]
async fn displays_connect_over_tls_and_plain_text_is_refused() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let room = Room::start(
        &format!("[tls]\ncert = \"{fixtures}/cert.pem\"\nkey = \"{fixtures}/key.pem\"\n"),
        Options::default(),
    )
    .await;
    let addr = room.daemon.addr;

    let (_ws, first) = vigil_tests::tls_display(fixtures, addr, NURSE).await;
    let snapshot: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["user"]["name"], "Nurse Okafor");

    // A plain WebSocket to the TLS port gets no display.
    let plain = tokio_tungstenite::connect_async(room.ws_url(NURSE)).await;
    assert!(
        plain.is_err(),
        "plain text must not reach the display protocol"
    );
    room.daemon.shutdown().await;
}

#[test]
fn a_missing_or_mismatched_key_is_a_config_error() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let text = format!(
        "room = \"r\"\n[storage]\npath = \"x.db\"\n[tls]\ncert = \"{fixtures}/cert.pem\"\nkey = \"{fixtures}/missing.pem\"\n"
    );
    let err = vigil_daemon::config::Config::parse(&text, "vigil.toml", std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vigil.toml: tls: cannot read a private key"),
        "{err}"
    );
}
