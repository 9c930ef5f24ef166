//! A connection in its listener-filter phase (Envoy's `ActiveTcpSocket`).
//!
//! Filters run in order and may peek at the connection's first bytes across several
//! readiness events without consuming them: tls_inspector (transport protocol `tls`,
//! SNI, ALPN), http_inspector (`http/1.0`, `http/1.1`, `h2c` on plaintext). original_dst
//! restores the destination; when the receiving listener has `use_original_dst` and
//! all its filters are done, the connection is handed to the listener owning that
//! destination (exact `ip:port`, else the wildcard address of that port,
//! `bind_to_port: false` listeners included), whose own listener filters then run;
//! there is no second hand-off. The phase is bounded by `listener_filters_timeout`: on
//! expiry the connection is closed, or, with `continue_on_listener_filters_timeout`,
//! goes on to filter-chain selection with what is known.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use sluice_config::listener::{ListenerFilterKind, TlsInspectorOptions};
use sluice_stack::{SocketId, Stack};

use crate::filter_chain::{ConnectionInfo, Selected};
use crate::listener::filters::http_inspector::{self, Detect, HttpInspector, HttpProtocol};
use crate::listener::filters::original_dst;
use crate::listener::filters::tls_inspector::{Inspect, TlsInspector, TlsInspectorConfig};
use crate::listener::manager::Snapshot;
use crate::stats::ListenerStats;

/// Where a connection stands after its listener filters ran.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A filter waits for more bytes.
    Wait,
    /// Serve with this listener's chain.
    Chain { listener: usize, selected: Selected },
    /// No chain matched (or a filter rejected it): close.
    Close(&'static str),
}

/// The inspector in progress (state kept across readiness events).
#[derive(Debug)]
enum Inspecting {
    None,
    Tls(Box<TlsInspector>),
    Http(HttpInspector),
}

#[derive(Debug)]
pub struct ActiveSocket {
    pub socket: SocketId,
    /// The listener currently serving the connection (changes on hand-off).
    pub listener: usize,
    pub peer: SocketAddr,
    /// The local address, or the restored original destination.
    pub local: SocketAddr,
    pub restored: bool,
    handed_off: bool,
    /// Index of the next listener filter to run.
    next_filter: usize,
    inspecting: Inspecting,
    pub deadline: Option<Instant>,
    pub timer_at: Option<Instant>,
    pub transport_protocol: &'static str,
    pub server_name: Option<String>,
    pub application_protocols: Vec<String>,
}

impl ActiveSocket {
    pub fn new(socket: SocketId, listener: usize, peer: SocketAddr, local: SocketAddr) -> ActiveSocket {
        ActiveSocket {
            socket,
            listener,
            peer,
            local,
            restored: false,
            handed_off: false,
            next_filter: 0,
            inspecting: Inspecting::None,
            deadline: None,
            timer_at: None,
            transport_protocol: "",
            server_name: None,
            application_protocols: Vec::new(),
        }
    }

    /// Run (or continue) the listener filters. `scratch` receives peeked bytes.
    pub fn run<S: Stack>(
        &mut self,
        stack: &mut S,
        snapshot: &Snapshot,
        scratch: &mut [u8],
        stats: &ListenerStats,
    ) -> Outcome {
        loop {
            let listener = &snapshot.listeners[self.listener];
            while let Some(filter) = listener.listener_filters.get(self.next_filter) {
                match filter {
                    ListenerFilterKind::OriginalDst => match original_dst::restore(stack, self.socket, self.local) {
                        Ok(Some(dst)) => {
                            self.local = dst;
                            self.restored = true;
                        }
                        Ok(None) => {}
                        Err(e) => tracing::debug!("original_dst: {e}"),
                    },
                    ListenerFilterKind::TlsInspector(options) => {
                        if let Some(outcome) = self.inspect_tls(stack, scratch, stats, options) {
                            return outcome;
                        }
                    }
                    ListenerFilterKind::HttpInspector => {
                        if let Some(outcome) = self.inspect_http(stack, scratch, stats) {
                            return outcome;
                        }
                    }
                }
                self.inspecting = Inspecting::None;
                self.next_filter += 1;
            }
            if listener.use_original_dst && self.restored && !self.handed_off {
                self.handed_off = true;
                if let Some(target) = snapshot.listener_for_original_dst(self.local) {
                    if target != self.listener {
                        tracing::debug!(from = %listener.name, to = %snapshot.listeners[target].name, dst = %self.local, "original_dst hand-off");
                        self.listener = target;
                        self.next_filter = 0;
                        continue;
                    }
                }
            }
            return self.select(snapshot);
        }
    }

