//! Why the codec refused a message, in Envoy's words.
//!
//! Each variant maps to the HTTP status Envoy answers with and to Envoy's
//! response-code-details string (what `%RESPONSE_CODE_DETAILS%` logs). Request errors
//! raised by Envoy's codec close the connection after the local reply; the two raised by
//! Envoy's connection manager (missing Host, non-origin path) are stream errors. The
//! enums are `Copy` and carry no data, so producing one never allocates.

use std::fmt;

/// A downstream request the proxy must answer locally instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestError {
    /// Malformed request line, header syntax, bare CR or LF, obs-fold, bad or repeated
    /// Content-Length, bad chunked framing: 400 `http1.codec_error`.
    CodecError,
    /// A header value with a forbidden byte: 400 `http1.invalid_characters`.
    InvalidCharacters,
    /// Header section larger than `max_request_headers_kb` (or trailers larger than
    /// it): 431 `http1.headers_too_large`.
    HeadersTooLarge,
    /// More than `max_headers_count` headers: 431 `http1.too_many_headers`.
    TooManyHeaders,
    /// A header name with `_` under REJECT_REQUEST: 400 `http1.unexpected_underscore`.
    InvalidUnderscore,
    /// Content-Length with Transfer-Encoding (allow_chunked_length off, or the
    /// encoding is not chunked): 400 `http1.content_length_and_chunked_not_allowed`.
    ChunkedContentLength,
    /// Transfer-Encoding other than exactly `chunked`, or any on CONNECT: 501
    /// `http1.invalid_transfer_encoding`.
    InvalidTransferEncoding,
    /// A CONNECT request with a non-zero Content-Length: 400 `http1.body_disallowed`.
    BodyDisallowed,
    /// Connection nominates too many or forbidden headers: 400
    /// `http1.connection_header_rejected`.
    ConnectionHeaderRejected,
    /// An absolute-form target that does not parse: 400 `http1.invalid_url`.
    InvalidUrl,
    /// An absolute-form target whose scheme is not http/https: 400 `http1.invalid_scheme`.
    InvalidScheme,
    /// `https://` target on a plaintext connection with scheme validation on: 403
    /// `http1.https_url_on_plaintext_connection`.
    HttpsInPlaintext,
    /// HTTP/1.0 or 0.9 without accept_http_10: 426 `low_version`.
    LowVersion,
    /// A Host value with forbidden characters: 400 `http.invalid_authority`.
    InvalidAuthority,
    /// No Host (nor absolute-form authority, nor default host): 400 `missing_host_header`.
    MissingHost,
    /// The path is not in origin form (absolute URL with allow_absolute_url off,
    /// `OPTIONS *`): 404 `absolute_path_rejected`.
    AbsolutePath,
}

impl RequestError {
    /// The status Envoy answers with.
    pub fn status(self) -> u16 {
        use RequestError::*;
        match self {
            HeadersTooLarge | TooManyHeaders => 431,
            InvalidTransferEncoding => 501,
            HttpsInPlaintext => 403,
            LowVersion => 426,
            AbsolutePath => 404,
            CodecError
            | InvalidCharacters
            | InvalidUnderscore
            | ChunkedContentLength
            | BodyDisallowed
            | ConnectionHeaderRejected
            | InvalidUrl
            | InvalidScheme
            | InvalidAuthority
            | MissingHost => 400,
        }
    }

