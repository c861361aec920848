//! What drivers tell the room core, and what the core may ask of a driver.

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use vigil_protocol::{CommandRefusal, DeviceCommand, DeviceEvent, Reading};

/// The state of a device's link, as a driver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum Link {
    /// Opening the port or looking for the peripheral.
    Connecting,
    /// Open; data may flow.
    Connected,
    /// Lost or never reached.
    Disconnected {
        /// Why, in words a technician can act on.
        reason: String,
    },
    /// Connected but silent for longer than the format's cadence allows.
    NoData {
        /// Seconds since the last byte.
        seconds: u64,
    },
}

/// One thing a driver reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverEvent {
    /// Which device.
    pub device: Arc<str>,
    /// When it was received (monotonic).
    pub at: Instant,
    /// What.
    pub kind: DriverEventKind,
}

/// What a driver reports.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEventKind {
    /// Readings decoded from one chunk or characteristic value (a cuff's systolic, diastolic and
    /// mean arrive together).
    Readings(Vec<Reading>),
    /// A device event (sensor off, low battery, measurement complete, ...).
    Device(DeviceEvent),
    /// A link change.
    Link(Link),
    /// Decoding errors since the last report (reported at most once a second).
    DecodeErrors {
        /// How many.
        count: u64,
        /// The last one, for the log.
        last: String,
    },
}

/// A request to a driver.
#[derive(Debug)]
pub enum Command {
    /// Start an NIBP measurement now.
    StartNibp {
        /// The answer.
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Stop the NIBP measurement in progress.
    CancelNibp {
        /// The answer.
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
}

/// Where a driver sends a command's answer.
pub(crate) type Reply = oneshot::Sender<Result<(), CommandError>>;

impl Command {
    /// What is asked, and where the answer goes.
    pub(crate) fn into_parts(self) -> (DeviceCommand, Reply) {
        match self {
            Command::StartNibp { reply } => (DeviceCommand::StartNibp, reply),
            Command::CancelNibp { reply } => (DeviceCommand::CancelNibp, reply),
        }
    }

    fn new(command: DeviceCommand, reply: Reply) -> Command {
        match command {
            DeviceCommand::StartNibp => Command::StartNibp { reply },
            DeviceCommand::CancelNibp => Command::CancelNibp { reply },
        }
    }
}

/// Why a driver refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The device's format cannot do it.
    #[error("this device cannot start an NIBP measurement; start it at the monitor")]
    NotSupported,
    /// The device is not connected.
    #[error("the device is not connected")]
    NotConnected,
    /// A measurement is already running.
    #[error("an NIBP measurement is already running")]
    Busy,
    /// The device's format cannot stop a measurement.
    #[error("this device cannot stop an NIBP measurement; stop it at the monitor")]
    CancelNotSupported,
    /// There is no measurement to stop.
    #[error("no NIBP measurement is running on this device")]
    NotRunning,
    /// The driver has stopped.
    #[error("the device's driver has stopped")]
    Stopped,
}

impl CommandError {
    /// A device session's refusal of `command`, in the driver's terms.
    pub fn refused(command: DeviceCommand, refusal: CommandRefusal) -> CommandError {
        match (refusal, command) {
            (CommandRefusal::NotSupported, DeviceCommand::StartNibp) => CommandError::NotSupported,
            (CommandRefusal::NotSupported, DeviceCommand::CancelNibp) => {
                CommandError::CancelNotSupported
            }
            (CommandRefusal::Busy, _) => CommandError::Busy,
            (CommandRefusal::NotRunning, _) => CommandError::NotRunning,
        }
    }
}

/// The daemon's handle on a running driver.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    /// The device's id.
    pub id: Arc<str>,
    commands: mpsc::Sender<Command>,
    /// Makes the running driver panic (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Arc<tokio::sync::Notify>,
}

impl DeviceHandle {
    /// A handle and the receiving end the driver reads.
    pub fn new(id: Arc<str>) -> (DeviceHandle, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(8);
        let handle = DeviceHandle {
            id,
            commands: tx,
            #[cfg(feature = "fault-injection")]
            fault: Arc::default(),
        };
        (handle, rx)
    }

    /// Makes the running driver panic, as a bug would (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self) {
        self.fault.notify_one();
    }

    /// Asks the device to start an NIBP measurement.
    pub async fn start_nibp(&self) -> Result<(), CommandError> {
        self.ask(DeviceCommand::StartNibp).await
    }

    /// Asks the device to stop the NIBP measurement in progress.
    pub async fn cancel_nibp(&self) -> Result<(), CommandError> {
        self.ask(DeviceCommand::CancelNibp).await
    }

    /// Sends a command to the driver and waits for its answer.
    pub async fn ask(&self, command: DeviceCommand) -> Result<(), CommandError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::new(command, reply))
            .await
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }
}

/// Sleeps for a reconnect delay, answering commands with "not connected". `Err` when cancelled.
pub(crate) async fn wait_refusing_commands(
    delay: std::time::Duration,
    commands: &mut mpsc::Receiver<Command>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), ()> {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(()),
            _ = &mut sleep => return Ok(()),
            Some(command) = commands.recv() => {
                let _ = command.into_parts().1.send(Err(CommandError::NotConnected));
            }
        }
    }
}
