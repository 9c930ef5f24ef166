//! xDS over gRPC: the Aggregated Discovery Service client of
//! `dynamic_resources.ads_config` (state of the world, `GRPC`, or incremental,
//! `DELTA_GRPC`), for the sources that say `ads: {}`: `lds_config`, `cds_config`, the
//! `eds_config` of EDS clusters and the `rds.config_source` of HCMs.
//!
//! The stream runs on its own thread ([`stream`]); everything about config lives here,
//! on the main thread: each response is decoded by the same decoder as a resource file
//! ([`proto`] turns the protobuf into that tree), composed with the static resources
//! and the other types in force by [`sluice_config::xds::compose`] (the whole-config
//! checks of `--mode validate`), and applied through [`crate::reload::apply`], the
//! path of SIGHUP and of file-based xDS (workers adopt a new generation, unchanged
//! listeners and pools carry over). A good update is ACKed (`version_info` and
//! `response_nonce` of the response); a bad one is NACKed with the previous
//! `version_info` and an `error_detail` whose message holds the validator's
//! path-and-line errors, and the resources in force keep serving. Stats as Envoy's:
//! `listener_manager.lds.*`, `cluster_manager.cds.*`, `cluster.<name>.update_*` for
//! each EDS cluster (one subscription's counts, shared by the clusters that use it),
//! `control_plane.connected_state`.
//!
//! Subscriptions: LDS and CDS are wildcard; EDS names the `service_name` (or name) of
//! every EDS cluster in force whose `eds_config` is `ads: {}`, re-sent when CDS changes
//! that set; RDS names the `route_config_name` of every HCM (static and LDS listeners)
//! whose `rds.config_source` is `ads: {}`, re-sent when LDS changes that set, as
//! Envoy's ADS does. RDS stats (`http.<stat_prefix>.rds.<name>.*`) are the one RDS
//! subscription's, shared by the HCMs that use it. In state of the world an LDS or CDS
//! response is the whole set (a resource missing from it is removed); an EDS or RDS
//! response updates the resources it holds.
//! Every new stream (after a reconnect) starts with the versions in force, so a
//! control plane that has nothing newer sends nothing new.
//!
//! A CDS or EDS update does not re-check the clusters of inline route configurations
//! (Envoy checks `validate_clusters` when the listener is loaded), so a cluster may go
//! before the listener that routes to it.
//!
//! SDS over ADS: see [`sds`]; the server's initialization (LDS and CDS first
//! responses, their `initial_fetch_timeout`): see [`init`].
//!
//! Warming and `initial_fetch_timeout` (of EDS and RDS sources): see [`warming`]. Not
//! done here: per-type `api_config_source` subscriptions (refused at load).

pub mod dump;
pub mod init;
pub mod proto;
pub mod sds;
pub mod stream;
pub mod warming;

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use sluice_config::cluster::{Cluster, ClusterLoadAssignment};
use sluice_config::decode::Decode;
use sluice_config::listener::Listener;
use sluice_config::route::RouteConfiguration;
use sluice_config::tls::{SdsSecret, Secret, SECRET_TYPE};
use sluice_config::xds::ads::{AdsConfig, ApiType};
use sluice_config::xds::{self, RdsRoute};
use sluice_config::Bootstrap;

use crate::stats::{ControlPlaneStats, Store, SubscriptionStats, Subscriptions};
use stream::{Event, Outgoing};
use warming::{Fetches, InitFetch};

const LDS: &str = "listener_manager.lds";
const CDS: &str = "cluster_manager.cds";
/// `google.rpc.Code.INVALID_ARGUMENT`, Envoy's code for a rejected update.
const INVALID_ARGUMENT: i32 = 3;

/// One type's subscription on the stream.
struct Sub<T> {
    type_url: &'static str,
    stats: Arc<SubscriptionStats>,
    /// What is in force: the accepted `version_info` and, by resource name, each
    /// resource with its version (delta).
    version_info: String,
    items: BTreeMap<String, (String, T)>,
    /// The nonce of the last response seen on this stream.
    nonce: String,
    /// The names asked for (EDS); empty is wildcard.
    names: Vec<String>,
    /// Whether this stream has asked for the type yet.
    asked: bool,
    wildcard: bool,
    /// For `/config_dump`, by resource name: the version of the update that last
    /// changed it, and when.
    shown: BTreeMap<String, (String, SystemTime)>,
}

impl<T: Decode + Clone> Sub<T> {
    fn new(type_url: &'static str, stats: Arc<SubscriptionStats>, wildcard: bool) -> Sub<T> {
        Sub {
            type_url,
            stats,
            version_info: String::new(),
            items: BTreeMap::new(),
            nonce: String::new(),
            names: Vec::new(),
            asked: false,
            wildcard,
            shown: BTreeMap::new(),
        }
    }

