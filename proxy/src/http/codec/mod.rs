//! The HTTP/1.1 codec: a sans-IO parser and serializer for both sides of the proxy.
//!
//! Everything here works on byte buffers the caller owns and never touches a socket,
//! a clock or a timer. The server side ([`RequestParser`]) turns downstream bytes into a
//! [`RequestHead`](super::RequestHead) applying Envoy's HTTP/1 rules (Envoy's
//! `http1/codec_impl.cc` plus the request checks of `conn_manager_impl.cc`), and reports
//! every rejection as a [`RequestError`] carrying the status and response-code-details
//! Envoy answers with. The client side ([`ResponseParser`]) parses upstream response
//! heads. [`BodyDecoder`] streams message bodies (Content-Length, chunked,
//! read-until-close) out of the input buffer as zero-copy ranges, [`BodyEncoder`] frames
//! outgoing bodies, and [`encode_request_head`] / [`encode_response_head`] serialize heads
//! into a caller-provided `Vec<u8>`. [`h2_preface`] recognises an HTTP/2 client preface
//! for `codec_type: AUTO`.
//!
//! Promises: no panic on any input (fuzzed), bounded work and memory per call, no
//! allocation once the head structs, the caller's buffers and the parser's scratch space
//! are warm, and parsing stops exactly at the end of one message so that pipelined
//! requests can follow in the same buffer.

mod body;
mod chunked;
mod connection_headers;
mod encode;
mod error;
pub mod h2_preface;
mod head_scan;
mod reason;
mod request;
mod response;
mod rules;
mod target;

#[cfg(test)]
mod tests;

pub use body::{BodyDecoder, BodyFraming, Decoded};
pub use encode::{
    encode_request_head, encode_response_head, BodyEncoder, EncodeError, OutgoingBody, ResponseContext,
    CONTINUE_RESPONSE,
};
pub use error::{BodyError, RequestError, ResponseError};
pub use reason::reason_phrase;
pub use request::{RequestMeta, RequestParser};
pub use response::{Interim, ResponseMeta, ResponseParser};
pub use rules::{request_should_have_no_body, should_close_connection};

use sluice_config::cluster::HeadersWithUnderscoresAction;

/// Outcome of feeding a buffer to a head parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole head was parsed; `T` says how many bytes it took and how the body is framed.
    Complete(T),
    /// The head is not complete yet: call again with the same bytes plus more.
    Partial,
}

/// Envoy's `Http1Settings` plus the limits the HTTP connection manager hands its codec.
///
/// Built once per listener's HCM at config load and shared by its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http1Settings {
    /// `http_protocol_options.accept_http_10`: false answers HTTP/1.0 and 0.9 with 426.
    pub accept_http_10: bool,
    /// `http_protocol_options.default_host_for_http_10`: Host for HTTP/1.0 requests
    /// without one ("" = none).
    pub default_host_for_http_10: String,
    /// `http_protocol_options.allow_chunked_length`: accept Content-Length together with
    /// `Transfer-Encoding: chunked` (Content-Length is then dropped).
    pub allow_chunked_length: bool,
    /// `http_protocol_options.allow_absolute_url` (Envoy's default: true).
    pub allow_absolute_url: bool,
    /// `http_protocol_options.allow_custom_methods`: accept any token as a method
    /// instead of Envoy's fixed list.
    pub allow_custom_methods: bool,
    /// Envoy sets this when `use_remote_address` is on and `xff_num_trusted_hops` is 0:
    /// an `https://` absolute URL on a plaintext connection is then refused with 403.
    pub validate_scheme: bool,
    /// `max_request_headers_kb` (default 60): a larger head gets 431.
    pub max_request_headers_kb: u32,
    /// `common_http_protocol_options.max_headers_count` (default 100): more gets 431.
    pub max_headers_count: u32,
    /// `common_http_protocol_options.headers_with_underscores_action` (default ALLOW).
    pub headers_with_underscores_action: HeadersWithUnderscoresAction,
}

impl Default for Http1Settings {
    fn default() -> Self {
        Http1Settings {
            accept_http_10: false,
            default_host_for_http_10: String::new(),
            allow_chunked_length: false,
            allow_absolute_url: true,
            allow_custom_methods: false,
            validate_scheme: false,
            max_request_headers_kb: 60,
            max_headers_count: 100,
            headers_with_underscores_action: HeadersWithUnderscoresAction::Allow,
        }
    }
}

impl Http1Settings {
    /// The head size limit in bytes.
    pub fn max_head_bytes(&self) -> usize {
        (self.max_request_headers_kb as usize).saturating_mul(1024)
    }
}
