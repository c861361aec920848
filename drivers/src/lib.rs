//! Vigil's device drivers: the only crate that touches hardware.
//!
//! A driver owns one device. It opens the transport (a serial port or a BLE peripheral), feeds
//! the bytes to the format's decoder, sends readings, device events and link events to the core,
//! speaks to the device where the format needs it (start commands, keep-alives, NIBP cycles),
//! and reconnects with capped, jittered backoff until it is cancelled.

pub mod backoff;
pub mod ble;
mod events;
pub mod hl7;
mod report;
pub mod serial;
pub mod supervise;
pub mod tally;
pub mod udp;
pub mod usb;

pub use events::{Command, CommandError, DeviceHandle, DriverEvent, DriverEventKind, Link};

use std::path::PathBuf;
use vigil_protocol::serial::LineSettings;
use vigil_protocol::Format;

/// One device as the daemon configures it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// The device's id, e.g. `oximeter-1`.
    pub id: String,
    /// Its wire format.
    pub format: Format,
    /// How to reach it.
    pub transport: Transport,
}

/// How to reach a device.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A serial port (RS-232 or USB-serial).
    Serial(SerialSpec),
    /// A Bluetooth LE peripheral.
    Ble(BleTarget),
    /// HL7 over MLLP/TCP, listening or dialling.
    Hl7(hl7::Hl7Spec),
    /// A monitor on the LAN, one message per datagram (IntelliVue data export).
    Udp(udp::UdpSpec),
}

/// Which serial port, and its line settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialSpec {
    /// The port.
    pub port: PortSelector,
    /// Line settings (default: the format's documented ones).
    pub line: LineSettings,
}

/// A serial port by path, or by USB identity so that a re-enumerated cable is found again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSelector {
    /// A device path such as `/dev/ttyUSB0` or a stable symlink.
    Path(PathBuf),
    /// The first tty whose USB device matches.
    Usb(usb::UsbId),
}

/// Which BLE peripheral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BleTarget {
    /// By address, e.g. `C0:FF:EE:00:00:01`.
    Address(String),
    /// By advertised name (substring match).
    Name(String),
    /// Any peripheral advertising the Heart Rate, Blood Pressure or Pulse Oximeter service.
    AnyHealthDevice,
}

/// Starts the driver for one device on the current tokio runtime, restarted if it panics (see
/// [`supervise`]). BLE devices use `central`; the driver stops when `cancel` fires or the
/// receiver of `events` is dropped.
pub fn spawn(
    spec: DeviceSpec,
    central: std::sync::Arc<dyn ble::Central>,
    events: tokio::sync::mpsc::Sender<DriverEvent>,
    cancel: tokio_util::sync::CancellationToken,
) -> (DeviceHandle, tokio::task::JoinHandle<()>) {
    let (handle, commands) = DeviceHandle::new(std::sync::Arc::from(spec.id.as_str()));
    let start = {
        let (events, cancel) = (events.clone(), cancel.clone());
        move |commands| -> futures::future::BoxFuture<'static, ()> {
            let (spec, events, cancel) = (spec.clone(), events.clone(), cancel.clone());
            match spec.transport {
                Transport::Serial(_) => Box::pin(serial::run(
                    spec,
                    events,
                    commands,
                    cancel,
                    serial::SystemPaths::default(),
                )),
                Transport::Ble(_) => {
                    Box::pin(ble::run(spec, central.clone(), events, commands, cancel))
                }
                Transport::Hl7(_) => Box::pin(hl7::run(spec, events, commands, cancel)),
                Transport::Udp(_) => Box::pin(udp::run(spec, events, commands, cancel)),
            }
        }
    };
    let task = tokio::spawn(supervise::supervise(
        handle.clone(),
        commands,
        events,
        cancel,
        start,
    ));
    (handle, task)
}
