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
