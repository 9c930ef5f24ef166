//! An upgraded HTTP/1.1 stream as a byte relay (Envoy's upgrade path after a `101
//! Switching Protocols`, and CONNECT after its `2xx`).
//!
//! The tunnel takes over the downstream socket and the upstream connection the router
//! used, together with whatever each side sent past the response or request head, and
//! relays bytes both ways with tcp_proxy's pump: reading from a side stops while the
//! bytes queued for the other side reach `per_connection_buffer_limit_bytes`, a FIN is
//! passed on once everything before it was delivered (half-close both ways), a reset or
//! error on one side flushes what is queued towards the other and closes it. The
//! upstream connection never goes back to the pool. The tunnel never parses what it
//! relays and never panics on it; timeouts and stats are the connection manager's.

use std::mem;
use std::sync::atomic::Ordering;

use sluice_stack::Stack;

use crate::buffer::Buffer;
use crate::http::codec::reason_phrase;
use crate::http::codec_client::CodecClient;
use crate::http::conn_manager::Downstream;
use crate::http::{ResponseHead, Version};
use crate::tcp_proxy::{pump, Side};
use crate::timer::TimerKey;
use crate::transport::TransportSocket;
use crate::worker_ctx::Ctx;

/// What one relay round moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Relayed {
    /// Bytes read from the client / written to it.
    pub down_read: usize,
    pub down_written: usize,
    /// Bytes read from the upstream / written to it.
    pub up_read: usize,
    pub up_written: usize,
    /// Reading from the client paused on a full queue.
    pub paused: bool,
    /// Both directions finished: close both sockets.
    pub done: bool,
}

/// The relay of one upgraded stream.
#[derive(Debug)]
pub struct Tunnel {
    down: Side,
    up: Side,
    /// Client bytes waiting for the upstream, and the reverse.
    d2u: Buffer,
    u2d: Buffer,
    /// The upstream connection's pool slot (its socket's token) and its accounting.
    slot: TimerKey,
    client: CodecClient,
    limit: usize,
    /// Payload that arrived with the heads: (client bytes past the request head,
    /// upstream bytes past the response head).
    carried: (usize, usize),
}

impl Tunnel {
    /// Take over `down`'s socket and the router's connection `client`: the client's
    /// unsent output and the bytes the client sent past its request head go up first;
    /// the response head still queued downstream and the bytes the upstream sent past
    /// it go down first. `down` keeps its addresses but no longer owns its socket.
    pub fn new(down: &mut Downstream, slot: TimerKey, mut client: CodecClient, limit: usize) -> Tunnel {
        let mut d = Side::new(down.socket, mem::replace(&mut down.transport, TransportSocket::Raw));
        d.read_eof = down.read_eof;
        let mut u = Side::new(client.socket, mem::replace(&mut client.transport, TransportSocket::Raw));
        u.read_eof = client.read_eof;
        let mut d2u = Buffer::new();
        d2u.extend(client.out.as_slice());
        let n = client.out.len();
        client.out.consume(n);
        d2u.extend(down.pending_input());
        let carried_down = down.pending_input().len();
        down.consume_input(carried_down);
        let mut u2d = Buffer::new();
        u2d.extend(&down.out[down.out_pos..]);
        down.out.clear();
        down.out_pos = 0;
        u2d.extend(client.pending_input());
        let carried_up = client.pending_input().len();
        client.consume_input(carried_up);
        down.released = true;
        Tunnel { down: d, up: u, d2u, u2d, slot, client, limit, carried: (carried_down, carried_up) }
    }

    /// One relay round in both directions. Every call tries to read both sides (a
    /// spurious read costs a `WouldBlock`), so any readiness event may drive it.
    pub fn relay<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Relayed {
        self.down.readable = true;
        self.up.readable = true;
        let a = pump(ctx, &mut self.down, &mut self.up, &mut self.d2u, self.limit);
        let b = pump(ctx, &mut self.up, &mut self.down, &mut self.u2d, self.limit);
        if a.more || b.more {
            ctx.again();
        }
        let (d, u) = (&self.down, &self.up);
        // A direction is finished when its source stopped and what it sent was passed
        // on with a FIN, or when its destination is gone.
        let d2u_done = (d.read_eof || d.dead) && ((self.d2u.is_empty() && u.write_shut) || u.dead);
        let u2d_done = (u.read_eof || u.dead) && ((self.u2d.is_empty() && d.write_shut) || d.dead);
        Relayed {
            down_read: a.read,
            down_written: b.written,
            up_read: b.read,
            up_written: a.written,
            paused: a.paused,
            done: d2u_done && u2d_done,
        }
    }

