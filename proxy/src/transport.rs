//! Transport sockets (Envoy's `TransportSocket`): what connections read and write
//! through — raw bytes, or TLS terminated or originated with rustls.
//!
//! A [`TransportSocket`] keeps the socket's semantics for its user: `read` gives
//! plaintext (`Ok(0)` at the end of the stream, `WouldBlock` when nothing more can be
//! had now), `write` takes plaintext (`WouldBlock` when the socket is backed up),
//! `shutdown_write` ends our direction (a TLS `close_notify` first). TLS records are
//! moved between the socket and the session inside, so the same code serves any
//! datapath: rustls runs on bytes, never on sockets. One difference from a raw socket
//! matters to callers: a TLS read may return less than asked for while the socket still
//! holds bytes, so [`TransportSocket::short_read_drains`] tells whether a short read
//! may be taken as "drained" (edge-triggered readiness).
//!
//! A terminated TLS transport may carry the filter chain's
//! `transport_socket_connect_timeout`: the connection that owns it closes the
//! connection when [`TransportSocket::connect_timed_out`] says the handshake did not
//! finish in time (listener counter `downstream_cx_transport_socket_connect_timeout`).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use sluice_stack::{SocketId, Stack};

use crate::stats::ListenerStats;
use crate::tls::{ClientSessionOptions, ClientTlsContext, ReadStatus, ServerTlsContext, TlsError, TlsSession};

/// Ciphertext read from the socket per read call.
const CIPHER_READ: usize = 16 * 1024 + 512;
/// Ciphertext queued for the socket beyond which plaintext writes are refused.
const CIPHER_BACKLOG: usize = 256 * 1024;

/// A connection's transport: raw, or TLS.
#[derive(Debug, Default)]
pub enum TransportSocket {
    #[default]
    Raw,
    Tls(Box<TlsTransport>),
}

#[derive(Debug)]
pub struct TlsTransport {
    session: TlsSession,
    /// Ciphertext read but not yet taken by the session.
    cin: Vec<u8>,
    cin_pos: usize,
    /// Ciphertext produced but not yet written to the socket.
    cout: Vec<u8>,
    cout_pos: usize,
    socket_eof: bool,
    /// `shutdown_write` was asked for; done once `cout` is flushed.
    shutdown_pending: bool,
    shutdown_done: bool,
    failed: Option<TlsError>,
    /// Terminated TLS: the listener's `ssl.*` counters (handshakes, failures).
    listener_stats: Option<Arc<ListenerStats>>,
    /// `ssl.handshake` was counted.
    handshake_counted: bool,
    /// The handshake must be done by then (`transport_socket_connect_timeout`).
    connect_deadline: Option<Instant>,
}

impl TransportSocket {
    /// TLS termination with a filter chain's context; handshakes and failures are
    /// counted in the listener's `ssl.*` stats.
    pub fn tls_server(ctx: &Arc<ServerTlsContext>, stats: Arc<ListenerStats>) -> TransportSocket {
        let mut t = TlsTransport::new(TlsSession::server(ctx));
        t.listener_stats = Some(stats);
        TransportSocket::Tls(Box::new(t))
    }

    /// Bound the handshake: it must finish by `deadline` (see
    /// [`TransportSocket::connect_timed_out`]). No effect on raw sockets.
    pub fn with_connect_deadline(mut self, deadline: Option<Instant>) -> TransportSocket {
        if let TransportSocket::Tls(t) = &mut self {
            t.connect_deadline = deadline;
        }
        self
    }

    /// When the handshake times out, while it is still in progress.
    pub fn connect_deadline(&self) -> Option<Instant> {
        match self {
            TransportSocket::Tls(t) if t.session.is_handshaking() && t.failed.is_none() => t.connect_deadline,
            _ => None,
        }
    }

    /// The handshake did not finish by its deadline: the caller closes the connection.
    /// Counted once in the listener's `downstream_cx_transport_socket_connect_timeout`.
    pub fn connect_timed_out(&mut self, now: Instant) -> bool {
        if self.connect_deadline().is_none_or(|d| now < d) {
            return false;
        }
        if let TransportSocket::Tls(t) = self {
            t.connect_deadline = None;
            if let Some(stats) = &t.listener_stats {
                stats.downstream_cx_transport_socket_connect_timeout.inc();
            }
        }
        true
    }

    /// TLS origination to `peer` with a cluster's context.
    pub fn tls_client(ctx: &ClientTlsContext, peer: std::net::IpAddr) -> Result<TransportSocket, TlsError> {
        let session = TlsSession::client(ctx, ClientSessionOptions::default(), peer)?;
        Ok(TransportSocket::Tls(Box::new(TlsTransport::new(session))))
    }

    /// TLS origination for an HTTP/2 connection: ALPN offers `h2` when the context
    /// configures no `alpn_protocols` (Envoy's ALPN fallback for HTTP/2 pools).
    pub fn tls_client_h2(ctx: &ClientTlsContext, peer: std::net::IpAddr) -> Result<TransportSocket, TlsError> {
        let h2: &[&[u8]] = &[b"h2"];
        let alpn = ctx.alpn_protocols().is_empty().then_some(h2);
        let session = TlsSession::client(ctx, ClientSessionOptions { server_name: None, alpn }, peer)?;
        Ok(TransportSocket::Tls(Box::new(TlsTransport::new(session))))
    }

