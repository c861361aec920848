//! The Debian package end to end, as a clinic's IT person would use it: build it (and a second
//! build with a higher version), lintian, `systemd-analyze security` and `verify`, `dpkg -i`
//! (maintainer scripts for real: the vigil user and groups, /var/lib/vigil), the shipped
//! configuration refused for its placeholder tokens and saying why, tokens set with
//! `vigil token`, `vigil run` as the vigil user against a simulated oximeter while a display
//! receives readings, a backup taken while it runs, an upgrade to the higher version over the
//! running install with the session record intact, restore (refused while running), and purge
//! (keeping /var/lib/vigil unless removal was confirmed).
//!
//! Needs root, dpkg, cargo-deb, lintian, systemd-analyze and runuser; without them it prints
//! NOT RUN, and fails instead when VIGIL_REQUIRE_PACKAGING=1 (CI). It replaces an installed
//! vigil package only when this test installed it (a marker in /var/lib/vigil).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const MARKER: &str = "/var/lib/vigil/.vigil-package-test";
const DB: &str = "/var/lib/vigil/sessions.db";

fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Runs a step of packaging/test-package.sh; its stdout, or a failure with its output.
fn step(args: &[&str]) -> String {
    let out = sh("packaging/test-package.sh", args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "test-package.sh {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// As the vigil user, the way the service runs.
fn as_vigil(args: &[&str]) -> Output {
    let mut all = vec!["-u", "vigil", "--"];
    all.extend_from_slice(args);
    sh("runuser", &all)
}

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<String> {
    let uid = sh("id", &["-u"]);
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root (dpkg -i)".into());
    }
    for tool in ["dpkg", "lintian", "systemd-analyze", "runuser", "cargo-deb"] {
        if !sh("sh", &["-c", &format!("command -v {tool}")])
            .status
            .success()
        {
            return Some(format!("{tool} is missing"));
        }
    }
    let installed = sh("dpkg-query", &["-W", "-f", "${db:Status-Status}", "vigil"]);
    if String::from_utf8_lossy(&installed.stdout) == "installed" && !Path::new(MARKER).exists() {
        return Some("a vigil package this test did not install is on this machine".into());
    }
    None
}

/// A running `vigil run` (or `vigil-sim run`) as the vigil user, killed when dropped.
struct Process(tokio::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// Starts a command as the vigil user and returns it with its first stdout line.
async fn spawn_as_vigil(args: &[&str]) -> (Process, String) {
    let mut child = tokio::process::Command::new("setpriv")
        .args(["--reuid=vigil", "--regid=vigil", "--init-groups", "--"])
        .args(args)
        .env("VIGIL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{args:?} printed nothing within 15 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("{args:?} ended"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Process(child), first)
}

/// Stops a process with SIGTERM, as systemd does, and waits for it.
async fn stop(mut p: Process) {
    let pid = p.0.id().unwrap().to_string();
    assert!(Command::new("kill").arg(&pid).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), p.0.wait())
        .await
        .expect("stops within 10 s after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// The installed configuration with tokens from `vigil token`, the display on a free port and
/// the simulated oximeter as its only device.
fn configure(port: &str) -> (String, String) {
    let shipped = std::fs::read_to_string("/etc/vigil/vigil.toml").unwrap();
    let mut text = shipped.split("# Devices:").next().unwrap().to_string();
    text = text.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    let mut nurse = String::new();
    for who in ["nurse", "provider", "viewer"] {
        let out = sh("/usr/bin/vigil", &["token"]);
        assert!(out.status.success());
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        text = text.replace(&format!("<{who} token>"), &token);
        if who == "nurse" {
            nurse = token;
        }
    }
    text.push_str(&format!(
        "[[device]]\nid = \"oximeter-1\"\nformat = \"masimo\"\nport = \"{port}\"\n"
    ));
    std::fs::write("/etc/vigil/vigil.toml", &text).unwrap();
    (text, nurse)
}

/// Connects as a display and waits (at most 15 s) for a reading from the simulated oximeter.
async fn display_gets_a_reading(addr: &str, token: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .unwrap();
    let wait = async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "reading" && v["device"] == "oximeter-1" && v["value"].is_number() {
                    return;
                }
            }
        }
        panic!("the display was closed before a reading came");
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .expect("a reading reaches the display within 15 s");
}

/// `vigil run` on the installed configuration, as the vigil user, once a display signed in
/// with `nurse` gets a reading from it.
async fn run_installed(nurse: &str) -> Process {
    let (daemon, line) =
        spawn_as_vigil(&["/usr/bin/vigil", "run", "--config", "/etc/vigil/vigil.toml"]).await;
    let addr = line
        .trim_start_matches("vigil: display at http://")
        .trim_end_matches('/');
    display_gets_a_reading(addr, nurse).await;
    daemon
}

/// `vigil sessions` as the vigil user: (session lines, readings of the oldest session).
fn sessions() -> (usize, u64) {
    let out = as_vigil(&["/usr/bin/vigil", "sessions", "--db", DB]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let oldest = rows.last().map_or(0, |row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        cols[cols.len() - 2].parse().unwrap()
    });
    (rows.len(), oldest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_installs_runs_upgrades_backs_up_and_purges() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("VIGIL_REQUIRE_PACKAGING").as_deref() != Ok("1"),
            "VIGIL_REQUIRE_PACKAGING=1 but {why}"
        );
        eprintln!("NOT RUN: the package test: {why}");
        return;
    }
    if Path::new(MARKER).exists() {
        // A previous run of this test stopped half-way.
        step(&["purge", "remove"]);
    }
    let debs = step(&["build"]);
    let debs: Vec<&str> = debs.lines().collect();
    let (first, second) = (debs[0], debs[1]);
    let score = step(&["lint", first]);
    eprintln!("systemd-analyze security: {}", score.trim());
    eprintln!("{}", step(&["install", first]).trim());
    std::fs::write(MARKER, "").unwrap();

    // The shipped configuration: the service's ExecStartPre refuses it and says why.
    let check = as_vigil(&["/usr/bin/vigil", "check-config", "/etc/vigil/vigil.toml"]);
    let why = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success(),
        "the placeholder tokens were accepted"
    );
    assert!(
        why.contains("token") && why.contains("`vigil token`"),
        "{why}"
    );

    // A simulated oximeter, made by the vigil user (who may then open its pseudo-terminal).
    let sim_dir = PathBuf::from("/tmp/vigil-package-test-sim");
    let _ = std::fs::remove_dir_all(&sim_dir);
    std::fs::create_dir_all(&sim_dir).unwrap();
    assert!(sh("chown", &["vigil:vigil", sim_dir.to_str().unwrap()])
        .status
        .success());
    let (sim, port) = spawn_as_vigil(&[
        "/usr/bin/vigil-sim",
        "run",
        "--scenario",
        "kap-typical",
        "--device",
        "masimo",
        "--speed",
        "1",
        "--link-dir",
        sim_dir.to_str().unwrap(),
    ])
    .await;
    let (_config, nurse) = configure(&port);
    let check = as_vigil(&["/usr/bin/vigil", "check-config", "/etc/vigil/vigil.toml"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let daemon = run_installed(&nurse).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A backup while it runs; restore is refused while it runs.
    let backup = "/var/lib/vigil/backup-test.db";
    let _ = std::fs::remove_file(backup);
    let out = as_vigil(&["/usr/bin/vigil", "backup", "--db", DB, "--to", backup]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_vigil(&["/usr/bin/vigil", "restore", "--from", backup, "--db", DB]);
    assert!(
        !out.status.success(),
        "restore went ahead under a running daemon"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the daemon running"));

    // The upgrade over the running install: configuration kept, then the new daemon starts on
    // the same record (as systemd's restart after the upgrade would).
    eprintln!("{}", step(&["install", second]).trim());
    let kept = std::fs::read_to_string("/etc/vigil/vigil.toml").unwrap();
    assert!(
        kept.contains(&nurse),
        "the upgrade replaced the configuration"
    );
    stop(daemon).await;
    let (before, readings) = sessions();
    assert!(
        before >= 1 && readings > 0,
        "{before} sessions, {readings} readings"
    );
    let daemon = run_installed(&nurse).await;
    stop(daemon).await;
    // The same session goes on (the upgrade's marker), with more readings than before.
    let (after, oldest) = sessions();
    assert_eq!(after, before, "the upgrade split the session");
    assert!(
        oldest > readings,
        "{oldest} readings after the upgrade, {readings} before"
    );
    assert!(!Path::new("/var/lib/vigil/.vigil-upgrading").exists());
    drop(sim);

    // Restore once stopped: the record is the backup's again.
    let out = as_vigil(&["/usr/bin/vigil", "restore", "--from", backup, "--db", DB]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sessions().0, before, "the restored record");

    // Purge keeps the record unless removal was confirmed.
    eprintln!("{}", step(&["purge", "keep"]).trim());
    assert!(Path::new(DB).exists(), "purge removed the session record");
    step(&["install", first]);
    eprintln!("{}", step(&["purge", "remove"]).trim());
    assert!(!Path::new("/var/lib/vigil").exists());
}
