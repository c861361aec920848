//! Reloads that change the alarm profile, its overrides and the devices while a session runs:
//! limits apply from the next readings, acknowledgements hold, devices join and leave the room.

use super::{connect, tempdir, Ws};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use vigil_daemon::config::Config;
use vigil_daemon::daemon::Daemon;
use vigil_daemon::reload::{Outcome, Reloader};
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_drivers::ble::memory::{PeripheralSpec, SimPeripheral};
use vigil_drivers::ble::CharacteristicInfo;
use vigil_protocol::ble::uuid;

const NURSE: &str = "nurse-token-0123456789abcdef";

/// A room with BLE devices in memory and a patient override file; `devices` are `[[device]]`
/// tables. SpO2 alarms and device loss come after 1 s here, so that the tests wait little.
fn write_room(dir: &Path, overrides: &str, devices: &[&str]) -> PathBuf {
    std::fs::write(
        dir.join("patient.toml"),
        format!("[rules.device-disconnected]\ndelay = \"1s\"\n[rules.spo2-low]\ndelay = \"1s\"\n{overrides}"),
    )
    .unwrap();
    let path = dir.join("vigil.toml");
    std::fs::write(
        &path,
        format!(
            r#"patient_overrides = "patient.toml"
listen = "127.0.0.1:0"
room = "Reload room"
[storage]
path = "record.db"
[[user]]
name = "Nurse Okafor"
role = "nurse"
token = "{NURSE}"
{}
"#,
            devices.join("\n")
        ),
    )
    .unwrap();
    path
}

const OXIMETER: &str = r#"[[device]]
id = "oximeter-1"
format = "ble-plx-continuous"
ble = { name = "Sim Oximeter" }"#;

const CUFF: &str = r#"[[device]]
id = "cuff-1"
format = "ble-blood-pressure"
ble = { name = "Sim Cuff" }"#;

struct Room {
    daemon: Daemon,
    reloader: Reloader,
    oximeter: SimPeripheral,
    cuff: SimPeripheral,
    display: Ws,
    dir: PathBuf,
}

fn peripheral(
    central: &MemoryCentral,
    address: &str,
    name: &str,
    service: u16,
    ch: u16,
) -> SimPeripheral {
    let indicate = ch == uuid::BLOOD_PRESSURE_MEASUREMENT;
    central.add(PeripheralSpec {
        address: address.into(),
        name: name.into(),
        services: vec![service],
        characteristics: vec![CharacteristicInfo {
            uuid: ch,
            notify: !indicate,
            indicate,
            read: false,
        }],
        readable: HashMap::new(),
    })
}

impl Room {
    async fn start(name: &str, overrides: &str, devices: &[&str]) -> Room {
        let dir = tempdir(name);
        let path = write_room(&dir, overrides, devices);
        let central = MemoryCentral::new();
        let oximeter = peripheral(
            &central,
            "C0:FF:EE:00:00:01",
            "Sim Oximeter",
            uuid::PULSE_OXIMETER_SERVICE,
            uuid::PLX_CONTINUOUS,
        );
        let cuff = peripheral(
            &central,
            "C0:FF:EE:00:00:02",
            "Sim Cuff",
            uuid::BLOOD_PRESSURE_SERVICE,
            uuid::BLOOD_PRESSURE_MEASUREMENT,
        );
        let config = Config::load(&path).unwrap();
        let daemon = Daemon::start(config.clone(), Arc::new(central))
            .await
            .unwrap();
        let reloader = Reloader::new(path, config, daemon.live());
        let display = connect(&daemon.addr.to_string(), NURSE).await.unwrap();
        Room {
            daemon,
            reloader,
            oximeter,
            cuff,
            display,
            dir,
        }
    }

    async fn reload(&mut self, overrides: &str, devices: &[&str]) -> Outcome {
        write_room(&self.dir, overrides, devices);
        self.reloader.reload().await
    }

