//! The router's tries over HTTP/2 upstream connections (Envoy's `UpstreamRequest` on
//! an HTTP/2 `CodecClient`): the request goes out as one stream of a pooled
//! connection, the response comes back through the same [`ServerStream`] calls as an
//! HTTP/1.1 one, so either protocol downstream meets either protocol upstream.
//!
//! A try holds `h2`'s stream handles only; the connection stays in the worker's pool
//! ([`Http2Client`](crate::upstream::h2_client)), found by host with free stream
//! capacity or opened (counted against `max_connections`; beyond it the request waits
//! as a pending request). Flow control is `h2`'s windows tied to the downstream's
//! watermarks: request DATA is sent while the stream has send capacity, response DATA
//! is taken only while the downstream buffer is under its limit and its window is
//! released as it is forwarded, so a slow reader on either side slows the other.
//! Streams the peer refused or never processed (REFUSED_STREAM, above a GOAWAY's last
//! stream ID) are tried once more on another connection when their request can be
//! replayed (RFC 9113 §8.7).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{Reason, RecvStream, SendStream};
use sluice_config::upstream_http::UpstreamProtocol;
use sluice_stack::{Interest, Stack};

use super::{LocalReply, Phase, RouterState, Step};
use crate::http::codec::{BodyFraming, ResponseMeta};
use crate::http::codec_client::CodecClient;
use crate::http::conn_manager::config::HcmConfig;
use crate::http::conn_manager::http2::stream_io::connection_specific;
use crate::http::conn_manager::stream::Stream;
use crate::http::response_flags::ResponseFlags;
use crate::http::stream_encoder::ServerStream;
use crate::router::retry::ResetReason;
use crate::timer::TimerKey;
use crate::transport::TransportSocket;
use crate::upstream::cluster_manager::ClusterInfo;
use crate::upstream::conn_pool::{close_h2, turn_h2};
use crate::upstream::h2_client::{builder, Http2Client};
use crate::upstream::host::Host;
use crate::upstream::outlier::http as charge;
use crate::upstream::outlier::Outcome;
use crate::worker_ctx::Ctx;

/// One try's stream on an HTTP/2 connection.
#[derive(Debug, Default)]
pub(super) struct H2Try {
    pub slot: Option<TimerKey>,
    send: Option<SendStream<Bytes>>,
    response: Option<ResponseFuture>,
    recv: Option<RecvStream>,
    /// END_STREAM went up.
    end_sent: bool,
    /// The stream was counted on its connection.
    counted: bool,
    /// The connection must be open by then (its connect timeout).
    pub connect_deadline: Option<std::time::Instant>,
}

impl H2Try {
    /// The try's request head went out (its stream is open).
    pub(super) fn head_sent(&self) -> bool {
        self.response.is_some() || self.recv.is_some() || self.send.is_some() || self.end_sent
    }
}

