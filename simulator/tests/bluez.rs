//! The real btleplug path against simulated peripherals on an emulated BlueZ (python-dbusmock)
//! on a private D-Bus bus: scan, connect, subscribe, notifications decoded into readings, link
//! loss, reconnect; and `vigil-sim run --bluez` driving it from a scenario.
//!
//! Needs Debian's `dbus` and `python3-dbusmock`. CI installs them and sets
//! `VIGIL_REQUIRE_BLUEZ_EMULATION`, which makes their absence a failure; elsewhere the tests say
//! they did not run. Each test is its own process (the bus address is process-wide).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, heart_rate, next_matching, strap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_drivers::ble::bluez::BluezCentral;
use vigil_drivers::ble::Central;
use vigil_drivers::{DriverEvent, DriverEventKind, Link};
use vigil_protocol::ble::uuid;
use vigil_protocol::Format;
use vigil_simulator::bluez::{EmulatedBluez, EmulatedPeripheral};

/// Sends a value until the driver decodes one (notifications start once it has subscribed).
async fn notify_until_read(
    p: &mut EmulatedPeripheral,
    rx: &mut mpsc::Receiver<DriverEvent>,
    value: &[u8],
) -> Option<f64> {
    for _ in 0..50 {
        p.notify(uuid::HEART_RATE_MEASUREMENT, value).await.unwrap();
        if let Ok(v) =
            tokio::time::timeout(Duration::from_millis(200), next_matching(rx, heart_rate)).await
        {
            return Some(v);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn btleplug_scans_connects_decodes_and_reconnects() {
    if !can_run() {
        return;
    }
    let bluez = EmulatedBluez::start().await.unwrap();
    let mut p = EmulatedPeripheral::start(
        &bluez.address,
        Format::BleHeartRate,
        "C0:FF:EE:00:00:42",
        "Vigil Emulated HR",
    )
    .await
    .unwrap();
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bluez.address);
    let central = Arc::new(BluezCentral::new());
    let seen = central.scan(Duration::from_millis(500)).await.unwrap();
    let ad = seen
        .iter()
        .find(|a| a.name.as_deref() == Some("Vigil Emulated HR"))
        .expect("the strap is seen");
    assert!(ad.services.contains(&uuid::HEART_RATE_SERVICE), "{ad:?}");

    let (mut rx, cancel, task) = strap(central, "Vigil Emulated");
    next_matching(&mut rx, |k| {
        matches!(k, DriverEventKind::Link(Link::Connected)).then_some(())
    })
    .await;
    assert_eq!(
        notify_until_read(&mut p, &mut rx, &[0x06, 0x48]).await,
        Some(72.0)
    );

    // Out of range: the link drops and reconnecting fails until it is back.
    p.set_in_range(false).await.unwrap();
    next_matching(&mut rx, |k| {
        matches!(k, DriverEventKind::Link(Link::Disconnected { .. })).then_some(())
    })
    .await;
    p.set_in_range(true).await.unwrap();
    next_matching(&mut rx, |k| {
        matches!(k, DriverEventKind::Link(Link::Connected)).then_some(())
    })
    .await;
    assert_eq!(
        notify_until_read(&mut p, &mut rx, &[0x06, 0x50]).await,
        Some(80.0),
        "readings resume"
    );
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}
