//! `codec_type: AUTO`: recognising an HTTP/2 client and turning it away as HTTP/2.
//!
//! [`detect`] compares the first bytes of a connection with the HTTP/2 client preface
//! (RFC 9113 §3.4), answering as soon as the bytes decide it: a prefix of the preface
//! needs more bytes, anything else is HTTP/1. Until sluice speaks HTTP/2, an HTTP/2
//! client is answered in its own protocol, never with an HTTP/1 response: the server
//! preface (an empty SETTINGS frame) and a GOAWAY with last-stream-id 0 and error
//! `HTTP_1_1_REQUIRED`, after which the connection closes. Frames are built with a
//! small `FrameHeader` repr in the manner of smoltcp's `wire` module.

/// The HTTP/2 client connection preface.
pub const CLIENT_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 error code `HTTP_1_1_REQUIRED` (RFC 9113 §7).
pub const HTTP_1_1_REQUIRED: u32 = 0xd;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// The full client preface: an HTTP/2 client.
    Http2,
    /// Not (yet) distinguishable: every byte so far matches the preface.
    NeedMore,
    /// Not HTTP/2: parse as HTTP/1.
    Http1,
}

/// Classify the first bytes of a connection.
pub fn detect(buf: &[u8]) -> Detected {
    let n = buf.len().min(CLIENT_PREFACE.len());
    if buf[..n] != CLIENT_PREFACE[..n] {
        Detected::Http1
    } else if n == CLIENT_PREFACE.len() {
        Detected::Http2
    } else {
        Detected::NeedMore
    }
}

/// Frame types used here (RFC 9113 §6).
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_GOAWAY: u8 = 0x7;

/// The 9-byte header every HTTP/2 frame starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub length: u32,
    pub kind: u8,
    pub flags: u8,
    /// Stream identifier (31 bits).
    pub stream_id: u32,
}

impl FrameHeader {
    pub const LEN: usize = 9;

    /// Parse a frame header from at least 9 bytes.
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; 9] = buf.get(..Self::LEN)?.try_into().ok()?;
        Some(FrameHeader {
            length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    /// Append the 9 header bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let len = self.length.to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream_id & 0x7fff_ffff).to_be_bytes());
    }
}

/// Append the answer to an HTTP/2 client: an empty SETTINGS frame (the server
/// preface), then GOAWAY(last-stream-id 0, HTTP_1_1_REQUIRED). 26 bytes.
pub fn emit_http_1_1_required(out: &mut Vec<u8>) {
    FrameHeader { length: 0, kind: FRAME_SETTINGS, flags: 0, stream_id: 0 }.emit(out);
    FrameHeader { length: 8, kind: FRAME_GOAWAY, flags: 0, stream_id: 0 }.emit(out);
    out.extend_from_slice(&0u32.to_be_bytes()); // last-stream-id
    out.extend_from_slice(&HTTP_1_1_REQUIRED.to_be_bytes());
}
