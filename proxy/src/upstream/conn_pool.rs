//! Per-worker HTTP/1.1 connection pools (Envoy's per-worker, per-host pools).
//!
//! Every upstream connection of a worker has a slot in the pool's table, so that its
//! socket keeps one token for its whole life. A connection serving a request is lent
//! to the stream (`Busy` names the owner, events go there); between requests it rests
//! `Idle` in its host's list, newest first, watched for the upstream closing it and
//! bounded by the cluster's idle timeout. Nothing here is shared with other workers.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::net::SocketAddr;

use sluice_stack::Stack;

use crate::conn_table::ConnTable;
use crate::http::codec_client::CodecClient;
use crate::router::shadow::ShadowRequest;
use crate::timer::TimerKey;
use crate::upstream::h2_client::Http2Client;
use crate::worker_ctx::Ctx;

/// The state of one upstream connection slot.
///
/// Slots live in one table; boxing the idle connection would cost an allocation every
/// time a connection returns to the pool, so the size difference is accepted.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum UpstreamSlot {
    /// Resting in the pool.
    Idle(CodecClient),
    /// Lent to the stream of downstream connection `owner`.
    Busy { owner: TimerKey },
    /// Carrying a mirrored request (fire-and-forget).
    Shadow(Box<ShadowRequest>),
    /// An HTTP/2 connection: owned by the pool, its streams by their routers.
    H2(Box<Http2Client>),
}

/// One worker's upstream connections for one config generation.
#[derive(Debug, Default)]
pub struct ConnPool {
    /// The config generation this pool belongs to (it is in every token and timer key).
    gen: u8,
    pub slots: ConnTable<UpstreamSlot>,
    /// Idle connection slots per cluster, per host address (last is most recent).
    idle: Vec<FxHashMap<SocketAddr, Vec<TimerKey>>>,
    /// Streams waiting for connection capacity, per cluster (oldest first).
    waiting: Vec<VecDeque<TimerKey>>,
    /// HTTP/2 connection slots per cluster, per host address.
    h2: Vec<FxHashMap<SocketAddr, Vec<TimerKey>>>,
    shadows: usize,
    shadow_bytes: usize,
}

impl ConnPool {
    pub fn new(gen: u8, clusters: usize) -> ConnPool {
        ConnPool {
            gen,
            slots: ConnTable::default(),
            idle: (0..clusters).map(|_| FxHashMap::default()).collect(),
            waiting: (0..clusters).map(|_| VecDeque::new()).collect(),
            h2: (0..clusters).map(|_| FxHashMap::default()).collect(),
            shadows: 0,
            shadow_bytes: 0,
        }
    }

    /// The readiness token of slot `slot`.
    pub fn token(&self, slot: TimerKey) -> sluice_stack::Token {
        crate::worker_ctx::pool_token(self.gen, slot)
    }

    /// The timer key of slot `slot`.
    pub fn timer_key(&self, slot: TimerKey) -> TimerKey {
        crate::worker_ctx::pool_timer_key(self.gen, slot)
    }

    /// Make the slots freed during the last event batch reusable (the worker calls
    /// this once per batch, as for its connection table).
    pub fn recycle(&mut self) {
        self.slots.recycle();
    }

    /// Whether nothing lives in the pool any more.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Streams waiting for capacity (all clusters), taken off their queues.
    pub fn take_all_waiting(&mut self) -> Vec<TimerKey> {
        self.waiting.iter_mut().flat_map(|q| q.drain(..)).collect()
    }

    /// Take the most recently used idle connection to `host` of `cluster`, lending it
    /// to `owner`.
    pub fn take_idle(&mut self, cluster: usize, host: SocketAddr, owner: TimerKey) -> Option<(TimerKey, CodecClient)> {
        let list = self.idle.get_mut(cluster)?.get_mut(&host)?;
        while let Some(key) = list.pop() {
            let Some(slot) = self.slots.get_key_mut(key) else {
                continue;
            };
            if let UpstreamSlot::Idle(_) = slot {
                let UpstreamSlot::Idle(client) = std::mem::replace(slot, UpstreamSlot::Busy { owner }) else {
                    unreachable!("matched Idle above")
                };
                return Some((key, client));
            }
        }
        None
    }

