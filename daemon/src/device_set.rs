//! The device drivers the daemon runs, by device id: started with the daemon, and started or
//! stopped later by a configuration reload.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_drivers::ble::Central;
use vigil_drivers::{DeviceHandle, DeviceSpec, DriverEvent};
use vigil_protocol::Format;

/// The running drivers; each has its own stop token under the daemon's.
pub struct DeviceSet {
    central: Arc<dyn Central>,
    events: mpsc::Sender<DriverEvent>,
    cancel: CancellationToken,
    running: HashMap<String, CancellationToken>,
    tasks: TaskTracker,
}

impl DeviceSet {
    /// Drivers send to `events` and stop with `cancel` (the daemon's shutdown).
    pub fn new(
        central: Arc<dyn Central>,
        events: mpsc::Sender<DriverEvent>,
        cancel: CancellationToken,
    ) -> DeviceSet {
        DeviceSet {
            central,
            events,
            cancel,
            running: HashMap::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Starts the driver of `spec`; returns the handle the core keeps.
    pub fn start(&mut self, spec: &DeviceSpec) -> (DeviceHandle, Format) {
        let stop = self.cancel.child_token();
        let (handle, task) = vigil_drivers::spawn(
            spec.clone(),
            self.central.clone(),
            self.events.clone(),
            stop.clone(),
        );
        self.tasks.spawn(async move {
            let _ = task.await;
        });
        if let Some(old) = self.running.insert(spec.id.clone(), stop) {
            old.cancel();
        }
        (handle, spec.format)
    }

    /// Stops the driver of device `id` (removed from the configuration).
    pub fn stop(&mut self, id: &str) {
        if let Some(stop) = self.running.remove(id) {
            stop.cancel();
        }
    }

    /// Every driver task started, for shutdown to wait on.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }
}
