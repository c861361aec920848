//! Forwarding to the clinic's systems over real TCP: a fake interface engine (an MLLP server)
//! receives what a running daemon forwards, answers as each test tells it, and checks that
//! nothing comes before the previous message's ACK.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::timeout;
use vigil_daemon::daemon::Options;
use vigil_tests::hl7_engine::{
    control, field, metric, metrics, tls_acceptor, tls_fixture, Answer, Engine, Seen,
};
use vigil_tests::{Display, Room};

const WAIT: Duration = Duration::from_secs(30);

fn options() -> Options {
    Options {
        forward: vigil_daemon::forward::Options {
            max_backoff: Duration::from_millis(200),
            refusal_retry: Duration::from_millis(50),
            poll: Duration::from_millis(50),
            ..vigil_daemon::forward::Options::default()
        },
        ..Options::default()
    }
}

fn forward(port: u16) -> String {
    format!("[[forward]]\nname = \"ris\"\nhl7 = \"127.0.0.1:{port}\"\n")
}

/// (device, MDC code, value, OBX-14) of every OBX of the PCD-01 messages in `messages`.
fn observations(messages: &[String]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for m in messages.iter().filter(|m| m.contains("|ORU^R01^ORU_R01|")) {
        for obx in m.split('\r').filter(|s| s.starts_with("OBX|")) {
            let f: Vec<&str> = obx.split('|').collect();
            let code = f[3].split('^').next().unwrap().to_string();
            out.push((f[18].to_string(), code, f[5].to_string(), f[14].to_string()));
        }
    }
    out
}