impl RouterState {
    /// Start a try on an HTTP/2 connection to `host`: a pooled one with room for a
    /// stream, else a new one; `Ok(false)`: no connection capacity (the caller queues);
    /// `Err`: the connection could not be started (a connect failure).
    pub(super) fn attempt_h2<S: Stack>(
        &mut self,
        info: &Arc<ClusterInfo>,
        idx: usize,
        host: Arc<Host>,
        ctx: &mut Ctx<'_, S>,
    ) -> Result<bool, ()> {
        let slot = match ctx.pool.h2_with_capacity(self.cluster, host.address) {
            Some(slot) => slot,
            None => {
                if !info.try_acquire_connection(&host) {
                    return Ok(false);
                }
                let sock = match ctx.stack.connect(host.address) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(host = %host.address, "connect failed at once: {e}");
                        info.release_connection(&host);
                        charge::connect_failed(info, &host, Outcome::LocalOriginConnectFailed);
                        self.stats.upstream_cx_connect_fail.inc();
                        self.tried.push(idx);
                        self.host = Some(host);
                        return Err(());
                    }
                };
                let opts = &info.config.http_protocol_options;
                let auto = opts.protocol == UpstreamProtocol::Auto;
                let limit = info.config.per_connection_buffer_limit_bytes as usize;
                let mut client = Http2Client::new(
                    sock,
                    Arc::clone(&host),
                    idx,
                    self.cluster,
                    &builder(&opts.http2),
                    (opts.http2.max_concurrent_streams, opts.common.max_requests_per_connection),
                    limit,
                    auto && info.tls.is_some(),
                    ctx.now,
                    ctx.now + info.config.connect_timeout,
                );
                if let Some(tls) = &info.tls {
                    let transport = if auto {
                        TransportSocket::tls_client_auto(tls, host.address.ip())
                    } else {
                        TransportSocket::tls_client_h2(tls, host.address.ip())
                    };
                    match transport {
                        Ok(t) => client.transport = t,
                        Err(e) => {
                            tracing::warn!(cluster = %info.name(), "cannot start upstream TLS: {e:?}");
                            ctx.stack.close(sock);
                            info.release_connection(&host);
                            return Err(());
                        }
                    }
                }
                let slot = ctx.pool.insert_h2(client);
                if let Err(e) = ctx.stack.register(sock, ctx.pool.token(slot), Interest::BOTH) {
                    tracing::warn!("cannot register an upstream socket: {e}");
                    ctx.pool.remove(slot);
                    ctx.stack.close(sock);
                    info.release_connection(&host);
                    return Err(());
                }
                self.stats.upstream_cx_total.inc();
                if !auto {
                    // auto_config counts the protocol once ALPN picked it.
                    self.stats.upstream_cx_http2_total.inc();
                }
                self.stats.upstream_cx_active.inc();
                charge::connection_opened(&host);
                slot
            }
        };
        let mut connect_deadline = None;
        if let Some(c) = ctx.pool.h2_mut(slot) {
            // The stream holds its place on the connection from now on.
            c.add_stream(ctx.key);
            connect_deadline = (!c.is_open()).then_some(c.connect_deadline);
        }
        self.attempts += 1;
        self.tried.push(idx);
        host.rq_active.fetch_add(1, Ordering::Relaxed);
        self.host = Some(host);
        self.h2 = Some(H2Try { slot: Some(slot), counted: true, connect_deadline, ..H2Try::default() });
        self.phase = Phase::Active;
        self.try_started = ctx.now;
        self.try_activity = ctx.now;
        self.try_deadline = self.request_done_at.and(self.per_try).map(|t| ctx.now + t);
        self.resp_meta = None;
        self.request_sent = false;
        self.soft_timed_out = false;
        Ok(true)
    }

    /// Advance an HTTP/2 try: connect, send, receive.
    pub(super) fn drive_h2<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
        step: &mut Step,
    ) -> Result<(), LocalReply> {
        let Some(slot) = self.h2.as_ref().and_then(|t| t.slot) else {
            return Ok(());
        };
        let now = ctx.now;
        if self.rq_trailers.is_none() {
            self.rq_trailers = down.take_request_trailers();
        }
        let t = self.h2.as_mut().expect("checked");
        let started = t.response.is_some() || t.recv.is_some() || self.resp_meta.is_some();
        // A started stream lives on in its handles even when its connection ended
        // (a response followed by GOAWAY and close is still read whole).
        if !started {
            let Some(conn) = ctx.pool.h2_mut(slot) else {
                return self.h2_failed(cfg, stream, ctx, false, false);
            };
            if conn.negotiated_http1() {
                return self.h2_to_http1(cfg, stream, ctx, slot, step);
            }
            if !conn.is_open() {
                if now >= conn.connect_deadline {
                    self.stats.upstream_cx_connect_timeout.inc();
                    self.stats.upstream_cx_connect_fail.inc();
                    self.charge(ctx, |i, h| charge::connect_failed(i, h, Outcome::LocalOriginTimeout));
                    close_h2(ctx, slot);
                    return self.h2_failed(cfg, stream, ctx, false, false);
                }
                return Ok(());
            }
            t.connect_deadline = None;
            let Some(sender) = conn.ready_sender() else {
                if conn.draining || conn.dead {
                    return self.h2_failed(cfg, stream, ctx, false, true);
                }
                return Ok(());
            };
            if self.include_attempt_count {
                stream.head.headers.set(b"x-envoy-attempt-count", self.attempts.to_string().as_bytes());
            }
            let end = stream.request_done && self.body_copy.is_empty() && self.rq_trailers.is_none();
            match sender.send_request(request_head(stream), end) {
                Ok((response, mut send)) => {
                    t.response = Some(response);
                    t.end_sent = end;
                    charge::request_sent(&ctx.clusters.clusters[self.cluster].info, self.host.as_ref().expect("host"));
                    step.progress = true;
                    if !end {
                        // A retry replays the body kept from the first try.
                        let copy = Bytes::copy_from_slice(&self.body_copy);
                        if stream.request_done {
                            end_request(&mut send, copy, self.rq_trailers.clone());
                            t.end_sent = true;
                        } else if !copy.is_empty() {
                            let _ = send.send_data(copy, false);
                        }
                        t.send = Some(send);
                    }
                }
                Err(e) => {
                    tracing::debug!("upstream HTTP/2 stream refused locally: {e}");
                    conn.drain();
                    return self.h2_failed(cfg, stream, ctx, false, true);
                }
            }
        }
        self.pump_request_h2(cfg, stream, down, ctx)?;
        if self.resp_meta.is_none() {
            let t = self.h2.as_mut().expect("checked");
            let Some(fut) = t.response.as_mut() else {
                turn_h2(ctx, slot);
                return Ok(());
            };
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match std::future::Future::poll(std::pin::Pin::new(fut), &mut cx) {
                Poll::Pending => {
                    step.progress |= turn_h2(ctx, slot);
                    return Ok(());
                }
                Poll::Ready(Err(e)) => {
                    // REFUSED_STREAM, or above the last stream ID of a GOAWAY: the
                    // upstream never processed it (RFC 9113 §8.7).
                    let unprocessed = e.reason() == Some(Reason::REFUSED_STREAM) || e.is_go_away();
                    tracing::debug!("upstream HTTP/2 stream failed before its response: {e}");
                    if e.is_go_away() || e.reason() == Some(Reason::REFUSED_STREAM) {
                        if let Some(c) = ctx.pool.h2_mut(slot) {
                            c.drain();
                        }
                    }
                    return self.h2_failed(cfg, stream, ctx, true, unprocessed);
                }
                Poll::Ready(Ok(response)) => {
                    t.response = None;
                    let (parts, body) = response.into_parts();
                    let max_headers =
                        ctx.clusters.clusters[self.cluster].info.config.http_protocol_options.common.max_headers_count;
                    if parts.headers.len() > max_headers as usize {
                        // The cluster's max_headers_count, as the HTTP/1 response parser
                        // applies it: the response is a protocol error, the try a reset.
                        tracing::debug!(
                            count = parts.headers.len(),
                            max_headers,
                            "upstream HTTP/2 response has too many headers"
                        );
                        return self.h2_failed(cfg, stream, ctx, true, false);
                    }
                    stream.response.clear();
                    stream.response.status = parts.status.as_u16();
                    stream.response.version = Some(crate::http::Version::Http2);
                    let mut length = None;
                    for (name, value) in &parts.headers {
                        if name == http::header::CONTENT_LENGTH {
                            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
                        }
                        stream.response.headers.append(name.as_str().as_bytes(), value.as_bytes());
                    }
                    let framing = match (body.is_end_stream(), length) {
                        (true, _) | (false, Some(0)) => BodyFraming::None,
                        (false, Some(n)) => BodyFraming::Length(n),
                        (false, None) => BodyFraming::Chunked,
                    };
                    t.recv = Some(body);
                    let meta = ResponseMeta { head_len: 0, interim: None, framing, keep_alive: true };
                    step.progress = true;
                    self.try_activity = now;
                    return self.on_response_head(cfg, stream, down, ctx, meta, step);
                }
            }
        }
        self.pump_response_h2(cfg, stream, down, ctx, step)
    }

    /// `auto_config` and the origin picked HTTP/1.1: the try's connection becomes an
    /// HTTP/1.1 one (same socket, slot and TLS session; Envoy's mixed pool swapping
    /// its TCP client for an HTTP/1 client) and the request goes out on it.
    fn h2_to_http1<S: Stack>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        ctx: &mut Ctx<'_, S>,
        slot: TimerKey,
        step: &mut Step,
    ) -> Result<(), LocalReply> {
        let Some(mut conn) = ctx.pool.h2_into_busy(slot, ctx.key) else {
            return self.h2_failed(cfg, stream, ctx, false, false);
        };
        let info = Arc::clone(&ctx.clusters.clusters[self.cluster].info);
        let max_headers = info.config.http_protocol_options.common.max_headers_count;
        let host = Arc::clone(&conn.host);
        let mut client =
            CodecClient::new(conn.socket, Arc::clone(&host), conn.host_index, conn.cluster, max_headers, ctx.now);
        client.connected = true;
        client.readable = conn.readable;
        client.transport = conn.take_transport();
        // The same try goes on over HTTP/1.1: not another attempt.
        self.h2 = None;
        if let Some(h) = self.host.take() {
            h.rq_active.fetch_sub(1, Ordering::Relaxed);
        }
        self.attempts = self.attempts.saturating_sub(1);
        self.tried.pop();
        self.stats.upstream_cx_http1_total.inc();
        self.start_try(conn.host_index, Arc::clone(&host), slot, client, ctx);
        charge::request_sent(&info, &host);
        self.send_request(cfg, stream);
        step.progress = true;
        Ok(())
    }

    /// Send request body bytes while the stream has send capacity.
    fn pump_request_h2<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
    ) -> Result<(), LocalReply> {
        let limit = ctx.clusters.clusters[self.cluster].info.config.per_connection_buffer_limit_bytes as usize;
        let Some(t) = self.h2.as_mut() else { return Ok(()) };
        let Some(send) = t.send.as_mut() else { return Ok(()) };
        while !t.end_sent {
            send.reserve_capacity(limit.max(16 * 1024));
            if send.capacity() == 0 && !stream.request_done {
                break;
            }
            let d = if stream.request_done {
                None
            } else {
                match down.next_body(stream) {
                    Ok(Some(d)) => Some(d),
                    Ok(None) => break,
                    Err(_) => {
                        return Err(LocalReply::new(400, "Bad Request", ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR));
                    }
                }
            };
            let (data, end, consumed) = match &d {
                Some(d) => (&down.body_input()[d.data.clone()], d.end, d.consumed),
                None => (&[][..], true, 0),
            };
            stream.rq_body_bytes += data.len() as u64;
            if self.body_copy_ok && self.keep_body && !data.is_empty() {
                if self.body_copy.len() + data.len() <= cfg.buffer_limit {
                    self.body_copy.extend_from_slice(data);
                } else {
                    self.body_copy_ok = false;
                    self.body_copy = Vec::new();
                }
            }
            let chunk = Bytes::copy_from_slice(data);
            if end {
                let trailers = self.rq_trailers.clone().or_else(|| down.take_request_trailers());
                self.rq_trailers = trailers.clone();
                end_request(send, chunk, trailers);
            } else if send.send_data(chunk, false).is_err() {
                break;
            }
            if end {
                stream.request_done = true;
                t.end_sent = true;
                self.request_sent = true;
            }
            down.consume_body(consumed);
            if consumed == 0 && !end {
                break;
            }
        }
        if t.end_sent {
            self.request_sent = true;
        }
        Ok(())
    }

    /// Forward response DATA while the downstream has room; the end of the stream
    /// completes the try.
    fn pump_response_h2<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
        step: &mut Step,
    ) -> Result<(), LocalReply> {
        let Some(t) = self.h2.as_mut() else { return Ok(()) };
        let Some(slot) = t.slot else { return Ok(()) };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut done = false;
        let mut failed = false;
        let mut trailers = None;
        if let Some(recv) = t.recv.as_mut() {
            while down.buffered() < cfg.buffer_limit {
                match recv.poll_data(&mut cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        down.encode_data(stream, &data, cfg.buffer_limit);
                        let _ = recv.flow_control().release_capacity(data.len());
                        step.progress = true;
                        self.try_activity = ctx.now;
                        stream.last_activity = ctx.now;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!("upstream HTTP/2 response reset: {e}");
                        failed = true;
                        break;
                    }
                    Poll::Ready(None) => {
                        match recv.poll_trailers(&mut cx) {
                            Poll::Ready(Ok(t)) => {
                                trailers = t;
                                done = true;
                            }
                            Poll::Ready(Err(_)) => failed = true,
                            Poll::Pending => {}
                        }
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        if failed {
            self.stats.upstream_rq_rx_reset.inc();
            stream.flags.set(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
            self.charge(ctx, |info, host| charge::reset(info, host, false));
            self.drop_h2(ctx, Reason::CANCEL);
            step.reset_downstream = true;
            return Ok(());
        }
        if done {
            match trailers {
                Some(t) => {
                    stream.resp_grpc_status =
                        crate::http::grpc::parse_status(t.get("grpc-status").map(|v| v.as_bytes()));
                    down.encode_trailers(stream, t)
                }
                None => down.encode_end(stream),
            }
            stream.response_done = true;
            self.stats.upstream_rq_completed.inc();
            self.stats.upstream_rq_time.record(ctx.now.saturating_duration_since(self.try_started));
            // A response that ended before the request stops the sending (RFC 9113 §8.1).
            self.drop_h2(ctx, Reason::NO_ERROR);
            self.phase = Phase::Done;
            self.finish(ctx);
            step.progress = true;
            return Ok(());
        }
        step.progress |= turn_h2(ctx, slot);
        Ok(())
    }

    /// The try's stream failed before a response head: a stream the upstream never
    /// processed is tried again on another connection when the request can be
    /// replayed; otherwise it fails as a reset (`opened`) or a connect failure.
    fn h2_failed<S: Stack>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        ctx: &mut Ctx<'_, S>,
        opened: bool,
        unprocessed: bool,
    ) -> Result<(), LocalReply> {
        tracing::debug!(opened, unprocessed, "upstream HTTP/2 try failed");
        self.drop_h2(ctx, Reason::CANCEL);
        let replayable = stream.request_done && (self.body_copy_ok || stream.rq_body_bytes == 0);
        if unprocessed && replayable && self.unprocessed_retries == 0 {
            self.unprocessed_retries += 1;
            self.tried.pop();
            return self.attempt(cfg, stream, ctx);
        }
        if opened {
            self.charge(ctx, |info, host| charge::reset(info, host, true));
            self.fail(cfg, stream, ctx, ResetReason::Reset)
        } else {
            self.charge(ctx, |i, h| charge::connect_failed(i, h, Outcome::LocalOriginConnectFailed));
            self.fail(cfg, stream, ctx, ResetReason::ConnectFailure)
        }
    }

    /// End the try's stream (RST_STREAM with `reason` unless it completed) and give
    /// its place on the connection back.
    pub(super) fn drop_h2<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, reason: Reason) {
        let Some(mut t) = self.h2.take() else { return };
        if let Some(h) = &self.host {
            h.rq_active.fetch_sub(1, Ordering::Relaxed);
        }
        let complete = t.end_sent && t.recv.as_ref().is_some_and(|r| r.is_end_stream());
        if !complete {
            if let Some(s) = t.send.as_mut() {
                s.send_reset(reason);
            } else if let Some(r) = t.response.take() {
                drop(r);
            }
        }
        drop(t.send.take());
        drop(t.recv.take());
        drop(t.response.take());
        let Some(slot) = t.slot else { return };
        if t.counted {
            if let Some(c) = ctx.pool.h2_mut(slot) {
                c.remove_stream(ctx.key, ctx.now);
            }
            if let Some(owner) = ctx.pool.next_waiting(self.cluster) {
                ctx.ready.push(owner);
            }
        }
        turn_h2(ctx, slot);
        self.idle_h2(ctx, slot);
        self.try_deadline = None;
    }

    /// A connection left without streams: closed when it may take no more, else its
    /// idle timeout starts.
    fn idle_h2<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, slot: TimerKey) {
        let idle = ctx.clusters.clusters[self.cluster].info.config.http_protocol_options.common.idle_timeout;
        let Some(c) = ctx.pool.h2_mut(slot) else { return };
        if !c.owners.is_empty() {
            return;
        }
        if c.draining || ctx.draining {
            close_h2(ctx, slot);
            return;
        }
        if let Some(t) = idle {
            if c.timer_at.is_none_or(|at| at <= ctx.now) {
                let at = ctx.now + t;
                c.timer_at = Some(at);
                let key = ctx.pool.timer_key(slot);
                ctx.timers.schedule(key, at);
            }
        }
    }
}

