//! The central's overview page in a real browser (headless Chromium), with a real
//! `nats-server` and fake rooms. Screenshots go to `target/screenshots/`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;
use std::time::Duration;
use vigil_tests::browser::Browser;
use vigil_tests::fake_room::{central, FakeRoom, PROVIDER};
use vigil_tests::nats::NatsServer;

const SECONDS: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_puts_rooms_in_alarm_first_and_acknowledges_through_the_room() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let central = central(&nats.url()).await;
    let mut one = FakeRoom::start(&nats.url(), "room-1").await;
    let mut two = FakeRoom::start(&nats.url(), "room-2").await;
    one.snapshot().await;
    one.reading("spo2", 97.0).await;
    two.snapshot().await;
    two.reading("spo2", 84.0).await;

    let page = browser
        .open(&format!("http://{}/?token={PROVIDER}", central.addr))
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#who').textContent.includes('Dr Lee (provider)')",
            SECONDS,
            "signed in",
        )
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelectorAll('#rooms .room').length === 2",
            SECONDS,
            "two room tiles",
        )
        .await;
    browser
        .wait_for(&page, "document.querySelector('#rooms .room[data-room=\"room-1\"] .vital .value').textContent === '97'", SECONDS, "room 1's SpO2")
        .await;
    // Room 2 raises a high alarm: its tile comes first, in the high colour, and the banner flashes.
    two.alarm("spo2-low#1", "2026-11-29T10:00:01.000Z").await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#rooms .room').dataset.room === 'room-2'",
            SECONDS,
            "room 2 first",
        )
        .await;
    assert_eq!(
        browser
            .eval(
                &page,
                "document.querySelector('#rooms .room').classList.contains('alarm-high')"
            )
            .await,
        json!(true)
    );
    assert_eq!(
        browser
            .eval(&page, "document.querySelector('#banner').className")
            .await,
        json!("prio-high")
    );
    browser.screenshot(&page, "central-overview-alarm").await;
    // Its detail view shows the room's trend from the session's start (two hours ago), asked of
    // the room, and acknowledges through the room, with the person.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = (now - 2 * 3600 * 1000) / 30_000 * 30_000;
    two.answer_trends((0..240).map(|i| (start + i * 30_000, 90.0)).collect())
        .await;
    browser
        .click(&page, "#rooms .room[data-room=\"room-2\"]")
        .await;
    browser
        .wait_for(
            &page,
            &format!(
                "(st.rooms.get('room-2').trend.get('oximeter-1|spo2') || [[0]])[0][0] === {start}"
            ),
            SECONDS,
            "the room's trend from the session's start",
        )
        .await;
    browser.screenshot(&page, "central-detail-trend").await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#d-alarms .alarm[data-id=\"spo2-low#1\"] .ack') !== null",
            SECONDS,
            "the alarm in the detail view",
        )
        .await;
    browser
        .click(&page, "#d-alarms .alarm[data-id=\"spo2-low#1\"] .ack")
        .await;
    let deadline = tokio::time::Instant::now() + SECONDS;
    while two.requests.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = two.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["type"], "ack");
    assert_eq!(requests[0]["user"], "Dr Lee");
    assert!(one.requests.lock().unwrap().is_empty());
    // The central stops: the page says CONNECTION LOST.
    central.stop().await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#lost').classList.contains('show')",
            SECONDS,
            "CONNECTION LOST",
        )
        .await;
    browser.screenshot(&page, "central-connection-lost").await;
}
