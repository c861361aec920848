//! SunTech Advantage OEM NIBP module: the host runs every measurement. It starts one, polls the
//! cuff pressure each second while the module works, fetches the result when the module says it
//! is complete, and gives up after [`NIBP_TIMEOUT`].

use super::{CommandRefusal, DeviceCommand, DeviceSession, DeviceTransport, FormatFacts, Listener};
use crate::format::Decoded;
use crate::model::{DeviceEvent, Observation};
use crate::serial::suntech::{self, Command};
use crate::Format;
use std::time::{Duration, Instant};

/// `suntech`.
pub static SUNTECH: FormatFacts = FormatFacts {
    name: "suntech",
    transport: DeviceTransport::Serial(suntech::LINE),
    continuous_vitals: &[],
    silence_limit: None,
    commands: &[DeviceCommand::StartNibp, DeviceCommand::CancelNibp],
    session: || Box::new(SuntechSession::default()),
};

/// An NIBP measurement that has not completed by then has failed.
pub const NIBP_TIMEOUT: Duration = Duration::from_secs(180);
/// How often the cuff pressure is polled during a measurement.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The code of the `measurement_failed` event a timed-out measurement raises (the module's own
/// error codes are below it).
pub const TIMED_OUT_CODE: u8 = 0xFF;

/// A SunTech connection and its measurement in progress, if any.
#[derive(Debug)]
pub struct SuntechSession {
    listener: Listener,
    cycle: Option<Cycle>,
}

/// A measurement in progress.
#[derive(Debug, Clone, Copy)]
struct Cycle {
    started: Instant,
    next_poll: Instant,
}

impl Default for SuntechSession {
    fn default() -> Self {
        SuntechSession {
            listener: Listener::new(Format::Suntech),
            cycle: None,
        }
    }
}

impl SuntechSession {
    /// Is a measurement in progress?
    pub fn measuring(&self) -> bool {
        self.cycle.is_some()
    }
}

fn is_complete(d: &Decoded) -> bool {
    matches!(d, Ok(Observation::Event(DeviceEvent::MeasurementComplete)))
}

impl DeviceSession for SuntechSession {
    fn handle_connected(&mut self, _now: Instant) {
        // A new connection knows of no measurement: the module is asked again by the room.
        self.cycle = None;
    }

    fn handle_input(&mut self, bytes: &[u8], _now: Instant) {
        let complete = self.listener.decode(bytes).any(is_complete);
        // The module answers `K` when it is done; the result is then fetched once.
        if complete && self.cycle.take().is_some() {
            self.listener.send(Command::GetBpData.encode());
        }
    }

