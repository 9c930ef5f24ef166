//! A TLS session as a byte-in, byte-out state machine that any datapath can drive.
//!
//! rustls runs on bytes, not sockets, and so does [`TlsSession`]: the connection layer
//! reads ciphertext from its socket (kernel or smoltcp) and [`feed_ciphertext`]s it,
//! [`read_plaintext`]s what was decrypted, [`write_plaintext`]s what it wants sent and
//! [`take_ciphertext`]s the records to write to the socket, for as long as
//! [`wants_write`] says so. The usual loop after a readable event:
//!
//! ```text
//! n = socket.read(buf); if n == 0 { session.feed_eof() } else { session.feed_ciphertext(&buf[..n])? }
//! while let ReadStatus::Data(k) = session.read_plaintext(&mut plain)? { deliver(&plain[..k]) }
//! while session.wants_write() { let k = session.take_ciphertext(&mut out); socket.write(&out[..k]) }
//! ```
//!
//! A server session first reads the ClientHello on its own, then picks the context's
//! config (with or without ALPN, so that a client offering none of our protocols gets
//! no ALPN rather than a failed handshake, as with Envoy). After an error the session
//! still has the alert to send: flush [`take_ciphertext`] before closing. Nothing here
//! blocks, reads a clock (certificate checks use rustls's own) or touches a socket.
//!
//! [`feed_ciphertext`]: TlsSession::feed_ciphertext
//! [`read_plaintext`]: TlsSession::read_plaintext
//! [`write_plaintext`]: TlsSession::write_plaintext
//! [`take_ciphertext`]: TlsSession::take_ciphertext
//! [`wants_write`]: TlsSession::wants_write

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{AcceptedAlert, Acceptor};
use rustls::sign::CertifiedKey;
use rustls::{ClientConnection, Connection, ProtocolVersion};
use sluice_config::tls::TlsVersion;

use super::context::{ClientTlsContext, ServerTlsContext};
use super::error::TlsError;

/// What [`TlsSession::read_plaintext`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// This many plaintext bytes were copied out.
    Data(usize),
    /// Nothing to read now; feed more ciphertext.
    Empty,
    /// The peer finished: with a `close_notify`, or by closing the transport.
    Closed { close_notify: bool },
}

/// Per-connection choices for a client session.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSessionOptions<'a> {
    /// SNI to send instead of the context's `sni` (for example the upstream host name).
    pub server_name: Option<&'a str>,
    /// ALPN protocols to offer instead of the context's `alpn_protocols`.
    pub alpn: Option<&'a [&'a [u8]]>,
}

enum State {
    /// Server side, before the ClientHello is complete.
    Accepting {
        acceptor: Box<Acceptor>,
        ctx: Arc<ServerTlsContext>,
    },
    Connected(Box<Connection>),
    /// Failed before a connection existed; the alert still to send.
    Rejected {
        alert: Box<AcceptedAlert>,
        pending: bool,
    },
}

/// rustls refuses more ciphertext once this much decrypted plaintext waits unread.
const RECEIVED_PLAINTEXT_LIMIT: usize = 16 * 1024;

/// One TLS connection's state, driven by the connection layer.
pub struct TlsSession {
    state: State,
    error: Option<(TlsError, rustls::Error)>,
    transport_eof: bool,
    buffer_limit: Option<usize>,
    /// Decrypted bytes not yet read out (rustls's receive buffer).
    plaintext_buffered: usize,
    peer_closed: bool,
    /// Server side: the certificate chain we answered with.
    local_cert: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.is_handshaking())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// rustls refuses records it cannot buffer (an oversized message): the peer's fault.
fn read_error(e: io::Error) -> (TlsError, rustls::Error) {
    (TlsError::Protocol, rustls::Error::General(format!("reading TLS records: {e}")))
}

impl TlsSession {
    /// A server session (TLS termination) from a filter chain's context.
    pub fn server(ctx: &Arc<ServerTlsContext>) -> TlsSession {
        TlsSession {
            state: State::Accepting { acceptor: Box::default(), ctx: ctx.clone() },
            error: None,
            transport_eof: false,
            buffer_limit: None,
            plaintext_buffered: 0,
            peer_closed: false,
            local_cert: None,
        }
    }

