//! Attacks on the daemon's network side, in-process on loopback, each with a display that must
//! keep its heartbeats and still get in: idle and stalled connections, stalled TLS handshakes,
//! token guessing, floods of every frame kind, invalid UTF-8, foreign origins, and `/metrics`.
//!
//! Each test asserts behaviour (what is held, refused, closed; what the display sees) and prints
//! its figures (`cargo test -p vigil-tests --test abuse_network -- --nocapture
//! --test-threads=1`): connections held and refused, the display's worst heartbeat gap, and
//! this process's RSS (daemon and attackers both) before and after.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use vigil_daemon::daemon::Options;
use vigil_tests::attack::*;
use vigil_tests::browser::Browser;
use vigil_tests::{Display, Room, NURSE, PROVIDER, VIEWER};

/// The default caps (`[limits]`).
const MAX_UNAUTHENTICATED: f64 = 64.0;

fn report(attack: &str, lines: &[String]) {
    println!("== {attack}");
    for l in lines {
        println!("   {l}");
    }
}

fn gap(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_then_closed_after_10_s_and_displays_still_get_in() {
    let room = Room::start("", Options::default()).await;
    let watcher = Watcher::start(&room, VIEWER).await;
    let rss_before = rss_kib();
    // 1,100 TCP connections that never send a byte, as in the report.
    let mut idle = Vec::new();
    let mut not_connected = 0;
    for _ in 0..1100 {
        match connect_from(ATTACKER, room.daemon.addr).await {
            Ok(s) => idle.push(s),
            Err(_) => not_connected += 1,
        }
    }
    let flood_ended = Instant::now();
    eventually(
        Duration::from_secs(20),
        "the daemon took them all",
        || async {
            let g = gate(&room).await;
            g[1] + g[2] >= idle.len() as f64
        },
    )
    .await;
    let during = gate(&room).await;
    assert!(during[1] <= MAX_UNAUTHENTICATED, "held {during:?}");
    let closed_at_once = idle.iter().filter(|s| closed_by_peer(s)).count();
    assert!(
        closed_at_once as f64 >= idle.len() as f64 - MAX_UNAUTHENTICATED,
        "only {closed_at_once} of {} closed",
        idle.len()
    );
    // A display gets in while the attacker holds all it may.
    let (_nurse, snapshot) = Display::connect(&room, NURSE).await;
    assert_eq!(snapshot["user"]["name"], "Nurse Okafor");
    // Nothing is held past the deadline.
    eventually(
        Duration::from_secs(20),
        "every idle connection closed",
        || {
            let open = idle.iter().filter(|s| !closed_by_peer(s)).count();
            async move { open == 0 }
        },
    )
    .await;
    let held_for = flood_ended.elapsed();
    let after = gate(&room).await;
    // Only this very request is unauthenticated now; both displays are held.
    assert_eq!((after[0], after[1]), (2.0, 1.0), "{after:?}");
    assert!(after[3] >= 1.0, "none closed by the deadline: {after:?}");
    let (beats, worst) = watcher.so_far();
    assert!(beats >= 10, "{beats} heartbeats");
    report(
        "1,100 idle TCP connections from one address",
        &[
            format!("connected {} (kernel refused {not_connected}); daemon held at most {} unauthenticated, closed {} at once (cap), {} at the 10 s deadline", idle.len(), during[1], after[2], after[3]),
            format!("last idle connection closed {:.1} s after the flood ended", held_for.as_secs_f64()),
            format!("viewer's heartbeats: {beats}, worst gap {}; a nurse connected during the attack", gap(worst)),
            format!("RSS {} KiB before, {} KiB after (whole test process)", rss_before, rss_kib()),
        ],
    );
    drop(watcher);
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_thousand_stalled_upgrades_hold_no_more_than_the_cap() {
    let room = Room::start("", Options::default()).await;
    let watcher = Watcher::start(&room, VIEWER).await;
    let rss_before = rss_kib();
    // Upgrade requests that stop before the end of their headers, 200 at a time; the attacker
    // lets go of the ones the daemon closed.
    let addr = room.daemon.addr;
    let attacker = tokio::spawn(async move {
        let stalled = upgrade_head(&format!("?token={NURSE}"), "X-Stalled: 1\r\n");
        let (mut held, mut sent, mut not_connected) = (Vec::new(), 0, 0);
        for _ in 0..40 {
            for _ in 0..200 {
                match connect_from(ATTACKER, addr).await {
                    Ok(s) => {
                        let _ = s.try_write(stalled.as_bytes());
                        held.push(s);
                        sent += 1;
                    }
                    Err(_) => not_connected += 1,
                }
            }
            held.retain(|s| !closed_by_peer(s));
        }
        (sent, not_connected)
    });
    // Meanwhile displays come and go, and every one gets in.
    let (mut displays_in, mut most_held) = (0, 0.0f64);
    while !attacker.is_finished() && displays_in < 1000 {
        let (_d, snap) = Display::connect(&room, PROVIDER).await;
        assert_eq!(snap["type"], "snapshot");
        displays_in += 1;
        most_held = most_held.max(gate(&room).await[1]);
    }
    let (sent, not_connected) = attacker.await.unwrap();
    assert!(displays_in >= 1);
    assert!(most_held <= MAX_UNAUTHENTICATED, "held {most_held}");
    let g = gate(&room).await;
    assert!(
        g[2] >= f64::from(sent) - MAX_UNAUTHENTICATED - 1.0,
        "evicted {} of {sent}",
        g[2]
    );
    let (beats, worst) = watcher.so_far();
    assert!(beats >= 2, "{beats} heartbeats");
    report(
        "8,000 stalled WebSocket upgrades from one address",
        &[
            format!("connected {sent} (kernel refused {not_connected}); daemon held at most {most_held} unauthenticated, closed {} at once (cap)", g[2]),
            format!("{displays_in} displays connected one after another during the attack; all got in"),
            format!("viewer's heartbeats: {beats}, worst gap {}", gap(worst)),
            format!("RSS {} KiB before, {} KiB after (whole test process)", rss_before, rss_kib()),
        ],
    );
    drop(watcher);
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_display_sessions_are_capped_by_max_connections() {
    let room = Room::start(
        "[limits]\nmax_connections = 8\nmax_unauthenticated = 4\n",
        Options::default(),
    )
    .await;
    // Eight sessions with a valid token that never read again fill the daemon.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(Display::connect_slow(&room, VIEWER).await.0);
    }
    // A ninth connection is closed at once: display sessions are never closed to make room.
    let ninth = connect_from(ATTACKER, room.daemon.addr).await.unwrap();
    eventually(Duration::from_secs(10), "the ninth closed", || {
        let closed = closed_by_peer(&ninth);
        async move { closed }
    })
    .await;
    assert!(tokio_tungstenite::connect_async(room.ws_url(NURSE))
        .await
        .is_err());
    // One leaves: a display gets in again.
    drop(stalled.pop());
    let mut tries = 0;
    let nurse = loop {
        tries += 1;
        match tokio_tungstenite::connect_async(room.ws_url(NURSE)).await {
            Ok((ws, _)) => break ws,
            Err(e) => assert!(tries < 100, "never got in: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(nurse);
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_capped_and_closed_after_10_s() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let room = Room::start(
        &format!("[tls]\ncert = \"{fixtures}/cert.pem\"\nkey = \"{fixtures}/key.pem\"\n[limits]\nmax_unauthenticated = 16\n"),
        Options::default(),
    )
    .await;
    let addr = room.daemon.addr;
    let display = || async {
        let (ws, first) = vigil_tests::tls_display(fixtures, addr, NURSE).await;
        assert!(first.contains("\"snapshot\""));
        ws
    };
    let _before = display().await;
    // 200 connections that never send a ClientHello.
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(connect_from(ATTACKER, addr).await.unwrap());
    }
    let flood_ended = Instant::now();
    eventually(Duration::from_secs(10), "all but 16 closed", || {
        let open = silent.iter().filter(|s| !closed_by_peer(s)).count();
        async move { open <= 16 }
    })
    .await;
    // A display still completes its handshake and its upgrade.
    let _during = display().await;
    eventually(
        Duration::from_secs(20),
        "every silent connection closed",
        || {
            let open = silent.iter().filter(|s| !closed_by_peer(s)).count();
            async move { open == 0 }
        },
    )
    .await;
    report(
        "200 silent TLS connections (cap 16)",
        &[
            "184 closed at once by the cap; a display connected over TLS during the attack".into(),
            format!(
                "last silent connection closed {:.1} s after the flood ended",
                flood_ended.elapsed().as_secs_f64()
            ),
        ],
    );
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_slowed_then_refused_per_address() {
    let room = Room::start("", Options::default()).await;
    let watcher = Watcher::start(&room, VIEWER).await;
    let rss_before = rss_kib();
    let addr = room.daemon.addr;
    // 40 guesses at once from one address: five are checked (and answered slowly), then the
    // address is locked out whatever it sends.
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..40).map(|i| async move {
        http(
            ATTACKER,
            addr,
            &upgrade_head(&format!("?token=guess-{i:020}"), ""),
        )
        .await
    }))
    .await;
    let took = started.elapsed();
    let count = |code| answers.iter().filter(|a| status(a) == code).count();
    assert_eq!((count(401), count(429)), (5, 35), "{answers:?}");
    let locked = answers.iter().find(|a| status(a) == 429).unwrap();
    assert!(
        locked.contains("retry-after: 60") || locked.contains("Retry-After: 60"),
        "{locked}"
    );
    // Locked out: even the right token from that address is refused, without being checked.
    let right = http(
        ATTACKER,
        addr,
        &upgrade_head(&format!("?token={NURSE}"), ""),
    )
    .await;
    assert_eq!(status(&right), 429, "{right}");
    // Another address is not affected.
    let (_nurse, snap) = Display::connect(&room, NURSE).await;
    assert_eq!(snap["user"]["role"], "nurse");
    let m = metrics(&room, None).await;
    assert_eq!(sample(&m, "vigil_auth_refused_total{status=\"401\"}"), 5.0);
    assert_eq!(sample(&m, "vigil_auth_refused_total{status=\"429\"}"), 36.0);
    let (beats, worst) = watcher.so_far();
    assert!(beats >= 2, "{beats} heartbeats");
    report(
        "40 token guesses at once from one address",
        &[
            format!("5 answered 401 (the last after 4 s), 35 answered 429 with Retry-After: 60; all answered within {:.1} s", took.as_secs_f64()),
            "a right token from the locked-out address: 429; a nurse elsewhere: in at once".into(),
            format!("viewer's heartbeats: {beats}, worst gap {}", gap(worst)),
            format!("RSS {} KiB before, {} KiB after (whole test process)", rss_before, rss_kib()),
        ],
    );
    drop(watcher);
    room.daemon.shutdown().await;
}

/// Makes one frame of a flood.
type MakeFrame = fn() -> Message;

/// Sends `frame()` as fast as the connection takes it (at most `count`, `every` apart) until the
/// daemon closes the session; returns its close code and how many frames went.
async fn flood(room: &Room, count: usize, every: Duration, frame: MakeFrame) -> (CloseCode, usize) {
    let (ws, _) = tokio_tungstenite::connect_async(room.ws_url(NURSE))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let closed = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| f.code);
            }
        }
        None
    });
    let mut sent = 0;
    while sent < count && !closed.is_finished() {
        if sink.send(frame()).await.is_err() {
            break;
        }
        sent += 1;
        if !every.is_zero() {
            tokio::time::sleep(every).await;
        }
    }
    let code = tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the daemon closes the session")
        .unwrap()
        .expect("with a close frame");
    (code, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_floods_with_any_frame_kind_is_closed_with_1008() {
    let room = Room::start("", Options::default()).await;
    let watcher = Watcher::start(&room, VIEWER).await;
    let rss_before = rss_kib();
    let mut lines = Vec::new();
    let kinds: [(&str, MakeFrame, Duration); 4] = [
        ("text", || Message::Text("x".into()), Duration::ZERO),
        (
            "binary",
            || Message::Binary(vec![1, 2, 3].into()),
            Duration::ZERO,
        ),
        ("ping", || Message::Ping(vec![7].into()), Duration::ZERO),
        // Every other frame gets through at 20 a second: consecutive refusals never add up.
        (
            "text, 20 a second",
            || Message::Text("x".into()),
            Duration::from_millis(50),
        ),
    ];
    for (kind, frame, every) in kinds {
        let started = Instant::now();
        let (code, sent) = flood(&room, 5_000, every, frame).await;
        assert_eq!(code, CloseCode::Policy, "{kind}");
        lines.push(format!(
            "{kind}: closed with 1008 after {sent} frames, {:.2} s",
            started.elapsed().as_secs_f64()
        ));
    }
    let (beats, worst) = watcher.so_far();
    assert!(beats >= 2, "{beats} heartbeats");
    lines.push(format!(
        "viewer's heartbeats: {beats}, worst gap {}",
        gap(worst)
    ));
    // The displays that behave are still served, and a new one gets in.
    let (_d, snap) = Display::connect(&room, PROVIDER).await;
    assert_eq!(snap["type"], "snapshot");
    let m = metrics(&room, None).await;
    assert_eq!(sample(&m, "vigil_flood_closed_total"), 4.0);
    lines.push(format!(
        "RSS {} KiB before, {} KiB after (whole test process)",
        rss_before,
        rss_kib()
    ));
    report("floods from an authenticated display", &lines);
    drop(watcher);
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let room = Room::start("", Options::default()).await;
    let (mut d, _) = Display::connect(&room, NURSE).await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    d.raw().send(Message::Frame(bad)).await.unwrap();
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), d.raw().next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Invalid));
    room.daemon.shutdown().await;
}

