//! Streaming message bodies out of an input buffer.
//!
//! A [`BodyDecoder`] is made from the [`BodyFraming`] a head parser reported and is fed
//! whatever bytes follow the head. Each [`decode`](BodyDecoder::decode) call consumes
//! framing and returns at most one range of body data *inside the caller's input*
//! (zero-copy), so the caller forwards it, drops the consumed bytes and calls again. The
//! decoder never needs the whole body, never reads past the end of its message (the next
//! pipelined message stays in the buffer), and the caller can apply backpressure simply
//! by handing it a shorter slice.

use std::ops::Range;

use super::chunked::ChunkedDecoder;
use super::error::BodyError;

/// How a message's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// No body: the message ends with its head.
    None,
    /// Exactly this many bytes (never 0: a zero length is `None`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

impl BodyFraming {
    /// Whether a body follows the head.
    pub fn has_body(self) -> bool {
        self != BodyFraming::None
    }
}

/// The outcome of one [`BodyDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input this call used up (framing and data); drop them.
    pub consumed: usize,
    /// Body bytes, as a range of the input (`data.end <= consumed`); may be empty.
    pub data: Range<usize>,
    /// The message is complete; `consumed` stops exactly at its end.
    pub end: bool,
}

impl Decoded {
    /// True when the decoder used all of the input without finishing: read more.
    pub fn needs_more(&self, input_len: usize) -> bool {
        !self.end && self.consumed == input_len
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// Streaming decoder for one message body.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: Kind,
}

impl BodyDecoder {
    /// A decoder for `framing`; `max_trailer_bytes` bounds a chunked body's trailer
    /// section (Envoy applies the head limit, `max_request_headers_kb`, to trailers).
    pub fn new(framing: BodyFraming, max_trailer_bytes: usize) -> Self {
        let kind = match framing {
            BodyFraming::None | BodyFraming::Length(0) => Kind::Done,
            BodyFraming::Length(n) => Kind::Length { remaining: n },
            BodyFraming::Chunked => Kind::Chunked(ChunkedDecoder::new(max_trailer_bytes)),
            BodyFraming::UntilClose => Kind::UntilClose,
        };
        BodyDecoder { kind }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        match &self.kind {
            Kind::Done => true,
            Kind::Chunked(c) => c.is_done(),
            Kind::Length { .. } | Kind::UntilClose => false,
        }
    }

    /// Body bytes still expected, when the framing says (Content-Length only).
    pub fn remaining(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { remaining } => Some(remaining),
            Kind::Done => Some(0),
            Kind::Chunked(_) | Kind::UntilClose => None,
        }
    }

    /// Consume framing from `input` and return the next run of body data.
    ///
    /// Call again on `&input[consumed..]` while `!end` and `consumed < input.len()`;
    /// when [`Decoded::needs_more`], wait for more bytes. After `end`, further calls
    /// consume nothing and report `end` again.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        match &mut self.kind {
            Kind::Done => Ok(Decoded { consumed: 0, data: 0..0, end: true }),
            Kind::Length { remaining } => {
                let n = (*remaining).min(input.len() as u64);
                *remaining -= n;
                // n <= input.len(), so it fits in usize.
                let n = n as usize;
                let end = *remaining == 0;
                if end {
                    self.kind = Kind::Done;
                }
                Ok(Decoded { consumed: n, data: 0..n, end })
            }
            Kind::UntilClose => Ok(Decoded { consumed: input.len(), data: 0..input.len(), end: false }),
            Kind::Chunked(c) => {
                let step = c.decode(input)?;
                Ok(Decoded { consumed: step.consumed, data: step.data, end: step.done })
            }
        }
    }

    /// The peer closed the connection: fine for a read-until-close body (which ends
    /// here), an error for a body that was still owed bytes.
    pub fn finish_at_eof(&mut self) -> Result<(), BodyError> {
        match self.kind {
            Kind::UntilClose => {
                self.kind = Kind::Done;
                Ok(())
            }
            _ if self.is_done() => Ok(()),
            _ => Err(BodyError::Truncated),
        }
    }
}
