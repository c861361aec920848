//! Decoding errors. Every one is recoverable: the decoder has already dropped the bad value or
//! skipped the bad bytes, and the next call carries on with the rest of the stream.

use thiserror::Error;

/// Why some input did not decode. [`DecodeError::recovery`] says what was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A characteristic value is shorter than its flags promise; the whole value is rejected.
    #[error("value is {got} bytes but its flags need {needed}")]
    Truncated {
        /// Bytes the flags require.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A frame's checksum does not match; the frame is dropped and the stream resynchronised.
    #[error("checksum mismatch: frame carries {expected:#04x}, bytes give {actual:#04x}")]
    Checksum {
        /// The checksum byte on the wire.
        expected: u8,
        /// The checksum computed from the bytes.
        actual: u8,
    },
    /// A frame's 16-bit frame check sequence does not match; the frame is dropped.
    #[error(
        "frame check sequence mismatch: frame carries {expected:#06x}, bytes give {actual:#06x}"
    )]
    FrameCheck {
        /// The FCS on the wire.
        expected: u16,
        /// The FCS computed from the bytes.
        actual: u16,
    },
    /// Bytes that are not part of any frame were skipped to reach the next sync point.
    #[error("skipped {skipped} byte(s) that do not start a frame")]
    Garbage {
        /// How many bytes were skipped.
        skipped: usize,
    },
    /// A field holds a value the format does not allow; the frame is dropped.
    #[error("{field} out of range: {value}")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The value received.
        value: u32,
    },
    /// A frame or line is not in the format's grammar; it is dropped.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A line grew past the format's maximum without a terminator; it is dropped.
    #[error("line longer than {max} bytes without an end-of-line; dropped")]
    TooLong {
        /// The maximum line length.
        max: usize,
    },
}

/// What a [`DecodeError`] cost the stream. The decoder always continues after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// One characteristic value or one frame was dropped; nothing else was lost.
    FrameDropped,
    /// Bytes were skipped to resynchronise.
    BytesSkipped,
}

impl DecodeError {
    /// What was dropped; the stream always continues.
    pub fn recovery(&self) -> Recovery {
        match self {
            DecodeError::Garbage { .. }
            | DecodeError::Checksum { .. }
            | DecodeError::FrameCheck { .. } => Recovery::BytesSkipped,
            _ => Recovery::FrameDropped,
        }
    }
}
