//! File-based xDS (Envoy's "filesystem-based dynamic configuration"): the listeners of
//! `dynamic_resources.lds_config` and the clusters of `cds_config`, read from files and
//! re-read when a file is moved into place (see [`watch`] for how that is noticed).
//!
//! The effective config is the bootstrap's static resources plus the dynamic ones
//! ([`sluice_config::xds::compose`], which runs the same whole-config checks as
//! `--mode validate`). An update goes through the same path as a SIGHUP reload
//! ([`crate::reload::apply`]): compiled completely, then published to the workers as a
//! new generation (unchanged listeners keep their sockets and connections, removed ones
//! drain), with new cluster threads. A file that cannot be read or parsed counts
//! `update_failure`; resources that fail to decode, to check against the rest of the
//! config or to compile count `update_rejected`, each error logged with its file, path
//! and line; in both cases the resources in force stay. A good update counts
//! `update_success` and sets the `version` gauge (xxHash64 of `version_info`, as
//! Envoy). Stats live under `listener_manager.lds.` and `cluster_manager.cds.`.
//!
//! EDS: a cluster of `type: EDS` takes the `ClusterLoadAssignment` named by its
//! `service_name` (or its own name) from the file of its `eds_config`; each such file is
//! one subscription, read when a cluster first names it and re-read when replaced, with
//! its stats under `cluster.<name>.` for every cluster that uses it. An endpoint change
//! is a new config like any other: the workers adopt it as a new generation, and the
//! pools of the clusters whose config did not change carry over.
//!
//! RDS: an HCM's `rds` takes its route configuration from a file (see [`rds`]), also
//! for static listeners (then without `dynamic_resources`). A route update is a new
//! config whose listeners are unchanged (a listener's identity shows its `rds`, not
//! the routes): open connections stay and take the new routes for their next request.

pub mod dump;
pub mod grpc;
pub mod rds;
pub mod sds;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sluice_config::cluster::{Cluster, ClusterLoadAssignment};
use sluice_config::decode::Decode;
use sluice_config::listener::Listener;
use sluice_config::xds::{self, ConfigSource, Resources};
use sluice_config::Bootstrap;

use crate::stats::{SharedCounter, Store, SubscriptionStats, Subscriptions};
use rds::{RdsRead, RdsSubscription};
use watch::FileWatch;

/// `server.dynamic_unknown_fields`: fields of dynamic resources (files and ADS) that
/// are not part of their message, warned and skipped. One per process, as the server's.
pub static DYNAMIC_UNKNOWN_FIELDS: SharedCounter = SharedCounter::new();

/// `--reject-unknown-dynamic-fields`, set once at start.
static REJECT_UNKNOWN_DYNAMIC_FIELDS: AtomicBool = AtomicBool::new(false);

/// Set `--reject-unknown-dynamic-fields` (at start, before any resource is read).
pub fn set_reject_unknown_dynamic_fields(reject: bool) {
    REJECT_UNKNOWN_DYNAMIC_FIELDS.store(reject, Ordering::Relaxed);
}

/// Whether dynamic resources with unknown fields are refused.
pub fn reject_unknown_dynamic_fields() -> bool {
    REJECT_UNKNOWN_DYNAMIC_FIELDS.load(Ordering::Relaxed)
}

/// Log and count the unknown fields of an accepted dynamic resource (`source`: its
/// file or the ADS type).
pub fn warn_unknown_fields(source: &str, unknown: &[sluice_config::ConfigError]) {
    for e in unknown {
        tracing::warn!(
            "{source}: {e}: ignored (unknown field in a dynamic resource; --reject-unknown-dynamic-fields refuses it)"
        );
    }
    DYNAMIC_UNKNOWN_FIELDS.add(unknown.len() as u64);
}

const LDS: &str = "listener_manager.lds";
const CDS: &str = "cluster_manager.cds";

/// One file subscription and the resources it has in force.
#[derive(Clone)]
pub struct Subscription<T> {
    pub source: ConfigSource,
    type_url: &'static str,
    watch: FileWatch,
    pub stats: Arc<SubscriptionStats>,
    pub active: Resources<T>,
    /// When `active` was accepted (None: nothing accepted yet).
    pub last_updated: Option<SystemTime>,
}

