//! `vigil run` under systemd (`Type=notify`, `WatchdogSec`): it says `READY=1` once it serves,
//! then feeds the watchdog (`WATCHDOG=1`) from the core's loop at half `WATCHDOG_USEC`. The
//! test is the service manager: it binds the notify socket itself.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;
use tokio::net::UnixDatagram;

mod common;

#[tokio::test]
async fn vigil_run_reports_ready_and_feeds_the_watchdog() {
    let dir = std::env::temp_dir().join(format!("vigil-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vigil.toml"),
        common::missing_oximeter_config(&dir, "room = \"Systemd room\""),
    )
    .unwrap();
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    // WatchdogSec=2: a keep-alive at least every second.
    let running = common::start_run_with(
        &dir.join("vigil.toml"),
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", "2000000".as_ref()),
        ],
    )
    .await;

    let mut received = Vec::new();
    let mut buf = [0u8; 256];
    let mut watchdogs = 0;
    // Bounded: at most 20 datagrams or 10 s.
    while received.len() < 20 && watchdogs < 3 {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
            .await
            .expect("a notification within 10 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains("WATCHDOG=1") {
            watchdogs += 1;
        }
        received.push(text);
    }
    assert!(
        received.iter().any(|r| r.contains("READY=1")),
        "readiness: {received:?}"
    );
    assert_eq!(watchdogs, 3, "{received:?}");
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