    async fn subscribed(p: &SimPeripheral) {
        for _ in 0..500 {
            if !p.subscriptions().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("simulated device never subscribed");
    }

    fn spo2(&self, spo2: u16) {
        let mut v = vec![0x00];
        v.extend_from_slice(&spo2.to_le_bytes());
        v.extend_from_slice(&72u16.to_le_bytes());
        assert!(self.oximeter.notify(uuid::PLX_CONTINUOUS, &v));
    }

    fn bp(&self, systolic: u16, diastolic: u16) {
        let mut v = vec![0x00];
        for x in [systolic, diastolic, (systolic + 2 * diastolic) / 3] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        assert!(self.cuff.notify(uuid::BLOOD_PRESSURE_MEASUREMENT, &v));
    }

    /// The next display message that `want`s, within 10 s; every message seen is kept in
    /// `seen`.
    async fn until(
        &mut self,
        seen: &mut Vec<Value>,
        mut want: impl FnMut(&Value) -> bool,
    ) -> Value {
        let wait = async {
            while let Some(Ok(message)) = self.display.next().await {
                if let Message::Text(text) = message {
                    let m: Value = serde_json::from_str(&text).unwrap();
                    seen.push(m.clone());
                    if want(&m) {
                        return m;
                    }
                }
            }
            panic!("the display was closed");
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no matching message within 10 s; seen {:?}",
                    seen.iter().rev().take(5).collect::<Vec<_>>()
                )
            })
    }

    /// Sends SpO2 `value` every 200 ms until `want` is seen on the display.
    async fn spo2_until(
        &mut self,
        value: u16,
        seen: &mut Vec<Value>,
        want: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..50 {
            self.spo2(value);
            let got =
                tokio::time::timeout(Duration::from_millis(200), self.until(seen, &want)).await;
            if let Ok(m) = got {
                return m;
            }
        }
        panic!(
            "never seen; last: {:?}",
            seen.iter().rev().take(5).collect::<Vec<_>>()
        );
    }

    /// The (person, target) of each `action` in the record, once it holds one (within 5 s).
    async fn recorded(&self, action: &str) -> Vec<(String, Option<String>)> {
        for _ in 0..50 {
            let db = rusqlite::Connection::open(self.dir.join("record.db")).unwrap();
            let mut stmt = db
                .prepare("SELECT person, target FROM actions WHERE action = ?1 ORDER BY rowid")
                .unwrap();
            let found: Vec<(String, Option<String>)> = stmt
                .query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no {action} in the record");
    }
}

fn raised(rule: &'static str) -> impl Fn(&Value) -> bool {
    move |m| m["type"] == "alarm" && m["event"] == "raised" && m["alarm"]["rule"] == rule
}

