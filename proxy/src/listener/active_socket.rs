//! A connection in its listener-filter phase (Envoy's `ActiveTcpSocket`).
//!
//! Filters run in order. original_dst restores the destination; when the receiving
//! listener has `use_original_dst` and all its filters are done, the connection is
//! handed to the listener owning that destination (exact `ip:port`, else the wildcard
//! address of that port, `bind_to_port: false` listeners included), whose own listener
//! filters then run; there is no second hand-off. The phase is bounded by
//! `listener_filters_timeout`: on expiry the connection is closed, or, with
//! `continue_on_listener_filters_timeout`, goes on to filter-chain selection with what
//! is known.

use std::net::SocketAddr;
use std::time::Instant;

use sluice_config::listener::ListenerFilterKind;
use sluice_stack::{SocketId, Stack};

use crate::filter_chain::{ConnectionInfo, Selected};
use crate::listener::filters::original_dst;
use crate::listener::manager::Snapshot;

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
            deadline: None,
            timer_at: None,
            transport_protocol: "",
            server_name: None,
            application_protocols: Vec::new(),
        }
    }

    /// Run (or continue) the listener filters.
    pub fn run<S: Stack>(&mut self, stack: &mut S, snapshot: &Snapshot) -> Outcome {
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
                        Err(e) => {
                            tracing::debug!("original_dst: {e}");
                        }
                    },
                    ListenerFilterKind::TlsInspector | ListenerFilterKind::HttpInspector => {
                        // Inspectors that need the first bytes are wired in with TLS
                        // support; a listener using them is refused at config load
                        // until then (see Snapshot::build).
                    }
                }
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