/// The request as an `h2` request head: `:method`, `:scheme`, `:authority`, `:path`
/// from the head, its other headers without the connection-specific ones
/// (`te: trailers` is kept, as gRPC needs it). The authority, the path and the header
/// values share one buffer (one allocation, not one per value); an invalid method
/// gives the default request, an invalid URI the default URI, an invalid header is
/// left out.
fn request_head(stream: &Stream) -> http::Request<()> {
    let head = &stream.head;
    let Ok(method) = http::Method::from_bytes(head.method.as_bytes()) else {
        return http::Request::default();
    };
    let keep = |name: &[u8], value: &[u8]| {
        name != b"host" && !(connection_specific(name) && !(name == b"te" && value == b"trailers"))
    };
    let (authority, path) = (head.authority.as_bytes(), head.path.as_bytes());
    let mut shared = Vec::with_capacity(authority.len() + path.len() + 256);
    shared.extend_from_slice(authority);
    shared.extend_from_slice(path);
    let mut count = 0;
    for (name, value) in head.headers.iter() {
        if keep(name, value) {
            shared.extend_from_slice(value);
            count += 1;
        }
    }
    let shared = Bytes::from(shared);
    let mut r = http::Request::new(());
    *r.method_mut() = method;
    *r.uri_mut() = request_uri(&head.scheme, &shared, authority.len(), path.len()).unwrap_or_default();
    let headers = r.headers_mut();
    headers.reserve(count.min(256)); // `reserve` panics past 32,768
    let mut at = authority.len() + path.len();
    for (name, value) in head.headers.iter() {
        if !keep(name, value) {
            continue;
        }
        let v = shared.slice(at..at + value.len());
        at += value.len();
        let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_maybe_shared(v)) else {
            continue;
        };
        headers.append(n, v);
    }
    r
}

