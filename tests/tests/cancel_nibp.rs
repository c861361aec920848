//! `cancel_nibp` end to end (issue 20): the display learns which devices accept it, a running
//! cuff measurement is stopped and the stop recorded with the person, and a cancel with nothing
//! running or to a device that cannot is refused.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use vigil_tests::Display;

fn count(db: &Path, sql: &str) -> i64 {
    let conn = vigil_daemon::storage::open_read_only(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Sends a device message and returns its answer (`result` or `error`).
async fn ask(display: &mut Display, kind: &str, device: &str, id: &str) -> Value {
    display
        .send(json!({"type": kind, "device": device, "request_id": id}))
        .await;
    display.until(|m| m["request_id"] == id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_nibp_stops_a_running_measurement_and_is_recorded() {
    let dir = std::env::temp_dir().join(format!("vigil-cancel-nibp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let args = vigil_daemon::demo::DemoArgs {
        scenario: "kap-typical".into(),
        speed: 1.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: 1,
        db: Some(db.clone()),
    };
    let demo = vigil_daemon::demo::Demo::start(&args).await.unwrap();
    let url = format!("ws://{}/ws?token={}", demo.daemon.addr, demo.nurse_token);
    let (mut nurse, snapshot) = Display::connect_url(&url).await;
    // The snapshot says what each device accepts: the SunTech cuff both, an oximeter nothing.
    let devices = snapshot["devices"].as_array().unwrap();
    let commands = |id: &str| {
        devices
            .iter()
            .find(|d| d["device"] == id)
            .map(|d| d["commands"].clone())
            .unwrap()
    };
    assert_eq!(
        commands("cuff-serial"),
        json!(["start_nibp", "cancel_nibp"])
    );
    // The simulated cuff's port opens shortly after start: ask until a measurement runs.
    let mut started = false;
    for i in 0..30 {
        let answer = ask(&mut nurse, "start_nibp", "cuff-serial", &format!("s-{i}")).await;
        if answer["type"] == "result" {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(started, "the simulated cuff started a measurement");
    let answer = ask(&mut nurse, "cancel_nibp", "cuff-serial", "c-1").await;
    assert_eq!(answer["type"], "result", "{answer}");
    assert_eq!(answer["action"], "cancel_nibp");
    // Committed before the result was sent: in the record with the person and the device.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM actions WHERE action = 'cancel_nibp' AND target = 'cuff-serial' \
             AND person = 'Demo nurse'"
        ),
        1
    );
    // Nothing runs any more: refused, and not recorded.
    let again = ask(&mut nurse, "cancel_nibp", "cuff-serial", "c-2").await;
    assert_eq!(again["type"], "error", "{again}");
    assert_eq!(again["code"], "refused");
    assert!(
        again["reason"]
            .as_str()
            .unwrap()
            .contains("no NIBP measurement is running"),
        "{again}"
    );
    demo.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn cancel_nibp_to_a_cuff_that_cannot_is_refused_and_it_shows_no_commands() {
    use vigil_daemon::daemon::Options;
    use vigil_tests::{Room, NURSE};
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let (mut nurse, snapshot) = Display::connect(&room, NURSE).await;
    // A BLE cuff: the Blood Pressure service cannot be started or stopped remotely.
    let cuff = snapshot["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "cuff-1")
        .cloned()
        .unwrap();
    assert_eq!(cuff["commands"], Value::Null, "{cuff}");
    let e = ask(&mut nurse, "cancel_nibp", "cuff-1", "c").await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["code"], "refused");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("stop it at the monitor"),
        "{e}"
    );
    room.daemon.shutdown().await;
}
