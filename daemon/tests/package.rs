//! The Debian package end to end, as a clinic's IT person would use it: build it (and a second
//! build with a higher version), lintian, `systemd-analyze security` and `verify`, `dpkg -i`
//! (maintainer scripts for real: the vigil user and groups, /var/lib/vigil), the shipped
//! configuration refused for its placeholder tokens and saying why, tokens set with
//! `vigil token`, `vigil run` as the vigil user against a simulated oximeter while a display
//! receives readings, a backup taken while it runs, an upgrade to the higher version over the
//! running install with the session record intact, restore (refused while running), and purge
//! (keeping /var/lib/vigil unless removal was confirmed). The central station's service too:
//! installed but not enabled (most machines are rooms), its shipped configuration refused for
//! its placeholders, then `vigil central` as the vigil user from the installed files serving its
//! page and `/healthz` before NATS is reached, telling systemd it is ready and feeding the
//! watchdog, and connecting once a `nats-server` (from /usr/sbin, when installed) comes up.
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
const CENTRAL: &str = "/etc/vigil/central.toml";

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

/// Starts a command as the vigil user (with `env` added to its environment) and returns it with
/// its first stdout line.
async fn spawn_as_vigil(args: &[&str], env: &[(&str, &str)]) -> (Process, String) {
    let mut child = tokio::process::Command::new("setpriv")
        .args(["--reuid=vigil", "--regid=vigil", "--init-groups", "--"])
        .args(args)
        .env("VIGIL_LOG", "info")
        .envs(env.iter().copied())
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
    let (daemon, line) = spawn_as_vigil(
        &["/usr/bin/vigil", "run", "--config", "/etc/vigil/vigil.toml"],
        &[],
    )
    .await;
    let addr = line
        .trim_start_matches("vigil: display at http://")
        .trim_end_matches('/');
    display_gets_a_reading(addr, nurse).await;
    daemon
}

/// The installed central configuration with tokens from `vigil token`, its page on a free port
/// and `nats` as its server; returns the provider's token.
fn configure_central(nats: &str) -> String {
    let mut text = std::fs::read_to_string(CENTRAL).unwrap();
    for (shipped, wanted) in [
        (
            "listen = \"127.0.0.1:8081\"",
            "listen = \"127.0.0.1:0\"".to_string(),
        ),
        (
            "nats = \"nats://127.0.0.1:4222\"",
            format!("nats = \"{nats}\""),
        ),
    ] {
        assert!(text.contains(shipped), "{CENTRAL} has no {shipped}");
        text = text.replace(shipped, &wanted);
    }
    let out = sh("/usr/bin/vigil", &["token"]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        text.contains("<site key>"),
        "{CENTRAL} has no action_key placeholder"
    );
    text = text.replace("<site key>", &key);
    let mut provider = String::new();
    for who in ["provider", "nurse", "viewer"] {
        let out = sh("/usr/bin/vigil", &["token"]);
        assert!(out.status.success());
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        text = text.replace(&format!("<{who} token>"), &token);
        if who == "provider" {
            provider = token;
        }
    }
    std::fs::write(CENTRAL, &text).unwrap();
    provider
}

