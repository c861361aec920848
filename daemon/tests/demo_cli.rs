//! `vigil demo` as a newcomer runs it: one command, then a display can connect.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn the_demo_serves_the_display_protocol_within_ten_seconds() {
    let started = std::time::Instant::now();
    let dir = std::env::temp_dir().join(format!("vigil-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--listen", "127.0.0.1:0", "--speed", "30", "--db"])
        .arg(&db)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    while url.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the demo prints its address within 10 s")
            .unwrap()
            .expect("the demo is running");
        if let Some(rest) = line.trim().strip_prefix("display (nurse):") {
            url = Some(rest.trim().to_string());
        }
    }
    let http = url.unwrap();
    assert!(http.starts_with("http://127.0.0.1:"));
    // The page says the data is simulated, in a banner shown only for a simulated room.
    let page = get_page(&http).await;
    assert!(
        page.contains(r#"<span id="simulated">SIMULATED DATA"#),
        "the demo's page shows the simulated-data banner"
    );
    let ws = http
        .replacen("http://", "ws://", 1)
        .replacen("/?token=", "/ws?token=", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let mut saw_snapshot = false;
    let mut saw_reading = false;
    let mut saw_hl7 = false;
    let mut devices = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v["type"] == "snapshot" {
            saw_snapshot = true;
            assert!(
                v["room"].as_str().unwrap().contains("simulated"),
                "the demo says it is simulated"
            );
            devices = v["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["device"].as_str().unwrap().to_string())
                .collect();
        }
        if v["type"] == "reading" && v["device"] == "oximeter-1" {
            saw_reading = true;
        }
        if v["type"] == "reading" && v["device"] == "hl7-monitor" {
            saw_hl7 = true;
        }
        if saw_reading && saw_hl7 {
            break;
        }
    }
    assert!(saw_snapshot);
    assert!(
        saw_reading,
        "the simulated oximeter's readings reach the display"
    );
    assert!(saw_hl7, "the HL7 monitor's readings reach the display");
    assert_eq!(
        devices,
        [
            "cuff-ble",
            "cuff-serial",
            "hl7-monitor",
            "hr-strap",
            "oximeter-1"
        ]
    );
    // Ctrl-C (SIGINT) stops it cleanly.
    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(6), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    // `--db` kept the session record: one ended session with the readings it showed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["sessions", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    let row = listing
        .lines()
        .find(|l| l.contains("Demo room (simulated)"))
        .unwrap_or_else(|| panic!("no demo session in:\n{listing}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    let readings: u64 = fields[fields.len() - 2].parse().unwrap();
    assert!(readings > 0, "{row}");
    let ended = fields[fields.len() - 3];
    assert!(
        ended.starts_with("20") && ended.ends_with('Z'),
        "the session ended: {row}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `GET /` of the display at `url` (`http://HOST:PORT/?token=...`), body and all.
async fn get_page(url: &str) -> String {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    tcp.write_all(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut page = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut page))
        .await
        .unwrap()
        .unwrap();
    page
}