    /// Payload bytes read with the heads, before the tunnel existed: (from the client,
    /// from the upstream).
    pub fn carried(&self) -> (usize, usize) {
        self.carried
    }

    /// Whether either side was reset or failed.
    pub fn reset_seen(&self) -> bool {
        self.down.dead || self.up.dead
    }

    /// Close both sockets (gracefully, or reset when `abort`) and release the upstream
    /// connection: its host and cluster counts, its pool slot; a stream waiting for
    /// connection capacity on the cluster is woken.
    pub fn close<S: Stack>(mut self, ctx: &mut Ctx<'_, S>, abort: bool) {
        for side in [&mut self.down, &mut self.up] {
            if side.dead {
                continue;
            }
            side.dead = true;
            if abort {
                ctx.stack.abort(side.socket);
            } else {
                ctx.stack.close(side.socket);
            }
        }
        let c = &self.client;
        c.host.rq_active.fetch_sub(1, Ordering::Relaxed);
        if let Some(tl) = ctx.clusters.clusters.get(c.cluster) {
            tl.info.release_connection(&c.host);
        }
        if let Some(stats) = ctx.cluster_stats.get(c.cluster) {
            stats.upstream_cx_active.dec();
            stats.upstream_cx_destroy.inc();
            if abort {
                stats.upstream_cx_destroy_local.inc();
            }
        }
        ctx.pool.remove(self.slot);
        if let Some(owner) = ctx.pool.next_waiting(c.cluster) {
            ctx.ready.push(owner);
        }
    }

    /// The upstream connection's cluster index.
    pub fn cluster(&self) -> usize {
        self.client.cluster
    }
}

/// Write the head of a response that switches the stream to a tunnel: the status line
/// and the headers as they are, but for the framing headers (a `101` or a `2xx` to
/// CONNECT has no body: Envoy drops `content-length` and `transfer-encoding`).
/// `connection` and `upgrade` of a `101` pass as the upstream sent them (Envoy's
/// `mutateResponseHeaders` keeps them for upgrades); a CONNECT answer keeps no
/// hop-by-hop header.
pub fn encode_tunnel_head(head: &ResponseHead, request_version: Version, out: &mut Vec<u8>) {
    let http10 = matches!(request_version, Version::Http10 | Version::Http09);
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(head.status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(head.status).as_bytes());
    out.extend_from_slice(b"\r\n");
    let upgrade = head.status == 101;
    for (name, value) in head.headers.iter() {
        let dropped = match name {
            b"content-length" | b"transfer-encoding" | b"keep-alive" | b"proxy-connection" => true,
            b"connection" | b"upgrade" => !upgrade,
            _ => false,
        };
        if !dropped {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        let mut h = ResponseHead { status, ..Default::default() };
        for (n, v) in headers {
            h.headers.append(n.as_bytes(), v.as_bytes());
        }
        h
    }

    #[test]
    fn switching_protocols_keeps_connection_and_upgrade() {
        let h = head(
            101,
            &[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-accept", "x"),
                ("content-length", "0"),
            ],
        );
        let mut out = Vec::new();
        encode_tunnel_head(&h, Version::Http11, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: x\r\n\r\n"
        );
    }

    #[test]
    fn connect_answer_has_no_framing_or_hop_by_hop_headers() {
        let h = head(200, &[("connection", "keep-alive"), ("transfer-encoding", "chunked"), ("server", "envoy")]);
        let mut out = Vec::new();
        encode_tunnel_head(&h, Version::Http11, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "HTTP/1.1 200 OK\r\nserver: envoy\r\n\r\n");
    }
}
