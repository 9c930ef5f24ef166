//! Interception without a listener of its own: the userspace equivalent of iptables
//! `REDIRECT --to-ports P` for a set of destination prefixes.
//!
//! With `any_ip` the stack accepts connections for any destination that reaches it, but
//! a SYN still needs a listener on its port. A redirect names prefixes and one listener:
//! a SYN to an address inside a prefix, for a port no listener has (neither the exact
//! address nor `0.0.0.0`), is accepted on that listener's behalf by a LISTEN socket made
//! for its port. The connection keeps its original destination as its local address, so
//! the application finds it as `SO_ORIGINAL_DST` would report it (Envoy's
//! `use_original_dst` listener hands it on from there). Listeners of their own always
//! win; destinations outside the prefixes get the usual RST.

use std::io;

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpListenEndpoint, Ipv4Address, Ipv4Cidr};

use super::conn::handle;
use super::core::{Core, Handle};
use super::slab::Key;
use crate::SocketId;

/// Prefixes whose unmatched SYNs go to one listener.
#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    pub prefixes: Vec<Ipv4Cidr>,
    pub listener: Key,
}

impl Core {
    /// Send SYNs to `prefixes` that no listener takes to `listener` (`None` to stop).
    pub fn set_redirect(&mut self, redirect: Option<(Vec<Ipv4Cidr>, SocketId)>) -> io::Result<()> {
        self.redirect = match redirect {
            None => None,
            Some((prefixes, id)) => match self.users.get(id).copied()? {
                Handle::Listener(listener) => Some(Redirect { prefixes, listener }),
                Handle::Conn(_) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "a redirect target must be a listener"))
                }
            },
        };
        Ok(())
    }

    /// The listener a SYN to `dst` is redirected to, if any (and if it still exists).
    pub(crate) fn redirect_target(&self, dst: Ipv4Address) -> Option<Key> {
        let r = self.redirect.as_ref()?;
        let hit = r.prefixes.iter().any(|p| p.contains_addr(&dst));
        (hit && self.listeners.get(r.listener).is_some()).then_some(r.listener)
    }

    /// A LISTEN socket for one redirected SYN to `port`, with the handshake timeout.
    pub(crate) fn redirect_socket(&mut self, port: u16) -> SocketSet<'static> {
        let mut set = self.take_socket();
        let s = set.get_mut::<tcp::Socket>(handle());
        // Cannot fail: the socket is closed and a SYN's port is non-zero (a zero port
        // is refused, and the SYN then finds no taker and is dropped).
        let _ = s.listen(IpListenEndpoint { addr: None, port });
        s.set_timeout(Some(self.cfg.handshake_timeout));
        set
    }
}
