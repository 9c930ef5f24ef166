//! The worker's handling of upstream pool slots: readiness and timers of idle pooled
//! connections and of shadow requests (busy connections belong to their stream, whose
//! connection handles their events).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use sluice_stack::{Interest, Stack};

use super::{Conn, Worker};
use crate::router::shadow::ShadowState;
use crate::tcp_proxy::Status;
use crate::timer::TimerKey;
use crate::upstream::conn_pool::{close_client, close_h2, rest, turn_h2, UpstreamSlot};

impl<S: Stack> Worker<S> {
    /// An event on an upstream pool slot of generation `gen`; `peer_closed` when it
    /// reports the upstream's FIN or RST.
    pub(super) fn on_pool_event(&mut self, gen: u8, index: usize, peer_closed: bool, now: Instant) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        let Some((slot, state)) = g.pool.slots.get_mut(index) else { return };
        match state {
            UpstreamSlot::Busy { owner } => {
                let owner = *owner;
                if let Some(gen) = crate::http::async_client::detached::decode_detached_key(owner) {
                    self.run_background(gen, now, Some((slot, peer_closed)));
                    return;
                }
                let status = self.with_conn(owner, now, |conn, ctx| match conn {
                    Conn::Http(h) => h.on_upstream_event(ctx, slot, peer_closed),
                    _ => Status::Open,
                });
                self.finish(owner, status);
            }
            UpstreamSlot::Shadow(_) => self.drive_shadow(gen, slot, now, Some(peer_closed)),
            UpstreamSlot::H2(client) => {
                client.readable = true;
                if !client.connected {
                    match self.stack.connect_result(client.socket) {
                        Ok(()) => client.connected = true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) => {
                            tracing::debug!("upstream connect failed: {e}");
                            if let Some(s) = g.cluster_stats.get(client.cluster) {
                                s.upstream_cx_connect_fail.inc();
                            }
                            self.with_ctx(gen, slot, now, |ctx| close_h2(ctx, slot));
                            return;
                        }
                    }
                }
                let owners = client.owners.clone();
                self.with_ctx(gen, slot, now, |ctx| {
                    turn_h2(ctx, slot);
                    for owner in owners {
                        if !ctx.ready.contains(&owner) {
                            ctx.ready.push(owner);
                        }
                    }
                });
            }
            UpstreamSlot::Idle(client) => {
                // An idle connection has nothing to say: data or a close ends it.
                let mut probe = [0u8; 1];
                match self.stack.peek(client.socket, &mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => {
                        if let Some(s) = g.cluster_stats.get(client.cluster) {
                            s.upstream_cx_destroy_remote.inc();
                        }
                        self.close_idle_slot(gen, slot, now);
                    }
                }
            }
        }
    }

    /// Advance a mirrored request on an event (`Some(peer_closed)`, as in
    /// [`Worker::on_pool_event`]) or a timer (`None`); on completion pool or close its
    /// connection.
    fn drive_shadow(&mut self, gen: u8, slot: TimerKey, now: Instant, event: Option<bool>) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        let Some(mut shadow) = g.pool.take_shadow(slot) else { return };
        shadow.client.peer_closed |= event == Some(true);
        let state = self.with_ctx(gen, slot, now, |ctx| shadow.drive(ctx, event.is_some()));
        match state {
            ShadowState::Running => {
                let mut s = *shadow;
                // One pending timer entry per shadow: re-arm only when it fired or the
                // next deadline is earlier.
                let next = s.next_deadline();
                let g = self.generations[gen as usize].as_mut().expect("live generation");
                if s.client.timer_at.is_none_or(|at| at <= now || next < at) {
                    s.client.timer_at = Some(next);
                    self.timers.schedule(g.pool.timer_key(slot), next);
                }
                g.pool.set_shadow(slot, s);
            }
            ShadowState::Done { reusable } => {
                let mut s = *shadow;
                self.with_ctx(gen, slot, now, |ctx| s.finish(ctx));
                if reusable && self.drain_deadline.is_none() && gen == self.current {
                    let client = s.client;
                    self.with_ctx(gen, slot, now, |ctx| rest(ctx, slot, client));
                } else {
                    if let Some(g) = self.generations[gen as usize].as_mut() {
                        g.pool.remove(slot);
                    }
                    self.with_ctx(gen, slot, now, |ctx| s.close(ctx));
                }
            }
        }
    }

    pub(super) fn close_idle_slot(&mut self, gen: u8, slot: TimerKey, now: Instant) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        if let Some(UpstreamSlot::Idle(mut client)) = g.pool.remove(slot) {
            self.with_ctx(gen, slot, now, |ctx| close_client(ctx, &mut client));
        }
    }

    /// Move generation `old`'s idle upstream connections into the current generation's
    /// pool where their cluster is configured identically there (same name, same
    /// effective config) and their host is still a member: a reload keeps the pooled
    /// connections of unchanged clusters, as the README promises. Each one changes
    /// slot and token (re-registered), host and cluster (the new config's, with the
    /// connection counts moved over) and re-arms its idle timeout; the others are
    /// closed.
    pub(super) fn carry_idle_slots(&mut self, old: u8, now: Instant) {
        let cur = self.current;
        let Some(g) = self.generations.get(old as usize).and_then(Option::as_ref) else { return };
        if old == cur {
            return;
        }
        let old_snapshot = Arc::clone(&g.snapshot);
        let new_snapshot = Arc::clone(&self.gen(cur).snapshot);
        for slot in g.pool.idle_keys() {
            let Some(g) = self.generations[old as usize].as_mut() else { return };
            let target = match g.pool.slots.get_key_mut(slot) {
                Some(UpstreamSlot::Idle(c)) => carry_target(&old_snapshot, &new_snapshot, c.cluster, c.host.address),
                _ => continue,
            };
            let Some((cluster, host_index, host)) = target else {
                self.close_idle_slot(old, slot, now);
                continue;
            };
            let new_info = &new_snapshot.cluster_manager.clusters[cluster];
            if !new_info.try_acquire_connection(&host) {
                self.close_idle_slot(old, slot, now);
                continue;
            }
            let Some(UpstreamSlot::Idle(mut client)) = g.pool.remove(slot) else { continue };
            if let Some(old_info) = old_snapshot.cluster_manager.clusters.get(client.cluster) {
                old_info.release_connection(&client.host);
            }
            (client.cluster, client.host_index, client.host) = (cluster, host_index, host);
            let idle_timeout = new_info.config.http_protocol_options.common.idle_timeout;
            let g = self.generations[cur as usize].as_mut().expect("live generation");
            let key = g.pool.new_busy(TimerKey { index: u32::MAX, generation: 0 });
            if let Err(e) = self.stack.reregister(client.socket, g.pool.token(key), Interest::BOTH) {
                tracing::debug!("cannot move a pooled connection to the new config: {e}");
                g.pool.remove(key);
                self.with_ctx(cur, key, now, |ctx| crate::upstream::conn_pool::close_client(ctx, &mut client));
                continue;
            }
            client.timer_at = idle_timeout.map(|t| client.idle_since + t);
            if let Some(at) = client.timer_at {
                self.timers.schedule(g.pool.timer_key(key), at);
            }
            g.pool.put_idle(key, client);
        }
    }

    /// Close every idle connection of generation `gen` (HTTP/2 ones without streams
    /// included).
    pub(super) fn close_idle_slots(&mut self, gen: u8, now: Instant) {
        let Some(g) = self.generations.get(gen as usize).and_then(Option::as_ref) else { return };
        for slot in g.pool.idle_keys() {
            self.close_idle_slot(gen, slot, now);
        }
        let Some(g) = self.generations.get(gen as usize).and_then(Option::as_ref) else { return };
        for slot in g.pool.idle_h2_keys() {
            self.with_ctx(gen, slot, now, |ctx| close_h2(ctx, slot));
        }
    }

    /// Close everything generation `gen`'s pool holds by itself (idle connections and
    /// shadows); busy connections go with their streams.
    pub(super) fn close_pool(&mut self, gen: u8, now: Instant) {
        self.close_idle_slots(gen, now);
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        for slot in g.pool.shadow_keys() {
            let Some(g) = self.generations[gen as usize].as_mut() else { return };
            if let Some(mut s) = g.pool.take_shadow(slot) {
                g.pool.remove(slot);
                self.with_ctx(gen, slot, now, |ctx| {
                    s.finish(ctx);
                    s.close(ctx);
                });
            }
        }
    }

    /// A pool slot's timer: idle timeout of a pooled connection, or a shadow deadline.
    pub(super) fn on_pool_timer(&mut self, gen: u8, slot: TimerKey, now: Instant) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        match g.pool.slots.get_key_mut(slot) {
            Some(UpstreamSlot::Shadow(_)) => self.drive_shadow(gen, slot, now, None),
            Some(UpstreamSlot::H2(client)) => {
                let idle = g
                    .clusters
                    .clusters
                    .get(client.cluster)
                    .and_then(|c| c.info.config.http_protocol_options.common.idle_timeout);
                client.timer_at = None;
                match idle {
                    Some(t) if client.owners.is_empty() && now >= client.idle_since + t => {
                        if let Some(s) = g.cluster_stats.get(client.cluster) {
                            s.upstream_cx_idle_timeout.inc();
                        }
                        self.with_ctx(gen, slot, now, |ctx| close_h2(ctx, slot));
                    }
                    Some(t) if client.owners.is_empty() => {
                        let at = client.idle_since + t;
                        client.timer_at = Some(at);
                        let key = g.pool.timer_key(slot);
                        self.timers.schedule(key, at);
                    }
                    _ => {}
                }
            }
            Some(UpstreamSlot::Idle(client)) => {
                let idle = g
                    .clusters
                    .clusters
                    .get(client.cluster)
                    .and_then(|c| c.info.config.http_protocol_options.common.idle_timeout);
                match idle {
                    Some(t) if now >= client.idle_since + t => {
                        if let Some(s) = g.cluster_stats.get(client.cluster) {
                            s.upstream_cx_idle_timeout.inc();
                        }
                        self.close_idle_slot(gen, slot, now);
                    }
                    Some(t) => {
                        let at = client.idle_since + t;
                        client.timer_at = Some(at);
                        let key = g.pool.timer_key(slot);
                        self.timers.schedule(key, at);
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
}

/// Where an idle connection of cluster `cluster` (index in `old`) to `addr` goes in
/// `new`: the cluster's index there, the host's index and the host, when the cluster
/// is unchanged and the host still a member.
fn carry_target(
    old: &crate::listener::manager::Snapshot,
    new: &crate::listener::manager::Snapshot,
    cluster: usize,
    addr: std::net::SocketAddr,
) -> Option<(usize, usize, Arc<crate::upstream::host::Host>)> {
    let name = old.cluster_manager.clusters.get(cluster)?.name();
    let fingerprint = old.cluster_fingerprints.get(cluster)?;
    let to = new.cluster_manager.clusters.iter().position(|c| c.name() == name)?;
    if new.cluster_fingerprints.get(to) != Some(fingerprint) {
        return None;
    }
    let hosts = new.cluster_manager.clusters[to].hosts();
    let (i, host) = hosts.hosts.iter().enumerate().find(|(_, h)| h.address == addr)?;
    Some((to, i, Arc::clone(host)))
}
