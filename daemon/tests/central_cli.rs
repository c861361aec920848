//! `vigil check-config` on a central's configuration, and `vigil demo --rooms N`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn check_config(text: &str, name: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("vigil-central-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap()
}

#[test]
fn check_config_knows_a_central_configuration_and_lists_its_problems() {
    let good = "site = \"north\"\n[nats]\nnats = \"nats://127.0.0.1:4222\"\n\
        action_key = \"site-action-key-0123456789\"\n\
        [[user]]\nname = \"Dr Lee\"\nrole = \"provider\"\ntoken = \"provider-token-0123456789\"\n";
    let out = check_config(good, "central.toml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("OK: central for site \"north\", durable consumer \"vigil-central-central\""),
        "{stdout}"
    );
    let bad = "site = \"North\"\nroom = \"Room 1\"\n[nats]\nnats = \"nats://127.0.0.1:4222\"\ncreds = \"x\"\ntoken = \"y\"\n";
    let out = check_config(bad, "bad-central.toml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for needle in [
        "bad-central.toml: site: \"North\" is not a slug",
        "bad-central.toml: room: unknown key",
        "bad-central.toml: nats.token: give one of token",
        "bad-central.toml: user: at least one [[user]] is required",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn the_site_demo_starts_nats_rooms_and_the_central_and_prints_their_urls() {
    if vigil_daemon::station::natsd::find().is_none() {
        assert!(
            std::env::var("VIGIL_REQUIRE_NATS").as_deref() != Ok("1"),
            "VIGIL_REQUIRE_NATS=1 but nats-server is not installed"
        );
        println!("NOT RUN: nats-server not installed (apt-get install nats-server)");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--rooms", "2", "--listen", "127.0.0.1:0"])
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut central, mut rooms, mut nats) = (None, 0, false);
    while central.is_none() || rooms < 2 || !nats {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the demo prints its URLs within 20 s")
            .unwrap()
            .expect("the demo is running");
        let line = line.trim();
        if let Some(url) = line.strip_prefix("central (provider):") {
            central = Some(url.trim().to_string());
        }
        rooms += usize::from(line.starts_with("room ") && line.contains("http://127.0.0.1:"));
        nats |= line.starts_with("nats-server: nats://127.0.0.1:");
    }
    let ws = central
        .unwrap()
        .replacen("http://", "ws://", 1)
        .replacen("/?token=", "/ws?token=", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["type"], "rooms", "{first}");
    assert_eq!(first["user"]["role"], "provider");
    // The simulated rooms publish through nats-server: both rooms' readings reach the central.
    let mut heard = std::collections::BTreeSet::new();
    for room in first["rooms"].as_array().unwrap() {
        if room["state"]["vitals"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
        {
            heard.insert(room["room"].as_str().unwrap().to_string());
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while heard.len() < 2 {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("readings of both rooms within 30 s; heard {heard:?}"))
            .unwrap()
            .unwrap();
        let frame: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
        if frame["type"] == "reading" {
            heard.insert(frame["room"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(heard, ["room-1", "room-2"].map(String::from).into());
    // SIGTERM, as Ctrl-C: the demo stops its nats-server (SIGKILL would leave it running).
    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the demo stops within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn the_nats_server_configurations_in_the_docs_are_valid() {
    let Some(nats) = vigil_daemon::station::natsd::find() else {
        assert!(
            std::env::var("VIGIL_REQUIRE_NATS").as_deref() != Ok("1"),
            "VIGIL_REQUIRE_NATS=1 but nats-server is not installed"
        );
        println!("NOT RUN: nats-server not installed (apt-get install nats-server)");
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = root.join("tests/fixtures/tls");
    let dir = std::env::temp_dir().join(format!("vigil-nats-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["single.conf", "cluster-node.conf", "leaf-site.conf"] {
        let text = std::fs::read_to_string(root.join("docs/nats").join(name)).unwrap();
        // The files name the clinic's paths; the test's certificate and a scratch store stand in.
        let text = text.replace("/var/lib/nats", &dir.join("store").display().to_string());
        let text = pem_paths(&text).iter().fold(text.clone(), |t, path| {
            let fixture = if path.contains("key") {
                "key.pem"
            } else {
                "cert.pem"
            };
            t.replace(path.as_str(), &fixtures.join(fixture).display().to_string())
        });
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(&nats)
            .arg("-c")
            .arg(&file)
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every `/etc/...pem` path in a configuration's text.
fn pem_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (start, _) in text.match_indices("/etc/") {
        let rest = &text[start..];
        if let Some(end) = rest.find(".pem").map(|e| e + 4) {
            if !rest[..end].contains([' ', ',', '\n', '}']) {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}