impl<T: Decode + Clone> Subscription<T> {
    fn new(source: &ConfigSource, type_url: &'static str, stats: Arc<SubscriptionStats>) -> Subscription<T> {
        let watch = FileWatch::new(PathBuf::from(&source.path), source.watched_directory.as_ref().map(PathBuf::from));
        Subscription {
            source: source.clone(),
            type_url,
            watch,
            stats,
            active: Resources { version_info: String::new(), items: Vec::new() },
            last_updated: None,
        }
    }

    /// Read the file: its resources, or the errors (counted) to log.
    fn read(&self) -> Result<Resources<T>, Vec<String>> {
        self.stats.update_attempt.inc();
        let file = std::path::Path::new(&self.source.path);
        match xds::read_resources::<T>(file, self.type_url, reject_unknown_dynamic_fields()) {
            Ok(r) => {
                for w in r.warnings.iter().filter(|w| !r.unknown_fields.iter().any(|u| u.path == w.path)) {
                    tracing::warn!("{}: {w}", self.source.path);
                }
                warn_unknown_fields(&self.source.path, &r.unknown_fields);
                Ok(r.resources)
            }
            Err(errors) => {
                let syntax = errors.iter().all(|e| e.kind == sluice_config::ErrorKind::Syntax);
                if syntax {
                    self.stats.update_failure.inc();
                } else {
                    self.stats.update_rejected.inc();
                }
                Err(errors.iter().map(|e| format!("{}: {e}", self.source.path)).collect())
            }
        }
    }

    fn accept(&mut self, r: Resources<T>, now: SystemTime) {
        self.stats.update_success.inc();
        self.stats.version.set(version_gauge(&r.version_info));
        self.active = r;
        self.last_updated = Some(now);
    }
}

/// Envoy's `version` gauge: xxHash64 of `version_info` (63 bits here).
fn version_gauge(version_info: &str) -> i64 {
    (xxhash_rust::xxh64::xxh64(version_info.as_bytes(), 0) & (i64::MAX as u64)) as i64
}

/// The file subscriptions of one bootstrap.
pub struct FileXds {
    /// The bootstrap as written (static resources, `dynamic_resources`).
    pub bootstrap: Bootstrap,
    pub lds: Option<Subscription<Listener>>,
    pub cds: Option<Subscription<Cluster>>,
    /// One subscription per EDS file that a cluster in force names.
    pub eds: Vec<Subscription<ClusterLoadAssignment>>,
    /// One subscription per RDS (file, route configuration name) an HCM in force names.
    pub rds: Vec<RdsSubscription>,
    /// One subscription per SDS (file, secret name) a TLS context in force names.
    pub sds: Vec<sds::SdsSubscription>,
}

/// What an update hands to the reload machinery: the effective config and its dump.
pub type Apply<'a> = dyn FnMut(&Bootstrap, String) -> Result<(), Vec<String>> + 'a;

impl FileXds {
    /// The subscriptions of `bootstrap`'s `dynamic_resources` and of its static
    /// listeners' `rds` (None without either), each with its file read once (`started`:
    /// the monotonic time of that, for RDS's initial fetch timeout). A file that is bad
    /// at start is logged and counted and the config starts without its resources, as
    /// Envoy's does.
    pub fn start(bootstrap: &Bootstrap, stats: &Subscriptions, now: SystemTime, started: Instant) -> Option<FileXds> {
        let dr = bootstrap.dynamic_resources.clone();
        if dr.as_ref().is_some_and(|d| d.ads_config.is_some()) {
            // Served by the ADS client (`grpc::AdsXds`); the validator refuses RDS files
            // beside it.
            return None;
        }
        if dr.is_none()
            && rds::uses(&bootstrap.listeners).is_empty()
            && sds::uses(&bootstrap.listeners, &bootstrap.clusters).is_empty()
        {
            return None;
        }
        let dr = dr.unwrap_or_default();
        let mut x = FileXds {
            bootstrap: bootstrap.clone(),
            lds: dr.lds_config.as_ref().map(|s| Subscription::new(s, xds::LISTENER_TYPE, stats.scope(LDS))),
            cds: dr.cds_config.as_ref().map(|s| Subscription::new(s, xds::CLUSTER_TYPE, stats.scope(CDS))),
            eds: Vec::new(),
            rds: Vec::new(),
            sds: Vec::new(),
        };
        // Clusters first, as Envoy initializes CDS before LDS: a listener may use them.
        if let Some(cds) = x.cds.as_mut() {
            match cds.read() {
                Ok(r) => cds.accept(r, now),
                Err(errors) => log_refused("CDS", &errors),
            }
        }
        if let Some(lds) = x.lds.as_mut() {
            match lds.read() {
                Ok(r) => lds.accept(r, now),
                Err(errors) => log_refused("LDS", &errors),
            }
        }
        let clusters = x.cds.as_ref().map(|s| s.active.items.clone()).unwrap_or_default();
        x.eds = x.eds_for(&clusters, now);
        let listeners = x.lds.as_ref().map(|s| s.active.items.clone()).unwrap_or_default();
        x.rds = x.rds_for(&listeners, started, now);
        x.sds = x.sds_for(&listeners, &clusters, now);
        // Resources that do not fit together are refused as one update would be.
        if let Err(errors) = x.effective() {
            log_refused("dynamic resources", &errors);
            for s in [x.cds.as_mut().map(|s| &s.stats), x.lds.as_mut().map(|s| &s.stats)].into_iter().flatten() {
                s.update_rejected.inc();
            }
            if let Some(l) = x.lds.as_mut() {
                l.active.items.clear();
            }
            if let Some(c) = x.cds.as_mut() {
                c.active.items.clear();
            }
        }
        Some(x)
    }