async fn upgrade_with_origin(room: &Room, origin: &str) -> Result<(), u16> {
    let mut request = room.ws_url(NURSE).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn pages_of_other_sites_cannot_open_the_display() {
    let room = Room::build(
        "allowed_origins = [\"https://vigil.clinic.example\"]\n",
        "",
        Options::default(),
    )
    .await;
    let own = format!("http://{}", room.daemon.addr);
    assert_eq!(upgrade_with_origin(&room, &own).await, Ok(()));
    assert_eq!(
        upgrade_with_origin(&room, "https://vigil.clinic.example").await,
        Ok(())
    );
    for foreign in [
        "http://evil.example",
        "null",
        &format!("http://{}.evil.example", room.daemon.addr),
    ] {
        assert_eq!(
            upgrade_with_origin(&room, foreign).await,
            Err(403),
            "{foreign}"
        );
    }
    let m = metrics(&room, None).await;
    assert_eq!(sample(&m, "vigil_origin_refused_total"), 3.0);
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn metrics_require_the_metrics_token_when_one_is_set() {
    let token = "scrape-token-0123456789";
    let room = Room::build(
        &format!("metrics_token = \"{token}\"\n"),
        "",
        Options::default(),
    )
    .await;
    assert_eq!(status(&metrics(&room, None).await), 401);
    assert_eq!(status(&metrics(&room, Some(NURSE)).await), 401);
    let ok = metrics(&room, Some(token)).await;
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(
        ok.contains("vigil_connections{state=\"unauthenticated\"} 1"),
        "{ok}"
    );
    // Without a metrics token, /metrics is open (the default listen is loopback).
    let open = Room::start("", Options::default()).await;
    assert_eq!(status(&metrics(&open, None).await), 200);
    room.daemon.shutdown().await;
    open.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_takes_the_token_out_of_the_address_bar() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let room = Room::start("", Options::default()).await;
    let base = format!("http://{}", room.daemon.addr);
    let page = browser.open(&format!("{base}/?token={NURSE}")).await;
    // Signed in (through the Origin check: the page's own origin), and the token is gone from
    // the address bar but kept for this tab.
    browser
        .wait_for(
            &page,
            "document.querySelector('#who').textContent.includes('Nurse Okafor')",
            Duration::from_secs(10),
            "signed in",
        )
        .await;
    assert_eq!(
        browser.eval(&page, "location.href").await,
        format!("{base}/")
    );
    assert_eq!(
        browser
            .eval(&page, "sessionStorage.getItem('vigil-token')")
            .await,
        NURSE
    );
    // A reload signs in again from the tab's storage.
    browser
        .eval(&page, "window.beforeReload = true; location.reload()")
        .await;
    browser
        .wait_for(
            &page,
            "!window.beforeReload && document.querySelector('#who').textContent.includes('Nurse Okafor')",
            Duration::from_secs(10),
            "signed in again after a reload",
        )
        .await;
    room.daemon.shutdown().await;
}
