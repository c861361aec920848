//! Philips IntelliVue data export over the MIB/RS232 port: the host associates, confirms the MDS
//! create event and polls the numerics each second. The protocol and its session live in
//! [`crate::intellivue`]; this module holds the facts the format table reads.

use super::{DeviceTransport, FormatFacts};
use crate::intellivue::{self, session::SILENCE_LIMIT};

/// `intellivue`.
pub static INTELLIVUE: FormatFacts = FormatFacts {
    name: intellivue::NAME,
    transport: DeviceTransport::Serial(intellivue::LINE),
    continuous_vitals: intellivue::CONTINUOUS_VITALS,
    // The pump's watch matches the session's own: a monitor that stops answering polls for this
    // long is shown silent, and the session reassociates.
    silence_limit: Some(SILENCE_LIMIT),
    // Data export is read-only: the nurse is prompted for a cuff reading instead.
    commands: intellivue::COMMANDS,
    session: intellivue::session,
};
