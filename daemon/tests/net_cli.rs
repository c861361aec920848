//! `vigil run` as a service manager starts it, seen from outside: the open-files limit it runs
//! with, and what it logs about failed authentication.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

mod common;

fn config_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-net-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vigil.toml"),
        common::missing_oximeter_config(&dir, "room = \"Net room\"\nlog_format = \"json\""),
    )
    .unwrap();
    dir
}

/// `vigil run` started by a shell with an open-files soft limit of 512.
async fn start(config: &Path) -> common::Running {
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -Sn 512 && exec \"$0\" run --config \"$1\""])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg(config);
    common::start_command(command).await
}

/// The log's lines whose message contains `what`, as JSON fields.
fn logged(log: &str, what: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|l| l["fields"].clone())
        .filter(|f| f["message"].as_str().is_some_and(|m| m.contains(what)))
        .collect()
}

/// (soft, hard) of "Max open files" in /proc/PID/limits.
fn open_files(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[tokio::test]
async fn vigil_run_raises_its_open_files_limit_to_the_hard_limit_and_logs_it() {
    let dir = config_dir("nofile");
    let common::Running { mut child, log, .. } = start(&dir.join("vigil.toml")).await;
    let (soft, hard) = open_files(child.id().unwrap());
    assert_eq!(soft, hard, "soft limit not raised");
    common::stop_cleanly(&mut child).await;
    let log = log.await.unwrap();
    let lines = logged(&log, "open-files limit");
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0]["open_files"].to_string(), hard, "{log}");
    assert_eq!(lines[0]["was"], 512, "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn failed_authentication_is_logged_once_per_address_per_minute_with_the_count() {
    let dir = config_dir("auth-log");
    let common::Running {
        mut child,
        addr,
        log,
    } = start(&dir.join("vigil.toml")).await;
    // 20 wrong tokens at once from one address.
    let attempts = (0..20).map(|i| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "GET /ws?token=guess-{i:020} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            // The status line is enough; the connection stays open (keep-alive).
            let mut answer = [0u8; 12];
            tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut answer))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    assert!(
        answers
            .iter()
            .all(|a| a == "HTTP/1.1 401" || a == "HTTP/1.1 429"),
        "{answers:?}"
    );
    common::stop_cleanly(&mut child).await;
    let log = log.await.unwrap();
    let lines = logged(&log, "failed authentication");
    // The first at once; the other 19 wait for the next minute's line.
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(
        (&lines[0]["address"], &lines[0]["attempts"]),
        (&serde_json::json!("127.0.0.1"), &serde_json::json!(1)),
        "{log}"
    );
    assert!(!log.contains("guess-"), "a token was logged:\n{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