    /// TLS origination for an `auto_config` connection: ALPN offers `h2,http/1.1`
    /// unless the context configures its own `alpn_protocols` (Envoy's default ALPN
    /// for a mixed pool).
    pub fn tls_client_auto(ctx: &ClientTlsContext, peer: std::net::IpAddr) -> Result<TransportSocket, TlsError> {
        let both: &[&[u8]] = &[b"h2", b"http/1.1"];
        let alpn = ctx.alpn_protocols().is_empty().then_some(both);
        let session = TlsSession::client(ctx, ClientSessionOptions { server_name: None, alpn }, peer)?;
        Ok(TransportSocket::Tls(Box::new(TlsTransport::new(session))))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, TransportSocket::Tls(_))
    }

    /// Whether a read shorter than asked for means the socket is drained.
    pub fn short_read_drains(&self) -> bool {
        !self.is_tls()
    }

    /// The negotiated ALPN protocol (TLS only).
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            TransportSocket::Tls(t) => t.session.alpn_protocol(),
            TransportSocket::Raw => None,
        }
    }

    /// The SNI the client sent (TLS terminated here).
    pub fn server_name(&self) -> Option<&str> {
        match self {
            TransportSocket::Tls(t) => t.session.server_name(),
            TransportSocket::Raw => None,
        }
    }

    /// The peer's verified certificate chain, leaf first (TLS with a client
    /// certificate only).
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        match self {
            TransportSocket::Tls(t) => t.session.peer_certificates(),
            TransportSocket::Raw => None,
        }
    }

    /// Our own end-entity certificate (terminated TLS only).
    pub fn local_certificate(&self) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        match self {
            TransportSocket::Tls(t) => t.session.local_certificate(),
            TransportSocket::Raw => None,
        }
    }

    /// The TLS handshake is done (always true for raw sockets).
    pub fn established(&self) -> bool {
        match self {
            TransportSocket::Tls(t) => !t.session.is_handshaking() && t.failed.is_none(),
            TransportSocket::Raw => true,
        }
    }

    /// Why TLS failed, if it did.
    pub fn tls_error(&self) -> Option<TlsError> {
        match self {
            TransportSocket::Tls(t) => t.failed,
            TransportSocket::Raw => None,
        }
    }

    /// Read plaintext into `buf`.
    pub fn read<S: Stack>(&mut self, stack: &mut S, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TransportSocket::Raw => stack.read(socket, buf),
            TransportSocket::Tls(t) => t.read(stack, socket, buf),
        }
    }

    /// Write plaintext from `data`; returns how much was taken.
    pub fn write<S: Stack>(&mut self, stack: &mut S, socket: SocketId, data: &[u8]) -> io::Result<usize> {
        match self {
            TransportSocket::Raw => stack.write(socket, data),
            TransportSocket::Tls(t) => t.write(stack, socket, data),
        }
    }

    /// Push queued ciphertext; `Ok(true)` when nothing is left queued.
    pub fn flush<S: Stack>(&mut self, stack: &mut S, socket: SocketId) -> io::Result<bool> {
        match self {
            TransportSocket::Raw => Ok(true),
            TransportSocket::Tls(t) => t.flush(stack, socket),
        }
    }

    /// An idle connection gives back ciphertext buffer memory above a small size.
    pub fn shrink_idle(&mut self) {
        if let TransportSocket::Tls(t) = self {
            crate::http::flow_control::shrink_idle(&mut t.cin, &mut t.cin_pos);
            crate::http::flow_control::shrink_idle(&mut t.cout, &mut t.cout_pos);
        }
    }

    /// Memory held by the ciphertext buffers (0 for raw sockets).
    pub fn buffered_capacity(&self) -> usize {
        match self {
            TransportSocket::Raw => 0,
            TransportSocket::Tls(t) => t.cin.capacity() + t.cout.capacity(),
        }
    }

    /// Ciphertext is waiting for the socket.
    pub fn has_pending_output(&self) -> bool {
        match self {
            TransportSocket::Raw => false,
            TransportSocket::Tls(t) => {
                t.cout_pos < t.cout.len() || t.session.wants_write() || (t.shutdown_pending && !t.shutdown_done)
            }
        }
    }

    /// End our direction: TLS sends `close_notify` first (and finishes once flushed).
    pub fn shutdown_write<S: Stack>(&mut self, stack: &mut S, socket: SocketId) -> io::Result<()> {
        match self {
            TransportSocket::Raw => stack.shutdown_write(socket),
            TransportSocket::Tls(t) => {
                if !t.shutdown_pending {
                    t.shutdown_pending = true;
                    t.session.close();
                }
                t.flush(stack, socket).map(|_| ())
            }
        }
    }
}

fn tls_io_error(e: TlsError) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, format!("TLS: {}", e.stat_name()))
}

