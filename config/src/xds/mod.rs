//! Filesystem-based dynamic configuration (Envoy's `dynamic_resources` with path
//! config sources): the bootstrap's `dynamic_resources.lds_config` / `cds_config`, and
//! the files they name, each holding a `DiscoveryResponse` in YAML or JSON.
//!
//! A config source is read from `path_config_source` (`path`, `watched_directory`) or
//! from the older `path` field; every other way of reaching a control plane
//! (`api_config_source`, `ads`, `self`) is refused with its path, as are
//! `dynamic_resources.ads_config` and the xDS-TP locators. `resource_api_version` may
//! only be V3 (the only version Envoy still reads).
//!
//! A resource file is `{version_info, resources: [...]}`; each resource carries its
//! `@type` (`type.googleapis.com/envoy.config.listener.v3.Listener`, `...cluster.v3.Cluster`)
//! and is then decoded by the same decoder as a static one, so an error names the
//! resource's path in the file (`resources[1].address`) and its line. [`compose`] puts
//! static and dynamic resources into one bootstrap and runs the whole-config checks
//! (unique names, cluster references) on it; an error about a dynamic resource names
//! the file and the resource's index there.

pub mod ads;

use std::path::Path;

use crate::bootstrap::Bootstrap;
use crate::cluster::{Cluster, ClusterLoadAssignment};
use crate::decode::{join, Decode, Decoder, Fields};
use crate::error::{ConfigError, ErrorKind, Warning};
use crate::listener::Listener;
use crate::node::{Node, Value};

mod routes;
mod secrets;
pub use routes::{hcms, rds_ready, RdsRoute};
pub use secrets::{cluster_sds, cluster_sds_ready, listener_sds, sds_ready};

/// `config.core.v3.ConfigSource` with a path: the file to read and, when given, the
/// directory whose moves signal an update (`watched_directory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub path: String,
    pub watched_directory: Option<String>,
    /// `ads: {}`: the resources come over the ADS stream of `ads_config` (see
    /// [`ads`]); `path` is then empty.
    pub ads: bool,
    /// `initial_fetch_timeout` as written (None: absent, Envoy's 15 s; zero: no
    /// timeout). RDS sources, and EDS, LDS and CDS over ADS use it (see
    /// [`crate::hcm::Rds`]); the others refuse it.
    pub initial_fetch_timeout: Option<std::time::Duration>,
}

impl ConfigSource {
    /// Refuse `initial_fetch_timeout` on a source that does not implement it.
    pub(crate) fn refuse_initial_fetch_timeout(&self, d: &mut Decoder, path: &str, line: u32) {
        if self.initial_fetch_timeout.is_some() {
            d.error(
                ErrorKind::Unsupported,
                &join(path, "initial_fetch_timeout"),
                line,
                "`initial_fetch_timeout` is implemented for RDS and for EDS, LDS and CDS over ADS only; LDS, CDS and EDS files are read at start",
            );
        }
    }
}

