//! `vigil check-config` on the shipped example, and `vigil run` stopped by SIGTERM, as a service
//! manager would.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;
use tokio::process::Command;

mod common;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vigil.example.toml");

#[tokio::test]
async fn the_shipped_example_config_checks_out() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config", EXAMPLE])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("OK: room \"Treatment room 2\", 3 device(s), 3 user(s)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_broken_config_lists_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("vigil-run-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    std::fs::write(
        &bad,
        example
            .replace("role = \"nurse\"", "role = \"janitor\"")
            .replace("format = \"suntech\"", "format = \"philips\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(err.contains("user #1 \"Nurse Okafor\".role"), "{err}");
    assert!(err.contains("device #2 \"cuff-1\".format"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn vigil_run_stops_cleanly_on_sigterm() {
    // The example's users and profile, no devices, on a free port.
    let dir = std::env::temp_dir().join(format!("vigil-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let users_and_more = &example[..example.find("[[device]]").unwrap()];
    let config = users_and_more.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    std::fs::write(dir.join("vigil.toml"), config).unwrap();
    let common::Running {
        mut child, addr, ..
    } = common::start_run(&dir.join("vigil.toml")).await;
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
