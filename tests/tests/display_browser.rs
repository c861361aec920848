//! The provider display in a real browser (headless Chromium) against a daemon with simulated
//! devices. Screenshots of each state go to `target/screenshots/`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;
use std::time::Duration;
use vigil_tests::browser::{Browser, Page};
use vigil_tests::{Room, NURSE, PROVIDER, VIEWER};

const SECONDS: Duration = Duration::from_secs(10);

/// Opens `url` (which carries a token) and waits until the page shows it signed in as `who`.
async fn open_signed_in(browser: &mut Browser, url: &str, who: &str) -> Page {
    let page = browser.open(url).await;
    browser
        .wait_for(
            &page,
            &format!("document.querySelector('#who').textContent.includes('{who}')"),
            SECONDS,
            "signed in",
        )
        .await;
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_display_shows_vitals_alarms_acknowledgements_and_loss_of_communication() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    // SpO2 alarms after 1 s here so that the test does not wait 15 s of real time.
    let room = Room::with_overrides("[rules.spo2-low]\ndelay = \"1s\"\n").await;
    room.devices_ready().await;
    let base = format!("http://{}", room.daemon.addr);

    // The page loads, signs in from the URL, and the numerics follow the devices.
    let nurse = open_signed_in(
        &mut browser,
        &format!("{base}/?token={NURSE}"),
        "Nurse Okafor (nurse)",
    )
    .await;
    room.spo2(97, 72);
    room.bp(128, 82);
    browser
        .wait_for(
            &nurse,
            "document.querySelector('#tile-spo2 .value').textContent === '97'",
            SECONDS,
            "SpO2 shown",
        )
        .await;
    browser
        .wait_for(
            &nurse,
            "document.querySelector('#tile-pulse .value').textContent === '72'",
            SECONDS,
            "pulse shown",
        )
        .await;
    browser
        .wait_for(
            &nurse,
            "document.querySelector('#tile-nibp .value').textContent === '128/82'",
            SECONDS,
            "NIBP shown",
        )
        .await;
    assert_eq!(
        browser
            .eval(
                &nurse,
                "document.querySelector('#tile-spo2').classList.contains('stale')"
            )
            .await,
        json!(false)
    );
    assert_eq!(browser.eval(&nurse, "document.querySelector('#devices .device[data-device=\"oximeter-1\"] .link').textContent").await, json!("connected"));
    // A room with real devices carries no simulated-data banner.
    assert_eq!(
        browser
            .eval(&nurse, "document.querySelector('#simulated').offsetHeight")
            .await,
        json!(0)
    );
    browser.screenshot(&nurse, "01-vitals").await;

    // SpO2 driven down: the alarm appears, and the SpO2 tile takes its colour.
    for _ in 0..4 {
        room.spo2(86, 74);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    browser.wait_for(&nurse, "document.querySelector('#alarms .alarm.p-medium .message')?.textContent.startsWith('SpO2 below 90%')", SECONDS, "SpO2 alarm listed").await;
    browser
        .wait_for(
            &nurse,
            "document.querySelector('#tile-spo2').classList.contains('alarm-medium')",
            SECONDS,
            "tile coloured",
        )
        .await;
    assert_eq!(
        browser
            .eval(&nurse, "document.querySelector('#banner').className")
            .await,
        json!("prio-medium")
    );
    browser.screenshot(&nurse, "02-spo2-alarm").await;

    // A second display (the provider's) and a viewer's screen.
    let provider = browser.open(&format!("{base}/?token={PROVIDER}")).await;
    browser
        .wait_for(
            &provider,
            "document.querySelector('#alarms .alarm.p-medium')",
            SECONDS,
            "provider sees the alarm",
        )
        .await;
    let viewer = browser.open(&format!("{base}/?token={VIEWER}")).await;
    browser
        .wait_for(
            &viewer,
            "document.querySelector('#alarms .alarm.p-medium')",
            SECONDS,
            "viewer sees the alarm",
        )
        .await;
    assert_eq!(
        browser
            .eval(&viewer, "document.querySelector('button.ack') === null")
            .await,
        json!(true),
        "a viewer has no Acknowledge button"
    );
    assert_eq!(
        browser
            .eval(
                &viewer,
                "document.querySelector('#pause').classList.contains('hidden')"
            )
            .await,
        json!(true)
    );
    browser.screenshot(&viewer, "03-viewer").await;

    // The nurse clicks Acknowledge; the provider's page shows her name.
    browser
        .click(&nurse, "#alarms .alarm.p-medium button.ack")
        .await;
    browser.wait_for(&provider, "document.querySelector('#alarms .alarm.p-medium .acked-by')?.textContent.includes('acknowledged by Nurse Okafor')", SECONDS, "acknowledgement on the second display").await;
    browser.wait_for(&provider, "document.querySelector('#alarms .alarm.p-medium .state').textContent.startsWith('acknowledged')", SECONDS, "state").await;
    browser.screenshot(&provider, "04-acknowledged").await;

    // Stopping the daemon: the whole page says so.
    room.daemon.shutdown().await;
    browser
        .wait_for(
            &nurse,
            "document.querySelector('#lost').classList.contains('show')",
            Duration::from_secs(5),
            "loss of communication shown",
        )
        .await;
    let text = browser
        .eval(&nurse, "document.querySelector('#lost').innerText")
        .await;
    assert!(text.as_str().unwrap().contains("CONNECTION LOST"), "{text}");
    assert!(
        text.as_str().unwrap().contains("watch the bedside monitor"),
        "{text}"
    );
    browser.screenshot(&nurse, "05-connection-lost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_a_token_and_refuses_a_wrong_one() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let room = Room::start("", Default::default()).await;
    let page = browser.open(&format!("http://{}/", room.daemon.addr)).await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#signin').classList.contains('show')",
            SECONDS,
            "sign-in asked",
        )
        .await;
    browser.eval(&page, "document.querySelector('#token').value = 'not-a-real-token-000'; document.querySelector('#signin-go').click(); true").await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#signin-error').textContent.includes('not accepted')",
            SECONDS,
            "wrong token refused",
        )
        .await;
    browser.screenshot(&page, "00-sign-in-refused").await;
    browser.eval(&page, &format!("document.querySelector('#token').value = '{NURSE}'; document.querySelector('#signin-go').click(); true")).await;
    browser.wait_for(&page, "!document.querySelector('#signin').classList.contains('show') && document.querySelector('#who').textContent.includes('Nurse Okafor')", SECONDS, "signed in").await;
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_display_shows_the_baseline_when_it_was_taken_and_why_there_is_none() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let room = Room::start("", vigil_daemon::daemon::Options::default()).await;
    room.devices_ready().await;
    let base = format!("http://{}", room.daemon.addr);
    let nurse = open_signed_in(
        &mut browser,
        &format!("{base}/?token={NURSE}"),
        "Nurse Okafor",
    )
    .await;
    // Dose marked with no BP at all: the header says why there is no baseline.
    browser
        .eval(&nurse, "window.confirm = () => true; true")
        .await;
    browser.click(&nurse, "#dose").await;
    browser
        .wait_for(
            &nurse,
            "document.querySelector('#baseline').textContent === 'No baseline: no valid pre-dose BP was taken'",
            SECONDS,
            "why there is no baseline",
        )
        .await;
    // A later valid BP: the nurse sets the baseline from it.
    room.bp(124, 82);
    browser
        .wait_for(
            &nurse,
            "!document.querySelector('#set-baseline').classList.contains('hidden')",
            SECONDS,
            "set-baseline offered",
        )
        .await;
    browser.click(&nurse, "#set-baseline").await;
    browser
        .wait_for(
            &nurse,
            "/^Baseline 124\\/82 taken .+ \\(set by Nurse Okafor\\)$/.test(document.querySelector('#baseline').textContent)",
            SECONDS,
            "baseline shown with its time and who set it",
        )
        .await;
    browser.screenshot(&nurse, "10-baseline-set").await;
    room.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_page_says_its_data_is_simulated() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let args = vigil_daemon::demo::DemoArgs {
        scenario: "demo".into(),
        speed: 1.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: 1,
        db: None,
    };
    let demo = vigil_daemon::demo::Demo::start(&args).await.unwrap();
    let nurse = open_signed_in(
        &mut browser,
        &format!("http://{}/?token={}", demo.daemon.addr, demo.nurse_token),
        "Demo nurse",
    )
    .await;
    assert_eq!(
        browser
            .eval(&nurse, "document.querySelector('#simulated').innerText")
            .await,
        json!("SIMULATED DATA, never a patient")
    );
    assert_eq!(
        browser
            .eval(
                &nurse,
                "document.querySelector('#simulated').offsetHeight > 0"
            )
            .await,
        json!(true),
        "the banner is on screen"
    );
    browser.screenshot(&nurse, "06-demo").await;
    demo.stop().await;
}