    /// A slot for a new connection lent to `owner`.
    pub fn new_busy(&mut self, owner: TimerKey) -> TimerKey {
        self.slots.insert(UpstreamSlot::Busy { owner })
    }

    /// Put a connection back to rest.
    pub fn put_idle(&mut self, key: TimerKey, client: CodecClient) {
        let cluster = client.cluster;
        let addr = client.host.address;
        if let Some(slot) = self.slots.get_key_mut(key) {
            *slot = UpstreamSlot::Idle(client);
            if let Some(map) = self.idle.get_mut(cluster) {
                map.entry(addr).or_default().push(key);
            }
        }
    }

    /// Let slot `key` carry a shadow request.
    pub fn set_shadow(&mut self, key: TimerKey, shadow: ShadowRequest) {
        self.shadows += 1;
        self.shadow_bytes += shadow.bytes;
        if let Some(slot) = self.slots.get_key_mut(key) {
            *slot = UpstreamSlot::Shadow(Box::new(shadow));
        }
    }

    /// Take a shadow out of its slot (to drive it); the slot holds a placeholder.
    pub fn take_shadow(&mut self, key: TimerKey) -> Option<Box<ShadowRequest>> {
        let slot = self.slots.get_key_mut(key)?;
        if !matches!(slot, UpstreamSlot::Shadow(_)) {
            return None;
        }
        let placeholder = UpstreamSlot::Busy { owner: TimerKey { index: u32::MAX, generation: 0 } };
        match std::mem::replace(slot, placeholder) {
            UpstreamSlot::Shadow(s) => {
                self.shadows -= 1;
                self.shadow_bytes -= s.bytes;
                Some(s)
            }
            _ => None,
        }
    }

    /// Shadows in flight and the request bytes they hold.
    pub fn shadows(&self) -> usize {
        self.shadows
    }

    pub fn shadow_bytes(&self) -> usize {
        self.shadow_bytes
    }

    /// Remove a slot (its connection is closed by the caller); drops it from idle lists.
    pub fn remove(&mut self, key: TimerKey) -> Option<UpstreamSlot> {
        let slot = self.slots.remove(key)?;
        if let UpstreamSlot::Shadow(s) = &slot {
            self.shadows -= 1;
            self.shadow_bytes -= s.bytes;
        }
        if let UpstreamSlot::Idle(c) = &slot {
            if let Some(list) = self.idle.get_mut(c.cluster).and_then(|m| m.get_mut(&c.host.address)) {
                list.retain(|k| *k != key);
            }
        }
        if let UpstreamSlot::H2(c) = &slot {
            if let Some(list) = self.h2.get_mut(c.cluster).and_then(|m| m.get_mut(&c.host.address)) {
                list.retain(|k| *k != key);
            }
        }
        Some(slot)
    }

    /// Queue stream `owner` until `cluster` has connection capacity.
    pub fn wait_for_capacity(&mut self, cluster: usize, owner: TimerKey) {
        if let Some(q) = self.waiting.get_mut(cluster) {
            q.push_back(owner);
        }
    }

    /// The oldest stream waiting on `cluster`, taken off the queue.
    pub fn next_waiting(&mut self, cluster: usize) -> Option<TimerKey> {
        self.waiting.get_mut(cluster)?.pop_front()
    }

    /// Forget a waiting stream (it ended).
    pub fn stop_waiting(&mut self, cluster: usize, owner: TimerKey) {
        if let Some(q) = self.waiting.get_mut(cluster) {
            q.retain(|k| *k != owner);
        }
    }

