//! `codec_type: AUTO`: recognising an HTTP/2 client by its preface.
//!
//! [`detect`] compares the first bytes of a connection with the HTTP/2 client preface
//! (RFC 9113 §3.4), answering as soon as the bytes decide it: a prefix of the preface
//! needs more bytes, anything else is HTTP/1. The connection manager then serves the
//! connection with the HTTP/2 codec (`conn_manager/http2`) or the HTTP/1.1 one.

/// The HTTP/2 client connection preface.
pub const CLIENT_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
