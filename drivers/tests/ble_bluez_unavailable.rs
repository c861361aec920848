//! The real btleplug transport where there is no BlueZ: a clear "no Bluetooth adapter" link
//! state, never a crash. (Its own test binary: it points the process at a bus that is not there.)

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_drivers::ble::bluez::BluezCentral;
use vigil_drivers::ble::{BleError, Central};
use vigil_drivers::{BleTarget, DeviceSpec, DriverEventKind, Link, Transport};
use vigil_protocol::Format;

#[tokio::test]
async fn without_a_system_bus_the_device_reports_no_adapter() {
    std::env::set_var(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/vigil-test-bus",
    );
    let central = BluezCentral::new();
    let err = central.scan(Duration::from_millis(10)).await.unwrap_err();
    assert!(matches!(err, BleError::NoAdapter(_)), "{err:?}");

    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let spec = DeviceSpec {
        id: "hr-strap".into(),
        format: Format::BleHeartRate,
        transport: Transport::Ble(BleTarget::AnyHealthDevice),
    };
    let (_h, task) = vigil_drivers::spawn(spec, Arc::new(central), tx, cancel.clone());
    let reason = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let DriverEventKind::Link(Link::Disconnected { reason }) = e.kind {
            break reason;
        }
    };
    assert!(reason.starts_with("no Bluetooth adapter"), "{reason}");
    cancel.cancel();
    task.await.unwrap();
}
