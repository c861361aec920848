//! Contec CMS50D+ and relatives. The V7.0 protocol streams only after the host asks it to and
//! stops unless the host keeps saying it is there; the legacy 5-byte protocol just streams.

use super::{
    CommandRefusal, DeviceCommand, DeviceSession, DeviceTransport, FormatFacts, Listener,
    CONTINUOUS_SILENCE,
};
use crate::format::Decoded;
use crate::model::Vital::{PulseRate, Spo2};
use crate::serial::contec;
use crate::Format;
use std::time::{Duration, Instant};

/// `contec` (V7.0).
pub static CONTEC: FormatFacts = FormatFacts {
    name: "contec",
    transport: DeviceTransport::Serial(contec::LINE),
    continuous_vitals: &[Spo2, PulseRate],
    silence_limit: Some(CONTINUOUS_SILENCE),
    commands: &[],
    session: || Box::new(ContecSession::new()),
};

/// `contec-legacy`.
pub static CONTEC_LEGACY: FormatFacts = FormatFacts {
    name: "contec-legacy",
    transport: DeviceTransport::Serial(contec::LEGACY_LINE),
    continuous_vitals: &[Spo2, PulseRate],
    silence_limit: Some(CONTINUOUS_SILENCE),
    commands: &[],
    session: || Box::new(Listener::new(Format::ContecLegacy)),
};

/// How often the V7.0 device must hear the keep-alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(contec::KEEP_ALIVE_SECS);

/// A Contec V7.0 connection: asks for real-time data on connecting, then sends the keep-alive
/// every [`KEEP_ALIVE`] (a late wake-up delays the next one rather than bunching them).
#[derive(Debug)]
pub struct ContecSession {
    listener: Listener,
    keep_alive_at: Option<Instant>,
}

impl ContecSession {
    fn new() -> ContecSession {
        ContecSession {
            listener: Listener::new(Format::Contec),
            keep_alive_at: None,
        }
    }
}

impl DeviceSession for ContecSession {
    fn handle_connected(&mut self, now: Instant) {
        self.listener.send(contec::Command::StartRealTime.encode());
        self.keep_alive_at = Some(now + KEEP_ALIVE);
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

    fn handle_timeout(&mut self, now: Instant) {
        if self.keep_alive_at.is_some_and(|at| now >= at) {
            self.listener.send(contec::Command::KeepAlive.encode());
            self.keep_alive_at = Some(now + KEEP_ALIVE);
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.listener.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.keep_alive_at
    }

    fn poll_output(&mut self) -> Option<Decoded> {
        self.listener.poll_output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(s: &mut dyn DeviceSession) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    #[test]
    fn contec_starts_real_time_then_keeps_alive_every_five_seconds() {
        let t0 = Instant::now();
        let mut s = (CONTEC.session)();
        assert_eq!(s.poll_timeout(), None, "no timer before connecting");
        s.handle_connected(t0);
        assert_eq!(sent(s.as_mut()), [contec::Command::StartRealTime.encode()]);
        let mut at = t0;
        for _ in 0..4 {
            let due = s.poll_timeout().expect("a keep-alive is always due");
            assert_eq!(due, at + KEEP_ALIVE);
            // Woken early: nothing yet.
            s.handle_timeout(due - Duration::from_millis(1));
            assert_eq!(sent(s.as_mut()), Vec::<Vec<u8>>::new());
            s.handle_timeout(due);
            assert_eq!(sent(s.as_mut()), [contec::Command::KeepAlive.encode()]);
            at = due;
        }
        // Woken late: one keep-alive, and the next counts from now.
        let late = at + KEEP_ALIVE + Duration::from_secs(3);
        s.handle_timeout(late);
        assert_eq!(sent(s.as_mut()), [contec::Command::KeepAlive.encode()]);
        assert_eq!(s.poll_timeout(), Some(late + KEEP_ALIVE));
    }

    #[test]
    fn contec_refuses_cuff_commands_and_legacy_sends_nothing() {
        let now = Instant::now();
        let mut s = (CONTEC.session)();
        s.handle_connected(now);
        sent(s.as_mut());
        for c in [DeviceCommand::StartNibp, DeviceCommand::CancelNibp] {
            assert_eq!(s.handle_command(c, now), Err(CommandRefusal::NotSupported));
        }
        assert_eq!(sent(s.as_mut()), Vec::<Vec<u8>>::new());
        let mut legacy = (CONTEC_LEGACY.session)();
        legacy.handle_connected(now);
        assert_eq!(legacy.poll_transmit(), None);
        assert_eq!(legacy.poll_timeout(), None);
    }
}