    /// Number of idle connections (all clusters).
    pub fn idle_count(&self) -> usize {
        self.idle.iter().flat_map(|m| m.values()).map(Vec::len).sum()
    }

    /// Keys of every slot carrying a shadow (shutdown).
    pub fn shadow_keys(&self) -> Vec<TimerKey> {
        self.slots.keys().into_iter().filter(|k| matches!(self.slots.get(*k), Some(UpstreamSlot::Shadow(_)))).collect()
    }

    /// A new HTTP/2 connection's slot.
    pub fn insert_h2(&mut self, client: Http2Client) -> TimerKey {
        let (cluster, addr) = (client.cluster, client.host.address);
        let key = self.slots.insert(UpstreamSlot::H2(Box::new(client)));
        if let Some(map) = self.h2.get_mut(cluster) {
            map.entry(addr).or_default().push(key);
        }
        key
    }

    /// An HTTP/2 connection to `host` of `cluster` that takes another stream now
    /// (the newest first).
    pub fn h2_with_capacity(&self, cluster: usize, host: SocketAddr) -> Option<TimerKey> {
        let list = self.h2.get(cluster)?.get(&host)?;
        list.iter().rev().copied().find(|k| matches!(self.slots.get(*k), Some(UpstreamSlot::H2(c)) if c.has_capacity()))
    }

    /// Whether an idle HTTP/1.1 connection to `host` of `cluster` rests in the pool.
    pub fn has_idle(&self, cluster: usize, host: SocketAddr) -> bool {
        self.idle
            .get(cluster)
            .and_then(|m| m.get(&host))
            .is_some_and(|l| l.iter().any(|k| matches!(self.slots.get(*k), Some(UpstreamSlot::Idle(_)))))
    }

    /// `auto_config`: the connection in HTTP/2 slot `key` turned out HTTP/1.1; the slot
    /// (and its socket's token) is lent to `owner`, the connection handed back.
    pub fn h2_into_busy(&mut self, key: TimerKey, owner: TimerKey) -> Option<Box<Http2Client>> {
        let slot = self.slots.get_key_mut(key)?;
        if !matches!(slot, UpstreamSlot::H2(_)) {
            return None;
        }
        let UpstreamSlot::H2(client) = std::mem::replace(slot, UpstreamSlot::Busy { owner }) else {
            unreachable!("matched H2 above")
        };
        if let Some(list) = self.h2.get_mut(client.cluster).and_then(|m| m.get_mut(&client.host.address)) {
            list.retain(|k| *k != key);
        }
        Some(client)
    }

    /// The HTTP/2 connection in slot `key`.
    pub fn h2_mut(&mut self, key: TimerKey) -> Option<&mut Http2Client> {
        match self.slots.get_key_mut(key) {
            Some(UpstreamSlot::H2(c)) => Some(c),
            _ => None,
        }
    }

    /// Keys of every HTTP/2 connection without streams (drain, idle close).
    pub fn idle_h2_keys(&self) -> Vec<TimerKey> {
        self.h2
            .iter()
            .flat_map(|m| m.values())
            .flatten()
            .copied()
            .filter(|k| matches!(self.slots.get(*k), Some(UpstreamSlot::H2(c)) if c.owners.is_empty()))
            .collect()
    }

    /// Keys of every idle connection (drain).
    pub fn idle_keys(&self) -> Vec<TimerKey> {
        self.idle.iter().flat_map(|m| m.values()).flatten().copied().collect()
    }
}

/// Close an upstream connection and release what it held: its socket, its host and
/// cluster connection counts, and its stats; a stream waiting for capacity on the
/// cluster is woken.
pub fn close_client<S: Stack>(ctx: &mut Ctx<'_, S>, client: &mut CodecClient) {
    if client.is_closed() {
        return;
    }
    client.close(ctx.stack, true);
    let cluster = client.cluster;
    if let Some(tl) = ctx.clusters.clusters.get(cluster) {
        tl.info.release_connection(&client.host);
    }
    if let Some(stats) = ctx.cluster_stats.get(cluster) {
        stats.upstream_cx_active.dec();
        stats.upstream_cx_destroy.inc();
    }
    if let Some(owner) = ctx.pool.next_waiting(cluster) {
        ctx.ready.push(owner);
    }
}

