//! One MLLP connection ([`Hl7Receiver`]) and one device on it ([`Hl7Session`]).

use super::ack::ack;
use super::codes::CodeTable;
use super::message::{Hl7Error, Message};
use super::mllp::{self, MllpDecoder, MllpFrame};
use super::oru::{read_oru_per_equipment, Header};
use super::replay::{mark_replayed, ReplayGuard};
use crate::device::DeviceSession;
use crate::error::DecodeError;
use crate::format::Decoded;
use crate::model::Observation;
use crate::stream::Deframer;
use std::collections::VecDeque;
use std::time::Instant;

/// Most ACKs queued at once. The transport writes them after every read, and one 16 KiB read
/// holds fewer messages than this, so none is lost; the bound keeps a peer that never reads
/// from growing the queue.
pub const MAX_PENDING_ACKS: usize = 2048;

/// What one frame on a connection was.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A message read; its AA is queued.
    Message {
        /// Who sent it.
        header: Header,
        /// What it says.
        observations: Vec<Observation>,
    },
    /// A message refused; its AE is queued.
    Refused {
        /// Who sent it, as far as it could be read.
        header: Header,
        /// Why.
        error: Hl7Error,
    },
    /// Bytes outside any frame, or a frame that lost its end: skipped, nothing to acknowledge.
    Framing(DecodeError),
}

/// One MLLP connection, sans-IO.
#[derive(Debug)]
pub struct Hl7Receiver {
    deframer: Deframer<MllpDecoder>,
    table: CodeTable,
    acks: VecDeque<Vec<u8>>,
}

impl Hl7Receiver {
    /// A receiver reading codes with `table`.
    pub fn new(table: CodeTable) -> Self {
        Hl7Receiver {
            deframer: Deframer::new(MllpDecoder),
            table,
            acks: VecDeque::new(),
        }
    }

    /// Feeds bytes from the peer (any split) and returns what they complete.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Vec<Received> {
        self.deframer.push(bytes);
        let mut out = Vec::new();
        while let Some(frame) = self.deframer.next_frame() {
            out.push(match frame {
                Ok(MllpFrame::Message(payload)) => {
                    out.extend(self.handle_message(&payload));
                    continue;
                }
                Ok(MllpFrame::TooLarge) => self.refuse(
                    Header::default(),
                    Hl7Error::TooLarge {
                        max: mllp::MAX_MESSAGE,
                    },
                ),
                Err(e) => Received::Framing(e),
            });
        }
        out
    }

    /// Reads one unframed message and queues its ACK. A message with the observations of more
    /// than one piece of equipment (OBX-18) is one [`Received::Message`] per equipment, its
    /// header naming only that one, so that each device's `match` takes only its own (V4).
    pub fn handle_message(&mut self, payload: &[u8]) -> Vec<Received> {
        let parsed = Message::parse(payload);
        let header = match &parsed {
            Ok(m) => Header::of(m),
            Err(_) => salvage_header(payload),
        };
        match parsed.and_then(|m| read_oru_per_equipment(&m, &self.table)) {
            Ok(groups) => {
                self.queue_ack(ack(&header, None));
                if header.equipment.len() <= 1 {
                    let observations = groups.into_iter().flat_map(|(_, o)| o).collect();
                    return vec![Received::Message {
                        header,
                        observations,
                    }];
                }
                groups
                    .into_iter()
                    .map(|(equipment, observations)| Received::Message {
                        header: Header {
                            equipment: (!equipment.is_empty())
                                .then_some(equipment)
                                .into_iter()
                                .collect(),
                            ..header.clone()
                        },
                        observations,
                    })
                    .collect()
            }
            Err(error) => vec![self.refuse(header, error)],
        }
    }

    fn refuse(&mut self, header: Header, error: Hl7Error) -> Received {
        self.queue_ack(ack(&header, Some(&error)));
        Received::Refused { header, error }
    }

    fn queue_ack(&mut self, message: Vec<u8>) {
        if self.acks.len() < MAX_PENDING_ACKS {
            self.acks.push_back(mllp::frame(&message));
        }
    }

    /// The next MLLP-framed ACK to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.acks.pop_front()
    }

    /// Bytes of an unfinished frame held.
    pub fn pending(&self) -> usize {
        self.deframer.pending()
    }

    /// Ends the input: an unfinished frame is reported.
    pub fn finish(&mut self) -> Option<DecodeError> {
        self.deframer.finish()
    }
}

/// The MSH fields of a message that does not parse, so that its AE still carries MSA-2.
fn salvage_header(payload: &[u8]) -> Header {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(4096)]);
    let Some(line) = text.split(['\r', '\n']).find(|l| l.starts_with("MSH")) else {
        return Header::default();
    };
    let Some(sep) = line[3..].chars().next() else {
        return Header::default();
    };
    let fields: Vec<&str> = line.split(sep).collect();
    let first = |n: usize| -> String {
        let f = fields.get(n - 1).copied().unwrap_or("");
        f.split('^').next().unwrap_or("").chars().take(64).collect()
    };
    Header {
        sending_application: first(3),
        sending_facility: first(4),
        control_id: first(10),
        processing_id: first(11),
        version: first(12),
        equipment: Vec::new(),
        sent: None,
    }
}

