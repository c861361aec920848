//! Masimo Radical-7 ASCII 1 / trend lines: the monitor streams a line a second and needs nothing
//! from the host.

use super::{DeviceTransport, FormatFacts, Listener, CONTINUOUS_SILENCE};
use crate::model::Vital::{PulseRate, Spo2};
use crate::serial::masimo;
use crate::Format;

/// `masimo`.
pub static MASIMO: FormatFacts = FormatFacts {
    name: "masimo",
    transport: DeviceTransport::Serial(masimo::LINE),
    continuous_vitals: &[Spo2, PulseRate],
    silence_limit: Some(CONTINUOUS_SILENCE),
    commands: &[],
    session: || Box::new(Listener::new(Format::Masimo)),
};