/// Put a reusable connection back to rest: idle from now, closed instead when it has
/// served the cluster's `max_requests_per_connection`; a stream waiting for capacity
/// on the cluster is woken. The idle timeout keeps at most one timer entry per
/// connection: a pending one (still in the future) fires and re-arms itself for the
/// new idle period.
pub fn rest<S: Stack>(ctx: &mut Ctx<'_, S>, slot: TimerKey, mut client: CodecClient) {
    let cluster = client.cluster;
    let common = &ctx.clusters.clusters[cluster].info.config.http_protocol_options.common;
    let (idle, max_rq) = (common.idle_timeout, common.max_requests_per_connection);
    if max_rq.is_some_and(|m| client.requests >= m) {
        close_client(ctx, &mut client);
        ctx.pool.remove(slot);
        return;
    }
    client.idle_since = ctx.now;
    client.shrink_idle();
    if let Some(t) = idle {
        if client.timer_at.is_none_or(|at| at <= ctx.now) {
            let at = ctx.now + t;
            let key = ctx.pool.timer_key(slot);
            ctx.timers.schedule(key, at);
            client.timer_at = Some(at);
        }
    }
    ctx.pool.put_idle(slot, client);
    if let Some(owner) = ctx.pool.next_waiting(cluster) {
        ctx.ready.push(owner);
    }
}

/// Close the HTTP/2 connection in slot `key` and release what it held (as
/// [`close_client`]); the owners of streams still on it are woken to see them fail.
pub fn close_h2<S: Stack>(ctx: &mut Ctx<'_, S>, key: TimerKey) {
    let Some(UpstreamSlot::H2(mut client)) = ctx.pool.remove(key) else {
        return;
    };
    client.close(ctx.stack, true);
    let cluster = client.cluster;
    if let Some(tl) = ctx.clusters.clusters.get(cluster) {
        tl.info.release_connection(&client.host);
    }
    if let Some(stats) = ctx.cluster_stats.get(cluster) {
        stats.upstream_cx_active.dec();
        stats.upstream_cx_destroy.inc();
    }
    for owner in client.owners.drain(..) {
        if !ctx.ready.contains(&owner) {
            ctx.ready.push(owner);
        }
    }
    if let Some(owner) = ctx.pool.next_waiting(cluster) {
        ctx.ready.push(owner);
    }
}

/// Let the HTTP/2 connection in slot `key` read, process and write; wake its streams'
/// owners (other than the connection being served) when something arrived, and close
/// it when it ended. Returns whether bytes arrived.
pub fn turn_h2<S: Stack>(ctx: &mut Ctx<'_, S>, key: TimerKey) -> bool {
    let Some(UpstreamSlot::H2(client)) = ctx.pool.slots.get_key_mut(key) else {
        return false;
    };
    let t = client.turn(ctx.stack, ctx.scratch);
    if t.negotiated_h2 {
        if let Some(s) = ctx.cluster_stats.get(client.cluster) {
            s.upstream_cx_http2_total.inc();
        }
    }
    if t.read {
        for owner in &client.owners {
            if *owner != ctx.key && !ctx.ready.contains(owner) {
                ctx.ready.push(*owner);
            }
        }
    }
    if t.closed {
        if let Some(s) = ctx.cluster_stats.get(client.cluster) {
            s.upstream_cx_destroy_remote.inc();
        }
        close_h2(ctx, key);
    } else if client.negotiated_http1() && client.owners.is_empty() {
        // auto_config picked HTTP/1.1 after the stream it was opened for went away.
        close_h2(ctx, key);
    }
    t.read
}
