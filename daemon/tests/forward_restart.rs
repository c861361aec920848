//! The forward's queue survives a peer outage of an hour and a `kill -9` of the daemon: an
//! hour of readings and two alarm steps wait in the record, the real `vigil run` sends part of
//! them, is killed, and the next `vigil run` sends the rest, in order, to a fake interface engine
//! over real TCP.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../tests/src/hl7_engine.rs"]
#[allow(dead_code)]
mod hl7_engine;

use hl7_engine::{control, Answer, Engine};
use rusqlite::params;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SECONDS: i64 = 3600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_pending_messages_survives_kill_9_and_arrives_in_order() {
    let dir = std::env::temp_dir().join(format!("vigil-forward-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("vigil.db");
    // An hour of an oximeter at 1 Hz, recorded while the interface engine was down, with an
    // alarm raised and cleared in the middle; nothing acknowledged by the engine yet.
    let start = 1_795_400_000_000i64;
    {
        let mut conn = vigil_daemon::storage::open(&db).unwrap();
        let session = vigil_daemon::storage::resume_or_start(&conn, "Room 1", "{}")
            .unwrap()
            .session;
        let tx = conn.transaction().unwrap();
        for s in 0..SECONDS {
            let at = start + s * 1000;
            tx.execute(
                "INSERT INTO readings (session, device, vital, value, unit, mdc, flags, received_at) VALUES
                 (?1, 'oximeter-1', 'spo2', ?2, '%', 150456, '[]', ?3),
                 (?1, 'oximeter-1', 'pulse_rate', ?4, 'bpm', 149530, '[]', ?3)",
                params![session, 90 + s % 10, at, 60 + s % 30],
            )
            .unwrap();
            if s == 1800 || s == 1830 {
                let (event, state) = if s == 1800 {
                    ("raised", "active")
                } else {
                    ("cleared", "cleared")
                };
                let alarm = serde_json::json!({"id": "spo2-low#1", "rule": "spo2-low", "kind": "physiological",
                    "vital": "spo2", "device": "oximeter-1", "priority": "medium", "message": "SpO2 below 90%",
                    "state": state, "since": "2026-11-23T02:43:20.000Z", "latching": false,
                    "awaiting_confirmation": false, "value": 86.0});
                tx.execute(
                    "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at) VALUES (?1, 'spo2-low#1', ?2, ?3, 'medium', ?4, ?5)",
                    params![session, event, state, alarm.to_string(), at + 500],
                )
                .unwrap();
            }
        }
        tx.execute(
            "INSERT INTO forward_progress (forward, reading_after, block_done, alarm_after) VALUES ('ris', 0, 0, 0)",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }

    // The engine accepts the first 1000 messages, then stalls (the daemon dies mid-way) until
    // told to accept again.
    let answered = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(AtomicUsize::new(1000));
    let (count, accept) = (answered.clone(), limit.clone());
    let engine = Engine::start(0, Duration::ZERO, move |_, _| {
        if count.fetch_add(1, Ordering::SeqCst) < accept.load(Ordering::SeqCst) {
            Answer::Accept
        } else {
            Answer::Stall
        }
    })
    .await;
    let mut config = common::missing_oximeter_config(&dir, "room = \"Room 1\"");
    config.push_str(&format!(
        "[[forward]]\nname = \"ris\"\nhl7 = \"{}\"\n",
        engine.addr
    ));
    let path = dir.join("vigil.toml");
    std::fs::write(&path, config).unwrap();

    let mut first = common::start_run(&path).await;
    engine
        .until(Duration::from_secs(60), |s| {
            s.accepted.len() == 1000 && s.messages.len() == 1001
        })
        .await;
    first.child.kill().await.unwrap(); // SIGKILL: no shutdown, no session end
    let log = first.log.await.unwrap();

    limit.store(usize::MAX, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let mut second = common::start_run(&path).await;
    // Every reading second and both alarm steps (the running daemon adds its own alarm steps
    // too: the oximeter is not connected).
    let complete = |s: &hl7_engine::Seen| {
        let controls: Vec<String> = s.accepted.iter().map(|m| control(m)).collect();
        controls.iter().filter(|c| c.starts_with('R')).count() == SECONDS as usize
            && controls.contains(&"A1".to_string())
            && controls.contains(&"A2".to_string())
    };
    engine.until(Duration::from_secs(120), complete).await;
    let drained = started.elapsed();
    common::stop_cleanly(&mut second.child).await;

    let seen = engine.seen.lock().unwrap();
    let controls: Vec<String> = seen.accepted.iter().map(|m| control(m)).collect();
    let mut unique = controls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        controls.len(),
        "every message accepted exactly once"
    );
    // Readings in record order, each second one message with both vitals.
    let readings: Vec<i64> = controls
        .iter()
        .filter_map(|c| c.strip_prefix('R'))
        .map(|r| r.parse().unwrap())
        .collect();
    assert_eq!(readings.len(), SECONDS as usize);
    assert!(
        readings.windows(2).all(|w| w[1] == w[0] + 2),
        "in order, none missing"
    );
    // The alarm steps in their place in time: after the readings of their second.
    let raised = controls.iter().position(|c| c.starts_with('A')).unwrap();
    assert_eq!(raised, 1801, "{:?}", &controls[1795..1805]);
    assert_eq!(control(&seen.accepted[1801]), "A1");
    let cleared = controls.iter().position(|c| c == "A2").unwrap();
    assert_eq!(cleared, 1832, "{:?}", &controls[1828..1836]);
    // The message the killed daemon sent but never heard back about was sent again.
    assert_eq!(control(&seen.messages[1000]), control(&seen.messages[1001]));
    assert_eq!(control(&seen.accepted[1000]), control(&seen.messages[1000]));
    eprintln!(
        "forward drain after restart: {} messages in {:.1} s",
        seen.accepted.len() - 1000,
        drained.as_secs_f64()
    );
    assert!(!log.contains("panicked"), "{log}");
}
