//! The MIB/RS232 framing: BOF, a 4-byte header, the user data, the FCS and EOF, with the
//! transparency escapes between BOF and EOF (Data Export Interface Programming Guide, "Transport
//! Protocols for the MIB/RS232 Interface": Framing, Header Information, Frame Check Sequence,
//! Transparency, Frame Abort).

use crate::error::DecodeError;
use crate::stream::{FrameDecoder, Step};

/// Beginning of frame.
pub const BOF: u8 = 0xC0;
/// End of frame.
pub const EOF: u8 = 0xC1;
/// Control escape: the next byte is sent XOR [`ESCAPE_XOR`].
pub const ESCAPE: u8 = 0x7D;
/// What an escaped byte is XORed with.
pub const ESCAPE_XOR: u8 = 0x20;
/// Header byte 0: the protocol id of Data Export.
pub const PROTOCOL_ID: u8 = 0x11;
/// Header byte 1: the message type of a Data Export frame.
pub const MESSAGE_TYPE: u8 = 0x01;
/// The longest frame Vigil waits for on the wire, escapes included. The guide bounds a message
/// by the monitor's buffers; this is Vigil's own bound so an endless frame cannot grow memory.
pub const MAX_WIRE_LEN: usize = 8192;

/// The frame check sequence: CRC-16/X.25 (the PPP FCS-16 of RFC 1662): reflected polynomial
/// 0x8408, initial value 0xFFFF, the ones' complement transmitted least significant byte first.
pub fn fcs(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Appends `byte` to `out`, escaped if it is BOF, EOF or the escape itself.
fn push_escaped(out: &mut Vec<u8>, byte: u8) {
    if matches!(byte, BOF | EOF | ESCAPE) {
        out.push(ESCAPE);
        out.push(byte ^ ESCAPE_XOR);
    } else {
        out.push(byte);
    }
}

/// The frame on the wire that carries `user_data` (header, FCS and all escapes added).
/// User data longer than a u16 length can say is cut at 65 535 bytes (no Data Export message
/// comes near it).
pub fn encode(user_data: &[u8]) -> Vec<u8> {
    let user_data = &user_data[..user_data.len().min(u16::MAX as usize)];
    let mut plain = vec![PROTOCOL_ID, MESSAGE_TYPE];
    plain.extend_from_slice(&(user_data.len() as u16).to_be_bytes());
    plain.extend_from_slice(user_data);
    let check = fcs(&plain);
    plain.extend_from_slice(&check.to_le_bytes());
    let mut out = Vec::with_capacity(plain.len() + 8);
    out.push(BOF);
    for b in plain {
        push_escaped(&mut out, b);
    }
    out.push(EOF);
    out
}

/// Frames the RS232 byte stream into the user data of each frame whose header and FCS check.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameReader;

impl FrameDecoder for FrameReader {
    type Frame = Vec<u8>;

    fn step(&self, buf: &[u8]) -> Step<Vec<u8>> {
        if buf[0] != BOF {
            let len = buf.iter().position(|&b| b == BOF).unwrap_or(buf.len());
            return Step::Skip {
                len,
                error: DecodeError::Garbage { skipped: len },
            };
        }
        let body = &buf[1..];
        let restart = body.iter().position(|&b| b == BOF);
        let end = body.iter().position(|&b| b == EOF);
        match (end, restart) {
            (Some(e), Some(r)) if r < e => return dropped(1 + r, "a new frame began before EOF"),
            (None, Some(r)) => return dropped(1 + r, "a new frame began before EOF"),
            (None, None) if buf.len() >= MAX_WIRE_LEN => {
                return Step::Skip {
                    len: buf.len(),
                    error: DecodeError::TooLong { max: MAX_WIRE_LEN },
                }
            }
            (None, None) => return Step::NeedMore,
            _ => {}
        }
        let end = end.expect("handled above");
        let len = end + 2; // BOF, body, EOF
        if end > 0 && body[end - 1] == ESCAPE {
            return dropped(len, "frame aborted by the sender (7D C1)");
        }
        match unescape(&body[..end]).and_then(|plain| check(&plain)) {
            Ok(user_data) => Step::Frame {
                frame: user_data,
                len,
            },
            Err(error) => Step::Skip { len, error },
        }
    }
}

fn dropped(len: usize, why: &str) -> Step<Vec<u8>> {
    Step::Skip {
        len,
        error: DecodeError::Malformed(why.into()),
    }
}

fn unescape(wire: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(wire.len());
    let mut bytes = wire.iter();
    while let Some(&b) = bytes.next() {
        if b == ESCAPE {
            let Some(&next) = bytes.next() else {
                return Err(DecodeError::Malformed(
                    "escape at the end of a frame".into(),
                ));
            };
            out.push(next ^ ESCAPE_XOR);
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

/// Verifies the FCS and the header of an unescaped frame; returns its user data.
fn check(plain: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if plain.len() < 6 {
        return Err(DecodeError::Malformed(format!(
            "frame of {} byte(s) is shorter than its header and FCS",
            plain.len()
        )));
    }
    let (content, tail) = plain.split_at(plain.len() - 2);
    let carried = u16::from_le_bytes([tail[0], tail[1]]);
    let computed = fcs(content);
    if carried != computed {
        return Err(DecodeError::FrameCheck {
            expected: carried,
            actual: computed,
        });
    }
    if content[0] != PROTOCOL_ID || content[1] != MESSAGE_TYPE {
        return Err(DecodeError::Malformed(format!(
            "frame header {:02X} {:02X} is not Data Export (11 01)",
            content[0], content[1]
        )));
    }
    let declared = u16::from_be_bytes([content[2], content[3]]) as usize;
    let user_data = &content[4..];
    if declared != user_data.len() {
        return Err(DecodeError::Malformed(format!(
            "frame header says {declared} byte(s) of data, {} present",
            user_data.len()
        )));
    }
    Ok(user_data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{decode_all, merge_garbage, Deframer};
    use proptest::prelude::*;

    #[test]
    fn fcs_check_value_and_residue() {
        // CRC-16/X.25 check value over ASCII "123456789" (RFC 1662 FCS-16 parameters).
        assert_eq!(fcs(b"123456789"), 0x906E);
        // Running the CRC over content and its FCS (LSB first) leaves the good-frame residue
        // 0xF0B8; the transmitted value is its complement, 0x0F47.
        let mut with_fcs = b"123456789".to_vec();
        with_fcs.extend_from_slice(&0x906Eu16.to_le_bytes());
        assert_eq!(!fcs(&with_fcs), 0xF0B8);
    }

    #[test]
    fn fcs_vectors_from_mdpnp() {
        // mdpnp TestFCSOutputStream: content 3A 71 has FCS 0x269B, content 3A 91 has 0xC195.
        assert_eq!(fcs(&[0x3A, 0x71]), 0x269B);
        assert_eq!(fcs(&[0x3A, 0x91]), 0xC195);
        // On the wire 0xC195 goes C1-escaped: 95 7D E1.
        let mut out = Vec::new();
        for b in 0xC195u16.to_le_bytes() {
            push_escaped(&mut out, b);
        }
        assert_eq!(out, [0x95, 0x7D, 0xE1]);
    }

    #[test]
    fn frame_round_trip_escapes_header_data_and_fcs() {
        let data = [0xE1, 0x00, 0xC0, 0x7D, 0xC1, 0x05];
        let wire = encode(&data);
        assert_eq!(wire[0], BOF);
        assert_eq!(*wire.last().unwrap(), EOF);
        // No unescaped delimiter inside the frame.
        assert!(!wire[1..wire.len() - 1]
            .iter()
            .any(|b| *b == BOF || *b == EOF));
        assert_eq!(decode_all(FrameReader, &wire), vec![Ok(data.to_vec())]);
    }

    #[test]
    fn bad_fcs_is_a_decode_error_and_the_next_frame_decodes() {
        let mut bad = encode(&[1, 2, 3]);
        let n = bad.len();
        bad[n - 2] ^= 0x01; // corrupt the FCS high byte (not a delimiter)
        let mut stream = bad.clone();
        stream.extend(encode(&[4, 5]));
        let out = decode_all(FrameReader, &stream);
        assert!(matches!(out[0], Err(DecodeError::FrameCheck { .. })));
        assert_eq!(out[1], Ok(vec![4, 5]));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn aborted_and_restarted_frames_are_dropped() {
        let mut stream = vec![BOF, 0x11, 0x01, ESCAPE, EOF];
        stream.extend([BOF, 0x11, 0x01]);
        stream.extend(encode(&[9]));
        let out = decode_all(FrameReader, &stream);
        assert!(matches!(&out[0], Err(DecodeError::Malformed(m)) if m.contains("aborted")));
        assert!(matches!(&out[1], Err(DecodeError::Malformed(m)) if m.contains("new frame")));
        assert_eq!(out[2], Ok(vec![9]));
    }

    #[test]
    fn endless_frame_is_bounded() {
        let mut d = Deframer::new(FrameReader);
        d.push(&[BOF]);
        d.push(&vec![0x55; MAX_WIRE_LEN]);
        assert_eq!(
            d.next_frame(),
            Some(Err(DecodeError::TooLong { max: MAX_WIRE_LEN }))
        );
        assert_eq!(d.pending(), 0);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..5),
            garbage in proptest::collection::vec(any::<u8>().prop_filter("not BOF", |b| *b != BOF), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = garbage.clone();
            for f in &frames {
                wire.extend(encode(f));
            }
            let whole = merge_garbage(decode_all(FrameReader, &wire));
            let at = cut.index(wire.len() + 1);
            let mut d = Deframer::new(FrameReader);
            let mut split = Vec::new();
            for part in [&wire[..at], &wire[at..]] {
                d.push(part);
                split.extend(std::iter::from_fn(|| d.next_frame()));
            }
            split.extend(d.finish().map(Err));
            prop_assert_eq!(merge_garbage(split), whole.clone());
            let got: Vec<Vec<u8>> = whole.into_iter().filter_map(Result::ok).collect();
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_all(FrameReader, &bytes);
        }
    }
}