    fn handle_command(
        &mut self,
        command: DeviceCommand,
        now: Instant,
    ) -> Result<(), CommandRefusal> {
        match command {
            DeviceCommand::StartNibp if self.cycle.is_some() => Err(CommandRefusal::Busy),
            DeviceCommand::StartNibp => {
                self.listener.send(Command::StartMeasurement.encode());
                self.cycle = Some(Cycle {
                    started: now,
                    next_poll: now + POLL_EVERY,
                });
                Ok(())
            }
            DeviceCommand::CancelNibp => match self.cycle.take() {
                None => Err(CommandRefusal::NotRunning),
                Some(_) => {
                    self.listener.send(Command::AbortMeasurement.encode());
                    Ok(())
                }
            },
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(cycle) = &mut self.cycle else {
            return;
        };
        if now < cycle.next_poll {
            return;
        }
        if now.duration_since(cycle.started) >= NIBP_TIMEOUT {
            self.cycle = None;
            let failed = DeviceEvent::MeasurementFailed {
                code: TIMED_OUT_CODE,
            };
            self.listener.emit(Ok(failed.into()));
        } else {
            cycle.next_poll = now + POLL_EVERY;
            self.listener.send(Command::GetCuffPressure.encode());
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.listener.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.cycle.map(|c| c.next_poll)
    }

    fn poll_output(&mut self) -> Option<Decoded> {
        self.listener.poll_output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::suntech::{Response, STATUS_COMPLETE};

    fn sent(s: &mut SuntechSession) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn outputs(s: &mut SuntechSession) -> Vec<Decoded> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn connected(t0: Instant) -> SuntechSession {
        let mut s = SuntechSession::default();
        s.handle_connected(t0);
        assert_eq!(
            sent(&mut s),
            Vec::<Vec<u8>>::new(),
            "the module needs no greeting"
        );
        assert_eq!(s.poll_timeout(), None, "no timer without a measurement");
        s
    }

    #[test]
    fn a_cycle_starts_polls_each_second_and_fetches_the_result_on_completion() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        assert_eq!(s.handle_command(DeviceCommand::StartNibp, t0), Ok(()));
        assert_eq!(sent(&mut s), [Command::StartMeasurement.encode()]);
        for k in 1..=3u64 {
            let due = s.poll_timeout().expect("polling while measuring");
            assert_eq!(due, t0 + Duration::from_secs(k));
            s.handle_timeout(due);
            assert_eq!(sent(&mut s), [Command::GetCuffPressure.encode()]);
        }
        // The cuff pressure answer is a reading, nothing to send.
        s.handle_input(&Response::CuffPressure(140).encode(), t0);
        assert_eq!(sent(&mut s), Vec::<Vec<u8>>::new());
        // `K`, split anywhere: complete, fetch the record once, stop polling.
        let k = Response::Status(STATUS_COMPLETE).encode();
        s.handle_input(&k[..1], t0);
        assert_eq!(sent(&mut s), Vec::<Vec<u8>>::new());
        s.handle_input(&k[1..], t0);
        assert_eq!(sent(&mut s), [Command::GetBpData.encode()]);
        assert_eq!(s.poll_timeout(), None);
        assert!(!s.measuring());
        let events: Vec<_> = outputs(&mut s)
            .into_iter()
            .filter_map(|d| match d {
                Ok(Observation::Event(e)) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(events, [DeviceEvent::MeasurementComplete]);
    }

    #[test]
    fn a_cycle_that_never_completes_fails_after_the_timeout_with_the_core_s_event() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        s.handle_command(DeviceCommand::StartNibp, t0).unwrap();
        sent(&mut s);
        let mut polls = 0;
        // Bounded: a cycle that never gives up would poll forever.
        for _ in 0..1000 {
            let Some(due) = s.poll_timeout() else { break };
            s.handle_timeout(due);
            polls += sent(&mut s).len();
        }
        // Polled at 1 s .. 179 s; at 180 s the cycle fails instead.
        assert_eq!(polls, 179);
        assert_eq!(
            outputs(&mut s),
            [Ok(Observation::Event(DeviceEvent::MeasurementFailed {
                code: TIMED_OUT_CODE
            }))]
        );
        assert!(!s.measuring());
        // A late `K` no longer fetches a record, and a new cycle may start.
        s.handle_input(
            &Response::Status(STATUS_COMPLETE).encode(),
            t0 + NIBP_TIMEOUT,
        );
        assert_eq!(sent(&mut s), Vec::<Vec<u8>>::new());
        assert_eq!(
            s.handle_command(DeviceCommand::StartNibp, t0 + NIBP_TIMEOUT),
            Ok(())
        );
    }

    #[test]
    fn a_second_start_is_busy_and_an_early_wake_up_does_nothing() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        s.handle_command(DeviceCommand::StartNibp, t0).unwrap();
        sent(&mut s);
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            s.handle_command(DeviceCommand::StartNibp, later),
            Err(CommandRefusal::Busy)
        );
        s.handle_timeout(later);
        assert_eq!(sent(&mut s), Vec::<Vec<u8>>::new());
        assert_eq!(s.poll_timeout(), Some(t0 + POLL_EVERY));
    }

    #[test]
    fn cancel_aborts_a_running_cycle_and_is_refused_when_nothing_runs() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        assert_eq!(
            s.handle_command(DeviceCommand::CancelNibp, t0),
            Err(CommandRefusal::NotRunning)
        );
        assert_eq!(sent(&mut s), Vec::<Vec<u8>>::new());
        s.handle_command(DeviceCommand::StartNibp, t0).unwrap();
        sent(&mut s);
        assert_eq!(s.handle_command(DeviceCommand::CancelNibp, t0), Ok(()));
        assert_eq!(sent(&mut s), [Command::AbortMeasurement.encode()]);
        assert_eq!(s.poll_timeout(), None, "no more polling");
        // The module's `K` after an abort fetches nothing.
        s.handle_input(&Response::Status(STATUS_COMPLETE).encode(), t0);
        assert_eq!(sent(&mut s), Vec::<Vec<u8>>::new());
        assert_eq!(
            s.handle_command(DeviceCommand::CancelNibp, t0),
            Err(CommandRefusal::NotRunning)
        );
    }
}
