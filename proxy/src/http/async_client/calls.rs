//! The async requests of one downstream stream: each runs the router over a stream of
//! its own (the [`Sink`] as its downstream side) on the downstream connection's worker
//! context, so the pool lends connections to that connection and their readiness
//! comes back through it.

use std::sync::Arc;
use std::time::Instant;

use sluice_config::metadata::Metadata;
use sluice_stack::Stack;

use super::sink::Sink;
use super::{AsyncClient, Call, Failure, Outcome, Response};
use crate::http::codec::{BodyDecoder, BodyFraming};
use crate::http::conn_manager::stream::Stream;
use crate::http::filters::router::{LocalReply, RouterState};
use crate::http::{ResponseHead, Version};
use crate::router::StreamInfo;
use crate::timer::{earliest, TimerKey};
use crate::worker_ctx::Ctx;

/// An outcome for the filter at `filter`, with the tag it chose.
#[derive(Debug)]
pub struct Completed {
    pub filter: usize,
    pub tag: u32,
    pub outcome: Outcome,
}

#[derive(Debug)]
struct InFlight {
    filter: usize,
    tag: u32,
    client: Arc<AsyncClient>,
    stream: Box<Stream>,
    router: RouterState,
    sink: Sink,
    deadline: Option<Instant>,
}

/// A stream's requests in flight, and outcomes not yet delivered.
#[derive(Debug, Default)]
pub struct AsyncCalls {
    inflight: Vec<InFlight>,
    done: Vec<Completed>,
}

impl AsyncCalls {
    /// Nothing in flight and nothing to deliver.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty() && self.done.is_empty()
    }

    /// Start `call` for the filter at `filter`.
    pub fn start<S: Stack>(&mut self, filter: usize, call: Call, ctx: &mut Ctx<'_, S>) {
        let Call { client, request, tag } = call;
        let cfg = &client.hcm;
        let mut stream = Box::new(Stream::new(ctx.now));
        stream.active = true;
        stream.start = ctx.now;
        stream.start_time = ctx.wall;
        stream.head = request.head;
        if stream.head.scheme.is_empty() {
            stream.head.scheme.push_str("http");
        }
        if stream.head.version.is_none() {
            stream.head.version = Some(Version::Http11);
        }
        let len = request.body.len() as u64;
        stream.meta.framing = if len == 0 { BodyFraming::None } else { BodyFraming::Length(len) };
        stream.body = BodyDecoder::new(stream.meta.framing, 0);
        if len > 0 {
            stream.head.headers.set(b"content-length", len.to_string().as_bytes());
            stream.replay_body = Some(request.body);
        }
        stream.request_done = true;
        let matched = cfg.routes.route_in(&stream.head, 0, ctx.runtime, &Metadata::default());
        let Some(matched) = matched else {
            // The synthetic route matches every request with a scheme.
            self.done.push(Completed { filter, tag, outcome: Err(Failure::Reset) });
            return;
        };
        stream.route = Some(matched.route_ref());
        stream.cluster = Some(client.cluster);
        stream.forwarding = true;
        let info = StreamInfo::new(ctx.wall);
        let deadline = request.timeout.map(|t| ctx.now + t);
        match RouterState::begin(cfg, &mut stream, client.cluster, &info, None, ctx) {
            Ok(router) => {
                let limit = cfg.buffer_limit;
                self.inflight.push(InFlight {
                    filter,
                    tag,
                    client: Arc::clone(&client),
                    stream,
                    router,
                    sink: Sink::new(limit),
                    deadline,
                });
                // The first round may already have an answer (nothing to wait for).
                ctx.again();
            }
            Err(reply) => self.done.push(Completed { filter, tag, outcome: Ok(local_response(reply)) }),
        }
    }

    /// Readiness on an upstream connection: the request that owns it reads next. True
    /// when one of these requests owns `slot`.
    pub fn on_upstream_event(&mut self, slot: TimerKey, peer_closed: bool) -> bool {
        let mut mine = false;
        for f in &mut self.inflight {
            mine |= f.router.on_upstream_event(slot, peer_closed);
        }
        mine
    }

    /// Advance every request (deadlines, connect, send, receive); the outcomes that
    /// are ready, in completion order, and whether anything moved.
    pub fn drive<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> (Vec<Completed>, bool) {
        let mut progress = false;
        let mut i = 0;
        while i < self.inflight.len() {
            let f = &mut self.inflight[i];
            let outcome = if f.deadline.is_some_and(|d| ctx.now >= d) {
                f.router.cancel(ctx);
                Some(Err(Failure::Timeout))
            } else {
                let client = Arc::clone(&f.client);
                let step = f.router.drive(&client.hcm, &mut f.stream, &mut f.sink, ctx);
                progress |= step.progress;
                if let Some(reply) = step.reply {
                    f.router.cancel(ctx);
                    Some(Ok(local_response(reply)))
                } else if step.reset_downstream || step.upgraded || f.sink.reset {
                    f.router.cancel(ctx);
                    Some(Err(Failure::Reset))
                } else if f.stream.response_done {
                    f.router.cancel(ctx);
                    let head = std::mem::take(&mut f.stream.response);
                    let body = std::mem::take(&mut f.sink.body);
                    Some(Ok(Response { head, body, trailers: f.sink.take_trailers() }))
                } else {
                    None
                }
            };
            match outcome {
                Some(outcome) => {
                    let f = self.inflight.swap_remove(i);
                    self.done.push(Completed { filter: f.filter, tag: f.tag, outcome });
                }
                None => i += 1,
            }
        }
        let done = std::mem::take(&mut self.done);
        progress |= !done.is_empty();
        (done, progress)
    }

    /// The earliest time a request must be looked at without an event.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next = None;
        for f in &self.inflight {
            next = earliest([next, f.deadline, f.router.next_deadline()]);
        }
        next
    }

    /// The downstream stream ended: reset every request, deliver nothing.
    pub fn cancel_all<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        for mut f in self.inflight.drain(..) {
            f.router.cancel(ctx);
        }
        self.done.clear();
    }
}

/// The router's own answer (no healthy upstream, overflow, connect failure) as the
/// response Envoy's async client reports for it.
fn local_response(reply: LocalReply) -> Response {
    let mut head = ResponseHead { status: reply.status, ..ResponseHead::default() };
    if !reply.body.is_empty() {
        head.headers.set(b"content-type", b"text/plain");
        head.headers.set(b"content-length", reply.body.len().to_string().as_bytes());
    }
    if reply.overloaded {
        head.headers.set(b"x-envoy-overloaded", b"true");
    }
    Response { head, body: reply.body.as_bytes().to_vec(), trailers: None }
}
