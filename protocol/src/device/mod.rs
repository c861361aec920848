//! The device contract: one device's conversation as a sans-IO state machine.
//!
//! A transport pump (serial, BLE, TCP; in `vigil-drivers`) owns the I/O and the clock. It feeds a
//! [`DeviceSession`] the bytes it reads, the commands the room sends and the current time, and
//! drains what the session produces: bytes to write, the next instant it wants to be woken, and
//! observations. Nothing here does I/O or reads a clock (quinn-proto / str0m style), so a device's
//! clinical logic (an NIBP cycle and its timeout, a keep-alive cadence) is unit-tested with plain
//! `Instant` arithmetic.

use crate::format::Decoded;
use std::time::Instant;

/// What the room can ask of a device. On the display's wire (`devices[].commands`) a command is
/// named as the display message that sends it: `start_nibp`, `cancel_nibp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceCommand {
    /// Start a non-invasive blood pressure (cuff) measurement.
    StartNibp,
    /// Stop the cuff measurement in progress (deflate).
    CancelNibp,
}

/// Why a device session refuses a command (the drivers' `CommandError` maps from it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    /// The device's format cannot do this at all.
    #[error("the device does not support this command")]
    NotSupported,
    /// The device is already doing it (a measurement is in progress).
    #[error("the device is busy with a measurement")]
    Busy,
    /// There is nothing to stop: no measurement is in progress.
    #[error("no measurement is in progress")]
    NotRunning,
}

/// One device's conversation, sans-IO (quinn-proto / str0m style): the transport pump feeds it
/// bytes, commands and time, and drains what it produces. `now` is always passed in.
pub trait DeviceSession: Send + std::fmt::Debug {
    /// The transport is up: queue what the device must hear first (Contec start, Nonin format
    /// select, an association request, a first poll, ...).
    fn handle_connected(&mut self, _now: Instant) {}
    /// Bytes from the device: any split of a serial/TCP stream, or one BLE characteristic value.
    fn handle_input(&mut self, bytes: &[u8], now: Instant);
    /// Vigil is shutting down: queue what the device must hear before the port closes (an
    /// IntelliVue association release). Most devices need nothing.
    fn handle_shutdown(&mut self, _now: Instant) {}
    /// A command from the room. Ok means accepted (bytes may now be queued for transmit).
    /// The default refuses every command: most devices only talk.
    fn handle_command(
        &mut self,
        _command: DeviceCommand,
        _now: Instant,
    ) -> Result<(), CommandRefusal> {
        Err(CommandRefusal::NotSupported)
    }
    /// Called at or after the instant `poll_timeout` returned.
    fn handle_timeout(&mut self, _now: Instant) {}
    /// The next bytes to write to the device.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// When `handle_timeout` must next be called (None: no timer).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// The next output: an observation (reading or device event) or a decode error,
    /// i.e. the existing `vigil_protocol::Decoded` (= Result<Observation, DecodeError>).
    fn poll_output(&mut self) -> Option<Decoded>;
}

mod ble;
mod contec;
mod hl7;
mod intellivue;
mod listen;
mod masimo;
mod nonin;
mod suntech;

pub use ble::{BLOOD_PRESSURE, CUFF_PRESSURE, HEART_RATE, PLX_CONTINUOUS, PLX_FEATURES, PLX_SPOT};
pub use contec::{CONTEC, CONTEC_LEGACY};
pub use hl7::HL7;
pub use intellivue::INTELLIVUE;
pub use listen::Listener;
pub use masimo::MASIMO;
pub use nonin::{NONIN_2, NONIN_7, NONIN_8};
pub use suntech::{SuntechSession, NIBP_TIMEOUT, SUNTECH};

use crate::model::Vital;
use crate::serial::LineSettings;
use std::time::Duration;

/// Everything fixed about one format, kept in its module and reached through
/// [`Format::facts`](crate::Format::facts) (the one list is the `formats!` table in `format.rs`).
#[derive(Debug)]
pub struct FormatFacts {
    /// The format's name in the config, `vigil decode --format` and `vigil probe --format`.
    pub name: &'static str,
    /// How the device is reached.
    pub transport: DeviceTransport,
    /// The vitals it sends continuously, so that the alarm engine can tell when they stop being
    /// current. Cuffs and spot-check devices send none continuously.
    pub continuous_vitals: &'static [Vital],
    /// How long it may stay silent before the driver reports "no data"; `None` for
    /// event-driven devices (cuffs, spot checks), which have no cadence to miss.
    pub silence_limit: Option<Duration>,
    /// The commands the room may send it; [`DeviceSession::handle_command`] refuses the others
    /// with [`CommandRefusal::NotSupported`].
    pub commands: &'static [DeviceCommand],
    /// A fresh session for one connection.
    pub session: fn() -> Box<dyn DeviceSession>,
}

impl FormatFacts {
    /// Does the format accept `command` at all?
    pub fn accepts(&self, command: DeviceCommand) -> bool {
        self.commands.contains(&command)
    }
}

/// How a device of a format is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceTransport {
    /// A byte stream on a serial port, with the format's documented line settings.
    Serial(LineSettings),
    /// A Bluetooth LE peripheral.
    Ble(BlePlan),
    /// A TCP connection carrying MLLP-framed messages, accepted (`listen`) or dialled (`connect`).
    Tcp,
}

/// What a BLE format decodes and what its driver subscribes to and reads after connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlePlan {
    /// The GATT characteristic whose values this format decodes.
    pub characteristic: u16,
    /// Characteristics to subscribe to: (16-bit UUID, required). A missing required one ends
    /// the connection with a reason; a missing optional one is skipped.
    pub subscribe: &'static [(u16, bool)],
    /// Characteristics read once after connecting (Battery Level is always read).
    pub read: &'static [u16],
}

/// The continuous-monitor silence limit: Masimo and Nonin #8 send once a second, the others
/// faster.
pub(crate) const CONTINUOUS_SILENCE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    #[test]
    fn every_format_refuses_exactly_the_commands_its_facts_do_not_list() {
        let now = Instant::now();
        for format in Format::ALL {
            for command in [DeviceCommand::StartNibp, DeviceCommand::CancelNibp] {
                let mut session = format.session();
                session.handle_connected(now);
                while session.poll_transmit().is_some() {}
                let answer = session.handle_command(command, now);
                if format.accepts(command) {
                    assert_ne!(
                        answer,
                        Err(CommandRefusal::NotSupported),
                        "{format} {command:?}"
                    );
                } else {
                    assert_eq!(
                        answer,
                        Err(CommandRefusal::NotSupported),
                        "{format} {command:?}"
                    );
                    assert_eq!(
                        session.poll_transmit(),
                        None,
                        "{format}: refused, nothing sent"
                    );
                }
            }
        }
    }

    #[test]
    fn only_continuous_formats_have_a_silence_limit_and_names_are_unique() {
        for format in Format::ALL {
            let facts = format.facts();
            assert_eq!(
                facts.silence_limit.is_some(),
                !facts.continuous_vitals.is_empty(),
                "{format}"
            );
            assert_eq!(facts.name.parse::<Format>(), Ok(format));
            assert_eq!(
                format.is_ble(),
                matches!(facts.transport, DeviceTransport::Ble(_))
            );
        }
        assert!(Format::Suntech.accepts(DeviceCommand::CancelNibp));
    }
}