/// The same of every numeric reading in the record.
fn recorded(db: &str) -> Vec<(String, String, String, String)> {
    let conn = vigil_daemon::storage::open_read_only(std::path::Path::new(db)).unwrap();
    let mut stmt = conn
        .prepare("SELECT device, mdc, value, received_at FROM readings WHERE value IS NOT NULL AND mdc IS NOT NULL ORDER BY rowid")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?.to_string(),
            r.get::<_, f64>(2)?.to_string(),
            vigil_daemon::pcd::hl7_time(r.get(3)?),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn accepted_obx(seen: &Seen) -> usize {
    observations(&seen.accepted).len()
}

/// Waits until the wall clock is early in a second, so that what follows lands in one.
async fn early_in_a_second() {
    loop {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        if ms < 300 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readings_go_batched_per_device_and_second_one_ack_at_a_time_and_read_back_the_same() {
    let engine = Engine::start(0, Duration::from_millis(100), |_, _| Answer::Accept).await;
    let room = Room::build("", &forward(engine.addr.port()), options()).await;
    room.devices_ready().await;
    early_in_a_second().await;
    for (spo2, pulse) in [(97, 70), (96, 71), (95, 72)] {
        room.spo2(spo2, pulse);
    }
    room.bp(118, 76);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    room.spo2(94, 73);
    engine.until(WAIT, |s| accepted_obx(s) == 11).await;

    {
        let seen = engine.seen.lock().unwrap();
        assert!(
            !seen.sent_before_ack,
            "a message came before the previous ACK"
        );
        // Round trip: the PCD-01 the engine received reads back as exactly the recorded readings.
        let mut got = observations(&seen.accepted);
        let mut want = recorded(&room.db);
        assert_eq!(want.len(), 11);
        got.sort();
        want.sort();
        assert_eq!(got, want);
        // One device and one second per message; the three oximeter frames of one second in one.
        let r01: Vec<&String> = seen
            .accepted
            .iter()
            .filter(|m| m.contains("ORU^R01"))
            .collect();
        for m in &r01 {
            let obs = observations(&[m.to_string()]);
            assert!(obs.iter().all(|o| o.0 == obs[0].0), "one device: {m}");
            assert!(
                obs.iter().all(|o| o.3[..14] == obs[0].3[..14]),
                "one second: {m}"
            );
            assert_eq!(field(m, "MSH", 20), vigil_daemon::pcd::PCD01_PROFILE);
            assert_eq!(field(m, "MSH", 11), "2.6");
        }
        let first = observations(&[r01[0].to_string()]);
        assert_eq!(
            (first[0].0.as_str(), first.len()),
            ("oximeter-1", 6),
            "{r01:?}"
        );
        assert_eq!(
            r01.len(),
            3,
            "oximeter second 1, cuff, oximeter second 2: {r01:?}"
        );
        let controls: Vec<String> = seen.accepted.iter().map(|m| control(m)).collect();
        let mut unique = controls.clone();
        unique.dedup();
        assert_eq!(unique, controls, "each message once");
    }
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn every_alarm_step_goes_as_pcd04_raised_then_acknowledged() {
    let engine = Engine::start(0, Duration::ZERO, |_, _| Answer::Accept).await;
    let room = Room::build("", &forward(engine.addr.port()), options()).await;
    room.devices_ready().await;
    let (mut nurse, _) = Display::connect(&room, "nurse-token-0123456789").await;
    room.bp(205, 100);
    let raised = nurse
        .until(|m| {
            m["type"] == "alarm" && m["event"] == "raised" && m["alarm"]["rule"] == "bp-crisis"
        })
        .await;
    let id = raised["alarm"]["id"].as_str().unwrap().to_string();
    nurse
        .send(json!({"type": "ack", "alarm_id": id, "request_id": "r-1"}))
        .await;
    let r40 = |s: &Seen| -> Vec<String> {
        s.accepted
            .iter()
            .filter(|m| m.contains("ORU^R40") && field(m, "OBR", 2).starts_with(&format!("{id}^")))
            .cloned()
            .collect()
    };
    engine.until(WAIT, |s| r40(s).len() == 2).await;
    let steps = r40(&engine.seen.lock().unwrap());
    let phase = |m: &str| {
        m.split('\r')
            .find(|s| s.contains("MDC_ATTR_EVENT_PHASE"))
            .unwrap()
            .split('|')
            .nth(5)
            .unwrap()
            .to_string()
    };
    let inactivation = |m: &str| {
        m.split('\r')
            .find(|s| s.contains("MDC_ATTR_ALARM_INACTIVATION_STATE"))
            .unwrap()
            .split('|')
            .nth(5)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (phase(&steps[0]), inactivation(&steps[0])),
        ("start".into(), "enabled".into())
    );
    assert_eq!(
        (phase(&steps[1]), inactivation(&steps[1])),
        ("inactivate".into(), "alert-acknowledged".into())
    );
    assert_eq!(
        field(&steps[0], "MSH", 20),
        vigil_daemon::pcd::PCD04_PROFILE
    );
    assert!(
        field(&steps[0], "OBX", 8).contains("PH"),
        "high priority: {}",
        steps[0]
    );
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn after_an_outage_everything_arrives_in_order() {
    // The engine's port, free while it is down.
    let port = Engine::start(0, Duration::ZERO, |_, _| Answer::Accept)
        .await
        .stop()
        .await;
    let room = Room::build("", &forward(port), options()).await;
    room.devices_ready().await;
    let (mut display, snapshot) = Display::connect(&room, "viewer-token-0123456789").await;
    assert_eq!(snapshot["forwards"][0]["forward"], "ris", "{snapshot}");
    assert_eq!(snapshot["forwards"][0]["connected"], false);
    for i in 0..6u16 {
        room.spo2(98 - i, 70 + i);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    room.bp(205, 100); // raises bp-crisis: an alarm step in the queue
    let text = tokio::time::timeout(WAIT, async {
        loop {
            let text = metrics(room.daemon.addr).await;
            if metric(&text, "vigil_forward_pending{forward=\"ris\"}") >= Some(16.0) {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the queue never held the readings and the alarm step");
    assert_eq!(
        metric(&text, "vigil_forward_connected{forward=\"ris\"}"),
        Some(0.0)
    );

    let engine = Engine::start(port, Duration::from_millis(20), |_, _| Answer::Accept).await;
    engine
        .until(WAIT, |s| {
            accepted_obx(s) == 15 && s.accepted.iter().any(|m| m.contains("ORU^R40"))
        })
        .await;
    {
        let seen = engine.seen.lock().unwrap();
        assert!(!seen.sent_before_ack);
        let mut got = observations(&seen.accepted);
        let mut want = recorded(&room.db);
        got.sort();
        want.sort();
        assert_eq!(got, want, "every recorded reading, once");
        // In order: message times never go back, except that an alarm step goes at once,
        // ahead of the readings of the second or two still completing when it happened.
        let ms = |m: &String| -> i64 {
            let t = field(m, "MSH", 6);
            t[8..10].parse::<i64>().unwrap() * 3_600_000
                + t[10..12].parse::<i64>().unwrap() * 60_000
                + (t[12..18].parse::<f64>().unwrap() * 1000.0).round() as i64
        };
        for (i, later) in seen.accepted.iter().enumerate() {
            for earlier in &seen.accepted[..i] {
                if ms(later) < ms(earlier) {
                    assert!(
                        earlier.contains("ORU^R40") && later.contains("ORU^R01"),
                        "only an alarm step may overtake readings: {earlier} before {later}"
                    );
                    assert!(ms(earlier) - ms(later) < 2500, "{earlier} before {later}");
                }
            }
        }
        let rowids = |kind: char| -> Vec<i64> {
            seen.accepted
                .iter()
                .map(|m| control(m))
                .filter(|c| c.starts_with(kind))
                .map(|c| c[1..].parse().unwrap())
                .collect()
        };
        for kind in ['R', 'A'] {
            let r = rowids(kind);
            assert!(r.windows(2).all(|w| w[0] < w[1]), "{kind}: {r:?}");
        }
    }
    let text = metrics(room.daemon.addr).await;
    assert_eq!(
        metric(&text, "vigil_forward_connected{forward=\"ris\"}"),
        Some(1.0)
    );
    // The displays' status line saw the queue grow, then drain once the engine was back.
    display
        .until(|m| {
            m["type"] == "forward" && m["connected"] == false && m["pending"].as_u64() > Some(0)
        })
        .await;
    display
        .until(|m| m["type"] == "forward" && m["connected"] == true && m["pending"] == 0)
        .await;
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_refused_message_is_retried_then_skipped_and_counted_and_the_rest_goes_on() {
    // The first message is always refused (a poison message); the second only once.
    let controls: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen_controls = controls.clone();
    let engine = Engine::start(0, Duration::ZERO, move |m, before| {
        let mut c = seen_controls.lock().unwrap();
        let id = control(m);
        if !c.contains(&id) {
            c.push(id.clone());
        }
        match c.iter().position(|x| *x == id) {
            Some(0) => Answer::Error,
            Some(1) if before == 0 => Answer::Error,
            _ => Answer::Accept,
        }
    })
    .await;
    let room = Room::build("", &forward(engine.addr.port()), options()).await;
    room.devices_ready().await;
    for i in 0..3u16 {
        room.spo2(97 - i, 70);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    engine.until(WAIT, |s| s.accepted.len() >= 2).await;
    let (poison, second) = {
        let c = controls.lock().unwrap();
        (c[0].clone(), c[1].clone())
    };
    {
        let seen = engine.seen.lock().unwrap();
        let times = |id: &str| seen.messages.iter().filter(|m| control(m) == id).count();
        assert_eq!(times(&poison), 3, "refused three times, then skipped");
        assert_eq!(times(&second), 2, "refused once, accepted when sent again");
        assert!(!seen.accepted.iter().any(|m| control(m) == poison));
        assert_eq!(
            control(&seen.accepted[0]),
            second,
            "the queue went on after the skip"
        );
    }
    let text = metrics(room.daemon.addr).await;
    assert_eq!(
        metric(&text, "vigil_forward_refused_total{forward=\"ris\"}"),
        Some(1.0)
    );
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_stalled_engine_slows_neither_the_displays_nor_the_record() {
    let engine = Engine::start(0, Duration::ZERO, |_, _| Answer::Stall).await;
    let room = Room::build("", &forward(engine.addr.port()), options()).await;
    room.devices_ready().await;
    let (mut display, _) = Display::connect(&room, "viewer-token-0123456789").await;
    // The engine takes the first message and never answers it.
    room.spo2(97, 70);
    engine.until(WAIT, |s| !s.messages.is_empty()).await;
    for i in 0..20u16 {
        room.spo2(96, 71 + i);
        // Every reading reaches the display while the forward waits for its ACK.
        display
            .until(|m| {
                m["type"] == "reading"
                    && m["vital"] == "pulse_rate"
                    && m["value"].as_f64() == Some(f64::from(71 + i))
            })
            .await;
    }
    // And the record keeps every one, while the forward's queue holds them all.
    let want = 42.0;
    let text = tokio::time::timeout(WAIT, async {
        loop {
            let text = metrics(room.daemon.addr).await;
            let recorded = recorded(&room.db).len() as f64;
            let pending = metric(&text, "vigil_forward_pending{forward=\"ris\"}");
            if recorded == want && pending == Some(want) {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the record or the queue did not keep every reading");
    assert_eq!(
        metric(&text, "vigil_forward_sent_total{forward=\"ris\"}"),
        Some(0.0)
    );
    assert_eq!(
        engine.seen.lock().unwrap().messages.len(),
        1,
        "one message in flight"
    );
    room.daemon.shutdown().await;
}

// Over TLS (`tls = { ca }`): the engine presents `fixtures/tls/cert.pem`.

#[tokio::test]
async fn a_forward_whose_peer_never_finishes_the_handshake_tries_again() {
    // An engine that accepts TCP and never answers the TLS handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            held.push(tcp);
            if held.len() == 2 {
                return;
            }
        }
    });
    let room = Room::build("", &tls_forward(port, "cert.pem"), options()).await;
    timeout(WAIT, accepted)
        .await
        .expect("the forward waited on the first handshake for ever")
        .unwrap();
    room.daemon.shutdown().await;
}

fn tls_forward(port: u16, ca: &str) -> String {
    format!(
        "[[forward]]\nname = \"ris\"\nhl7 = \"127.0.0.1:{port}\"\ntls = {{ ca = \"{}\" }}\n",
        tls_fixture(ca)
    )
}

#[tokio::test]
async fn a_forward_over_tls_delivers_and_is_acknowledged() {
    let engine = Engine::start_tls(0, Duration::ZERO, tls_acceptor(), |_, _| Answer::Accept).await;
    let room = Room::build("", &tls_forward(engine.addr.port(), "cert.pem"), options()).await;
    room.devices_ready().await;
    room.spo2(97, 70);
    engine.until(WAIT, |s| !s.accepted.is_empty()).await;
    assert!(engine.seen.lock().unwrap().accepted[0].contains("ORU^R01"));
    let text = metrics(room.daemon.addr).await;
    assert!(metric(&text, "vigil_forward_sent_total{forward=\"ris\"}") >= Some(1.0));
    assert_eq!(
        metric(&text, "vigil_forward_connected{forward=\"ris\"}"),
        Some(1.0)
    );
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn a_forward_to_an_engine_its_ca_did_not_issue_sends_nothing_and_shows_the_backlog() {
    let engine = Engine::start_tls(0, Duration::ZERO, tls_acceptor(), |_, _| Answer::Accept).await;
    let room = Room::build(
        "",
        &tls_forward(engine.addr.port(), "other-cert.pem"),
        options(),
    )
    .await;
    room.devices_ready().await;
    for i in 0..3u16 {
        room.spo2(97 - i, 70);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The daemon tried, more than once, and every handshake failed.
    engine.until(WAIT, |s| s.handshake_failures >= 2).await;
    let text = timeout(WAIT, async {
        loop {
            let text = metrics(room.daemon.addr).await;
            if metric(&text, "vigil_forward_pending{forward=\"ris\"}") >= Some(6.0) {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the backlog never showed in /metrics");
    assert_eq!(
        metric(&text, "vigil_forward_sent_total{forward=\"ris\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "vigil_forward_connected{forward=\"ris\"}"),
        Some(0.0)
    );
    assert!(engine.seen.lock().unwrap().messages.is_empty());
    room.daemon.shutdown().await;
}