    /// A client session (TLS origination) to `peer`. The SNI is the option's, else the
    /// context's `sni`, else none is sent.
    pub fn client(
        ctx: &ClientTlsContext,
        options: ClientSessionOptions<'_>,
        peer: IpAddr,
    ) -> Result<TlsSession, TlsError> {
        let name = match options.server_name {
            Some(name) => ServerName::try_from(name.to_string()).map_err(|_| TlsError::InvalidServerName)?,
            None => ctx.sni.clone().unwrap_or(ServerName::IpAddress(peer.into())),
        };
        let alpn = match options.alpn {
            Some(protocols) => protocols.iter().map(|p| p.to_vec()).collect(),
            None => ctx.config.alpn_protocols.clone(),
        };
        let conn = ClientConnection::new_with_alpn(ctx.config.clone(), name, alpn).map_err(|e| TlsError::from(&e))?;
        Ok(TlsSession {
            state: State::Connected(Box::new(Connection::Client(conn))),
            error: None,
            transport_eof: false,
            buffer_limit: None,
            plaintext_buffered: 0,
            peer_closed: false,
            local_cert: None,
        })
    }

    /// Cap the plaintext rustls buffers for sending (default 64 KiB; `None`: no cap).
    pub fn set_buffer_limit(&mut self, limit: Option<usize>) {
        self.buffer_limit = limit;
        if let State::Connected(conn) = &mut self.state {
            conn.set_buffer_limit(limit);
        }
    }

    fn fail(&mut self, e: rustls::Error) -> TlsError {
        self.fail_with((TlsError::from(&e), e))
    }

    fn fail_with(&mut self, (kind, e): (TlsError, rustls::Error)) -> TlsError {
        self.error.get_or_insert((kind, e));
        kind
    }

    /// The error that ended the session, if any.
    pub fn error(&self) -> Option<TlsError> {
        self.error.as_ref().map(|(kind, _)| *kind)
    }

    /// rustls's own description of that error, for logs.
    pub fn error_detail(&self) -> Option<&rustls::Error> {
        self.error.as_ref().map(|(_, e)| e)
    }

    /// Whether [`TlsSession::feed_ciphertext`] can take bytes now: false while too much
    /// decrypted plaintext waits to be read, after the peer's close_notify, or after an
    /// error.
    pub fn wants_read(&self) -> bool {
        match &self.state {
            _ if self.error.is_some() || self.peer_closed => false,
            State::Accepting { .. } => true,
            State::Connected(_) => self.plaintext_buffered <= RECEIVED_PLAINTEXT_LIMIT,
            State::Rejected { .. } => false,
        }
    }

