//! `envoy.filters.listener.tls_inspector`: decide from the first bytes of a connection
//! whether it speaks TLS, and if so which server name (SNI) and application protocols
//! (ALPN) the client asks for, without consuming anything.
//!
//! Sans-IO: the connection layer peeks (MSG_PEEK, or the unread bytes of a userspace
//! socket) and hands [`TlsInspector::inspect`] the whole peeked prefix after every
//! readable event; the inspector remembers how far it got, so each byte is examined
//! once and a ClientHello split into one-byte segments costs no more than one in a
//! single segment. The answer is [`Inspect::NeedMore`], [`Inspect::Tls`] (set the
//! transport protocol `tls`, the SNI and the ALPN list), [`Inspect::NotTls`] (leave the
//! transport protocol to the listener's default `raw_buffer`) or [`Inspect::Close`].
//!
//! The verdicts are Envoy's, which are BoringSSL's, since Envoy's tls_inspector runs
//! BoringSSL's handshake over the peeked bytes until its servername callback fires
//! (`tls_inspector.cc`): the ClientHello may span several records, each a handshake
//! record of at most 2^14 bytes with major version 3; up to 32 empty records are skipped;
//! the message is at most 16 KiB; an SSLv2-compatible ClientHello counts as TLS. Anything
//! BoringSSL would refuse is "not TLS" (Envoy's `tls_not_found`), or a reason to close
//! with `close_connection_on_client_hello_parsing_errors`. Needing more bytes once
//! `max_client_hello_size` bytes are peeked closes the connection (`client_hello_too_large`).
//! Contents of extensions other than server_name, ALPN and supported_versions are left
//! to the TLS stack that terminates the connection.
//!
//! No accessor can panic on any input (every view is checked first; fuzzed), and no
//! allocation happens unless a ClientHello spans records, when one buffer of at most
//! 16 KiB reassembles it.

pub mod client_hello;
pub mod record;
#[cfg(test)]
mod tests;

use std::ops::Range;

use client_hello::{handshake_header, HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER_LEN, MAX_CLIENT_HELLO_LEN};
pub use client_hello::{AlpnList, ClientHello, ClientHelloRepr};
use record::{Record, V2ClientHello};

/// Why a wire view could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// More bytes may complete it.
    Truncated,
    /// No continuation can make it valid.
    Malformed,
}

/// Envoy's `TLS_MAX_CLIENT_HELLO` (tls_inspector.h): the default and the largest
/// allowed `max_client_hello_size`.
pub const TLS_MAX_CLIENT_HELLO: u32 = 64 * 1024;
/// The transport protocol a detected TLS connection gets.
pub const TRANSPORT_PROTOCOL_TLS: &str = "tls";
/// The transport protocol of a connection no listener filter classified.
pub const TRANSPORT_PROTOCOL_RAW_BUFFER: &str = "raw_buffer";
/// BoringSSL discards at most this many empty records in a row (`kMaxEmptyRecords`).
const MAX_EMPTY_RECORDS: u8 = 32;

/// `envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsInspectorConfig {
    /// Peek at most this many bytes; a ClientHello still incomplete then closes.
    pub max_client_hello_size: u32,
    /// The first peek size; doubled while more is needed, up to the maximum.
    pub initial_read_buffer_size: u32,
    /// Close (instead of treating as plaintext) on a malformed ClientHello or non-TLS.
    pub close_connection_on_client_hello_parsing_errors: bool,
}

impl Default for TlsInspectorConfig {
    fn default() -> Self {
        TlsInspectorConfig {
            max_client_hello_size: TLS_MAX_CLIENT_HELLO,
            initial_read_buffer_size: TLS_MAX_CLIENT_HELLO,
            close_connection_on_client_hello_parsing_errors: false,
        }
    }
}

impl TlsInspectorConfig {
    /// Envoy's construction rules: the maximum is capped, the initial size is at most
    /// the maximum (and defaults to it).
    pub fn new(max: Option<u32>, initial: Option<u32>, close_on_errors: bool) -> Result<Self, String> {
        let max = max.unwrap_or(TLS_MAX_CLIENT_HELLO);
        if max > TLS_MAX_CLIENT_HELLO {
            return Err(format!("max_client_hello_size of {max} is greater than maximum of {TLS_MAX_CLIENT_HELLO}."));
        }
        Ok(TlsInspectorConfig {
            max_client_hello_size: max,
            initial_read_buffer_size: initial.unwrap_or(max).min(max),
            close_connection_on_client_hello_parsing_errors: close_on_errors,
        })
    }
}

