//! The session of a device that only talks: bytes in, observations out, nothing to send, no
//! timers, no commands. The other sessions build on it for their decoding and queues.

use super::DeviceSession;
use crate::format::{Decoded, Decoder, Format};
use std::collections::VecDeque;
use std::time::Instant;

/// A listen-only session around a format's [`Decoder`]; also the decoding and the two queues
/// (output, transmit) that the talking sessions share.
#[derive(Debug)]
pub struct Listener {
    decoder: Decoder,
    output: VecDeque<Decoded>,
    transmit: VecDeque<Vec<u8>>,
}

impl Listener {
    /// A session for a format whose device needs nothing from the host.
    pub fn new(format: Format) -> Listener {
        Listener {
            decoder: format.decoder(),
            output: VecDeque::new(),
            transmit: VecDeque::new(),
        }
    }

    /// Decodes `bytes` into the output queue; returns what they decoded to.
    pub(crate) fn decode(
        &mut self,
        bytes: &[u8],
    ) -> std::collections::vec_deque::Iter<'_, Decoded> {
        let start = self.output.len();
        self.decoder.feed_into(bytes, &mut self.output);
        self.output.range(start..)
    }

    /// Queues bytes for the device.
    pub(crate) fn send(&mut self, bytes: impl Into<Vec<u8>>) {
        self.transmit.push_back(bytes.into());
    }

    /// Queues an output that did not come from the device's bytes (a timeout's event).
    pub(crate) fn emit(&mut self, decoded: Decoded) {
        self.output.push_back(decoded);
    }
}

impl DeviceSession for Listener {
    fn handle_input(&mut self, bytes: &[u8], _now: Instant) {
        self.decode(bytes);
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    fn poll_output(&mut self) -> Option<Decoded> {
        self.output.pop_front()
    }
}