    /// Envoy's response-code-details string.
    pub fn details(self) -> &'static str {
        use RequestError::*;
        match self {
            CodecError => "http1.codec_error",
            InvalidCharacters => "http1.invalid_characters",
            HeadersTooLarge => "http1.headers_too_large",
            TooManyHeaders => "http1.too_many_headers",
            InvalidUnderscore => "http1.unexpected_underscore",
            ChunkedContentLength => "http1.content_length_and_chunked_not_allowed",
            InvalidTransferEncoding => "http1.invalid_transfer_encoding",
            BodyDisallowed => "http1.body_disallowed",
            ConnectionHeaderRejected => "http1.connection_header_rejected",
            InvalidUrl => "http1.invalid_url",
            InvalidScheme => "http1.invalid_scheme",
            HttpsInPlaintext => "http1.https_url_on_plaintext_connection",
            LowVersion => "low_version",
            InvalidAuthority => "http.invalid_authority",
            MissingHost => "missing_host_header",
            AbsolutePath => "absolute_path_rejected",
        }
    }

    /// The local reply body Envoy sends: its codec answers with the reason phrase
    /// (`sendLocalReply(code, CodeUtility::toString(code))`), its connection manager with
    /// an empty body.
    pub fn body(self) -> &'static str {
        if self.is_connection_error() {
            super::reason_phrase(self.status())
        } else {
            ""
        }
    }

    /// True when Envoy's codec raised it: the connection closes after the reply. False
    /// for the connection manager's stream-level checks (MissingHost, AbsolutePath),
    /// where the connection may be reused once the request has been read whole.
    pub fn is_connection_error(self) -> bool {
        !matches!(self, RequestError::MissingHost | RequestError::AbsolutePath)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.details())
    }
}

impl std::error::Error for RequestError {}

/// An upstream response the proxy cannot use: the upstream request fails with a
/// protocol error and the connection is not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseError {
    /// Malformed status line or headers, bare CR or LF, bad Content-Length.
    CodecError,
    /// A header value with a forbidden byte.
    InvalidCharacters,
    /// Head larger than the response head limit (Envoy: 80 KiB).
    HeadersTooLarge,
    /// More headers than the cluster's max_headers_count.
    TooManyHeaders,
    /// Content-Length with Transfer-Encoding.
    ChunkedContentLength,
    /// Transfer-Encoding other than exactly `chunked`.
    InvalidTransferEncoding,
    /// Transfer-Encoding on a 1xx or 204.
    TransferEncodingNotAllowed,
    /// A non-zero Content-Length on a 1xx or 204.
    ContentLengthNotAllowed,
    /// 101 Switching Protocols to a request that asked for no upgrade.
    UnexpectedUpgrade,
}

impl ResponseError {
    /// Envoy's response-code-details string for the failed upstream exchange.
    pub fn details(self) -> &'static str {
        use ResponseError::*;
        match self {
            CodecError | UnexpectedUpgrade => "http1.codec_error",
            InvalidCharacters => "http1.invalid_characters",
            HeadersTooLarge => "http1.headers_too_large",
            TooManyHeaders => "http1.too_many_headers",
            ChunkedContentLength => "http1.content_length_and_chunked_not_allowed",
            InvalidTransferEncoding => "http1.invalid_transfer_encoding",
            TransferEncodingNotAllowed => "http1.transfer_encoding_not_allowed",
            ContentLengthNotAllowed => "http1.content_length_not_allowed",
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream protocol error: {}", self.details())
    }
}

impl std::error::Error for ResponseError {}

/// A message body that breaks its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyError {
    /// Bad chunk size (not hex, overflow), chunk extension, missing CRLF, bare CR or LF.
    InvalidChunk,
    /// A malformed trailer field.
    InvalidTrailer,
    /// Trailers larger than the head size limit.
    TrailersTooLarge,
    /// The connection closed before a Content-Length or chunked body ended.
    Truncated,
}

impl BodyError {
    /// The status Envoy answers a downstream with when it has not responded yet.
    pub fn status(self) -> u16 {
        match self {
            BodyError::TrailersTooLarge => 431,
            _ => 400,
        }
    }

    /// Envoy's response-code-details string.
    pub fn details(self) -> &'static str {
        match self {
            BodyError::TrailersTooLarge => "http1.headers_too_large",
            BodyError::InvalidChunk | BodyError::InvalidTrailer | BodyError::Truncated => "http1.codec_error",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            BodyError::InvalidChunk => "invalid chunked framing",
            BodyError::InvalidTrailer => "invalid trailer",
            BodyError::TrailersTooLarge => "trailers too large",
            BodyError::Truncated => "connection closed inside a message body",
        };
        write!(f, "{what} ({})", self.details())
    }
}

impl std::error::Error for BodyError {}
