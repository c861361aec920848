//! The display's breathing tiles and trend panels (issue 17), in a real browser (headless
//! Chromium). No serial or BLE format can carry a respiratory rate or EtCO2, so the readings are
//! the daemon's own `reading` messages handed to the page's message handler, as the WebSocket
//! would deliver them from an HL7 monitor.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;
use std::time::Duration;
use vigil_tests::browser::Browser;
use vigil_tests::{Room, NURSE};

const SECONDS: Duration = Duration::from_secs(10);

/// A `reading` message (docs/display-protocol.md) from `monitor-1`, timed now by the server's
/// clock, as JavaScript.
fn reading(vital: &str, value: f64, unit: &str, mdc: u32) -> String {
    format!(
        "handle({{type: 'reading', device: 'monitor-1', vital: '{vital}', value: {value}, \
         unit: '{unit}', mdc: {mdc}, flags: [], at: new Date(Date.now() + st.offset).toISOString()}}); \
         renderAll();"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breathing_tiles_and_trend_panels_appear_when_a_device_provides_them() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let room = Room::with_overrides("").await;
    room.devices_ready().await;
    let page = browser
        .open(&format!("http://{}/?token={NURSE}", room.daemon.addr))
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#who').textContent.includes('Nurse')",
            SECONDS,
            "signed in",
        )
        .await;
    room.spo2(97, 72);
    browser
        .wait_for(
            &page,
            "document.querySelector('#tile-spo2 .value').textContent === '97'",
            SECONDS,
            "SpO2 shown",
        )
        .await;
    // An oximeter and a cuff give no breathing vitals: no tile, no panel for them.
    let shown =
        "['#tile-rr', '#tile-etco2'].map((s) => document.querySelector(s).offsetHeight > 0)";
    assert_eq!(browser.eval(&page, shown).await, json!([false, false]));
    assert_eq!(
        browser.eval(&page, "st.panels").await,
        json!(["SpO₂ %", "Pulse bpm", "NIBP mmHg"])
    );

    // A monitor sends a rate and EtCO2 in kPa: both tiles, EtCO2 in the device's unit, and
    // the trend in mmHg like the limits drawn on it.
    browser
        .eval(&page, &reading("respiratory_rate", 6.0, "/min", 151_562))
        .await;
    browser
        .eval(&page, &reading("etco2", 7.0, "kPa", 151_708))
        .await;
    assert_eq!(browser.eval(&page, shown).await, json!([true, true]));
    assert_eq!(
        browser
            .eval(
                &page,
                "document.querySelector('#tile-rr .value').textContent"
            )
            .await,
        json!("6")
    );
    assert_eq!(
        browser
            .eval(
                &page,
                "[document.querySelector('#tile-etco2 .value').textContent, \
                  document.querySelector('#tile-etco2 .unit').textContent]"
            )
            .await,
        json!(["7.0", "kPa"])
    );
    assert_eq!(
        browser
            .eval(
                &page,
                "document.querySelector('#tile-rr').classList.contains('stale')"
            )
            .await,
        json!(false)
    );
    assert_eq!(
        browser.eval(&page, "st.panels").await,
        json!(["SpO₂ %", "Pulse bpm", "NIBP mmHg", "RR /min", "EtCO₂ mmHg"])
    );
    assert_eq!(
        browser
            .eval(
                &page,
                "Math.round(st.trend.get('monitor-1|etco2').at(-1)[1] * 10) / 10"
            )
            .await,
        json!(52.5)
    );

    // An apnea alarm is on the rate: the rate's tile flashes High.
    browser
        .eval(
            &page,
            "handle({type: 'alarm', change: 'raised', alarm: {id: 'apnea#9', rule: 'apnea', \
             kind: 'physiological', vital: 'respiratory_rate', device: 'monitor-1', priority: 'high', \
             message: 'No breath detected', state: 'active', since: new Date().toISOString(), \
             latching: false, awaiting_confirmation: false, value: 0}}); renderAll();",
        )
        .await;
    assert_eq!(
        browser
            .eval(
                &page,
                "[document.querySelector('#tile-rr').classList.contains('alarm-high'), \
                  document.querySelector('#tile-etco2').classList.contains('alarm-high')]"
            )
            .await,
        json!([true, false])
    );
    browser.screenshot(&page, "07-breathing").await;
}