    /// Take ciphertext read from the transport. Returns how many bytes were consumed;
    /// feed the rest again once [`TlsSession::read_plaintext`] has drained the plaintext.
    pub fn feed_ciphertext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if let Some((kind, _)) = &self.error {
            return Err(*kind);
        }
        let mut rest = data;
        loop {
            match &mut self.state {
                State::Accepting { acceptor, ctx } => {
                    if rest.is_empty() {
                        break;
                    }
                    let n = match acceptor.read_tls(&mut rest) {
                        Ok(n) => n,
                        Err(e) => return Err(self.fail_with(read_error(e))),
                    };
                    if n == 0 {
                        break;
                    }
                    let accepted = match acceptor.accept() {
                        Ok(None) => continue,
                        Ok(Some(accepted)) => accepted,
                        Err((e, alert)) => {
                            self.state = State::Rejected { alert: Box::new(alert), pending: true };
                            return Err(self.fail(e));
                        }
                    };
                    let config = ctx.config_for(accepted.client_hello().alpn());
                    // The same choice rustls makes below, kept for `local_certificate`.
                    self.local_cert = config.cert_resolver.resolve(accepted.client_hello());
                    match accepted.into_connection(config) {
                        Ok(mut conn) => {
                            conn.set_buffer_limit(self.buffer_limit);
                            self.state = State::Connected(Box::new(Connection::Server(conn)));
                            // Bytes that arrived after the ClientHello are already inside.
                            self.process()?;
                        }
                        Err((e, alert)) => {
                            self.state = State::Rejected { alert: Box::new(alert), pending: true };
                            return Err(self.fail(e));
                        }
                    }
                }
                State::Connected(conn) => {
                    if rest.is_empty() || self.peer_closed || self.plaintext_buffered > RECEIVED_PLAINTEXT_LIMIT {
                        break;
                    }
                    match conn.read_tls(&mut rest) {
                        Ok(0) => break,
                        Ok(_) => self.process()?,
                        // rustls's receive buffer is full: back-pressure, not a failure.
                        Err(_) if self.plaintext_buffered > 0 => break,
                        Err(e) => return Err(self.fail_with(read_error(e))),
                    }
                }
                State::Rejected { .. } => return Err(self.error().unwrap_or(TlsError::Internal)),
            }
        }
        Ok(data.len() - rest.len())
    }

    fn process(&mut self) -> Result<(), TlsError> {
        if let State::Connected(conn) = &mut self.state {
            match conn.process_new_packets() {
                Ok(io) => {
                    self.plaintext_buffered = io.plaintext_bytes_to_read();
                    self.peer_closed = io.peer_has_closed();
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    /// The transport reached end of stream.
    pub fn feed_eof(&mut self) {
        self.transport_eof = true;
        if let State::Connected(conn) = &mut self.state {
            // An empty read is how rustls learns of the end of the stream.
            let _ = conn.read_tls(&mut io::empty());
        }
    }

    /// Copy decrypted bytes into `buf`.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<ReadStatus, TlsError> {
        let eof = self.transport_eof;
        let conn = match &mut self.state {
            State::Connected(conn) => conn,
            State::Accepting { .. } if eof => return Ok(ReadStatus::Closed { close_notify: false }),
            State::Accepting { .. } => return Ok(ReadStatus::Empty),
            State::Rejected { .. } => return Err(self.error().unwrap_or(TlsError::Internal)),
        };
        if buf.is_empty() {
            return Ok(ReadStatus::Empty);
        }
        match conn.reader().read(buf) {
            Ok(0) => Ok(ReadStatus::Closed { close_notify: true }),
            Ok(n) => {
                self.plaintext_buffered = self.plaintext_buffered.saturating_sub(n);
                Ok(ReadStatus::Data(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.error() {
                Some(kind) => Err(kind),
                None if eof => Ok(ReadStatus::Closed { close_notify: false }),
                None => Ok(ReadStatus::Empty),
            },
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(ReadStatus::Closed { close_notify: false }),
            Err(_) => Err(self.error().unwrap_or(TlsError::Internal)),
        }
    }

    /// Queue plaintext to send. Returns how much was accepted (less than `data` when the
    /// buffer limit is reached; before a server handshake starts, nothing).
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if let Some((kind, _)) = &self.error {
            return Err(*kind);
        }
        match &mut self.state {
            State::Connected(conn) => conn.writer().write(data).map_err(|_| TlsError::Internal),
            State::Accepting { .. } => Ok(0),
            State::Rejected { .. } => Err(TlsError::Internal),
        }
    }

    /// Whether ciphertext (handshake records, data, alerts) waits to be written.
    pub fn wants_write(&self) -> bool {
        match &self.state {
            State::Connected(conn) => conn.wants_write(),
            State::Accepting { .. } => false,
            State::Rejected { pending, .. } => *pending,
        }
    }

    /// Move pending ciphertext into `out`; returns the number of bytes written.
    pub fn take_ciphertext(&mut self, out: &mut [u8]) -> usize {
        let mut total = 0;
        while total < out.len() {
            let mut window = &mut out[total..];
            let written = match &mut self.state {
                State::Connected(conn) => conn.write_tls(&mut window),
                State::Rejected { alert, pending } => {
                    let n = alert.write(&mut window);
                    if matches!(n, Ok(0)) {
                        *pending = false;
                    }
                    n
                }
                State::Accepting { .. } => Ok(0),
            };
            match written {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    }

    /// Whether the handshake is still under way (false once established or failed).
    pub fn is_handshaking(&self) -> bool {
        match &self.state {
            _ if self.error.is_some() => false,
            State::Accepting { .. } => true,
            State::Connected(conn) => conn.is_handshaking(),
            State::Rejected { .. } => false,
        }
    }

    /// The negotiated application protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.state {
            State::Connected(conn) => conn.alpn_protocol(),
            _ => None,
        }
    }

    /// Server side: the SNI the client sent.
    pub fn server_name(&self) -> Option<&str> {
        match &self.state {
            State::Connected(conn) => match &**conn {
                Connection::Server(s) => s.server_name(),
                Connection::Client(_) => None,
            },
            _ => None,
        }
    }

    /// The negotiated TLS version.
    pub fn protocol_version(&self) -> Option<TlsVersion> {
        match &self.state {
            State::Connected(conn) => match conn.protocol_version()? {
                ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
                ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the peer presented a certificate (that passed verification).
    pub fn peer_has_certificate(&self) -> bool {
        match &self.state {
            State::Connected(conn) => conn.peer_certificates().is_some_and(|c| !c.is_empty()),
            _ => false,
        }
    }

    /// The certificate chain the peer presented (leaf first), once verified.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match &self.state {
            State::Connected(conn) => conn.peer_certificates().filter(|c| !c.is_empty()),
            _ => None,
        }
    }

    /// Server side: our end-entity certificate for this connection.
    pub fn local_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.local_cert.as_ref()?.cert.first()
    }

    /// Queue a `close_notify`; then flush [`TlsSession::take_ciphertext`].
    pub fn close(&mut self) {
        if let State::Connected(conn) = &mut self.state {
            conn.send_close_notify();
        }
    }
}