    fn active(&self) -> Vec<T> {
        self.items.values().map(|(_, t)| t.clone()).collect()
    }
}

/// The name a resource is known by on the stream.
trait Named {
    fn resource_name(&self) -> &str;
}

impl Named for Listener {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for Cluster {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for ClusterLoadAssignment {
    fn resource_name(&self) -> &str {
        &self.cluster_name
    }
}

impl Named for RouteConfiguration {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

/// What an update hands to the reload machinery: the effective config and its dump.
pub type Apply<'a> = super::Apply<'a>;

/// The ADS client of one bootstrap.
pub struct AdsXds {
    /// The bootstrap as written.
    pub bootstrap: Bootstrap,
    config: AdsConfig,
    node: serde_json::Value,
    handle: stream::Handle,
    generation: u64,
    node_sent: bool,
    lds: Option<Sub<Listener>>,
    cds: Option<Sub<Cluster>>,
    eds: Sub<ClusterLoadAssignment>,
    rds: Sub<RouteConfiguration>,
    sds: Sub<Secret>,
    /// The initial fetches of EDS and RDS names (warming).
    eds_fetch: Fetches,
    rds_fetch: Fetches,
    /// The server's initialization: LDS's and CDS's first responses.
    lds_init: Option<InitFetch>,
    cds_init: Option<InitFetch>,
    control_plane: Arc<ControlPlaneStats>,
}

impl AdsXds {
    /// The client of `bootstrap`'s `ads_config` (None without one), its stream started
    /// at `now` (when the initial fetches of LDS and CDS start).
    pub fn start(bootstrap: &Bootstrap, stats: &Store, now: Instant) -> Result<Option<AdsXds>, String> {
        let Some(dr) = &bootstrap.dynamic_resources else { return Ok(None) };
        let Some(config) = dr.ads_config.clone() else { return Ok(None) };
        let cluster = bootstrap
            .clusters
            .iter()
            .find(|c| c.name == config.cluster_name)
            .ok_or_else(|| format!("ads_config: no static cluster `{}`", config.cluster_name))?;
        let mut addrs = Vec::new();
        for (host, _) in cluster.load_assignment.hosts() {
            let a = &host.address;
            if let Ok(found) = (a.address.as_str(), a.port_value).to_socket_addrs() {
                addrs.extend(found);
            }
        }
        if addrs.is_empty() {
            return Err(format!("ads_config: cluster `{}` has no endpoint address", cluster.name));
        }
        let delta = config.api_type == ApiType::DeltaGrpc;
        let handle = stream::Handle::spawn(addrs, cluster.name.clone(), delta)
            .map_err(|e| format!("cannot start the xDS thread: {e}"))?;
        let subs = &stats.subscriptions;
        let control_plane = stats.control_plane();
        let n = &bootstrap.node;
        let node = json!({
            "id": n.id,
            "cluster": n.cluster,
            "locality": {"zone": n.zone},
            "user_agent_name": "sluice",
            "user_agent_build_version": {"version": version_numbers()},
        });
        Ok(Some(AdsXds {
            bootstrap: bootstrap.clone(),
            node,
            handle,
            generation: 0,
            node_sent: false,
            lds: dr.lds_config.as_ref().filter(|s| s.ads).map(|_| Sub::new(xds::LISTENER_TYPE, scope(subs, LDS), true)),
            cds: dr.cds_config.as_ref().filter(|s| s.ads).map(|_| Sub::new(xds::CLUSTER_TYPE, scope(subs, CDS), true)),
            eds: Sub::new(xds::ENDPOINTS_TYPE, Arc::default(), false),
            rds: Sub::new(xds::ROUTE_TYPE, Arc::new(SubscriptionStats::rds()), false),
            sds: Sub::new(SECRET_TYPE, Arc::new(SubscriptionStats::sds()), false),
            eds_fetch: Fetches::default(),
            rds_fetch: Fetches::default(),
            lds_init: dr.lds_config.as_ref().filter(|s| s.ads).map(|s| InitFetch::start(s.initial_fetch_timeout, now)),
            cds_init: dr.cds_config.as_ref().filter(|s| s.ads).map(|s| InitFetch::start(s.initial_fetch_timeout, now)),
            config,
            control_plane,
        }))
    }

    /// Static and dynamic resources as one checked bootstrap.
    pub fn effective(&self) -> Result<Bootstrap, Vec<String>> {
        self.compose(
            &self.lds.as_ref().map(Sub::active).unwrap_or_default(),
            &self.cds.as_ref().map(Sub::active).unwrap_or_default(),
            &self.eds.active(),
            &self.rds.active(),
            &self.sds.active(),
            false,
        )
    }

