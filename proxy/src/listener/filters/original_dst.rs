//! original_dst: restore the destination a connection had before a NAT redirect.
//!
//! Kernel mode reads `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST` (iptables/nft REDIRECT)
//! and, without a conntrack entry (TPROXY), keeps the socket's local address, which
//! already is the original destination. The userspace stack accepts any destination
//! (smoltcp `any_ip`), so there too the local address is the original destination.

use std::io;
use std::net::SocketAddr;

use sluice_stack::{SocketId, Stack};

/// The restored destination, or `None` when the connection was not redirected.
pub fn restore<S: Stack>(stack: &S, socket: SocketId, local: SocketAddr) -> io::Result<Option<SocketAddr>> {
    match stack.original_dst(socket)? {
        Some(dst) if dst != local => Ok(Some(dst)),
        // TPROXY or any_ip: the local address is the original destination itself.
        _ => Ok(Some(local)),
    }
}
