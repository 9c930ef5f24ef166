//! Request mirroring (Envoy's shadow writer): fire-and-forget copies of a request.
//!
//! When a routed request has been received whole, each of its route's
//! `request_mirror_policies` that hits its `runtime_fraction` sends a copy to the
//! mirror cluster: same method, path and headers, the `:authority` with `-shadow`
//! appended before any port (unless `disable_shadow_host_suffix_append` or a
//! `host_rewrite_literal`), and the buffered body. The response is read and dropped.
//! A shadow never touches the primary request: it has its own connection (pooled like
//! any other), its own deadline (the route timeout), and it is dropped, not queued,
//! when the worker's shadow budget (count and bytes) or the mirror cluster's circuit
//! breakers are exhausted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::route::{MirrorTarget, RequestMirrorPolicy};
use sluice_stack::{Interest, Stack};

use crate::http::codec::{encode_request_head, BodyDecoder, OutgoingBody, Status as ParseStatus};
use crate::http::codec_client::{CodecClient, ReadOutcome};
use crate::http::RequestHead;
use crate::upstream::conn_pool::close_client;
use crate::upstream::load_balancer::LbContext;
use crate::worker_ctx::Ctx;

/// Most shadows in flight per worker.
pub const MAX_SHADOWS: usize = 256;
/// Most request bytes held by a worker's shadows.
pub const MAX_SHADOW_BYTES: usize = 32 << 20;

/// One mirrored request in flight.
#[derive(Debug)]
pub struct ShadowRequest {
    pub client: CodecClient,
    pub deadline: Instant,
    connect_deadline: Option<Instant>,
    /// The whole request, written once connected.
    request: Vec<u8>,
    head: crate::http::ResponseHead,
    body: Option<BodyDecoder>,
    /// Bytes counted against the worker's shadow budget.
    pub bytes: usize,
    is_head: bool,
    keep_alive: bool,
}

/// What driving a shadow did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowState {
    Running,
    /// Finished; the connection may go back to the pool.
    Done {
        reusable: bool,
    },
}

/// The authority of a shadow request: `-shadow` before any port.
pub fn shadow_authority(authority: &str) -> String {
    // An IPv6 literal's port follows `]`.
    let port_at = match authority.rfind(']') {
        Some(b) => authority[b..].find(':').map(|i| b + i),
        None => authority.rfind(':'),
    };
    match port_at {
        Some(i) => format!("{}-shadow{}", &authority[..i], &authority[i..]),
        None => format!("{authority}-shadow"),
    }
}

/// Start the shadows of a completed request. `body` is the whole request body.
pub fn start_shadows<S: Stack>(
    policies: &[RequestMirrorPolicy],
    head: &RequestHead,
    body: &[u8],
    timeout: Option<Duration>,
    clusters: &crate::upstream::cluster_manager::ClusterManager,
    ctx: &mut Ctx<'_, S>,
) {
    for p in policies {
        let f = &p.fraction;
        if !ctx.runtime.feature_enabled_fraction(&f.runtime_key, f.default_value, ctx.rng.next_u64()) {
            continue;
        }
        let name = match &p.target {
            MirrorTarget::Cluster(c) => c.clone(),
            MirrorTarget::ClusterHeader(h) => match head.headers.get_str(h.as_bytes()) {
                Some(v) => v.to_string(),
                None => continue,
            },
        };
        let Some(cluster) = clusters.index_of(&name) else {
            tracing::debug!(cluster = %name, "mirror cluster not found; shadow dropped");
            continue;
        };
        if clusters.clusters[cluster].config.http_protocol_options.protocol.may_use_http2() {
            // Shadows are written as HTTP/1.1; a cluster named in the configuration is
            // refused at load when it speaks HTTP/2, one named by `cluster_header` is
            // skipped here.
            tracing::debug!(cluster = %name, "mirror cluster speaks HTTP/2; shadow not sent");
            continue;
        }
        if ctx.pool.shadows() >= MAX_SHADOWS || ctx.pool.shadow_bytes() + body.len() > MAX_SHADOW_BYTES {
            ctx.cluster_stats[cluster].upstream_rq_pending_overflow.inc();
            continue;
        }
        let mut shadow_head = head.clone();
        if let Some(h) = &p.host_rewrite_literal {
            shadow_head.authority = h.clone();
        } else if !p.disable_shadow_host_suffix_append {
            shadow_head.authority = shadow_authority(&head.authority);
        }
        let mut request = Vec::with_capacity(256 + body.len());
        let framing = if body.is_empty() { OutgoingBody::Empty } else { OutgoingBody::Length(body.len() as u64) };
        let mut enc = encode_request_head(&shadow_head, framing, false, &mut request);
        if !body.is_empty() {
            let _ = enc.encode(body, &mut request);
        }
        start_one(cluster, request, head.method == "HEAD", timeout.unwrap_or(Duration::from_secs(15)), ctx);
    }
}