    /// The static resources with `listeners`, `clusters`, `endpoints` and `routes`,
    /// checked as a whole; then the warming ones left out: listeners whose routes have
    /// not arrived, CDS clusters whose endpoints have not (see [`warming`]).
    fn compose(
        &self,
        listeners_as_written: &[Listener],
        clusters: &[Cluster],
        endpoints: &[ClusterLoadAssignment],
        routes: &[RouteConfiguration],
        secrets: &[Secret],
        check_routes: bool,
    ) -> Result<Bootstrap, Vec<String>> {
        let rds = self.rds_routes(listeners_as_written, routes);
        let sds = self.sds_secrets(listeners_as_written, clusters, secrets);
        // As Envoy, an inline route configuration's clusters (`validate_clusters`) are
        // checked when its listener is loaded; a CDS or EDS update does not re-check
        // them (a route to a removed cluster then answers as for an unknown cluster).
        let (relaxed_b, relaxed);
        let (static_b, listeners) = if check_routes {
            (&self.bootstrap, listeners_as_written)
        } else {
            let mut b = self.bootstrap.clone();
            b.listeners.iter_mut().for_each(skip_route_checks);
            let mut l = listeners_as_written.to_vec();
            l.iter_mut().for_each(skip_route_checks);
            (relaxed_b, relaxed) = (b, l);
            (&relaxed_b, &relaxed[..])
        };
        let dynamic = xds::Dynamic {
            listeners,
            clusters,
            lds_path: "LDS",
            cds_path: "CDS",
            endpoints: &[],
            ads_endpoints: endpoints,
            secrets: &sds,
            routes: &rds,
        };
        let mut b =
            xds::compose(static_b, &dynamic).map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        if !check_routes {
            // Back as written, so that unchanged listeners stay unchanged.
            let written: Vec<&Listener> = self.bootstrap.listeners.iter().chain(listeners_as_written).collect();
            for l in &mut b.listeners {
                if let Some(w) = written.iter().find(|w| w.name == l.name) {
                    for (h, w) in hcms_mut(l).zip(xds::hcms(w)) {
                        if h.rds.is_none() {
                            h.route_config.validate_clusters = w.route_config.validate_clusters;
                        }
                    }
                }
            }
        }
        let warming = self.warming_clusters(clusters, endpoints, &sds);
        b.clusters.retain(|c| !warming.contains(&c.name.as_str()));
        if !self.initialized() {
            b.listeners.clear();
        }
        Ok(b)
    }

    /// The RDS route configurations the static listeners and `listeners` ask for over
    /// ADS, from `routes` (None: warming; empty once the initial fetch timed out).
    fn rds_routes(&self, listeners: &[Listener], routes: &[RouteConfiguration]) -> Vec<RdsRoute> {
        let all: Vec<Listener> = self.bootstrap.listeners.iter().chain(listeners).cloned().collect();
        rds_wanted(&all)
            .into_iter()
            .map(|(name, _)| {
                let rc = routes.iter().find(|r| r.name == name).cloned();
                let timed_out = || self.rds_fetch.timed_out(&name).then(|| RouteConfiguration::empty(&name));
                RdsRoute { path: String::new(), route_config: rc.or_else(timed_out), route_config_name: name }
            })
            .collect()
    }

    /// The names of the CDS `clusters` still warming: their endpoints come over ADS,
    /// are not in `endpoints`, and their initial fetch has not timed out; or a secret
    /// they name is not in `secrets`.
    fn warming_clusters<'c>(
        &self,
        clusters: &'c [Cluster],
        endpoints: &[ClusterLoadAssignment],
        secrets: &[SdsSecret],
    ) -> Vec<&'c str> {
        clusters
            .iter()
            .filter(|c| {
                let eds = eds_name(c)
                    .is_some_and(|n| !endpoints.iter().any(|e| e.cluster_name == n) && !self.eds_fetch.timed_out(&n));
                eds || !xds::cluster_sds_ready(c, secrets)
            })
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Take what the stream brought: open streams get their first requests, responses
    /// are applied through `apply` and answered. Returns whether a new config was applied.
    pub fn poll(&mut self, now: Instant, wall: SystemTime, apply: &mut Apply) -> bool {
        let was_initialized = self.initialized();
        let mut applied = false;
        while let Ok(ev) = self.handle.events.try_recv() {
            match ev {
                Event::Connected(g) => {
                    tracing::info!(cluster = %self.config.cluster_name, "xds: ADS stream open");
                    self.control_plane.connected_state.set(1);
                    self.generation = g;
                    self.node_sent = false;
                    self.start_stream(now);
                }
                Event::Disconnected(why) => {
                    if self.control_plane.connected_state.get() == 1 {
                        tracing::warn!(cluster = %self.config.cluster_name, "xds: ADS stream closed: {why}; reconnecting");
                    } else {
                        tracing::debug!("xds: ADS stream not open: {why}");
                    }
                    self.control_plane.connected_state.set(0);
                }
                Event::Response(g, r) if g == self.generation => applied |= self.on_response(r, now, wall, apply),
                Event::Delta(g, r) if g == self.generation => applied |= self.on_delta(r, now, wall, apply),
                Event::Response(..) | Event::Delta(..) => {}
            }
        }
        applied |= self.expire_fetches(now, apply);
        applied | self.end_init(was_initialized, now, apply)
    }