    /// Peek the connection's first bytes: `Ok(Some(n))`, `Ok(None)` to wait, or the
    /// close reason.
    fn peek<S: Stack>(&mut self, stack: &mut S, buf: &mut [u8]) -> Result<Option<usize>, &'static str> {
        match stack.peek(self.socket, buf) {
            Ok(0) => Err("connection closed during listener filters"),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(_) => Err("connection reset during listener filters"),
        }
    }

    /// `Some(outcome)` to stop here (wait or close), `None` when the filter is done.
    fn inspect_tls<S: Stack>(
        &mut self,
        stack: &mut S,
        scratch: &mut [u8],
        stats: &ListenerStats,
        options: &TlsInspectorOptions,
    ) -> Option<Outcome> {
        if !matches!(self.inspecting, Inspecting::Tls(_)) {
            // The options were checked at load; Envoy's defaults stand in otherwise.
            let config = TlsInspectorConfig::new(
                options.max_client_hello_size,
                options.initial_read_buffer_size,
                options.close_connection_on_client_hello_parsing_errors,
            )
            .unwrap_or_default();
            self.inspecting = Inspecting::Tls(Box::new(TlsInspector::new(config)));
        }
        let Inspecting::Tls(insp) = &mut self.inspecting else { unreachable!("set above") };
        let max = insp.max_read_bytes().min(scratch.len());
        let n = match self.peek(stack, &mut scratch[..max]) {
            Ok(Some(n)) => n,
            Ok(None) => return Some(Outcome::Wait),
            Err(why) => return Some(Outcome::Close(why)),
        };
        let Inspecting::Tls(insp) = &mut self.inspecting else { unreachable!("set above") };
        match insp.inspect(&scratch[..n]) {
            Inspect::NeedMore => Some(Outcome::Wait),
            Inspect::Tls(hello) => {
                stats.tls_found.inc();
                self.transport_protocol = "tls";
                match hello.server_name {
                    Some(sni) => {
                        stats.tls_sni_found.inc();
                        self.server_name = Some(sni.to_ascii_lowercase());
                    }
                    None => stats.tls_sni_not_found.inc(),
                }
                match hello.alpn {
                    Some(list) => {
                        stats.tls_alpn_found.inc();
                        let mut names = [""; 16];
                        self.application_protocols = list.fill(&mut names).iter().map(|s| s.to_string()).collect();
                    }
                    None => stats.tls_alpn_not_found.inc(),
                }
                None
            }
            Inspect::NotTls => {
                stats.tls_not_found.inc();
                None
            }
            Inspect::Close(reason) => {
                if matches!(reason, crate::listener::filters::tls_inspector::CloseReason::ClientHelloTooLarge) {
                    stats.tls_client_hello_too_large.inc();
                }
                Some(Outcome::Close("tls_inspector rejected the ClientHello"))
            }
        }
    }

    fn inspect_http<S: Stack>(&mut self, stack: &mut S, scratch: &mut [u8], stats: &ListenerStats) -> Option<Outcome> {
        let transport = if self.transport_protocol.is_empty() { "raw_buffer" } else { self.transport_protocol };
        if !http_inspector::applies(transport) {
            return None;
        }
        if !matches!(self.inspecting, Inspecting::Http(_)) {
            self.inspecting = Inspecting::Http(HttpInspector::new());
        }
        let Inspecting::Http(insp) = &mut self.inspecting else { unreachable!("set above") };
        let max = insp.max_read_bytes().min(scratch.len());
        let n = match self.peek(stack, &mut scratch[..max]) {
            Ok(Some(n)) => n,
            Ok(None) => return Some(Outcome::Wait),
            Err(why) => return Some(Outcome::Close(why)),
        };
        let Inspecting::Http(insp) = &mut self.inspecting else { unreachable!("set above") };
        match insp.inspect(&scratch[..n]) {
            Detect::NeedMore => Some(Outcome::Wait),
            Detect::Http(p) => {
                match p {
                    HttpProtocol::Http10 => stats.http10_found.inc(),
                    HttpProtocol::Http11 => stats.http11_found.inc(),
                    HttpProtocol::Http2 => stats.http2_found.inc(),
                }
                self.application_protocols = vec![p.application_protocol().to_string()];
                None
            }
            Detect::NotHttp => {
                stats.http_not_found.inc();
                None
            }
            Detect::Close => Some(Outcome::Close("http_inspector gave up")),
        }
    }

    /// Listener filters timed out: close, or continue with what is known.
    pub fn timed_out(&mut self, snapshot: &Snapshot) -> Outcome {
        if snapshot.listeners[self.listener].continue_on_listener_filters_timeout {
            self.select(snapshot)
        } else {
            Outcome::Close("listener filters timed out")
        }
    }

    fn select(&self, snapshot: &Snapshot) -> Outcome {
        let listener = &snapshot.listeners[self.listener];
        let alpn: Vec<&str> = self.application_protocols.iter().map(String::as_str).collect();
        let info = ConnectionInfo {
            local: self.local,
            remote: self.peer,
            direct_remote: self.peer,
            server_name: self.server_name.as_deref(),
            transport_protocol: self.transport_protocol,
            application_protocols: &alpn,
        };
        match listener.filter_chain_manager.select(&info) {
            Some(selected) => Outcome::Chain { listener: self.listener, selected },
            None => Outcome::Close("no matching filter chain"),
        }
    }
}