fn start_one<S: Stack>(cluster: usize, request: Vec<u8>, is_head: bool, timeout: Duration, ctx: &mut Ctx<'_, S>) {
    let info = Arc::clone(&ctx.clusters.clusters[cluster].info);
    let stats = Arc::clone(&ctx.cluster_stats[cluster]);
    if !info.try_acquire_request() {
        stats.upstream_rq_pending_overflow.inc();
        return;
    }
    let lb = LbContext { hash: None, exclude: &[], random: ctx.rng.next_u64() };
    let Some((idx, host)) = ctx.clusters.clusters[cluster].choose_host(&lb, None) else {
        stats.upstream_cx_none_healthy.inc();
        info.release_request();
        return;
    };
    stats.upstream_rq_total.inc();
    stats.upstream_rq_active.inc();
    let bytes = request.len();
    let deadline = ctx.now + timeout;
    // An idle pooled connection serves a shadow like any request.
    let placeholder = crate::timer::TimerKey { index: u32::MAX, generation: 0 };
    if let Some((slot, mut client)) = ctx.pool.take_idle(cluster, host.address, placeholder) {
        client.out.extend(&request);
        client.flush(ctx.stack);
        client.parser.reset();
        host.rq_active.fetch_add(1, Ordering::Relaxed);
        let s = ShadowRequest {
            client,
            deadline,
            connect_deadline: None,
            request: Vec::new(),
            head: Default::default(),
            body: None,
            bytes,
            is_head,
            keep_alive: false,
        };
        let mut s = s;
        s.client.timer_at = Some(deadline);
        ctx.pool.set_shadow(slot, s);
        let key = ctx.pool.timer_key(slot);
        ctx.timers.schedule(key, deadline);
        return;
    }
    if !info.try_acquire_connection(&host) {
        stats.upstream_cx_overflow.inc();
        stats.upstream_rq_active.dec();
        info.release_request();
        return;
    }
    let sock = match ctx.stack.connect(host.address) {
        Ok(s) => s,
        Err(_) => {
            stats.upstream_cx_connect_fail.inc();
            stats.upstream_rq_active.dec();
            info.release_connection(&host);
            info.release_request();
            return;
        }
    };
    let slot = ctx.pool.new_busy(placeholder);
    if ctx.stack.register(sock, ctx.pool.token(slot), Interest::BOTH).is_err() {
        ctx.stack.close(sock);
        ctx.pool.remove(slot);
        stats.upstream_rq_active.dec();
        info.release_connection(&host);
        info.release_request();
        return;
    }
    stats.upstream_cx_total.inc();
    stats.upstream_cx_http1_total.inc();
    stats.upstream_cx_active.inc();
    let max_headers = info.config.http_protocol_options.common.max_headers_count;
    let mut client = CodecClient::new(sock, Arc::clone(&host), idx, cluster, max_headers, ctx.now);
    if let Some(tls) = &info.tls {
        match crate::transport::TransportSocket::tls_client(tls, host.address.ip()) {
            Ok(t) => client.transport = t,
            Err(_) => {
                // The shadow is dropped; its connection slot is released with it.
                ctx.stack.close(sock);
                ctx.pool.remove(slot);
                stats.upstream_rq_active.dec();
                stats.upstream_cx_active.dec();
                info.release_connection(&host);
                info.release_request();
                return;
            }
        }
    }
    host.rq_active.fetch_add(1, Ordering::Relaxed);
    let connect_at = ctx.now + info.config.connect_timeout;
    let connect_deadline = Some(connect_at);
    let s = ShadowRequest {
        client,
        deadline,
        connect_deadline,
        request,
        head: Default::default(),
        body: None,
        bytes,
        is_head,
        keep_alive: false,
    };
    let first = s.next_deadline();
    let mut s = s;
    s.client.timer_at = Some(first);
    ctx.pool.set_shadow(slot, s);
    let key = ctx.pool.timer_key(slot);
    ctx.timers.schedule(key, first);
}