    /// End the warming of the names whose initial fetch timed out at `now`: apply the
    /// config without them. Returns whether a new config was applied.
    fn expire_fetches(&mut self, now: Instant, apply: &mut Apply) -> bool {
        let items = &self.eds.items;
        let eds = self.eds_fetch.expire(now, |n| items.contains_key(n));
        let items = &self.rds.items;
        let rds = self.rds_fetch.expire(now, |n| items.contains_key(n));
        if eds.is_empty() && rds.is_empty() {
            return false;
        }
        for n in &eds {
            tracing::warn!(name = %n, "xds: EDS initial fetch timed out; the cluster serves with no hosts");
            self.eds.stats.init_fetch_timeout.inc();
        }
        for n in &rds {
            tracing::warn!(name = %n, "xds: RDS initial fetch timed out; serving empty routes");
            self.rds.stats.init_fetch_timeout.inc();
        }
        match self.effective().and_then(|b| apply(&b, String::new())) {
            Ok(()) => true,
            Err(errors) => refused("the config after an initial fetch timeout", &errors),
        }
    }

    /// A new stream: ask for every type with the versions in force (CDS first, as
    /// Envoy initializes clusters before listeners).
    fn start_stream(&mut self, now: Instant) {
        for s in [
            self.cds.as_mut().map(|s| (&mut s.asked, &mut s.nonce)),
            self.lds.as_mut().map(|s| (&mut s.asked, &mut s.nonce)),
        ]
        .into_iter()
        .flatten()
        .chain([(&mut self.eds.asked, &mut self.eds.nonce)])
        {
            *s.0 = false;
            s.1.clear();
        }
        self.rds.asked = false;
        self.rds.nonce.clear();
        self.sds.asked = false;
        self.sds.nonce.clear();
        let (names, wanted) = self.eds_names();
        self.eds.names = names;
        let items = &self.eds.items;
        self.eds_fetch.track(&wanted, |n| items.contains_key(n), now);
        if let Some(s) = &self.cds {
            let m = self.first_request(s.type_url, &s.version_info, &[], &s.items);
            self.send(m);
        }
        if let Some(s) = self.cds.as_mut() {
            s.asked = true;
        }
        if !self.eds.names.is_empty() {
            let m = self.first_request(self.eds.type_url, &self.eds.version_info, &self.eds.names, &self.eds.items);
            self.send(m);
            self.eds.asked = true;
        }
        if let Some(s) = &self.lds {
            let m = self.first_request(s.type_url, &s.version_info, &[], &s.items);
            self.send(m);
        }
        if let Some(s) = self.lds.as_mut() {
            s.asked = true;
        }
        let (names, wanted) = self.rds_names();
        self.rds.names = names;
        let items = &self.rds.items;
        self.rds_fetch.track(&wanted, |n| items.contains_key(n), now);
        if !self.rds.names.is_empty() {
            let m = self.first_request(self.rds.type_url, &self.rds.version_info, &self.rds.names, &self.rds.items);
            self.send(m);
            self.rds.asked = true;
        }
        self.sds.names = self.sds_names();
        if !self.sds.names.is_empty() {
            let m = self.first_request(self.sds.type_url, &self.sds.version_info, &self.sds.names, &self.sds.items);
            self.send(m);
            self.sds.asked = true;
        }
    }

    fn delta(&self) -> bool {
        self.config.api_type == ApiType::DeltaGrpc
    }

    fn first_request<T>(
        &self,
        type_url: &str,
        version_info: &str,
        names: &[String],
        items: &BTreeMap<String, (String, T)>,
    ) -> serde_json::Value {
        if self.delta() {
            let versions: serde_json::Map<String, serde_json::Value> =
                items.iter().map(|(n, (v, _))| (n.clone(), json!(v))).collect();
            json!({"type_url": type_url, "resource_names_subscribe": names, "initial_resource_versions": versions})
        } else {
            json!({"type_url": type_url, "version_info": version_info, "resource_names": names})
        }
    }