impl Decode for ConfigSource {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let legacy: Option<String> = f.opt(d, "path");
        let mut source = None;
        if let Some(n) = f.take("path_config_source") {
            let pcs_path = f.field_path("path_config_source");
            let mut p = Fields::of(d, n, &pcs_path)?;
            let file: Option<String> = p.req(d, "path");
            let mut watched_directory = None;
            if let Some(w) = p.take("watched_directory") {
                let mut wf = Fields::of(d, w, &join(&pcs_path, "watched_directory"))?;
                watched_directory = wf.req::<String>(d, "path");
                wf.finish(d);
            }
            p.finish(d);
            source = file.map(|path| ConfigSource { path, watched_directory, ads: false, initial_fetch_timeout: None });
        }
        let version: Option<String> = f.opt(d, "resource_api_version");
        if let Some(v) = version.filter(|v| !v.eq_ignore_ascii_case("V3") && v != "2") {
            d.error(
                ErrorKind::Unsupported,
                &f.field_path("resource_api_version"),
                line,
                format!("resource_api_version `{v}` is not supported: only V3 is"),
            );
        }
        let initial_fetch_timeout: Option<std::time::Duration> = f.opt(d, "initial_fetch_timeout");
        let ads = f.take("ads");
        if let Some(n) = ads {
            if !matches!(&n.value, Value::Map(m) if m.is_empty()) && !matches!(n.value, Value::Null) {
                d.invalid(n, &f.field_path("ads"), "`AggregatedConfigSource` has no fields: write `ads: {}`");
            }
        }
        for name in ["api_config_source", "self", "authorities"] {
            f.unsupported_because(
                d,
                name,
                &format!("`{name}` is not supported: use a file source (`path_config_source`) or `ads: {{}}`"),
            );
        }
        f.finish(d);
        if ads.is_some() {
            if legacy.is_some() || source.is_some() {
                d.error(ErrorKind::Invalid, path, line, "give one of `path_config_source` and `ads`, not both");
                return None;
            }
            return Some(ConfigSource {
                path: String::new(),
                watched_directory: None,
                ads: true,
                initial_fetch_timeout,
            });
        }
        match (legacy, source) {
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, path, line, "give either `path` or `path_config_source`, not both");
                None
            }
            (Some(path), None) => {
                Some(ConfigSource { path, watched_directory: None, ads: false, initial_fetch_timeout })
            }
            (None, Some(s)) => Some(ConfigSource { initial_fetch_timeout, ..s }),
            (None, None) => {
                d.error(
                    ErrorKind::Missing,
                    &join(path, "path_config_source"),
                    line,
                    "a config source needs a file (`path_config_source`) or `ads: {}`",
                );
                None
            }
        }
    }
}

/// `bootstrap.v3.Bootstrap.DynamicResources` with file sources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DynamicResources {
    pub lds_config: Option<ConfigSource>,
    pub cds_config: Option<ConfigSource>,
    /// `ads_config`: the aggregated gRPC stream that `ads: {}` sources read.
    pub ads_config: Option<ads::AdsConfig>,
}