/// Which messages on a shared listener are this device's: by OBX-18 equipment id and/or MSH-4
/// sending facility. An empty match takes every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// An OBX-18 entity identifier the message must carry.
    pub equipment: Option<String>,
    /// The MSH-4 the message must have.
    pub sending_facility: Option<String>,
}

impl Match {
    /// Does this device take a message with this header?
    pub fn matches(&self, header: &Header) -> bool {
        self.equipment
            .as_ref()
            .is_none_or(|e| header.equipment.iter().any(|h| h == e))
            && self
                .sending_facility
                .as_ref()
                .is_none_or(|f| &header.sending_facility == f)
    }

    /// Is this the match-everything default?
    pub fn is_empty(&self) -> bool {
        self.equipment.is_none() && self.sending_facility.is_none()
    }
}

/// One HL7 device on its own connection (a `connect` device, or `vigil probe`): the device
/// session the transport pump drives. Messages its [`Match`] does not pick are acknowledged
/// and counted, not read. Read live ([`Hl7Session::feed_live`]), a message older than the
/// device's newest is a replay (W3): its readings are `stored`. The session outlives its
/// connections ([`Hl7Session::reconnected`]), so a backlog re-sent on a new one is seen.
#[derive(Debug)]
pub struct Hl7Session {
    receiver: Hl7Receiver,
    matcher: Match,
    outputs: VecDeque<Decoded>,
    unmatched: u64,
    replay: ReplayGuard,
}

impl Hl7Session {
    /// A session reading with `table`, taking the messages `matcher` picks.
    pub fn new(table: CodeTable, matcher: Match) -> Self {
        Hl7Session {
            receiver: Hl7Receiver::new(table),
            matcher,
            outputs: VecDeque::new(),
            unmatched: 0,
            replay: ReplayGuard::default(),
        }
    }

    /// A new connection to the same device: the old one's unfinished frame and unwritten ACKs
    /// go; what was read from the device (its newest message) stays.
    pub fn reconnected(&mut self) {
        self.receiver = Hl7Receiver::new(self.receiver.table.clone());
    }

    /// Messages read as replays (older than the device's newest).
    pub fn replays(&self) -> u64 {
        self.replay.replays()
    }

    /// Bytes of an unfinished frame held (a frame deadline watches this).
    pub fn pending_frame_bytes(&self) -> usize {
        self.receiver.pending()
    }

    /// Messages acknowledged but not this device's.
    pub fn unmatched(&self) -> u64 {
        self.unmatched
    }

    /// Bytes of a capture, read as recorded (no replay judged: there is no receive time).
    pub fn feed(&mut self, bytes: &[u8]) {
        let received = self.receiver.handle_input(bytes);
        self.take(received, None);
    }

    /// Bytes from a live peer, received at `now`: replays are judged.
    pub fn feed_live(&mut self, bytes: &[u8], now: Instant) {
        let received = self.receiver.handle_input(bytes);
        self.take(received, Some(now));
    }

    /// One unframed message (a plain capture).
    pub fn handle_message(&mut self, payload: &[u8]) {
        let received = self.receiver.handle_message(payload);
        self.take(received, None);
    }

    fn take(&mut self, received: Vec<Received>, now: Option<Instant>) {
        for r in received {
            match r {
                Received::Message {
                    header,
                    observations,
                } => {
                    if self.matcher.matches(&header) {
                        let replayed =
                            now.is_some_and(|now| self.replay.is_replay(header.sent, now));
                        let observations = if replayed {
                            mark_replayed(observations)
                        } else {
                            observations
                        };
                        self.outputs.extend(observations.into_iter().map(Ok));
                    } else {
                        self.unmatched += 1;
                    }
                }
                Received::Refused { header, error } => {
                    self.outputs.push_back(Err(DecodeError::Malformed(format!(
                        "HL7 message {:?} refused (AE): {error}",
                        header.control_id
                    ))));
                }
                Received::Framing(e) => self.outputs.push_back(Err(e)),
            }
        }
    }

    /// Ends the input: an unfinished frame becomes an error output.
    pub fn finish(&mut self) {
        if let Some(e) = self.receiver.finish() {
            self.outputs.push_back(Err(e));
        }
    }
}

impl DeviceSession for Hl7Session {
    fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.feed_live(bytes, now);
    }

    /// The next ACK to write.
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.receiver.poll_transmit()
    }

    fn poll_output(&mut self) -> Option<Decoded> {
        self.outputs.pop_front()
    }
}

/// Splits a plain (unframed) capture into messages: each starts at a line beginning `MSH`.
/// Segments may end in CR, LF or CRLF. A message over the MLLP bound is cut off and reported.
#[derive(Debug, Default)]
pub struct PlainSplitter {
    buf: Vec<u8>,
}

impl PlainSplitter {
    /// Appends bytes; returns the messages they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Vec<u8>, DecodeError>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let next = (1..self.buf.len().saturating_sub(3)).find(|&i| {
                matches!(self.buf[i - 1], b'\r' | b'\n') && self.buf[i..].starts_with(b"MSH")
            });
            match next {
                Some(i) => out.push(Ok(self.buf.drain(..i).collect())),
                None if self.buf.len() > mllp::MAX_MESSAGE => {
                    self.buf.clear();
                    out.push(Err(DecodeError::TooLong {
                        max: mllp::MAX_MESSAGE,
                    }));
                }
                None => return out,
            }
        }
    }

    /// The last message, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}