    /// Encode and send a request on the current stream (with the node where due).
    fn send(&mut self, mut m: serde_json::Value) {
        if !self.node_sent || !self.config.set_node_on_first_message_only {
            m["node"] = self.node.clone();
            self.node_sent = true;
        }
        let name = if self.delta() {
            "envoy.service.discovery.v3.DeltaDiscoveryRequest"
        } else {
            "envoy.service.discovery.v3.DiscoveryRequest"
        };
        match proto::encode(name, &m) {
            Ok(message) => {
                let _ = self.handle.requests.send(Outgoing { generation: self.generation, message });
            }
            Err(e) => tracing::error!("xds: cannot encode a request: {e}"),
        }
    }

    /// The EDS names the clusters in force need, and each with its fetch timeout.
    fn eds_names(&self) -> (Vec<String>, Vec<(String, Option<Duration>)>) {
        let dynamic = self.cds.as_ref().map(Sub::active).unwrap_or_default();
        let wanted = eds_wanted(self.bootstrap.clusters.iter().chain(dynamic.iter()));
        (wanted.iter().map(|(n, _)| n.clone()).collect(), wanted)
    }

    /// The RDS names the listeners in force need, and each with its fetch timeout.
    fn rds_names(&self) -> (Vec<String>, Vec<(String, Option<Duration>)>) {
        let dynamic = self.lds.as_ref().map(Sub::active).unwrap_or_default();
        let all: Vec<Listener> = self.bootstrap.listeners.iter().chain(dynamic.iter()).cloned().collect();
        let wanted = rds_wanted(&all);
        (wanted.iter().map(|(n, _)| n.clone()).collect(), wanted)
    }

    /// After CDS changed: ask for the EDS names it needs now.
    fn resubscribe_eds(&mut self, now: Instant) {
        let (names, wanted) = self.eds_names();
        let items = &self.eds.items;
        self.eds_fetch.track(&wanted, |n| items.contains_key(n), now);
        self.resubscribe::<ClusterLoadAssignment>(names);
    }

    /// After LDS changed: ask for the RDS names it needs now.
    fn resubscribe_rds(&mut self, now: Instant) {
        let (names, wanted) = self.rds_names();
        let items = &self.rds.items;
        self.rds_fetch.track(&wanted, |n| items.contains_key(n), now);
        self.resubscribe::<RouteConfiguration>(names);
    }

    /// Ask for `names` of `T` (a non-wildcard type) when they changed; resources no
    /// longer asked for are dropped.
    fn resubscribe<T: Decode + Clone + Named + Slot>(&mut self, names: Vec<String>) {
        let delta = self.delta();
        let s = T::sub(self);
        if names == s.names && (s.asked || names.is_empty()) {
            return;
        }
        let old = std::mem::replace(&mut s.names, names.clone());
        s.items.retain(|n, _| names.contains(n));
        let m = if delta {
            let subscribe: Vec<&String> = names.iter().filter(|n| !old.contains(n)).collect();
            let unsubscribe: Vec<&String> = old.iter().filter(|n| !names.contains(n)).collect();
            json!({"type_url": s.type_url, "resource_names_subscribe": subscribe,
                   "resource_names_unsubscribe": unsubscribe})
        } else {
            json!({"type_url": s.type_url, "version_info": s.version_info,
                   "resource_names": names, "response_nonce": s.nonce})
        };
        s.asked = true;
        self.send(m);
    }

    fn on_response(&mut self, r: proto::Response, now: Instant, wall: SystemTime, apply: &mut Apply) -> bool {
        self.first_response(&r.type_url);
        match r.type_url.as_str() {
            xds::LISTENER_TYPE if self.lds.is_some() => self.sotw::<Listener>(r, now, wall, apply),
            xds::CLUSTER_TYPE if self.cds.is_some() => self.sotw::<Cluster>(r, now, wall, apply),
            xds::ENDPOINTS_TYPE => self.sotw::<ClusterLoadAssignment>(r, now, wall, apply),
            xds::ROUTE_TYPE => self.sotw::<RouteConfiguration>(r, now, wall, apply),
            SECRET_TYPE => self.sotw::<Secret>(r, now, wall, apply),
            other => {
                tracing::warn!("xds: ignoring a response of type `{other}`, which sluice did not ask for");
                false
            }
        }
    }