/// `scheme://authority/path` (an empty scheme is `http`); `shared` starts with the
/// authority's `authority_len` bytes, then the path's `path_len`.
fn request_uri(scheme: &str, shared: &Bytes, authority_len: usize, path_len: usize) -> Option<http::Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match scheme {
        "" | "http" => http::uri::Scheme::HTTP,
        "https" => http::uri::Scheme::HTTPS,
        other => other.parse().ok()?,
    });
    parts.authority = Some(http::uri::Authority::from_maybe_shared(shared.slice(..authority_len)).ok()?);
    let path = shared.slice(authority_len..authority_len + path_len);
    parts.path_and_query = Some(http::uri::PathAndQuery::from_maybe_shared(path).ok()?);
    http::Uri::from_parts(parts).ok()
}

/// The last request DATA (`data`, possibly empty), then the trailers when there are
/// some: either ends the stream.
fn end_request(send: &mut SendStream<Bytes>, data: Bytes, trailers: Option<http::HeaderMap>) {
    match trailers {
        Some(t) => {
            if !data.is_empty() {
                let _ = send.send_data(data, false);
            }
            let _ = send.send_trailers(t);
        }
        None => {
            let _ = send.send_data(data, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_head_keeps_its_headers_and_shares_one_buffer() {
        let mut s = Stream::new(std::time::Instant::now());
        s.head.method.push_str("POST");
        s.head.authority.push_str("svc.example:8080");
        s.head.path.push_str("/pkg.Svc/Call?x=1");
        for (n, v) in [
            (&b"content-type"[..], &b"application/grpc"[..]),
            (b"te", b"trailers"),
            (b"connection", b"keep-alive"),
            (b"host", b"other"),
            (b"x-custom", b"a"),
            (b"x-custom", b"b"),
            (b"bad", b"line\nbreak"),
        ] {
            s.head.headers.append(n, v);
        }
        let r = request_head(&s);
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.uri().to_string(), "http://svc.example:8080/pkg.Svc/Call?x=1");
        let h = r.headers();
        assert_eq!(h.get("content-type").unwrap(), "application/grpc");
        assert_eq!(h.get("te").unwrap(), "trailers", "gRPC's te: trailers is kept");
        assert!(h.get("connection").is_none() && h.get("host").is_none() && h.get("bad").is_none());
        assert_eq!(h.get_all("x-custom").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.len(), 4);

        s.head.scheme.push_str("https");
        assert_eq!(request_head(&s).uri().scheme_str(), Some("https"));
        s.head.authority.clear();
        assert_eq!(request_head(&s).uri(), &http::Uri::default(), "no authority: the default URI");
        s.head.method.clear();
        s.head.method.push_str("BAD METHOD");
        assert!(request_head(&s).headers().is_empty(), "an invalid method: the default request");
    }
}