/// The inspector's verdict on the bytes peeked so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspect<'a> {
    /// Wait for the next readable event and call again with the longer prefix.
    NeedMore,
    /// A ClientHello BoringSSL would accept: transport protocol `tls`.
    Tls(ClientHelloRepr<'a>),
    /// Not TLS (or a ClientHello BoringSSL refuses): continue with the next listener
    /// filter; the transport protocol stays unset (`raw_buffer`).
    NotTls,
    /// Close the connection.
    Close(CloseReason),
}

impl Inspect<'_> {
    /// The transport protocol to record on the connection, if the inspector sets one.
    pub fn transport_protocol(&self) -> Option<&'static str> {
        matches!(self, Inspect::Tls(_)).then_some(TRANSPORT_PROTOCOL_TLS)
    }
}

/// Why the inspector closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// `max_client_hello_size` bytes peeked and still no complete ClientHello.
    ClientHelloTooLarge,
    /// Not a valid ClientHello, with `close_connection_on_client_hello_parsing_errors`.
    ClientHelloParseError,
}

/// Where the accepted ClientHello body lives, so a repeated call can answer again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// In the caller's peeked bytes.
    Peeked(Range<usize>),
    /// In `reassembly[HANDSHAKE_HEADER_LEN..]`.
    Reassembled,
    /// An SSLv2-compatible ClientHello: no extensions.
    V2 { version: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Scanning,
    Found(Found),
    NotTls,
    Closed(CloseReason),
}

/// Per-connection inspection state.
#[derive(Debug, Clone)]
pub struct TlsInspector {
    config: TlsInspectorConfig,
    state: State,
    /// Offset of the next record header not yet consumed.
    scanned: usize,
    empty_records: u8,
    /// Handshake bytes of a ClientHello that spans records (empty otherwise).
    reassembly: Vec<u8>,
    /// Envoy's `requested_read_bytes_`.
    requested: usize,
}

impl TlsInspector {
    pub fn new(config: TlsInspectorConfig) -> TlsInspector {
        TlsInspector {
            config,
            state: State::Scanning,
            scanned: 0,
            empty_records: 0,
            reassembly: Vec::new(),
            requested: config.initial_read_buffer_size.min(config.max_client_hello_size) as usize,
        }
    }

    /// How many bytes the connection layer should peek next time.
    pub fn max_read_bytes(&self) -> usize {
        self.requested
    }

    /// Examine the peeked prefix of the connection (all of it, not just the new bytes).
    /// After a verdict other than `NeedMore` further calls repeat that verdict.
    pub fn inspect<'a>(&'a mut self, peeked: &'a [u8]) -> Inspect<'a> {
        let max = self.config.max_client_hello_size as usize;
        let data = &peeked[..peeked.len().min(max)];
        if self.state == State::Scanning {
            self.state = self.scan(data);
            if self.state == State::Scanning {
                if data.len() >= max {
                    self.state = State::Closed(CloseReason::ClientHelloTooLarge);
                } else if data.len() >= self.requested {
                    self.requested = (2 * data.len()).min(max);
                }
            }
            if self.state == State::NotTls && self.config.close_connection_on_client_hello_parsing_errors {
                self.state = State::Closed(CloseReason::ClientHelloParseError);
            }
        }
        let body = match &self.state {
            State::Scanning => return Inspect::NeedMore,
            State::NotTls => return Inspect::NotTls,
            State::Closed(reason) => return Inspect::Close(*reason),
            State::Found(Found::V2 { version }) => {
                return Inspect::Tls(ClientHelloRepr { server_name: None, alpn: None, version: *version })
            }
            State::Found(Found::Peeked(range)) => data.get(range.clone()),
            State::Found(Found::Reassembled) => self.reassembly.get(HANDSHAKE_HEADER_LEN..),
        };
        // A caller that shrank its buffer since the message was found gets a
        // conservative NeedMore rather than a panic.
        let Some(body) = body else { return Inspect::NeedMore };
        match accept(body) {
            Ok(repr) => Inspect::Tls(repr),
            Err(_) => {
                self.state = State::NotTls;
                if self.config.close_connection_on_client_hello_parsing_errors {
                    self.state = State::Closed(CloseReason::ClientHelloParseError);
                    return Inspect::Close(CloseReason::ClientHelloParseError);
                }
                Inspect::NotTls
            }
        }
    }