    /// Register the subscriptions' stats in `stats` (when they were made before it).
    pub fn register(&self, stats: &Store) {
        let clusters = self.bootstrap.clusters.iter().chain(self.cds.iter().flat_map(|s| s.active.items.iter()));
        for c in clusters {
            let Some(e) = &c.eds_cluster_config else { continue };
            if let Some(s) = self.eds.iter().find(|s| s.source.path == e.eds_config.path) {
                stats.subscriptions.insert(&format!("cluster.{}", c.stat_name()), Arc::clone(&s.stats));
            }
        }
        let listeners = self.bootstrap.listeners.iter().chain(self.lds.iter().flat_map(|s| s.active.items.iter()));
        for (prefix, r) in rds::uses(&listeners.cloned().collect::<Vec<_>>()) {
            if let Some(s) = self.rds.iter().find(|s| s.serves(&r)) {
                stats.subscriptions.insert(&rds::stat_prefix(&prefix, &r), Arc::clone(&s.sub.stats));
            }
        }
        for s in &self.sds {
            stats.subscriptions.insert(&format!("sds.{}", s.name), Arc::clone(&s.sub.stats));
        }
        if let Some(s) = &self.lds {
            stats.subscriptions.insert(LDS, Arc::clone(&s.stats));
        }
        if let Some(s) = &self.cds {
            stats.subscriptions.insert(CDS, Arc::clone(&s.stats));
        }
    }

    /// Static and dynamic resources as one checked bootstrap.
    pub fn effective(&self) -> Result<Bootstrap, Vec<String>> {
        self.compose(
            self.lds.as_ref().map(|s| &s.active.items[..]),
            self.cds.as_ref().map(|s| &s.active.items[..]),
            &self.eds,
            &self.rds,
        )
    }

    /// The RDS subscriptions the static listeners and `listeners` need: those in force
    /// kept, new ones started (their files read) now.
    fn rds_for(&self, listeners: &[Listener], now: Instant, wall: SystemTime) -> Vec<RdsSubscription> {
        let all: Vec<Listener> = self.bootstrap.listeners.iter().chain(listeners).cloned().collect();
        let mut out: Vec<RdsSubscription> = Vec::new();
        for (_, r) in rds::uses(&all) {
            if out.iter().any(|s| s.serves(&r)) {
                continue;
            }
            match self.rds.iter().find(|s| s.serves(&r)) {
                Some(s) => out.push(s.clone()),
                None => out.push(RdsSubscription::start(&r, now, wall)),
            }
        }
        out
    }