    fn sotw<T: Decode + Clone + Named + Slot>(
        &mut self,
        r: proto::Response,
        now: Instant,
        wall: SystemTime,
        apply: &mut Apply,
    ) -> bool {
        let s = T::sub(self);
        s.stats.update_attempt.inc();
        s.nonce = r.nonce.clone();
        let (type_url, wildcard) = (s.type_url, s.wildcard);
        let mut items = if wildcard { BTreeMap::new() } else { s.items.clone() };
        let result = match unknown_fields(kind(type_url), &r.unknown_fields).and_then(|()| {
            xds::decode_resources::<T>(&r.document, type_url).map_err(|e| e.iter().map(ToString::to_string).collect())
        }) {
            Err(e) => {
                T::sub(self).stats.update_rejected.inc();
                Err(e)
            }
            Ok((res, warnings)) => {
                for w in warnings {
                    tracing::warn!("{} {}: {w}", kind(type_url), r.version_info);
                }
                match resolve_all(res.items) {
                    Ok(resolved) => {
                        for item in resolved {
                            items.insert(item.resource_name().to_string(), (res.version_info.clone(), item));
                        }
                        self.try_apply::<T>(items, &r.version_info, wall, apply)
                    }
                    Err(e) => {
                        T::sub(self).stats.update_rejected.inc();
                        Err(e)
                    }
                }
            }
        };
        self.answer::<T>(&r.version_info, &r.nonce, result, now)
    }

    fn on_delta(&mut self, r: proto::DeltaResponse, now: Instant, wall: SystemTime, apply: &mut Apply) -> bool {
        self.first_response(&r.type_url);
        match r.type_url.as_str() {
            xds::LISTENER_TYPE if self.lds.is_some() => self.delta_update::<Listener>(r, now, wall, apply),
            xds::CLUSTER_TYPE if self.cds.is_some() => self.delta_update::<Cluster>(r, now, wall, apply),
            xds::ENDPOINTS_TYPE => self.delta_update::<ClusterLoadAssignment>(r, now, wall, apply),
            xds::ROUTE_TYPE => self.delta_update::<RouteConfiguration>(r, now, wall, apply),
            SECRET_TYPE => self.delta_update::<Secret>(r, now, wall, apply),
            other => {
                tracing::warn!("xds: ignoring a delta response of type `{other}`, which sluice did not ask for");
                false
            }
        }
    }

    fn delta_update<T: Decode + Clone + Named + Slot>(
        &mut self,
        r: proto::DeltaResponse,
        now: Instant,
        wall: SystemTime,
        apply: &mut Apply,
    ) -> bool {
        let s = T::sub(self);
        s.stats.update_attempt.inc();
        s.nonce = r.nonce.clone();
        let type_url = s.type_url;
        let mut items = s.items.clone();
        let mut errors = unknown_fields(kind(type_url), &r.unknown_fields).err().unwrap_or_default();
        for (i, (name, version, doc)) in r.resources.iter().enumerate() {
            match xds::decode_resources::<T>(doc, type_url) {
                Ok((res, _)) => match resolve_all(res.items) {
                    Ok(resolved) => {
                        for item in resolved {
                            items.insert(item.resource_name().to_string(), (version.clone(), item));
                        }
                    }
                    Err(e) => errors.extend(e.iter().map(|e| format!("resources[{i}] (`{name}`): {e}"))),
                },
                Err(e) => errors.extend(e.iter().map(|e| format!("resources[{i}] (`{name}`): {e}"))),
            }
        }
        for name in &r.removed {
            items.remove(name);
        }
        let result = if errors.is_empty() {
            self.try_apply::<T>(items, &r.system_version_info, wall, apply)
        } else {
            T::sub(self).stats.update_rejected.inc();
            Err(errors)
        };
        self.answer::<T>(&r.system_version_info, &r.nonce, result, now)
    }

    /// Compose and apply the config with `items` as `T`'s resources; on success they
    /// are in force.
    fn try_apply<T: Decode + Clone + Slot>(
        &mut self,
        items: BTreeMap<String, (String, T)>,
        version_info: &str,
        now: SystemTime,
        apply: &mut Apply,
    ) -> Result<(), Vec<String>> {
        let mut c = Candidate {
            listeners: self.lds.as_ref().map(Sub::active).unwrap_or_default(),
            clusters: self.cds.as_ref().map(Sub::active).unwrap_or_default(),
            endpoints: self.eds.active(),
            routes: self.rds.active(),
            secrets: self.sds.active(),
        };
        *T::slot(&mut c) = items.values().map(|(_, t)| t.clone()).collect();
        let check_routes = matches!(T::sub(self).type_url, xds::LISTENER_TYPE | xds::ROUTE_TYPE);
        let result = self
            .compose(&c.listeners, &c.clusters, &c.endpoints, &c.routes, &c.secrets, check_routes)
            .and_then(|b| apply(&b, String::new()));
        let s = T::sub(self);
        match result {
            Ok(()) => {
                for (n, (v, t)) in &items {
                    if s.items.get(n).is_none_or(|(_, old)| old != t) {
                        s.shown.insert(n.clone(), (v.clone(), now));
                    }
                }
                s.shown.retain(|n, _| items.contains_key(n));
                s.items = items;
                s.version_info = version_info.to_string();
                s.stats.update_success.inc();
                s.stats.version.set(super::version_gauge(version_info));
                tracing::info!(version = %version_info, "xds: {} update accepted", kind(s.type_url));
                Ok(())
            }
            Err(e) => {
                s.stats.update_rejected.inc();
                Err(e)
            }
        }
    }