    /// Consume the complete records after `scanned`.
    fn scan(&mut self, data: &[u8]) -> State {
        if self.scanned == 0 && self.reassembly.is_empty() && self.empty_records == 0 {
            if data.len() < record::HEADER_LEN {
                return State::Scanning;
            }
            if record::is_v2_client_hello(data) {
                return scan_v2(data);
            }
        }
        loop {
            let Some(rest) = data.get(self.scanned..) else { return State::Scanning };
            let rec = Record::new_unchecked(rest);
            if !rec.has_header() {
                return State::Scanning;
            }
            if rec.check_header().is_err() {
                return State::NotTls;
            }
            if rec.check_len().is_err() {
                return State::Scanning;
            }
            let fragment = rec.fragment();
            let fragment_start = self.scanned + record::HEADER_LEN;
            self.scanned += rec.total_len();
            if fragment.is_empty() {
                self.empty_records += 1;
                if self.empty_records > MAX_EMPTY_RECORDS {
                    return State::NotTls;
                }
                continue;
            }
            self.empty_records = 0;
            if self.reassembly.is_empty() {
                // The first handshake bytes: if the whole message is in this record,
                // parse it where it lies.
                match check_handshake_header(fragment) {
                    Err(WireError::Malformed) => return State::NotTls,
                    Ok(len) if fragment.len() >= HANDSHAKE_HEADER_LEN + len => {
                        let start = fragment_start + HANDSHAKE_HEADER_LEN;
                        return State::Found(Found::Peeked(start..start + len));
                    }
                    Ok(len) => self.reassembly.reserve_exact(HANDSHAKE_HEADER_LEN + len),
                    Err(WireError::Truncated) => {}
                }
                self.reassembly.extend_from_slice(fragment);
            } else {
                let want = match handshake_header(&self.reassembly) {
                    Ok((_, len)) => (HANDSHAKE_HEADER_LEN + len).saturating_sub(self.reassembly.len()),
                    Err(_) => fragment.len(),
                };
                self.reassembly.extend_from_slice(&fragment[..want.min(fragment.len())]);
            }
            match check_handshake_header(&self.reassembly) {
                Err(WireError::Malformed) => return State::NotTls,
                Ok(len) if self.reassembly.len() >= HANDSHAKE_HEADER_LEN + len => {
                    self.reassembly.truncate(HANDSHAKE_HEADER_LEN + len);
                    return State::Found(Found::Reassembled);
                }
                _ => {}
            }
        }
    }
}

/// The handshake header of the first message: a ClientHello of at most 16 KiB.
fn check_handshake_header(data: &[u8]) -> Result<usize, WireError> {
    let (ty, len) = handshake_header(data)?;
    if ty != HANDSHAKE_CLIENT_HELLO || len > MAX_CLIENT_HELLO_LEN {
        return Err(WireError::Malformed);
    }
    Ok(len)
}

/// A complete ClientHello body: TLS if BoringSSL would accept it.
fn accept(body: &[u8]) -> Result<ClientHelloRepr<'_>, WireError> {
    ClientHello::new_checked(body).and_then(|h| ClientHelloRepr::parse(&h))
}

/// An SSLv2-compatible ClientHello, converted the way BoringSSL converts it.
fn scan_v2(data: &[u8]) -> State {
    let hello = match V2ClientHello::new_checked(data) {
        Ok(hello) => hello,
        Err(WireError::Truncated) => return State::Scanning,
        Err(WireError::Malformed) => return State::NotTls,
    };
    if hello.tls_cipher_suites().next().is_none() {
        return State::NotTls;
    }
    let Ok(version) = client_hello::negotiate_version(None, hello.version()) else { return State::NotTls };
    match client_hello::check_fallback_and_compression(hello.tls_cipher_suites(), &[0], version) {
        Ok(()) => State::Found(Found::V2 { version }),
        Err(_) => State::NotTls,
    }
}

/// Envoy's `tls_inspector.*` counters, per worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsInspectorStats {
    pub client_hello_too_large: u64,
    pub tls_found: u64,
    pub tls_not_found: u64,
    pub alpn_found: u64,
    pub alpn_not_found: u64,
    pub sni_found: u64,
    pub sni_not_found: u64,
}

impl TlsInspectorStats {
    /// Count a final verdict (call once per connection, not for `NeedMore`).
    pub fn record(&mut self, verdict: &Inspect<'_>) {
        match verdict {
            Inspect::NeedMore => {}
            Inspect::Tls(hello) => {
                self.tls_found += 1;
                match hello.server_name {
                    Some(_) => self.sni_found += 1,
                    None => self.sni_not_found += 1,
                }
                match hello.alpn {
                    Some(_) => self.alpn_found += 1,
                    None => self.alpn_not_found += 1,
                }
            }
            Inspect::NotTls => self.tls_not_found += 1,
            Inspect::Close(CloseReason::ClientHelloTooLarge) => self.client_hello_too_large += 1,
            Inspect::Close(CloseReason::ClientHelloParseError) => {}
        }
    }
}