/// `GET path` from `addr`: (status line, body).
async fn get(addr: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The `nats` field of the central's `/healthz` ("connected" or "disconnected").
async fn central_nats(addr: &str) -> String {
    let (status, body) = get(addr, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{body}");
    health["nats"].as_str().unwrap().to_string()
}

/// Waits (at most 10 s) until `socket` has received every one of `wanted` from the process
/// systemd would supervise (`sd_notify` datagrams, as systemd's notify socket receives them).
async fn notified(socket: &tokio::net::UnixDatagram, wanted: &[&str]) {
    let mut seen: Vec<String> = Vec::new();
    let wait = async {
        let mut buf = [0u8; 512];
        while !wanted.iter().all(|w| seen.iter().any(|s| s == w)) {
            let n = socket.recv(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.extend(text.lines().map(str::to_string));
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        panic!("the central did not notify {wanted:?} within 10 s: {seen:?}");
    }
}

/// `vigil central` from the installed files, as the vigil user, the way vigil-central.service
/// runs it: the shipped configuration refused, then accepted with tokens; the page and
/// `/healthz` served before NATS is reached; READY=1 and the watchdog sent to systemd's notify
/// socket; connected once a `nats-server` comes up (when one is installed); stopped by SIGTERM.
/// Returns the provider's token it was configured with.
async fn the_central_runs_from_the_installed_files() -> String {
    let check = as_vigil(&["/usr/bin/vigil", "check-config", CENTRAL]);
    let why = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success(),
        "the central's placeholder tokens were accepted"
    );
    assert!(
        why.contains("central.toml") && why.contains("token") && why.contains("`vigil token`"),
        "{why}"
    );

    // A port for NATS, nothing listening on it yet.
    let nats_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = configure_central(&format!("nats://127.0.0.1:{nats_port}"));
    let check = as_vigil(&["/usr/bin/vigil", "check-config", CENTRAL]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("OK: central"),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // systemd's notify socket, as the unit's Type=notify and WatchdogSec give it.
    let dir = PathBuf::from("/tmp/vigil-package-test-notify");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
    assert!(sh("chown", &["vigil:vigil", path.to_str().unwrap()])
        .status
        .success());
    let (central, line) = spawn_as_vigil(
        &["/usr/bin/vigil", "central", "--config", CENTRAL],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    )
    .await;
    let addr = line
        .trim_start_matches("vigil central: overview at http://")
        .trim_end_matches('/')
        .to_string();
    notified(&socket, &["READY=1", "WATCHDOG=1"]).await;

    // Before NATS: the page, /healthz saying so, and a display signed in with a token.
    let (status, page) = get(&addr, "/").await;
    assert!(
        status.contains("200") && page.contains("<title>Vigil central</title>"),
        "{status}"
    );
    assert_eq!(central_nats(&addr).await, "disconnected");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={provider}"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a first message within 10 s")
        .unwrap()
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["type"], "rooms", "{first}");
    drop(ws);

    match vigil_daemon::station::natsd::find() {
        Some(nats_server) => {
            let store = dir.join("nats");
            let _nats = Process(
                tokio::process::Command::new(nats_server)
                    .args([
                        "-js",
                        "-a",
                        "127.0.0.1",
                        "-p",
                        &nats_port.to_string(),
                        "-sd",
                    ])
                    .arg(&store)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap(),
            );
            let connected = async {
                while central_nats(&addr).await != "connected" {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(20), connected)
                .await
                .expect("the central connects to NATS within 20 s of its start");
            eprintln!("vigil central: connected to nats-server on port {nats_port}");
        }
        None => {
            assert!(
                std::env::var("VIGIL_REQUIRE_NATS").as_deref() != Ok("1"),
                "VIGIL_REQUIRE_NATS=1 but nats-server is not installed"
            );
            eprintln!("NOT RUN: the central's NATS connection: nats-server is not installed");
        }
    }
    stop(central).await;
    let _ = std::fs::remove_dir_all(&dir);
    provider
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
    let installed = step(&["install", first]);
    eprintln!("{}", installed.trim());
    std::fs::write(MARKER, "").unwrap();
    // The central station's service is there but does not start on a room's install.
    assert!(
        installed.contains("vigil-central.service enabled: no"),
        "{installed}"
    );

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

    // The central's machine: its admin configures it, then enables the service.
    let central_provider = the_central_runs_from_the_installed_files().await;
    let enable = sh("systemctl", &["enable", "vigil-central.service"]);
    assert!(
        enable.status.success(),
        "{}",
        String::from_utf8_lossy(&enable.stderr)
    );

    // A simulated oximeter, made by the vigil user (who may then open its pseudo-terminal).
    let sim_dir = PathBuf::from("/tmp/vigil-package-test-sim");
    let _ = std::fs::remove_dir_all(&sim_dir);
    std::fs::create_dir_all(&sim_dir).unwrap();
    assert!(sh("chown", &["vigil:vigil", sim_dir.to_str().unwrap()])
        .status
        .success());
    let (sim, port) = spawn_as_vigil(
        &[
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
        ],
        &[],
    )
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
    let upgraded = step(&["install", second]);
    eprintln!("{}", upgraded.trim());
    let kept = std::fs::read_to_string("/etc/vigil/vigil.toml").unwrap();
    assert!(
        kept.contains(&nurse),
        "the upgrade replaced the configuration"
    );
    // The central's too, and its service stays enabled where the admin enabled it.
    let kept = std::fs::read_to_string(CENTRAL).unwrap();
    assert!(
        kept.contains(&central_provider),
        "the upgrade replaced the central's configuration"
    );
    assert!(
        upgraded.contains("vigil-central.service enabled: yes"),
        "the upgrade disabled the central: {upgraded}"
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
    // A purge forgets that the central was enabled: a new install leaves it off again.
    let reinstalled = step(&["install", first]);
    assert!(
        reinstalled.contains("vigil-central.service enabled: no"),
        "{reinstalled}"
    );
    eprintln!("{}", step(&["purge", "remove"]).trim());
    assert!(!Path::new("/var/lib/vigil").exists());
}