impl TlsTransport {
    fn new(session: TlsSession) -> TlsTransport {
        TlsTransport {
            session,
            cin: Vec::new(),
            cin_pos: 0,
            cout: Vec::new(),
            cout_pos: 0,
            socket_eof: false,
            shutdown_pending: false,
            shutdown_done: false,
            failed: None,
            listener_stats: None,
            handshake_counted: false,
            connect_deadline: None,
        }
    }

    /// Count a completed handshake once (`ssl.handshake`).
    fn note_progress(&mut self) {
        if !self.handshake_counted && !self.session.is_handshaking() && self.failed.is_none() {
            self.handshake_counted = true;
            if let Some(stats) = &self.listener_stats {
                stats.downstream_cx_ssl_handshake.inc();
            }
        }
    }

    /// Move the session's pending records into `cout`.
    fn take_output(&mut self) {
        while self.session.wants_write() {
            if self.cout_pos > 0 && self.cout_pos == self.cout.len() {
                self.cout.clear();
                self.cout_pos = 0;
            }
            let start = self.cout.len();
            self.cout.resize(start + 16 * 1024 + 512, 0);
            let n = self.session.take_ciphertext(&mut self.cout[start..]);
            self.cout.truncate(start + n);
            if n == 0 {
                break;
            }
        }
    }

    fn flush<S: Stack>(&mut self, stack: &mut S, socket: SocketId) -> io::Result<bool> {
        self.take_output();
        while self.cout_pos < self.cout.len() {
            match stack.write(socket, &self.cout[self.cout_pos..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.cout_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.cout.clear();
        self.cout_pos = 0;
        if self.shutdown_pending && !self.shutdown_done {
            self.shutdown_done = true;
            stack.shutdown_write(socket)?;
        }
        Ok(true)
    }

    fn fail<S: Stack>(&mut self, stack: &mut S, socket: SocketId, e: TlsError) -> io::Error {
        if let (None, Some(stats)) = (self.failed, &self.listener_stats) {
            // Envoy's ssl.connection_error excludes failed certificate verifications.
            match e {
                TlsError::CertificateRequired => stats.ssl_fail_verify_no_cert.inc(),
                TlsError::CertificateInvalid => stats.ssl_fail_verify_error.inc(),
                TlsError::CertificateNameMismatch => stats.ssl_fail_verify_san.inc(),
                _ => stats.downstream_cx_ssl_handshake_error.inc(),
            }
        }
        self.failed = Some(e);
        // The alert still goes out, best effort.
        let _ = self.flush(stack, socket);
        tls_io_error(e)
    }

    fn read<S: Stack>(&mut self, stack: &mut S, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.failed {
            return Err(tls_io_error(e));
        }
        loop {
            match self.session.read_plaintext(buf) {
                Ok(ReadStatus::Data(n)) => {
                    // Reading may free room for more records, or owe a key update.
                    self.feed_buffered(stack, socket)?;
                    let _ = self.flush(stack, socket);
                    return Ok(n);
                }
                Ok(ReadStatus::Closed { .. }) => return Ok(0),
                Ok(ReadStatus::Empty) => {}
                Err(e) => return Err(self.fail(stack, socket, e)),
            }
            if self.cin_pos < self.cin.len() {
                let before = self.cin_pos;
                self.feed_buffered(stack, socket)?;
                if self.cin_pos > before {
                    let _ = self.flush(stack, socket);
                    continue;
                }
            }
            if self.socket_eof {
                self.session.feed_eof();
                return match self.session.read_plaintext(buf) {
                    Ok(ReadStatus::Data(n)) => Ok(n),
                    Ok(_) => Ok(0),
                    Err(e) => Err(self.fail(stack, socket, e)),
                };
            }
            if self.cin_pos == self.cin.len() {
                self.cin.clear();
                self.cin_pos = 0;
            }
            let start = self.cin.len();
            self.cin.resize(start + CIPHER_READ, 0);
            match stack.read(socket, &mut self.cin[start..]) {
                Ok(0) => {
                    self.cin.truncate(start);
                    self.socket_eof = true;
                }
                Ok(n) => {
                    self.cin.truncate(start + n);
                    self.feed_buffered(stack, socket)?;
                    // Handshake replies, session tickets.
                    let _ = self.flush(stack, socket);
                }
                Err(e) => {
                    self.cin.truncate(start);
                    if e.kind() == io::ErrorKind::WouldBlock {
                        let _ = self.flush(stack, socket);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn feed_buffered<S: Stack>(&mut self, stack: &mut S, socket: SocketId) -> io::Result<()> {
        if self.cin_pos < self.cin.len() {
            match self.session.feed_ciphertext(&self.cin[self.cin_pos..]) {
                Ok(n) => {
                    self.cin_pos += n;
                    self.note_progress();
                }
                Err(e) => return Err(self.fail(stack, socket, e)),
            }
        }
        Ok(())
    }

    fn write<S: Stack>(&mut self, stack: &mut S, socket: SocketId, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.failed {
            return Err(tls_io_error(e));
        }
        if self.cout.len() - self.cout_pos >= CIPHER_BACKLOG && !self.flush(stack, socket)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = match self.session.write_plaintext(data) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(stack, socket, e)),
        };
        self.flush(stack, socket)?;
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}