impl ShadowRequest {
    /// Advance on an event or timer.
    pub fn drive<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, event: bool) -> ShadowState {
        if ctx.now >= self.deadline {
            return ShadowState::Done { reusable: false };
        }
        let c = &mut self.client;
        if !c.connected {
            if let Some(d) = self.connect_deadline {
                if ctx.now >= d {
                    return ShadowState::Done { reusable: false };
                }
            }
            if !event {
                return ShadowState::Running;
            }
            match ctx.stack.connect_result(c.socket) {
                Ok(()) => {
                    c.connected = true;
                    c.out.extend(&self.request);
                    self.request = Vec::new();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return ShadowState::Running,
                Err(_) => return ShadowState::Done { reusable: false },
            }
        }
        if event {
            c.readable = true;
        }
        c.flush(ctx.stack);
        if c.dead {
            return ShadowState::Done { reusable: false };
        }
        while c.readable {
            match c.read(ctx.stack, crate::http::flow_control::MIN_UPSTREAM_INPUT, ctx.scratch) {
                ReadOutcome::Data => {}
                ReadOutcome::WouldBlock | ReadOutcome::Full => break,
                ReadOutcome::Eof | ReadOutcome::Error => break,
            }
            // Drop body bytes as they come: a shadow's response is not kept.
            if let Some(b) = self.body.as_mut() {
                let input = &c.input[c.input_pos..];
                match b.decode(input) {
                    Ok(d) => {
                        c.consume_input(d.consumed);
                        if d.end {
                            return ShadowState::Done { reusable: self.keep_alive && c.reusable() };
                        }
                    }
                    Err(_) => return ShadowState::Done { reusable: false },
                }
            }
        }
        if self.body.is_none() && !c.pending_input().is_empty() {
            let input = &c.input[c.input_pos..];
            match c.parser.parse(input, self.is_head, &mut self.head) {
                Ok(ParseStatus::Complete(meta)) => {
                    c.consume_input(meta.head_len);
                    if meta.interim.is_none() {
                        let mut body = c.parser.body_decoder(&meta);
                        self.keep_alive = meta.keep_alive;
                        let input = &c.input[c.input_pos..];
                        match body.decode(input) {
                            Ok(d) => {
                                c.consume_input(d.consumed);
                                if d.end {
                                    let reusable = meta.keep_alive && c.reusable();
                                    return ShadowState::Done { reusable };
                                }
                            }
                            Err(_) => return ShadowState::Done { reusable: false },
                        }
                        self.body = Some(body);
                    }
                }
                Ok(ParseStatus::Partial) => {}
                Err(_) => return ShadowState::Done { reusable: false },
            }
        }
        if c.read_eof || c.dead {
            if let Some(b) = self.body.as_mut() {
                if b.finish_at_eof().is_ok() {
                    return ShadowState::Done { reusable: false };
                }
            }
            return ShadowState::Done { reusable: false };
        }
        ShadowState::Running
    }

    /// When the shadow must next be looked at: its connect deadline while connecting,
    /// then its overall deadline.
    pub fn next_deadline(&self) -> Instant {
        match self.connect_deadline {
            Some(c) if !self.client.connected => c.min(self.deadline),
            _ => self.deadline,
        }
    }

    /// Release the shadow's request resources (its connection is handled by the caller).
    pub fn finish<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let cluster = self.client.cluster;
        self.client.host.rq_active.fetch_sub(1, Ordering::Relaxed);
        if let Some(tl) = ctx.clusters.clusters.get(cluster) {
            tl.info.release_request();
        }
        if let Some(s) = ctx.cluster_stats.get(cluster) {
            s.upstream_rq_active.dec();
            s.upstream_rq_completed.inc();
        }
    }

    /// Close its connection.
    pub fn close<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        close_client(ctx, &mut self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_authority("example.com"), "example.com-shadow");
        assert_eq!(shadow_authority("example.com:8080"), "example.com-shadow:8080");
        assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_authority("[::1]"), "[::1]-shadow");
    }
}
