//! Helpers shared by the emulated-BlueZ tests (each test file is its own process, because the
//! bus address is process-wide).

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own subset

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_drivers::ble::bluez::BluezCentral;
use vigil_drivers::{BleTarget, DeviceSpec, DriverEvent, DriverEventKind, Transport};
use vigil_protocol::{Format, Vital};
use vigil_simulator::bluez::available;

pub fn can_run() -> bool {
    if available() {
        return true;
    }
    if std::env::var_os("VIGIL_REQUIRE_BLUEZ_EMULATION").is_some() {
        panic!("the emulated BlueZ tests need dbus and python3-dbusmock: apt-get install -y dbus python3-dbusmock");
    }
    eprintln!("NOT RUN: the emulated BlueZ tests need dbus and python3-dbusmock; CI runs them");
    false
}

pub async fn next_matching<T>(
    rx: &mut mpsc::Receiver<DriverEvent>,
    mut want: impl FnMut(&DriverEventKind) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("in time")
            .expect("driver running");
        if let Some(t) = want(&e.kind) {
            return t;
        }
    }
}

pub fn heart_rate(k: &DriverEventKind) -> Option<f64> {
    match k {
        DriverEventKind::Readings(rs) => rs
            .iter()
            .find(|r| r.vital == Vital::HeartRate)?
            .value
            .number(),
        _ => None,
    }
}

pub fn strap(
    central: Arc<BluezCentral>,
    name: &str,
) -> (
    mpsc::Receiver<DriverEvent>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let spec = DeviceSpec {
        id: "hr-strap".into(),
        format: Format::BleHeartRate,
        transport: Transport::Ble(BleTarget::Name(name.into())),
    };
    let (_handle, task) = vigil_drivers::spawn(spec, central, tx, cancel.clone());
    (rx, cancel, task)
}
