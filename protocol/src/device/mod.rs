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

/// What the room can ask of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    fn handle_connected(&mut self, now: Instant);
    /// Bytes from the device: any split of a serial/TCP stream, or one BLE characteristic value.
    fn handle_input(&mut self, bytes: &[u8], now: Instant);
    /// A command from the room. Ok means accepted (bytes may now be queued for transmit).
    fn handle_command(
        &mut self,
        command: DeviceCommand,
        now: Instant,
    ) -> Result<(), CommandRefusal>;
    /// Called at or after the instant `poll_timeout` returned.
    fn handle_timeout(&mut self, now: Instant);
    /// The next bytes to write to the device.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// When `handle_timeout` must next be called (None: no timer).
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next output: an observation (reading or device event) or a decode error,
    /// i.e. the existing `vigil_protocol::Decoded` (= Result<Observation, DecodeError>).
    fn poll_output(&mut self) -> Option<Decoded>;
}