    /// ACK or NACK the response; after a CDS update, re-ask EDS; after LDS, RDS.
    fn answer<T: Decode + Clone + Named + Slot>(
        &mut self,
        version_info: &str,
        nonce: &str,
        result: Result<(), Vec<String>>,
        now: Instant,
    ) -> bool {
        let delta = self.delta();
        let s = T::sub(self);
        let type_url = s.type_url;
        let mut m = if delta {
            json!({"type_url": type_url, "response_nonce": nonce})
        } else {
            json!({"type_url": type_url, "version_info": s.version_info, "resource_names": s.names,
                   "response_nonce": nonce})
        };
        let applied = match result {
            Ok(()) => true,
            Err(errors) => {
                tracing::error!(
                    "xds: {} update {version_info} rejected; the resources in force keep serving",
                    kind(type_url)
                );
                for e in &errors {
                    tracing::error!("  {e}");
                }
                m["error_detail"] = json!({"code": INVALID_ARGUMENT, "message": errors.join("\n")});
                false
            }
        };
        self.send(m);
        if applied && type_url == xds::CLUSTER_TYPE {
            self.resubscribe_eds(now);
        }
        if applied && type_url == xds::LISTENER_TYPE {
            self.resubscribe_rds(now);
        }
        if applied && matches!(type_url, xds::CLUSTER_TYPE | xds::LISTENER_TYPE) {
            self.resubscribe_sds();
        }
        applied
    }

