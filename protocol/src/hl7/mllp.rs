//! MLLP framing (HL7 v2 Minimal Lower Layer Protocol): every message travels as
//! `0x0B payload 0x1C 0x0D`. Bytes outside a frame are garbage to skip; a frame that grows past
//! [`MAX_MESSAGE`] without its end bytes is dropped, so a peer cannot make Vigil buffer without
//! bound.

use crate::error::DecodeError;
use crate::stream::{FrameDecoder, Step};

/// Start block.
pub const START: u8 = 0x0B;
/// End block, followed by [`CR`].
pub const END: u8 = 0x1C;
/// Carriage return: ends a frame after [`END`], and separates segments.
pub const CR: u8 = 0x0D;
/// The largest message payload Vigil accepts: 1 MiB. A monitor's ORU is a few kilobytes.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Wraps a payload in MLLP start and end bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(START);
    out.extend_from_slice(payload);
    out.extend_from_slice(&[END, CR]);
    out
}

/// One MLLP frame's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MllpFrame {
    /// A complete payload (without the framing bytes).
    Message(Vec<u8>),
    /// A frame that passed [`MAX_MESSAGE`] before its end; dropped unread. The peer gets an AE.
    TooLarge,
}

/// The MLLP [`FrameDecoder`]. Stateless: it decides from the buffer alone, so any split of the
/// stream gives the same frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct MllpDecoder;

impl FrameDecoder for MllpDecoder {
    type Frame = MllpFrame;

    fn step(&self, buf: &[u8]) -> Step<MllpFrame> {
        if buf[0] != START {
            let len = buf.iter().position(|b| *b == START).unwrap_or(buf.len());
            return Step::Skip {
                len,
                error: DecodeError::Garbage { skipped: len },
            };
        }
        let limit = buf.len().min(MAX_MESSAGE + 3);
        let body = &buf[1..limit];
        // A start byte inside a frame means the previous frame lost its end: resynchronise there.
        for (i, b) in body.iter().enumerate() {
            match *b {
                START => {
                    return Step::Skip {
                        len: i + 1,
                        error: DecodeError::Malformed(format!(
                            "MLLP frame of {i} bytes without its end bytes; dropped"
                        )),
                    }
                }
                END if body.get(i + 1) == Some(&CR) => {
                    return Step::Frame {
                        frame: MllpFrame::Message(body[..i].to_vec()),
                        len: i + 3,
                    }
                }
                _ => {}
            }
        }
        if buf.len() > MAX_MESSAGE + 2 {
            // Over the bound without an end: report it once, then skip to the next start byte
            // (the rest of the oversized frame is skipped as garbage).
            return Step::Frame {
                frame: MllpFrame::TooLarge,
                len: MAX_MESSAGE + 2,
            };
        }
        Step::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Deframer;

    fn frames(chunks: &[&[u8]]) -> Vec<Result<MllpFrame, DecodeError>> {
        let mut d = Deframer::new(MllpDecoder);
        let mut out = vec![];
        for c in chunks {
            d.push(c);
            while let Some(f) = d.next_frame() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn a_frame_split_anywhere_is_one_message() {
        let wire = frame(b"MSH|^~\\&|A\r");
        for cut in 0..wire.len() {
            let got = frames(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(got, vec![Ok(MllpFrame::Message(b"MSH|^~\\&|A\r".to_vec()))]);
        }
    }

    #[test]
    fn a_frame_without_its_end_is_dropped_at_the_next_start() {
        let mut wire = vec![START];
        wire.extend_from_slice(b"MSH|lost");
        wire.extend(frame(b"MSH|ok"));
        let got = frames(&[&wire]);
        assert!(matches!(got[0], Err(DecodeError::Malformed(_))), "{got:?}");
        assert_eq!(got[1], Ok(MllpFrame::Message(b"MSH|ok".to_vec())));
    }

    #[test]
    fn an_oversized_frame_is_reported_and_the_next_one_read() {
        let mut wire = vec![START];
        wire.resize(MAX_MESSAGE + 100, b'x');
        wire.extend(frame(b"MSH|ok"));
        let got = frames(&[&wire]);
        assert_eq!(got[0], Ok(MllpFrame::TooLarge));
        assert!(matches!(got[1], Err(DecodeError::Garbage { .. })));
        assert_eq!(got[2], Ok(MllpFrame::Message(b"MSH|ok".to_vec())));
    }
}
