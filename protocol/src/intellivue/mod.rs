//! Philips IntelliVue (MP and MX series) Data Export over the MIB/RS232 port: the framing
//! ([`frame`]), the messages ([`message`]), numeric values ([`numeric`]) and the polling
//! [`session`]. Facts and their sources: `docs/intellivue.md`.

pub mod frame;
pub mod message;
pub mod numeric;
pub mod session;

use crate::device::{DeviceCommand, DeviceSession};
use crate::format::{Decoded, DecodedSink};
use crate::model::Vital;
use crate::serial::LineSettings;
use crate::stream::Deframer;
pub use message::Message;
pub use session::{IntelliVueSession, Link};

/// The MIB/RS232 port's fixed-baudrate protocol: 115200 baud, 8N1.
pub const LINE: LineSettings = LineSettings::n81(115_200);

/// The format's name in the config and on the command line.
pub const NAME: &str = "intellivue";

/// The vitals an IntelliVue sends continuously: the pulse oximeter's. Heart rate, EtCO2 and
/// respiratory rate come only when the monitor has that measurement, so they are not expected.
pub const CONTINUOUS_VITALS: &[Vital] = &[Vital::Spo2, Vital::PulseRate];

/// The room may send it no command: data export is read-only.
pub const COMMANDS: &[DeviceCommand] = &[];

/// A fresh RS232 session, for the format table.
pub fn session() -> Box<dyn DeviceSession> {
    Box::new(IntelliVueSession::new())
}

/// Decodes monitor-to-host bytes (any split) into observations and decode errors, without a
/// session: what `vigil decode` and the fuzz target use. Messages that carry no readings
/// (association answers, MDS create) decode to nothing.
#[derive(Debug)]
pub struct StreamDecoder {
    deframer: Deframer<frame::FrameReader>,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder {
            deframer: Deframer::new(frame::FrameReader),
        }
    }
}

impl StreamDecoder {
    /// Feeds the next chunk; appends what it decodes to, in order.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        self.feed_into(bytes, out);
    }

    /// As [`StreamDecoder::feed`], into any sink (the format table's [`crate::Decoder`]).
    pub(crate) fn feed_into(&mut self, bytes: &[u8], out: &mut impl DecodedSink) {
        self.deframer.push(bytes);
        while let Some(frame) = self.deframer.next_frame() {
            match frame.and_then(|data| Message::decode(&data)) {
                Ok(Message::PollReply(reply)) => {
                    out.extend(reply.observations().into_iter().map(Ok))
                }
                Ok(_) => {}
                Err(e) => out.push_decoded(Err(e)),
            }
        }
    }

    /// Ends the input: reports a frame left unfinished.
    pub fn finish(&mut self, out: &mut Vec<Decoded>) {
        out.extend(self.finish_error().map(Err));
    }

    /// The error of a frame left unfinished, if any.
    pub(crate) fn finish_error(&mut self) -> Option<crate::error::DecodeError> {
        self.deframer.finish()
    }
}

#[cfg(test)]
mod tests;
