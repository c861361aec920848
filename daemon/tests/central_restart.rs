//! A room's alarm steps survive its own restart while NATS is down (issue 18: "keeps what it
//! could not publish, from its session record, and publishes it in order on reconnect"): the
//! real `vigil run` records a link change and an alarm step with NATS unreachable, is killed
//! (`kill -9`), starts again, and when NATS comes back the central station shows them, in the
//! recorded order, with their original times, exactly once. Needs `nats-server` (NOT RUN
//! without it, a failure with `VIGIL_REQUIRE_NATS=1`).

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../tests/src/nats.rs"]
#[allow(dead_code)]
mod nats;

use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use vigil_protocol::display::UserInfo;

/// For `nats.rs`: a number for a fresh temporary folder.
fn fastrand_u64() -> u64 {
    fastrand::u64(..)
}

/// The record's alarm steps: (alarm id, event, since) in recorded order.
fn recorded_alarms(db: &std::path::Path) -> Vec<(String, String, String)> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare(
        "SELECT alarm_id, event, json_extract(alarm, '$.since') FROM alarm_events ORDER BY rowid",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_steps_recorded_while_nats_was_down_survive_kill_9_and_reach_the_central_once_in_order(
) {
    let Some(mut nats) = nats::NatsServer::start().await else {
        return;
    };
    // The central runs first, with its durable consumer on the site's stream.
    let central_toml = format!(
        "listen = \"127.0.0.1:0\"\nsite = \"clinic\"\n[nats]\nnats = \"{}\"\n\
         action_key = \"site-action-key-0123456789\"\n\
         [[user]]\nname = \"Dr Lee\"\nrole = \"provider\"\ntoken = \"provider-token-0123456789\"\n",
        nats.url()
    );
    let config = vigil_daemon::config::CentralConfig::parse(
        &central_toml,
        "central.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    let consumer = config.consumer();
    let central = vigil_daemon::station::Central::start(config).await.unwrap();
    let user = UserInfo {
        name: "Dr Lee".into(),
        role: "provider".into(),
    };
    let (_, mut frames) = central.hub.subscribe(&user);
    let client = nats.client().await;
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = match js.get_stream("VIGIL_CLINIC").await {
            Ok(stream) => stream.consumer_info(&consumer).await.is_ok(),
            Err(_) => false,
        };
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the central never made its consumer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // NATS goes down; the room runs alone: its oximeter is missing, so it records the link
    // change at once and raises `device-disconnected` 5 s later.
    nats.kill();
    let dir = std::env::temp_dir().join(format!("vigil-central-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("vigil.db");
    let mut config = common::missing_oximeter_config(&dir, "room = \"Room 1\"");
    config.push_str(&format!(
        "[central]\nnats = \"{}\"\naction_key = \"site-action-key-0123456789\"\n",
        nats.url()
    ));
    let path = dir.join("vigil.toml");
    std::fs::write(&path, config).unwrap();
    let mut first = common::start_run(&path).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let recorded = loop {
        let alarms = recorded_alarms(&db);
        if !alarms.is_empty() {
            break alarms;
        }
        assert!(Instant::now() < deadline, "no alarm step recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    first.child.kill().await.unwrap(); // SIGKILL: nothing flushed, nothing said
    let _ = first.log.await;
    let (id, event, since) = recorded[0].clone();
    assert_eq!(event, "raised");

    // The room starts again, still alone; then NATS is back.
    let mut second = common::start_run(&path).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.restart().await;

    // At the central: the first run's link change and alarm step, published from the record
    // before the second run's snapshot, with their original time; each once.
    let mut before_snapshot: Vec<Value> = Vec::new();
    let mut steps_of_the_alarm = Vec::new();
    let mut snapshot_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    while snapshot_at.is_none_or(|at| at.elapsed() < Duration::from_secs(3)) {
        assert!(
            Instant::now() < deadline,
            "the room's messages never reached the central: {before_snapshot:#?}"
        );
        let frame = match tokio::time::timeout(Duration::from_millis(500), frames.recv()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => panic!("the central's broadcast: {e}"),
            Err(_) => continue,
        };
        let m: Value = serde_json::from_str(&frame).unwrap();
        if m["room"] != "room-1" {
            continue;
        }
        if m["type"] == "alarm" && m["alarm"]["id"] == id.as_str() && m["event"] == "raised" {
            steps_of_the_alarm.push(m.clone());
        }
        if m["type"] == "snapshot" {
            snapshot_at.get_or_insert_with(Instant::now);
        } else if snapshot_at.is_none() && matches!(m["type"].as_str(), Some("alarm" | "device")) {
            before_snapshot.push(m);
        }
    }
    common::stop_cleanly(&mut second.child).await;
    let log = second.log.await.unwrap();
    assert_eq!(
        steps_of_the_alarm.len(),
        1,
        "the alarm step exactly once: {steps_of_the_alarm:#?}"
    );
    assert_eq!(steps_of_the_alarm[0]["alarm"]["since"], since.as_str());
    let order: Vec<(String, String)> = before_snapshot
        .iter()
        .map(|m| match m["type"].as_str() {
            Some("alarm") => (
                m["alarm"]["id"].as_str().unwrap().to_string(),
                m["event"].as_str().unwrap().to_string(),
            ),
            _ => (
                m["device"].as_str().unwrap().to_string(),
                m["link"].as_str().unwrap().to_string(),
            ),
        })
        .collect();
    // First the first run's, then the second run's own link change (its oximeter is missing
    // too), which the snapshot includes and so follows. Until the central read message ids'
    // boots (X6) it dropped that one as already applied.
    assert_eq!(
        order[..2],
        [
            ("oximeter-1".to_string(), "disconnected".to_string()),
            (id.clone(), "raised".to_string()),
        ],
        "in recorded order, before the restarted room's snapshot"
    );
    assert!(
        order[2..]
            .iter()
            .all(|step| *step == ("oximeter-1".to_string(), "disconnected".to_string())),
        "after them only the second run's own link change: {order:?}"
    );
    assert!(
        log.contains("publishing to the central station what the last run recorded"),
        "{log}"
    );
    central.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
