//! Nonin formats #2, #7 and #8 (9560 Onyx II, OEM III): the oximeter streams; on connecting the
//! host selects the format it expects.

use super::{
    CommandRefusal, DeviceCommand, DeviceSession, DeviceTransport, FormatFacts, Listener,
    CONTINUOUS_SILENCE,
};
use crate::format::Decoded;
use crate::model::Vital::{PulseRate, Spo2};
use crate::serial::nonin;
use crate::Format;
use std::time::Instant;

const fn facts(name: &'static str, session: fn() -> Box<dyn DeviceSession>) -> FormatFacts {
    FormatFacts {
        name,
        transport: DeviceTransport::Serial(nonin::LINE),
        continuous_vitals: &[Spo2, PulseRate],
        silence_limit: Some(CONTINUOUS_SILENCE),
        commands: &[],
        session,
    }
}

/// `nonin-2`.
pub static NONIN_2: FormatFacts =
    facts("nonin-2", || Box::new(NoninSession::new(Format::Nonin2, 2)));
/// `nonin-7`.
pub static NONIN_7: FormatFacts =
    facts("nonin-7", || Box::new(NoninSession::new(Format::Nonin7, 7)));
/// `nonin-8`.
pub static NONIN_8: FormatFacts =
    facts("nonin-8", || Box::new(NoninSession::new(Format::Nonin8, 8)));

/// A Nonin connection: selects the format on connecting, then listens.
#[derive(Debug)]
pub struct NoninSession {
    listener: Listener,
    number: u8,
}

impl NoninSession {
    fn new(format: Format, number: u8) -> NoninSession {
        NoninSession {
            listener: Listener::new(format),
            number,
        }
    }
}

impl DeviceSession for NoninSession {
    fn handle_connected(&mut self, _now: Instant) {
        // The 9560 needs this within 5 s of connecting; the OEM III ignores it.
        self.listener
            .send(nonin::select_format_command(self.number));
    }

    fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.listener.handle_input(bytes, now);
    }

    fn handle_command(
        &mut self,
        command: DeviceCommand,
        now: Instant,
    ) -> Result<(), CommandRefusal> {
        self.listener.handle_command(command, now)
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.listener.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_output(&mut self) -> Option<Decoded> {
        self.listener.poll_output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nonin_format_selects_its_own_number_on_connecting_and_only_then() {
        let now = Instant::now();
        for (facts, n) in [(&NONIN_2, 2), (&NONIN_7, 7), (&NONIN_8, 8)] {
            let mut s = (facts.session)();
            assert_eq!(
                s.poll_transmit(),
                None,
                "{}: nothing before connecting",
                facts.name
            );
            s.handle_connected(now);
            assert_eq!(
                s.poll_transmit(),
                Some(nonin::select_format_command(n).to_vec())
            );
            assert_eq!(s.poll_transmit(), None);
            assert_eq!(s.poll_timeout(), None);
            assert_eq!(
                s.handle_command(DeviceCommand::StartNibp, now),
                Err(CommandRefusal::NotSupported)
            );
            assert_eq!(s.poll_transmit(), None);
        }
    }
}