    /// The SDS subscriptions the static resources and `listeners` and `clusters` need:
    /// those in force kept, new ones started (their files read) now.
    fn sds_for(&self, listeners: &[Listener], clusters: &[Cluster], wall: SystemTime) -> Vec<sds::SdsSubscription> {
        let b = &self.bootstrap;
        let mut out: Vec<sds::SdsSubscription> = Vec::new();
        for c in sds::uses(b.listeners.iter().chain(listeners), b.clusters.iter().chain(clusters)) {
            if out.iter().any(|s| s.serves(&c)) {
                continue;
            }
            match self.sds.iter().find(|s| s.serves(&c)) {
                Some(s) => out.push(s.clone()),
                None => out.push(sds::SdsSubscription::start(&c, wall)),
            }
        }
        out
    }

    /// The EDS subscriptions the static clusters and `clusters` need: those in force
    /// kept, new files read now.
    fn eds_for(&self, clusters: &[Cluster], now: SystemTime) -> Vec<Subscription<ClusterLoadAssignment>> {
        let mut out: Vec<Subscription<ClusterLoadAssignment>> = Vec::new();
        for c in self.bootstrap.clusters.iter().chain(clusters) {
            let Some(e) = c.eds_cluster_config.as_ref().filter(|e| !e.eds_config.ads) else { continue };
            if out.iter().any(|s| s.source.path == e.eds_config.path) {
                continue;
            }
            if let Some(s) = self.eds.iter().find(|s| s.source.path == e.eds_config.path) {
                out.push(s.clone());
                continue;
            }
            let mut s = Subscription::new(&e.eds_config, xds::ENDPOINTS_TYPE, Arc::default());
            match s.read() {
                Ok(r) => s.accept(r, now),
                Err(errors) => log_refused("EDS", &errors),
            }
            out.push(s);
        }
        out
    }

