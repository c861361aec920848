//! Helpers shared by the driver tests.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own subset

use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use vigil_drivers::{DriverEvent, DriverEventKind};

/// Waits for the first event that `want` accepts, failing after `within`.
pub async fn expect<T>(
    rx: &mut mpsc::Receiver<DriverEvent>,
    within: Duration,
    mut want: impl FnMut(&DriverEventKind) -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing matching within {within:?}"))
            .expect("driver running");
        if let Some(t) = want(&event.kind) {
            return t;
        }
    }
}

/// The events, handle and cancellation of one driver under test.
pub type Started = (
    mpsc::Receiver<DriverEvent>,
    vigil_drivers::DeviceHandle,
    tokio_util::sync::CancellationToken,
);

/// Spawns the driver for `spec`, with `central` for BLE devices.
pub fn spawn(
    spec: vigil_drivers::DeviceSpec,
    central: vigil_drivers::ble::memory::MemoryCentral,
) -> Started {
    let (tx, rx) = mpsc::channel(1024);
    let cancel = tokio_util::sync::CancellationToken::new();
    let (handle, _task) =
        vigil_drivers::spawn(spec, std::sync::Arc::new(central), tx, cancel.clone());
    (rx, handle, cancel)
}