impl Decode for DynamicResources {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let lds_config: Option<ConfigSource> = f.opt(d, "lds_config");
        let cds_config: Option<ConfigSource> = f.opt(d, "cds_config");
        // Over ADS `initial_fetch_timeout` bounds the server's initialization (see the
        // ADS client); a file is read at start, so it cannot take one.
        for (name, s) in [("lds_config", &lds_config), ("cds_config", &cds_config)] {
            if let Some(s) = s.as_ref().filter(|s| !s.ads) {
                s.refuse_initial_fetch_timeout(d, &f.field_path(name), f.line());
            }
        }
        let ads_config = f.opt(d, "ads_config");
        f.unsupported(d, &["lds_resources_locator", "cds_resources_locator"]);
        f.finish(d);
        Some(DynamicResources { lds_config, cds_config, ads_config })
    }
}

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINTS_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The resources of one file and its `version_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources<T> {
    pub version_info: String,
    pub items: Vec<T>,
}

/// Decode a `DiscoveryResponse` of `type_url` resources from YAML or JSON text. Fields
/// that are not part of a message are errors (see [`decode_dynamic`] for Envoy's
/// handling of dynamic resources).
pub fn decode_resources<T: Decode>(
    text: &str,
    type_url: &str,
) -> Result<(Resources<T>, Vec<Warning>), Vec<ConfigError>> {
    decode_dynamic(text, type_url, true).map(|d| (d.resources, d.warnings))
}

/// What [`decode_dynamic`] read.
#[derive(Debug)]
pub struct DecodedResources<T> {
    pub resources: Resources<T>,
    pub warnings: Vec<Warning>,
    /// The fields that are not part of their message, warned and skipped (Envoy counts
    /// them in `server.dynamic_unknown_fields`).
    pub unknown_fields: Vec<ConfigError>,
}

/// Decode a `DiscoveryResponse` of `type_url` resources as Envoy treats dynamic
/// resources: a field that is not part of its message is an error with
/// `reject_unknown_fields` (`--reject-unknown-dynamic-fields`), else a warning, the
/// field skipped and reported in `unknown_fields` (or, when the resources are refused
/// for another error, among the errors).
pub fn decode_dynamic<T: Decode>(
    text: &str,
    type_url: &str,
    reject_unknown_fields: bool,
) -> Result<DecodedResources<T>, Vec<ConfigError>> {
    let root = crate::node::parse(text).map_err(|e| {
        vec![ConfigError { kind: ErrorKind::Syntax, path: String::new(), line: e.line, message: e.message }]
    })?;
    let mut d = Decoder::new();
    d.unknown_fields_lenient = !reject_unknown_fields;
    let decoded = decode_response(&mut d, &root, type_url);
    match decoded {
        Some(resources) if d.errors.is_empty() => {
            Ok(DecodedResources { resources, warnings: d.warnings, unknown_fields: d.unknown_fields })
        }
        _ => {
            // Refused anyway: the unknown fields (often the typo behind the error) are
            // reported with the errors.
            let mut errors = d.unknown_fields;
            errors.append(&mut d.errors);
            errors.sort_by_key(|e| e.line);
            Err(errors)
        }
    }
}

/// Read and decode a resource file (as [`decode_dynamic`]).
pub fn read_resources<T: Decode>(
    file: &Path,
    type_url: &str,
    reject_unknown_fields: bool,
) -> Result<DecodedResources<T>, Vec<ConfigError>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![ConfigError {
            kind: ErrorKind::Syntax,
            path: String::new(),
            line: 0,
            message: format!("cannot read {}: {e}", file.display()),
        }]
    })?;
    decode_dynamic(&text, type_url, reject_unknown_fields)
}

fn decode_response<T: Decode>(d: &mut Decoder, root: &Node, type_url: &str) -> Option<Resources<T>> {
    let mut f = Fields::of(d, root, "")?;
    let version_info: String = f.or(d, "version_info", String::new());
    if let Some(n) = f.take("type_url") {
        if let Some(t) = d.decode::<String>(n, "type_url").filter(|t| t != type_url) {
            d.invalid(n, "type_url", format!("this file holds `{type_url}` resources, not `{t}`"));
        }
    }
    let mut items = Vec::new();
    if let Some(list) = f.take("resources") {
        match &list.value {
            Value::Seq(nodes) => {
                for (i, n) in nodes.iter().enumerate() {
                    if let Some(item) = decode_any(d, n, &format!("resources[{i}]"), type_url) {
                        items.push(item);
                    }
                }
            }
            _ => d.invalid(list, "resources", format!("expected a list, found a {}", list.kind_name())),
        }
    }
    f.unsupported(d, &["canary", "nonce", "control_plane", "resource_errors"]);
    f.finish(d);
    Some(Resources { version_info, items })
}

/// One `google.protobuf.Any`: check its `@type`, decode the rest as `T`.
fn decode_any<T: Decode>(d: &mut Decoder, node: &Node, path: &str, type_url: &str) -> Option<T> {
    let Value::Map(fields) = &node.value else {
        d.invalid(node, path, format!("expected an object, found a {}", node.kind_name()));
        return None;
    };
    let Some((key, t)) = fields.iter().find(|(k, _)| k.name == "@type") else {
        d.error(
            ErrorKind::Missing,
            &join(path, "@type"),
            node.line,
            format!("required field is missing (`{type_url}`)"),
        );
        return None;
    };
    let given = d.decode::<String>(t, &join(path, "@type"))?;
    if given != type_url {
        d.error(ErrorKind::Invalid, &join(path, "@type"), key.line, format!("expected `{type_url}`, found `{given}`"));
        return None;
    }
    let rest = Node {
        value: Value::Map(fields.iter().filter(|(k, _)| k.name != "@type").cloned().collect()),
        line: node.line,
    };
    T::decode(d, &rest, path)
}

/// The dynamic resources now in force, by source.
#[derive(Debug, Clone, Default)]
pub struct Dynamic<'a> {
    pub listeners: &'a [Listener],
    pub clusters: &'a [Cluster],
    /// The files they came from (for error messages).
    pub lds_path: &'a str,
    pub cds_path: &'a str,
    /// The `ClusterLoadAssignment`s of each EDS file in force, by path.
    pub endpoints: &'a [(String, Vec<ClusterLoadAssignment>)],
    /// The `ClusterLoadAssignment`s received over ADS (for `eds_config: {ads: {}}`).
    pub ads_endpoints: &'a [ClusterLoadAssignment],
    /// The route configurations of the RDS subscriptions.
    pub routes: &'a [RdsRoute],
    /// The secrets of the SDS subscriptions.
    pub secrets: &'a [crate::tls::SdsSecret],
}

/// The bootstrap `static_b` with `dynamic`'s listeners and clusters added after the
/// static ones and its route configurations in their HCMs, checked as a whole. Errors
/// about a dynamic resource name its file and its index there. Listeners still waiting
/// for their routes or secrets (see [`rds_ready`], [`sds_ready`]) are checked, then left
/// out: they are warming.
pub fn compose(static_b: &Bootstrap, dynamic: &Dynamic) -> Result<Bootstrap, Vec<ConfigError>> {
    let mut b = static_b.clone();
    let (nl, nc) = (b.listeners.len(), b.clusters.len());
    b.listeners.extend(dynamic.listeners.iter().cloned());
    b.clusters.extend(dynamic.clusters.iter().cloned());
    let mut d = Decoder::new();
    for (i, c) in b.clusters.iter_mut().enumerate() {
        let path = format!("static_resources.clusters[{i}]");
        assign_endpoints(c, dynamic, &path, &mut d);
        secrets::assign_cluster(c, dynamic.secrets, &path, &mut d);
    }
    for (i, l) in b.listeners.iter_mut().enumerate() {
        routes::assign_routes(l, dynamic.routes);
        secrets::assign_listener(l, dynamic.secrets, &format!("static_resources.listeners[{i}]"), &mut d);
    }
    crate::validate::validate(&mut b, &mut d);
    if d.errors.is_empty() {
        b.listeners.retain(|l| rds_ready(l, dynamic.routes) && sds_ready(l, dynamic.secrets));
        b.clusters.retain(|c| cluster_sds_ready(c, dynamic.secrets));
        return Ok(b);
    }
    for e in &mut d.errors {
        e.path = rename(&e.path, "static_resources.listeners[", nl, dynamic.lds_path)
            .or_else(|| rename(&e.path, "static_resources.clusters[", nc, dynamic.cds_path))
            .unwrap_or_else(|| e.path.clone());
        e.message = rename_in_message(&e.message, nl, nc, dynamic);
    }
    Err(d.errors)
}

/// Give an EDS cluster the endpoints of its `service_name` (or its own name) from its
/// file; none there yet is a cluster without hosts, as an EDS cluster that has not
/// received its assignment. EDS endpoints must be IP addresses.
fn assign_endpoints(c: &mut Cluster, dynamic: &Dynamic, path: &str, d: &mut Decoder) {
    let Some(eds) = &c.eds_cluster_config else { return };
    let name = if eds.service_name.is_empty() { &c.name } else { &eds.service_name };
    let found = if eds.eds_config.ads {
        dynamic.ads_endpoints.iter().find(|cla| cla.cluster_name == *name)
    } else {
        dynamic
            .endpoints
            .iter()
            .filter(|(p, _)| *p == eds.eds_config.path)
            .flat_map(|(_, cla)| cla.iter())
            .find(|cla| cla.cluster_name == *name)
    };
    c.load_assignment =
        found.cloned().unwrap_or_else(|| ClusterLoadAssignment { cluster_name: name.clone(), endpoints: Vec::new() });
    for (host, _) in c.load_assignment.hosts() {
        if host.address.ip().is_none() {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.eds_cluster_config"),
                host.address.line,
                format!(
                    "{}: endpoint `{}` of `{name}` is not an IP address",
                    eds.eds_config.path, host.address.address
                ),
            );
        }
    }
}

/// `static_resources.listeners[k]...` with `k >= statics` → `file: resources[k - statics]...`.
fn rename(path: &str, prefix: &str, statics: usize, file: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    let (num, tail) = rest.split_once(']')?;
    let k: usize = num.parse().ok()?;
    (k >= statics).then(|| format!("{file}: resources[{}]{tail}", k - statics))
}

/// References inside messages ("also static_resources.listeners[3]").
fn rename_in_message(message: &str, nl: usize, nc: usize, dynamic: &Dynamic) -> String {
    let mut out = String::new();
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_end_matches(')');
        let renamed = rename(trimmed, "static_resources.listeners[", nl, dynamic.lds_path)
            .or_else(|| rename(trimmed, "static_resources.clusters[", nc, dynamic.cds_path));
        match renamed {
            Some(r) => {
                out.push_str(&r);
                out.push_str(&word[trimmed.len()..]);
            }
            None => out.push_str(word),
        }
    }
    out
}

#[cfg(test)]
mod ads_tests;
#[cfg(test)]
mod sds_tests;
#[cfg(test)]
mod tests;