    fn compose(
        &self,
        listeners: Option<&[Listener]>,
        clusters: Option<&[Cluster]>,
        eds: &[Subscription<ClusterLoadAssignment>],
        rds: &[RdsSubscription],
    ) -> Result<Bootstrap, Vec<String>> {
        let endpoints: Vec<(String, Vec<ClusterLoadAssignment>)> =
            eds.iter().map(|s| (s.source.path.clone(), s.active.items.clone())).collect();
        let routes: Vec<xds::RdsRoute> = rds.iter().map(RdsSubscription::route).collect();
        let secrets: Vec<_> = self.sds.iter().map(sds::SdsSubscription::entry).collect();
        let dynamic = xds::Dynamic {
            routes: &routes,
            endpoints: &endpoints,
            listeners: listeners.unwrap_or_default(),
            clusters: clusters.unwrap_or_default(),
            lds_path: self.lds.as_ref().map(|s| s.source.path.as_str()).unwrap_or_default(),
            cds_path: self.cds.as_ref().map(|s| s.source.path.as_str()).unwrap_or_default(),
            ads_endpoints: &[],
            secrets: &secrets,
        };
        xds::compose(&self.bootstrap, &dynamic).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    /// The `/config_dump` body for `effective`.
    pub fn config_dump(&self) -> String {
        dump::config_dump(self)
    }

    /// Check the files; read each one that changed and, if it is good, apply the new
    /// effective config through `apply`. Returns whether a new config was applied.
    pub fn poll(&mut self, now: Instant, wall: SystemTime, apply: &mut Apply) -> bool {
        let mut applied = false;
        if self.cds.as_mut().is_some_and(|s| s.watch.changed(now)) {
            applied |= self.update_cds(wall, apply);
        }
        if self.lds.as_mut().is_some_and(|s| s.watch.changed(now)) {
            applied |= self.update_lds(wall, apply);
        }
        for i in 0..self.eds.len() {
            if self.eds[i].watch.changed(now) {
                applied |= self.update_eds(i, wall, apply);
            }
        }
        for i in 0..self.rds.len() {
            if self.rds[i].sub.watch.changed(now) {
                applied |= self.update_rds(i, wall, apply);
            }
        }
        for i in 0..self.sds.len() {
            if self.sds[i].sub.watch.changed(now) {
                applied |= self.update_sds(i, wall, apply);
            } else if self.sds[i].files_changed(now) {
                applied |= self.rotate_sds(i, apply);
            }
        }
        let mut timed_out = self.rds.clone();
        let mut any = false;
        for s in &mut timed_out {
            any |= s.fetch_timed_out(now);
        }
        if any {
            applied |= self.apply_rds(timed_out, wall, apply);
        }
        applied
    }

    fn update_rds(&mut self, i: usize, wall: SystemTime, apply: &mut Apply) -> bool {
        let mut rds = self.rds.clone();
        match self.rds[i].read() {
            RdsRead::Routes(r) => {
                let old = self.rds[i].route_config.clone();
                rds[i].route_config = r.items.first().cloned();
                rds[i].sub.active = r.clone();
                rds[i].sub.last_updated = Some(wall);
                if !self.apply_rds(rds, wall, apply) {
                    self.rds[i].sub.stats.update_rejected.inc();
                    return false;
                }
                let s = &mut self.rds[i];
                tracing::info!(file = %s.sub.source.path, version = %r.version_info, "rds: update accepted");
                s.route_config = old;
                s.accept(r, wall);
                true
            }
            RdsRead::Empty | RdsRead::Refused if rds[i].empty_update() => self.apply_rds(rds, wall, apply),
            RdsRead::Empty | RdsRead::Refused | RdsRead::Missing => false,
        }
    }

    /// Apply the config with `rds` in place of the RDS subscriptions in force; keep them
    /// on success.
    fn apply_rds(&mut self, rds: Vec<RdsSubscription>, wall: SystemTime, apply: &mut Apply) -> bool {
        let listeners = self.lds.as_ref().map(|s| &s.active.items[..]);
        let clusters = self.cds.as_ref().map(|s| &s.active.items[..]);
        let result = self.compose(listeners, clusters, &self.eds, &rds).and_then(|b| {
            let dump = dump::config_dump_with(self, None, None, &rds, wall);
            apply(&b, dump)
        });
        match result {
            Ok(()) => {
                self.rds = rds;
                true
            }
            Err(errors) => refused("RDS", &errors),
        }
    }

    /// The secrets file of `self.sds[i]` was replaced: read it and apply the config
    /// with its secret.
    fn update_sds(&mut self, i: usize, wall: SystemTime, apply: &mut Apply) -> bool {
        let (written, r) = match self.sds[i].read() {
            sds::SdsRead::Secret(written, r) => (written, r),
            sds::SdsRead::Missing | sds::SdsRead::Refused => return false,
        };
        let mut updated = self.sds[i].clone();
        updated.stage(written, r, wall);
        let old = std::mem::replace(&mut self.sds[i], updated);
        match self.apply_sds(wall, apply) {
            Ok(()) => {
                let s = &mut self.sds[i];
                tracing::info!(file = %s.sub.source.path, name = %s.name, version = %s.sub.active.version_info, "sds: update accepted");
                let r = s.sub.active.clone();
                s.sub.accept(r, wall);
                true
            }
            Err(errors) => {
                old.sub.stats.update_rejected.inc();
                self.sds[i] = old;
                refused("SDS", &errors)
            }
        }
    }

    /// A file that the secret of `self.sds[i]` names changed: read it again and apply.
    fn rotate_sds(&mut self, i: usize, apply: &mut Apply) -> bool {
        let resolved = match self.sds[i].rotated() {
            Ok(s) => s,
            Err(e) => return refused("SDS key rotation", &[format!("secret `{}`: {e}", self.sds[i].name)]),
        };
        if self.sds[i].secret.as_ref() == Some(&resolved) {
            return false;
        }
        let mut updated = self.sds[i].clone();
        updated.rotate(resolved);
        let old = std::mem::replace(&mut self.sds[i], updated);
        match self.apply_sds(SystemTime::now(), apply) {
            Ok(()) => {
                tracing::info!(name = %self.sds[i].name, "sds: rotated files in force");
                true
            }
            Err(errors) => {
                old.sub.stats.key_rotation_failed.inc();
                self.sds[i] = old;
                refused("SDS key rotation", &errors)
            }
        }
    }

    /// Apply the config with the SDS subscriptions now in `self.sds`.
    fn apply_sds(&mut self, wall: SystemTime, apply: &mut Apply) -> Result<(), Vec<String>> {
        let listeners = self.lds.as_ref().map(|s| &s.active.items[..]);
        let clusters = self.cds.as_ref().map(|s| &s.active.items[..]);
        self.compose(listeners, clusters, &self.eds, &self.rds)
            .and_then(|b| apply(&b, self.dump_with(None, None, wall)))
    }

    fn update_eds(&mut self, i: usize, wall: SystemTime, apply: &mut Apply) -> bool {
        let r = match self.eds[i].read() {
            Ok(r) => r,
            Err(errors) => return refused("EDS", &errors),
        };
        let mut eds = self.eds.clone();
        eds[i].active = r;
        let listeners = self.lds.as_ref().map(|s| &s.active.items[..]);
        let clusters = self.cds.as_ref().map(|s| &s.active.items[..]);
        let result = self
            .compose(listeners, clusters, &eds, &self.rds)
            .and_then(|b| apply(&b, self.dump_with(None, None, wall)));
        let s = &mut self.eds[i];
        match result {
            Ok(()) => {
                tracing::info!(file = %s.source.path, version = %eds[i].active.version_info, "eds: update accepted");
                let r =
                    std::mem::replace(&mut eds[i].active, Resources { version_info: String::new(), items: Vec::new() });
                s.accept(r, wall);
                true
            }
            Err(errors) => {
                s.stats.update_rejected.inc();
                refused("EDS", &errors)
            }
        }
    }

    fn update_cds(&mut self, wall: SystemTime, apply: &mut Apply) -> bool {
        let Some(cds) = self.cds.as_ref() else { return false };
        let r = match cds.read() {
            Ok(r) => r,
            Err(errors) => return refused("CDS", &errors),
        };
        let eds = self.eds_for(&r.items, wall);
        let lds_items = self.lds.as_ref().map(|s| s.active.items.clone()).unwrap_or_default();
        let sds = self.sds_for(&lds_items, &r.items, wall);
        let old_sds = std::mem::replace(&mut self.sds, sds);
        let listeners = self.lds.as_ref().map(|s| &s.active.items[..]);
        let result = self.compose(listeners, Some(&r.items), &eds, &self.rds).and_then(|b| {
            let dump = self.dump_with(None, Some(&r), wall);
            apply(&b, dump)
        });
        if result.is_err() {
            self.sds = old_sds;
        }
        let Some(cds) = self.cds.as_mut() else { return false };
        match result {
            Ok(()) => {
                tracing::info!(file = %cds.source.path, version = %r.version_info, "cds: update accepted");
                cds.accept(r, wall);
                self.eds = eds;
                true
            }
            Err(errors) => {
                cds.stats.update_rejected.inc();
                refused("CDS", &errors)
            }
        }
    }

    fn update_lds(&mut self, wall: SystemTime, apply: &mut Apply) -> bool {
        let Some(lds) = self.lds.as_ref() else { return false };
        let r = match lds.read() {
            Ok(r) => r,
            Err(errors) => return refused("LDS", &errors),
        };
        let rds = self.rds_for(&r.items, Instant::now(), wall);
        let cds_items = self.cds.as_ref().map(|s| s.active.items.clone()).unwrap_or_default();
        let sds = self.sds_for(&r.items, &cds_items, wall);
        let old_sds = std::mem::replace(&mut self.sds, sds);
        let clusters = self.cds.as_ref().map(|s| &s.active.items[..]);
        let result = self.compose(Some(&r.items), clusters, &self.eds, &rds).and_then(|b| {
            let dump = dump::config_dump_with(self, Some((&r, wall)), None, &rds, wall);
            apply(&b, dump)
        });
        if result.is_err() {
            self.sds = old_sds;
        }
        let Some(lds) = self.lds.as_mut() else { return false };
        match result {
            Ok(()) => {
                tracing::info!(file = %lds.source.path, version = %r.version_info, "lds: update accepted");
                lds.accept(r, wall);
                self.rds = rds;
                true
            }
            Err(errors) => {
                lds.stats.update_rejected.inc();
                refused("LDS", &errors)
            }
        }
    }

    /// The dump as it will be once `lds`/`cds` (when given) are accepted at `now`.
    fn dump_with(
        &self,
        lds: Option<&Resources<Listener>>,
        cds: Option<&Resources<Cluster>>,
        now: SystemTime,
    ) -> String {
        dump::config_dump_with(self, lds.map(|r| (r, now)), cds.map(|r| (r, now)), &self.rds, now)
    }
}

fn log_refused(what: &str, errors: &[String]) {
    tracing::error!("{what} update rejected; the resources in force keep serving");
    for e in errors {
        tracing::error!("  {e}");
    }
}

fn refused(what: &str, errors: &[String]) -> bool {
    log_refused(what, errors);
    false
}