fn spo2_limit(snapshot: &Value) -> Option<f64> {
    snapshot["limits"]
        .as_array()?
        .iter()
        .find(|l| l["rule"] == "spo2-low")?["value"]
        .as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_tightening_spo2_low_applied_by_reload_makes_a_fine_reading_alarm() {
    let mut room = Room::start("tighten", "", &[OXIMETER]).await;
    Room::subscribed(&room.oximeter).await;
    let mut seen = Vec::new();
    let first = room.until(&mut seen, |m| m["type"] == "snapshot").await;
    assert_eq!(spo2_limit(&first), Some(90.0));
    // 92 % is fine under the default limit (below 90): no alarm however long it lasts.
    let reading = |m: &Value| m["type"] == "reading" && m["vital"] == "spo2";
    for _ in 0..8 {
        room.spo2_until(92, &mut seen, reading).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !seen.iter().any(raised("spo2-low")),
        "alarm before the reload"
    );

    let outcome = room.reload("below = 94\n", &[OXIMETER]).await;
    assert_eq!(
        outcome,
        Outcome::Applied {
            users: 1,
            live: vec!["alarm profile and overrides"],
            need_restart: vec![]
        }
    );
    // The display is sent the new limit line, then the same 92 % alarms.
    let snapshot = room.until(&mut seen, |m| m["type"] == "snapshot").await;
    assert_eq!(spo2_limit(&snapshot), Some(94.0));
    room.spo2_until(92, &mut seen, raised("spo2-low")).await;
    let changed = room.recorded("profile_changed").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].0, "configuration file");
    assert!(
        changed[0].1.as_deref().unwrap().contains("94"),
        "{changed:?}"
    );
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_alarm_stays_acknowledged_across_a_reload_that_does_not_touch_its_rule() {
    let mut room = Room::start("ack", "", &[OXIMETER]).await;
    Room::subscribed(&room.oximeter).await;
    let mut seen = Vec::new();
    let alarm = room.spo2_until(85, &mut seen, raised("spo2-low")).await;
    let id = alarm["alarm"]["id"].as_str().unwrap().to_string();
    let ack = vigil_protocol::display::ClientMessage::Ack {
        alarm_id: id.clone(),
        request_id: None,
    };
    room.daemon.core().act("Nurse Okafor", ack).await.unwrap();

    // Another rule's limit changes.
    let outcome = room
        .reload("[rules.pr-high]\nabove = 110\n", &[OXIMETER])
        .await;
    assert!(
        matches!(outcome, Outcome::Applied { ref live, .. } if live == &["alarm profile and overrides"]),
        "{outcome:?}"
    );
    let snapshot = room
        .until(&mut seen, |m| {
            m["type"] == "snapshot" && m["limits"].to_string().contains("110")
        })
        .await;
    let alarms = snapshot["alarms"].as_array().unwrap();
    let kept = alarms
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{alarms:?}"));
    assert_eq!(kept["state"], "acknowledged");
    assert_eq!(kept["acknowledged_by"], "Nurse Okafor");
    // It is not announced again while the condition goes on.
    let mark = seen.len();
    for _ in 0..10 {
        room.spo2_until(85, &mut seen, |m| {
            m["type"] == "reading" && m["vital"] == "spo2"
        })
        .await;
    }
    assert!(
        !seen[mark..].iter().any(raised("spo2-low")),
        "re-announced after the reload"
    );
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_added_by_reload_reaches_the_display() {
    let mut room = Room::start("add", "", &[OXIMETER]).await;
    let mut seen = Vec::new();
    let first = room.until(&mut seen, |m| m["type"] == "snapshot").await;
    assert_eq!(first["devices"].as_array().unwrap().len(), 1);

    let outcome = room.reload("", &[OXIMETER, CUFF]).await;
    assert_eq!(
        outcome,
        Outcome::Applied {
            users: 1,
            live: vec!["devices"],
            need_restart: vec![]
        }
    );
    let snapshot = room.until(&mut seen, |m| m["type"] == "snapshot").await;
    assert!(
        snapshot["devices"].to_string().contains("cuff-1"),
        "{snapshot}"
    );
    Room::subscribed(&room.cuff).await;
    room.bp(128, 82);
    room.until(&mut seen, |m| {
        m["type"] == "reading" && m["device"] == "cuff-1" && m["vital"] == "nibp_systolic"
    })
    .await;
    assert_eq!(
        room.recorded("device_added").await,
        [("configuration file".to_string(), Some("cuff-1".to_string()))]
    );
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_removed_by_reload_leaves_without_a_disconnect_alarm() {
    let mut room = Room::start("remove", "", &[OXIMETER, CUFF]).await;
    Room::subscribed(&room.cuff).await;
    Room::subscribed(&room.oximeter).await;
    let mut seen = Vec::new();
    room.bp(128, 82);
    room.until(&mut seen, |m| {
        m["type"] == "reading" && m["device"] == "cuff-1"
    })
    .await;

    let outcome = room.reload("", &[OXIMETER]).await;
    assert_eq!(
        outcome,
        Outcome::Applied {
            users: 1,
            live: vec!["devices"],
            need_restart: vec![]
        }
    );
    let snapshot = room.until(&mut seen, |m| m["type"] == "snapshot").await;
    assert!(
        !snapshot["devices"].to_string().contains("cuff-1"),
        "{snapshot}"
    );
    // Its driver lets go of the device.
    for _ in 0..500 {
        if room.cuff.subscriptions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        room.cuff.subscriptions().is_empty(),
        "the removed device's driver still runs"
    );
    // Well past the disconnect delay (1 s here), the oximeter keeps the room busy and no
    // alarm names the removed device.
    for _ in 0..15 {
        room.spo2_until(97, &mut seen, |m| m["type"] == "reading")
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let raised_any =
        |m: &&Value| m["type"] == "alarm" && m["alarm"]["rule"] == "device-disconnected";
    assert!(
        !seen.iter().any(|m| raised_any(&m)),
        "a disconnect alarm for a device removed on purpose"
    );
    let now = room
        .daemon
        .core()
        .snapshot(vigil_protocol::display::UserInfo {
            name: "t".into(),
            role: "nurse".into(),
        })
        .await
        .unwrap();
    assert!(now.alarms.is_empty(), "{:?}", now.alarms);
    assert_eq!(
        room.recorded("device_removed").await,
        [("configuration file".to_string(), Some("cuff-1".to_string()))]
    );
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_s_active_alarm_ends_and_the_record_says_so() {
    let mut room = Room::start("remove-alarm", "", &[OXIMETER, CUFF]).await;
    Room::subscribed(&room.cuff).await;
    let mut seen = Vec::new();
    // The cuff is lost: its disconnect alarm sounds.
    room.cuff.set_in_range(false);
    let alarm = room
        .until(&mut seen, |m| {
            raised("device-disconnected")(m) && m["alarm"]["device"] == "cuff-1"
        })
        .await;
    let id = alarm["alarm"]["id"].as_str().unwrap().to_string();

    // Someone takes it out of the file: the alarm ends, on the display and in the record.
    let outcome = room.reload("", &[OXIMETER]).await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    room.until(&mut seen, |m| {
        m["type"] == "alarm" && m["event"] == "cleared" && m["alarm"]["id"] == id.as_str()
    })
    .await;
    let snapshot = room.until(&mut seen, |m| m["type"] == "snapshot").await;
    assert!(!snapshot["alarms"].to_string().contains(&id), "{snapshot}");
    let mut cleared = 0;
    for _ in 0..50 {
        let db = rusqlite::Connection::open(room.dir.join("record.db")).unwrap();
        cleared = db
            .query_row(
                "SELECT COUNT(*) FROM alarm_events WHERE alarm_id = ?1 AND event = 'cleared'",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        if cleared > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cleared, 1, "the end of {id} is not in the record");
    room.daemon.shutdown().await;
}
