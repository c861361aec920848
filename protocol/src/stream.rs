//! Incremental framing for serial byte streams.
//!
//! A [`FrameDecoder`] looks at the front of a buffer and answers one [`Step`]: wait for more
//! bytes, a frame of exactly `len` bytes, or `len` bytes of garbage to skip. [`Deframer`] owns
//! the buffer, so input can arrive in any chunks: the same bytes give the same frames whatever
//! the split points.

use crate::error::DecodeError;

/// One decision of a [`FrameDecoder`] about the front of the buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<F> {
    /// The buffer holds the start of a possible frame; more bytes are needed.
    NeedMore,
    /// A complete frame occupies the first `len` bytes (`len` ≥ 1).
    Frame {
        /// The decoded frame.
        frame: F,
        /// Bytes it occupied.
        len: usize,
    },
    /// The first `len` bytes (`len` ≥ 1) cannot start a frame and are dropped.
    Skip {
        /// Bytes to drop.
        len: usize,
        /// Why.
        error: DecodeError,
    },
}

/// A sans-IO decoder for one stream format.
pub trait FrameDecoder {
    /// What one frame decodes to.
    type Frame;

    /// Decides about the front of `buf`, as a pure function of those bytes. It must return
    /// [`Step::NeedMore`] only while `buf` could still grow into a frame, and must bound how much
    /// it waits for (a line length limit, say).
    fn step(&self, buf: &[u8]) -> Step<Self::Frame>;
}

/// Buffers a byte stream and yields its frames and errors in order.
#[derive(Debug)]
pub struct Deframer<D> {
    decoder: D,
    buf: Vec<u8>,
    start: usize,
}

impl<D: FrameDecoder> Deframer<D> {
    /// A deframer with an empty buffer.
    pub fn new(decoder: D) -> Self {
        Deframer {
            decoder,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Appends bytes from the device.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet part of a returned frame or error.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next frame or error, or `None` when more bytes are needed. Runs of skipped garbage
    /// are reported once, as one [`DecodeError::Garbage`] with the total count.
    pub fn next_frame(&mut self) -> Option<Result<D::Frame, DecodeError>> {
        let mut garbage = 0usize;
        loop {
            let rest = &self.buf[self.start..];
            if rest.is_empty() {
                return self.report_garbage(garbage);
            }
            match self.decoder.step(rest) {
                Step::NeedMore => return self.report_garbage(garbage),
                Step::Frame { frame, len } => {
                    if garbage > 0 {
                        // Report the garbage now; the frame is found again on the next call.
                        return self.report_garbage(garbage);
                    }
                    self.start += len.clamp(1, rest.len());
                    return Some(Ok(frame));
                }
                Step::Skip {
                    len,
                    error: DecodeError::Garbage { .. },
                } => {
                    let len = len.clamp(1, rest.len());
                    self.start += len;
                    garbage += len;
                }
                Step::Skip { len, error } => {
                    if garbage > 0 {
                        // Keep order: report the garbage first; this error comes next call.
                        return self.report_garbage(garbage);
                    }
                    self.start += len.clamp(1, rest.len());
                    return Some(Err(error));
                }
            }
        }
    }

    fn report_garbage(&self, garbage: usize) -> Option<Result<D::Frame, DecodeError>> {
        (garbage > 0).then_some(Err(DecodeError::Garbage { skipped: garbage }))
    }

    /// Gives up the bytes of an unfinished frame at the end of input, reporting them.
    pub fn finish(&mut self) -> Option<DecodeError> {
        let left = self.pending();
        self.buf.clear();
        self.start = 0;
        (left > 0).then_some(DecodeError::Malformed(format!(
            "input ended inside a frame ({left} byte(s) left over)"
        )))
    }
}

/// Merges adjacent [`DecodeError::Garbage`] reports. Garbage is reported as soon as the buffer
/// runs dry, so a garbage run split across two reads is reported twice; with this, outputs can
/// be compared across chunkings.
pub fn merge_garbage<T>(items: Vec<Result<T, DecodeError>>) -> Vec<Result<T, DecodeError>> {
    let mut out: Vec<Result<T, DecodeError>> = Vec::with_capacity(items.len());
    for item in items {
        if let (
            Some(Err(DecodeError::Garbage { skipped: total })),
            Err(DecodeError::Garbage { skipped }),
        ) = (out.last_mut(), &item)
        {
            *total += skipped;
            continue;
        }
        out.push(item);
    }
    out
}

/// Decodes all of `bytes` as one stream: every frame and error in order, then any unfinished
/// frame at the end. For tests and the `decode` field tool.
pub fn decode_all<D: FrameDecoder>(decoder: D, bytes: &[u8]) -> Vec<Result<D::Frame, DecodeError>> {
    let mut deframer = Deframer::new(decoder);
    deframer.push(bytes);
    let mut out: Vec<_> = std::iter::from_fn(|| deframer.next_frame()).collect();
    out.extend(deframer.finish().map(Err));
    out
}
