//! The chunked transfer coding (RFC 9112 §7.1), decoded one byte of framing at a time.
//!
//! Chunk data is never touched: the decoder reports the range of each chunk's bytes in
//! the caller's input and skips over them. Framing — chunk-size lines with optional
//! extensions, the CRLF after each chunk, the trailer section — goes through a small
//! state machine, so input may be split anywhere. Chunk sizes are bounded by
//! [`MAX_CHUNK_SIZE`], size lines (extensions included) are bounded, bare CR and LF are errors, and the
//! trailer section is validated, bounded and then dropped, as Envoy does with
//! `enable_trailers` off.

use super::error::BodyError;
use super::rules::{is_field_value_byte, is_tchar};

/// Longest chunk-size line accepted (size, whitespace and extensions).
const MAX_CHUNK_LINE: u32 = 4096;

/// Largest chunk size accepted: 2^63 - 1, the largest file offset (nginx's
/// `NGX_MAX_OFF_T_VALUE` bound). llhttp (`mulAdd` on its 64-bit `content_length`) and
/// Envoy's Balsa reject only sizes that overflow 64 bits, so they take 16 hex digits up
/// to `ffffffffffffffff`; no body that large can ever complete, so sluice refuses any
/// size from `8000000000000000` up. Leading zeros do not count, as in llhttp.
pub(crate) const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    Size {
        value: u64,
        digits: u32,
    },
    /// Spaces or tabs after the size.
    SizeWs {
        value: u64,
    },
    /// Inside chunk extensions, up to CR.
    Ext {
        value: u64,
    },
    /// Saw CR ending the size line; expect LF.
    SizeLf {
        value: u64,
    },
    /// Inside a chunk's data.
    Data {
        remaining: u64,
    },
    /// After chunk data: expect CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerName,
    TrailerValue,
    /// Saw CR ending a trailer line; expect LF.
    TrailerLf,
    /// Saw CR of the final empty line; expect LF.
    FinalLf,
    Done,
}

/// Decoder state for one chunked body.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line.
    line_len: u32,
    trailer_bytes: usize,
    max_trailer_bytes: usize,
}

/// What one call produced: bytes consumed, and the data range within them if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkStep {
    pub consumed: usize,
    pub data: std::ops::Range<usize>,
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder { state: State::Size { value: 0, digits: 0 }, line_len: 0, trailer_bytes: 0, max_trailer_bytes }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume framing from `input` until chunk data (returned as a range), the end of
    /// the message, or the end of the input.
    pub fn decode(&mut self, input: &[u8]) -> Result<ChunkStep, BodyError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data { remaining } => {
                    let avail = (input.len() - i) as u64;
                    let n = remaining.min(avail);
                    self.state = if n == remaining { State::DataCr } else { State::Data { remaining: remaining - n } };
                    // n <= avail, which came from a usize.
                    let end = i + n as usize;
                    return Ok(ChunkStep { consumed: end, data: i..end, done: false });
                }
                _ => {
                    self.step(input[i])?;
                    i += 1;
                }
            }
        }
        Ok(ChunkStep { consumed: i, data: i..i, done: self.is_done() })
    }

    /// Advance the framing state machine by one byte.
    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        use State::*;
        if matches!(self.state, Size { .. } | SizeWs { .. } | Ext { .. } | SizeLf { .. }) {
            self.line_len += 1;
            if self.line_len > MAX_CHUNK_LINE {
                return Err(BodyError::InvalidChunk);
            }
        }
        if matches!(self.state, TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > self.max_trailer_bytes {
                return Err(BodyError::TrailersTooLarge);
            }
        }
        self.state = match (self.state, b) {
            (Size { value, digits }, _) if b.is_ascii_hexdigit() => {
                let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                let value = value
                    .checked_mul(16)
                    .and_then(|v| v.checked_add(d))
                    .filter(|v| *v <= MAX_CHUNK_SIZE)
                    .ok_or(BodyError::InvalidChunk)?;
                Size { value, digits: digits + 1 }
            }
            (Size { digits: 0, .. }, _) => return Err(BodyError::InvalidChunk),
            (Size { value, .. } | SizeWs { value }, b' ' | b'\t') => SizeWs { value },
            (Size { value, .. } | SizeWs { value }, b';') => Ext { value },
            (Size { value, .. } | SizeWs { value } | Ext { value }, b'\r') => SizeLf { value },
            (Ext { value }, _) if is_field_value_byte(b) => Ext { value },
            (SizeLf { value }, b'\n') => {
                self.line_len = 0;
                if value == 0 {
                    TrailerStart
                } else {
                    Data { remaining: value }
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { value: 0, digits: 0 },
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart | TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_value_byte(b) => TrailerValue,
            (TrailerLf, b'\n') => TrailerStart,
            (FinalLf, b'\n') => Done,
            (TrailerStart | TrailerName | TrailerValue | TrailerLf, _) => return Err(BodyError::InvalidTrailer),
            _ => return Err(BodyError::InvalidChunk),
        };
        Ok(())
    }
}
