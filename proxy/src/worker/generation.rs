//! Config generations inside a worker.
//!
//! A reload (SIGHUP) publishes a new [`Snapshot`]; the worker starts a new generation
//! for it — its thread-local clusters (balancers), its upstream pool, its stats blocks —
//! and every connection accepted from then on belongs to it. A connection stays bound
//! to the generation it started in until it ends, so nothing it holds (cluster
//! indices, pooled connections, route references) can ever point into another config.
//! An old generation keeps no idle upstream connections and is dropped once its last
//! connection and its last shadow request are gone. Pool tokens and timer keys carry
//! the generation's slot number, so their events reach the right pool.

use std::sync::Arc;

use super::background::Background;
use crate::listener::manager::Snapshot;
use crate::stats::{ClusterStats, ListenerStats, Store};
use crate::upstream::cluster_manager::ThreadLocalClusterManager;
use crate::upstream::conn_pool::ConnPool;

/// Everything of one config a worker keeps.
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub clusters: ThreadLocalClusterManager,
    pub cluster_stats: Vec<Arc<ClusterStats>>,
    pub listener_stats: Vec<Arc<ListenerStats>>,
    pub pool: ConnPool,
    /// Downstream connections bound to this generation.
    pub conns: usize,
    /// Detached requests and span buffers (see `worker::background`).
    pub background: Background,
}

impl Generation {
    /// The state of `snapshot` for worker `worker`, in generation slot `gen`.
    pub fn new(gen: u8, snapshot: Arc<Snapshot>, store: &Store, worker: usize) -> Generation {
        let listener_stats =
            snapshot.listeners.iter().map(|l| Arc::clone(&store.listeners.scope(&l.stat_name)[worker])).collect();
        let cluster_stats: Vec<Arc<ClusterStats>> = snapshot
            .cluster_manager
            .clusters
            .iter()
            .map(|c| Arc::clone(&store.clusters.scope(c.config.stat_name())[worker]))
            .collect();
        let mut clusters = snapshot.cluster_manager.thread_local();
        clusters.bind_stats(&cluster_stats);
        let pool = ConnPool::new(gen, snapshot.cluster_manager.clusters.len());
        Generation {
            snapshot,
            clusters,
            cluster_stats,
            listener_stats,
            pool,
            conns: 0,
            background: Background::new(gen),
        }
    }

    /// Nothing depends on this generation any more.
    pub fn retired(&self) -> bool {
        self.conns == 0 && self.pool.is_empty() && self.background.is_idle()
    }
}

/// Whether connections of `old` may keep running unchanged under `new`: the listener
/// is configured identically and no cluster changed. Otherwise HTTP connections are
/// told to close after their current response, so clients reconnect into the new
/// config.
pub fn listener_unchanged(old: &Snapshot, old_listener: usize, new: &Snapshot) -> bool {
    let Some(l) = old.listeners.get(old_listener) else { return false };
    old.clusters_fingerprint == new.clusters_fingerprint
        && new.listeners.iter().any(|n| n.name == l.name && n.fingerprint == l.fingerprint)
}
