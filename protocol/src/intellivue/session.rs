//! The IntelliVue [`DeviceSession`]: associate, confirm the MDS create event, then poll the
//! numerics each second with a keep-alive poll of the MDS; a refused, silent or aborted
//! association is reported and retried with backoff. Read-only: no cuff commands.

use super::frame::{self, FrameReader};
use super::message::{self, Message, ASSOCIATION_REQUEST, RELEASE_REQUEST, RELEASE_RESULT};
use super::numeric::NuObsValue;
use crate::device::{CommandRefusal, DeviceCommand, DeviceSession};
use crate::error::DecodeError;
use crate::format::Decoded;
use crate::model::{DeviceEvent, DeviceTime};
use crate::stream::Deframer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often the numerics are polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the keep-alive poll of the MDS is sent while associated.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long the monitor may take to answer the association request, or to send its MDS create
/// event after accepting.
pub const ASSOCIATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the monitor may go without answering a poll before the association counts as lost.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// The first wait before associating again; doubled after each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between association attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Outputs held for the pump; beyond it the oldest are dropped (the pump drains every call).
const MAX_OUTPUTS: usize = 1024;
/// Frames held for the pump to write.
const MAX_TRANSMITS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No transport yet.
    Idle,
    /// The association request is out; waiting for accept or refuse until the deadline.
    Associating { deadline: Instant },
    /// Accepted; waiting for the MDS create event until the deadline.
    AwaitingMds { deadline: Instant },
    /// Associated: polling.
    Polling {
        next_poll: Instant,
        next_keep_alive: Instant,
        last_heard: Instant,
    },
    /// Lost or refused: associating again at `until`.
    Backoff { until: Instant },
}

/// How the messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The MIB/RS232 port: a byte stream of BOF/EOF frames with an FCS.
    Rs232,
    /// The LAN: each UDP datagram (to and from the monitor's data-export port) is one message,
    /// unframed.
    Udp,
}

/// The monitor's UDP port for data export messages (the LAN variant).
pub const UDP_DATA_EXPORT_PORT: u16 = 24105;

/// One IntelliVue monitor's conversation.
#[derive(Debug)]
pub struct IntelliVueSession {
    link: Link,
    state: State,
    deframer: Deframer<FrameReader>,
    transmit: VecDeque<Vec<u8>>,
    output: VecDeque<Decoded>,
    backoff: Duration,
    invoke_id: u16,
    nibp: NibpEchoes,
}

/// The monitor keeps its last NIBP determination in every poll reply until the next one. Vigil
/// must see each determination once: an echo would confirm a high BP that was never repeated
/// and keep an old BP looking current. A value is new when its time stamp, state or value
/// differs from the last one of its id; without a time stamp, two determinations in a row
/// with identical values arrive as one (the repeat then counts as not taken, which alarms).
#[derive(Debug, Default)]
struct NibpEchoes {
    last: Vec<(NuObsValue, Option<DeviceTime>)>,
}

impl NibpEchoes {
    /// Is `nu` an NIBP value already delivered? Remembers it if not.
    fn is_echo(&mut self, nu: &NuObsValue, stamp: Option<DeviceTime>) -> bool {
        use super::numeric::physio::*;
        if !matches!(
            nu.physio_id,
            PRESS_BLD_NONINV
                | PRESS_BLD_NONINV_SYS
                | PRESS_BLD_NONINV_DIA
                | PRESS_BLD_NONINV_MEAN
                | PRESS_BLD_NONINV_PULS_RATE
        ) {
            return false;
        }
        match self
            .last
            .iter_mut()
            .find(|(l, _)| l.physio_id == nu.physio_id)
        {
            Some(last) if *last == (*nu, stamp) => true,
            Some(last) => {
                *last = (*nu, stamp);
                false
            }
            // At most the five NIBP ids above.
            None => {
                self.last.push((*nu, stamp));
                false
            }
        }
    }
}

impl Default for IntelliVueSession {
    fn default() -> Self {
        Self::new()
    }
}

impl IntelliVueSession {
    /// A session over the MIB/RS232 port, waiting for its transport.
    pub fn new() -> Self {
        Self::over(Link::Rs232)
    }

    /// A session over `link`, waiting for its transport.
    pub fn over(link: Link) -> Self {
        IntelliVueSession {
            link,
            state: State::Idle,
            deframer: Deframer::new(FrameReader),
            transmit: VecDeque::new(),
            output: VecDeque::new(),
            backoff: FIRST_BACKOFF,
            invoke_id: 0,
            nibp: NibpEchoes::default(),
        }
    }

    /// Is the association up (polling)?
    pub fn is_associated(&self) -> bool {
        matches!(self.state, State::Polling { .. })
    }

    /// Queues the release request, for an orderly shutdown; the session then stays idle.
    pub fn release(&mut self) {
        if self.is_associated() {
            self.send(&RELEASE_REQUEST);
        }
        self.state = State::Idle;
    }

    fn send(&mut self, user_data: &[u8]) {
        if self.transmit.len() >= MAX_TRANSMITS {
            self.transmit.pop_front();
        }
        self.transmit.push_back(match self.link {
            Link::Rs232 => frame::encode(user_data),
            Link::Udp => user_data.to_vec(),
        });
    }

    fn emit(&mut self, item: Decoded) {
        if self.output.len() >= MAX_OUTPUTS {
            self.output.pop_front();
        }
        self.output.push_back(item);
    }