    /// Register the subscriptions' stats in `stats`: LDS and CDS under their prefixes,
    /// EDS under `cluster.<name>.` of every cluster in force that takes its endpoints
    /// from the stream (as Envoy counts an EDS subscription per cluster).
    pub fn register(&self, stats: &Store) {
        if let Some(s) = &self.lds {
            stats.subscriptions.insert(LDS, Arc::clone(&s.stats));
        }
        if let Some(s) = &self.cds {
            stats.subscriptions.insert(CDS, Arc::clone(&s.stats));
        }
        let dynamic = self.cds.as_ref().map(Sub::active).unwrap_or_default();
        for c in self.bootstrap.clusters.iter().chain(dynamic.iter()) {
            if c.eds_cluster_config.as_ref().is_some_and(|e| e.eds_config.ads) {
                stats.subscriptions.insert(&format!("cluster.{}", c.stat_name()), Arc::clone(&self.eds.stats));
            }
        }
        let dynamic = self.lds.as_ref().map(Sub::active).unwrap_or_default();
        let all: Vec<Listener> = self.bootstrap.listeners.iter().chain(dynamic.iter()).cloned().collect();
        for (prefix, r) in crate::xds::rds::uses(&all) {
            if r.config_source.ads {
                let name = crate::xds::rds::stat_prefix(&prefix, &r);
                stats.subscriptions.insert(&name, Arc::clone(&self.rds.stats));
            }
        }
        for name in self.sds_names() {
            stats.subscriptions.insert(&format!("sds.{name}"), Arc::clone(&self.sds.stats));
        }
    }
}

/// Where a resource type's list goes in a composed config and which subscription
/// holds it.
trait Slot: Sized + PartialEq {
    /// Where a candidate config holds this type's resources.
    fn slot(c: &mut Candidate) -> &mut Vec<Self>;
    fn sub(x: &mut AdsXds) -> &mut Sub<Self>;
    /// The resource as it is put in force (a secret with its files read in).
    fn resolved(self) -> Result<Self, String> {
        Ok(self)
    }
}

/// Every resource of a response resolved (see [`Slot::resolved`]), or the errors.
fn resolve_all<T: Slot + Named>(items: Vec<T>) -> Result<Vec<T>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let name = item.resource_name().to_string();
        match item.resolved() {
            Ok(t) => out.push(t),
            Err(e) => errors.push(format!("`{name}`: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The resources of every type a config is composed from, one type replaced.
struct Candidate {
    listeners: Vec<Listener>,
    clusters: Vec<Cluster>,
    endpoints: Vec<ClusterLoadAssignment>,
    routes: Vec<RouteConfiguration>,
    secrets: Vec<Secret>,
}

impl Slot for Listener {
    fn slot(c: &mut Candidate) -> &mut Vec<Self> {
        &mut c.listeners
    }
    fn sub(x: &mut AdsXds) -> &mut Sub<Self> {
        x.lds.get_or_insert_with(|| Sub::new(xds::LISTENER_TYPE, Arc::default(), true))
    }
}

impl Slot for Cluster {
    fn slot(c: &mut Candidate) -> &mut Vec<Self> {
        &mut c.clusters
    }
    fn sub(x: &mut AdsXds) -> &mut Sub<Self> {
        x.cds.get_or_insert_with(|| Sub::new(xds::CLUSTER_TYPE, Arc::default(), true))
    }
}

impl Slot for ClusterLoadAssignment {
    fn slot(c: &mut Candidate) -> &mut Vec<Self> {
        &mut c.endpoints
    }
    fn sub(x: &mut AdsXds) -> &mut Sub<Self> {
        &mut x.eds
    }
}

impl Slot for RouteConfiguration {
    fn slot(c: &mut Candidate) -> &mut Vec<Self> {
        &mut c.routes
    }
    fn sub(x: &mut AdsXds) -> &mut Sub<Self> {
        &mut x.rds
    }
}

fn scope(subs: &Subscriptions, prefix: &'static str) -> Arc<SubscriptionStats> {
    subs.scope(prefix)
}

fn kind(type_url: &str) -> &'static str {
    match type_url {
        xds::LISTENER_TYPE => "LDS",
        xds::CLUSTER_TYPE => "CDS",
        xds::ROUTE_TYPE => "RDS",
        SECRET_TYPE => "SDS",
        _ => "EDS",
    }
}

/// The HCMs of `l`.
fn hcms_mut(l: &mut Listener) -> impl Iterator<Item = &mut sluice_config::hcm::HttpConnectionManager> {
    l.filter_chains.iter_mut().chain(l.default_filter_chain.iter_mut()).flat_map(|c| {
        c.filters.iter_mut().filter_map(|f| match &mut f.kind {
            sluice_config::listener::NetworkFilterKind::HttpConnectionManager(h) => Some(&mut **h),
            _ => None,
        })
    })
}

/// `l` with its inline route configurations' cluster check off (`validate_clusters:
/// false`), for an update that does not load them.
fn skip_route_checks(l: &mut Listener) {
    for h in hcms_mut(l).filter(|h| h.rds.is_none()) {
        h.route_config.validate_clusters = Some(false);
    }
}

/// The EDS name of `c` when its endpoints come over ADS: its `service_name`, or its name.
fn eds_name(c: &Cluster) -> Option<String> {
    let e = c.eds_cluster_config.as_ref().filter(|e| e.eds_config.ads)?;
    Some(if e.service_name.is_empty() { c.name.clone() } else { e.service_name.clone() })
}

/// The EDS names of `clusters` that come over ADS with their `initial_fetch_timeout`,
/// sorted, without duplicates.
fn eds_wanted<'a>(clusters: impl Iterator<Item = &'a Cluster>) -> Vec<(String, Option<Duration>)> {
    let mut names: Vec<(String, Option<Duration>)> = clusters
        .filter_map(|c| {
            let timeout = c.eds_cluster_config.as_ref()?.eds_config.initial_fetch_timeout;
            Some((eds_name(c)?, timeout))
        })
        .collect();
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    names
}

/// The RDS names of `listeners`' HCMs that come over ADS with their
/// `initial_fetch_timeout`, sorted, without duplicates.
fn rds_wanted(listeners: &[Listener]) -> Vec<(String, Option<Duration>)> {
    let mut names: Vec<(String, Option<Duration>)> = crate::xds::rds::uses(listeners)
        .into_iter()
        .filter(|(_, r)| r.config_source.ads)
        .map(|(_, r)| (r.route_config_name, r.config_source.initial_fetch_timeout))
        .collect();
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    names
}

fn refused(what: &str, errors: &[String]) -> bool {
    tracing::error!("xds: {what} was refused");
    for e in errors {
        tracing::error!("  {e}");
    }
    false
}

/// `user_agent_build_version.version` from the crate's version.
fn version_numbers() -> serde_json::Value {
    let mut parts = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    json!({"major_number": parts.next().unwrap_or(0), "minor_number": parts.next().unwrap_or(0),
           "patch": parts.next().unwrap_or(0)})
}

/// The unknown fields of a response (see [`proto::unknown_fields`]): refused with
/// `--reject-unknown-dynamic-fields` (the response is NACKed with them), else warned
/// and counted in `server.dynamic_unknown_fields`, as Envoy's dynamic validation.
fn unknown_fields(what: &str, unknown: &[String]) -> Result<(), Vec<String>> {
    if unknown.is_empty() {
        return Ok(());
    }
    if super::reject_unknown_dynamic_fields() {
        return Err(unknown.iter().map(|u| format!("{u} (--reject-unknown-dynamic-fields)")).collect());
    }
    for u in unknown {
        tracing::warn!("{what}: {u}: ignored (unknown field in a dynamic resource)");
    }
    super::DYNAMIC_UNKNOWN_FIELDS.add(unknown.len() as u64);
    Ok(())
}
