//! Vigil's protocol crate: the data model, sans-IO decoders and encoders for the wire formats of
//! bedside and consumer vitals monitors, and the display protocol.
//!
//! Nothing here does I/O or reads a clock. Decoders take bytes and return values or typed
//! errors; no byte sequence can make them panic.

pub mod ble;
pub mod device;
pub mod display;
pub mod error;
pub mod format;
pub mod hl7;
pub mod intellivue;
pub mod model;
pub mod serial;
pub mod sfloat;
pub mod stream;

pub use device::{CommandRefusal, DeviceCommand, DeviceSession};
pub use error::{DecodeError, Recovery};
pub use format::{Decoder, Format};
pub use model::{
    kpa_to_mmhg, DeviceAlarm, DeviceEvent, DeviceTime, Flag, Flags, Observation, Reading,
    Unavailable, Unit, UnknownParameter, Value, Vital,
};