    fn next_invoke_id(&mut self) -> u16 {
        self.invoke_id = self.invoke_id.wrapping_add(1);
        self.invoke_id
    }

    fn associate(&mut self, now: Instant) {
        // Drop any half frame of the last association.
        self.deframer = Deframer::new(FrameReader);
        self.send(&ASSOCIATION_REQUEST);
        self.state = State::Associating {
            deadline: now + ASSOCIATION_TIMEOUT,
        };
    }

    /// The association failed or was lost: say why, and try again after the backoff.
    fn fail(&mut self, reason: &str, now: Instant) {
        self.emit(Ok(DeviceEvent::NotResponding {
            reason: format!(
                "IntelliVue: {reason}; associating again in {} s",
                self.backoff.as_secs()
            ),
        }
        .into()));
        self.state = State::Backoff {
            until: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn handle_message(&mut self, message: Message, now: Instant) {
        match (message, self.state) {
            (Message::AssociationAccepted, State::Associating { .. }) => {
                self.state = State::AwaitingMds {
                    deadline: now + ASSOCIATION_TIMEOUT,
                };
            }
            (Message::AssociationRefused, State::Associating { .. }) => {
                self.fail("the monitor refused the association", now)
            }
            (
                Message::MdsCreate { invoke_id, .. },
                State::AwaitingMds { .. } | State::Polling { .. },
            ) => {
                self.send(&message::mds_create_result(invoke_id));
                if !self.is_associated() {
                    self.backoff = FIRST_BACKOFF;
                    self.state = State::Polling {
                        next_poll: now,
                        next_keep_alive: now + KEEP_ALIVE_INTERVAL,
                        last_heard: now,
                    };
                    self.poll_due(now);
                }
            }
            (Message::PollReply(reply), State::Polling { .. }) => {
                if let State::Polling { last_heard, .. } = &mut self.state {
                    *last_heard = now;
                }
                for (nu, stamp) in &reply.numerics {
                    if self.nibp.is_echo(nu, *stamp) {
                        continue;
                    }
                    self.emit(Ok(nu.observation(stamp.or(reply.time))));
                }
            }
            (Message::ReleaseRequest, _) => {
                self.send(&RELEASE_RESULT);
                self.fail("the monitor released the association", now);
            }
            (
                Message::Abort,
                State::Polling { .. } | State::Associating { .. } | State::AwaitingMds { .. },
            ) => self.fail("the monitor aborted the association", now),
            (Message::RemoteError, _) => self.emit(Err(DecodeError::Malformed(
                "the monitor answered a request with a remote-operation error".into(),
            ))),
            // Anything else (a late reply, a message for another state, one Vigil has no use
            // for) changes nothing.
            _ => {}
        }
    }

    /// Sends the polls that are due.
    fn poll_due(&mut self, now: Instant) {
        let State::Polling {
            next_poll,
            next_keep_alive,
            last_heard,
        } = self.state
        else {
            return;
        };
        if now.saturating_duration_since(last_heard) >= SILENCE_LIMIT {
            self.fail(
                &format!(
                    "no answer to polls for {} s",
                    now.saturating_duration_since(last_heard).as_secs()
                ),
                now,
            );
            return;
        }
        let mut next = (next_poll, next_keep_alive);
        if now >= next_poll {
            let id = self.next_invoke_id();
            self.send(&message::numerics_poll(id));
            next.0 = now + POLL_INTERVAL;
        }
        if now >= next_keep_alive {
            let id = self.next_invoke_id();
            self.send(&message::keep_alive_poll(id));
            next.1 = now + KEEP_ALIVE_INTERVAL;
        }
        self.state = State::Polling {
            next_poll: next.0,
            next_keep_alive: next.1,
            last_heard,
        };
    }
}

impl DeviceSession for IntelliVueSession {
    fn handle_connected(&mut self, now: Instant) {
        self.backoff = FIRST_BACKOFF;
        self.associate(now);
    }

    fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.link == Link::Udp {
            match Message::decode(bytes) {
                Ok(message) => self.handle_message(message, now),
                Err(e) => self.emit(Err(e)),
            }
            return;
        }
        self.deframer.push(bytes);
        while let Some(frame) = self.deframer.next_frame() {
            match frame.and_then(|data| Message::decode(&data)) {
                Ok(message) => self.handle_message(message, now),
                Err(e) => self.emit(Err(e)),
            }
        }
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        self.release();
    }

    fn handle_command(
        &mut self,
        _command: DeviceCommand,
        _now: Instant,
    ) -> Result<(), CommandRefusal> {
        // Data export is read-only: it cannot start or stop a cuff cycle.
        Err(CommandRefusal::NotSupported)
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Idle => {}
            State::Associating { deadline } if now >= deadline => {
                self.fail("no answer to the association request", now)
            }
            State::AwaitingMds { deadline } if now >= deadline => {
                self.fail("no MDS create event after the association", now)
            }
            State::Backoff { until } if now >= until => self.associate(now),
            State::Polling { .. } => self.poll_due(now),
            _ => {}
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle => None,
            State::Associating { deadline } | State::AwaitingMds { deadline } => Some(deadline),
            State::Backoff { until } => Some(until),
            State::Polling {
                next_poll,
                next_keep_alive,
                last_heard,
            } => Some(
                next_poll
                    .min(next_keep_alive)
                    .min(last_heard + SILENCE_LIMIT),
            ),
        }
    }

    fn poll_output(&mut self) -> Option<Decoded> {
        self.output.pop_front()
    }
}
