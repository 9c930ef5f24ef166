//! `bootstrap.v3.LayeredRuntime`: the runtime's layers, decoded and checked.
//!
//! Layers in order, later ones overriding earlier ones (Envoy's `LoaderImpl`):
//! - `static_layer`: a struct flattened to dotted keys (`a: {b: 5}` is `a.b = 5`); a
//!   struct that is empty or holds `numerator` / `denominator` is one fractional-percent
//!   value; a list or null is an error ("Invalid runtime entry value for KEY");
//! - `disk_layer`: a directory tree under `symlink_root/subdirectory` (and
//!   `/<node.cluster>` with `append_service_cluster`), one key per file path, re-read
//!   by the proxy when `symlink_root` is swapped;
//! - `admin_layer`: values set with the admin server's `/runtime_modify`; at most one.
//!
//! `rtds_layer` (xDS) is rejected. Layer names must be unique. A `layered_runtime`
//! with no layers gets one admin layer, as Envoy's bootstrap does; no `layered_runtime`
//! at all is a runtime with no layers (every key reads its default, and
//! `/runtime_modify` answers "No admin layer specified"). Values are parsed once, here
//! or when a layer is read ([`Entry`]).

mod entry;

pub use entry::Entry;

use crate::core::FractionalPercent;
use crate::decode::{index, join, Decode, Decoder, Fields};
use crate::dump::Json;
use crate::error::ErrorKind;
use crate::node::{Node, Value};

/// `bootstrap.v3.LayeredRuntime`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayeredRuntime {
    pub layers: Vec<RuntimeLayer>,
}

/// `bootstrap.v3.RuntimeLayer`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeLayer {
    pub name: String,
    pub kind: LayerKind,
}

/// Which kind of layer, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// The flattened values, and the struct as written (for `/config_dump`).
    Static {
        values: Vec<(String, Entry)>,
        config: Json,
    },
    Disk(DiskLayer),
    Admin,
}

/// `RuntimeLayer.DiskLayer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayer {
    pub symlink_root: String,
    pub subdirectory: String,
    pub append_service_cluster: bool,
    /// `node.cluster` (Envoy's service cluster), for `append_service_cluster`.
    pub service_cluster: String,
}

impl DiskLayer {
    /// The directory the layer reads: `symlink_root/subdirectory[/service_cluster]`.
    pub fn path(&self) -> String {
        let mut p = format!("{}/{}", self.symlink_root, self.subdirectory);
        if self.append_service_cluster {
            p.push('/');
            p.push_str(&self.service_cluster);
        }
        p
    }
}

impl LayeredRuntime {
    /// Whether `/runtime_modify` has a layer to write.
    pub fn has_admin_layer(&self) -> bool {
        self.layers.iter().any(|l| l.kind == LayerKind::Admin)
    }
}

/// Decode a `layered_runtime`; `service_cluster` is the bootstrap's `node.cluster`.
pub fn decode_layered_runtime(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    service_cluster: &str,
) -> Option<LayeredRuntime> {
    let mut f = Fields::of(d, node, path)?;
    let layers_path = f.field_path("layers");
    let layers_node = f.take("layers");
    f.finish(d);
    let mut layers = Vec::new();
    let items: &[Node] = match layers_node.map(|n| &n.value) {
        None => &[],
        Some(Value::Seq(items)) => items,
        Some(_) => {
            let n = layers_node.expect("matched Some");
            d.invalid(n, &layers_path, format!("expected a list, found a {}", n.kind_name()));
            return None;
        }
    };
    for (i, layer) in items.iter().enumerate() {
        let lpath = index(&layers_path, i);
        if let Some(l) = decode_layer(d, layer, &lpath, service_cluster) {
            if layers.iter().any(|o: &RuntimeLayer| o.name == l.name) {
                d.error(
                    ErrorKind::Invalid,
                    &join(&lpath, "name"),
                    layer.line,
                    format!("Duplicate layer name: {}", l.name),
                );
                continue;
            }
            if l.kind == LayerKind::Admin && layers.iter().any(|o: &RuntimeLayer| o.kind == LayerKind::Admin) {
                d.error(
                    ErrorKind::Invalid,
                    &join(&lpath, "admin_layer"),
                    layer.line,
                    "Too many admin layers specified in LayeredRuntime, at most one may be specified",
                );
                continue;
            }
            layers.push(l);
        }
    }
    if items.is_empty() {
        // Envoy's bootstrap: a layered runtime without layers gets an admin layer.
        layers.push(RuntimeLayer { name: String::new(), kind: LayerKind::Admin });
    }
    Some(LayeredRuntime { layers })
}

fn decode_layer(d: &mut Decoder, node: &Node, path: &str, service_cluster: &str) -> Option<RuntimeLayer> {
    let mut l = Fields::of(d, node, path)?;
    let line = l.line();
    let name: String = l.or(d, "name", String::new());
    let mut kinds = Vec::new();
    if let Some(n) = l.take("static_layer") {
        let spath = l.field_path("static_layer");
        let mut values = Vec::new();
        match &n.value {
            Value::Map(fields) => {
                for (k, v) in fields {
                    walk(d, v, &k.name, &spath, &mut values);
                }
            }
            Value::Null => {}
            _ => d.invalid(n, &spath, format!("expected an object, found a {}", n.kind_name())),
        }
        kinds.push(LayerKind::Static { values, config: Json::from_node(n) });
    }
    if let Some(n) = l.take("disk_layer") {
        let dpath = l.field_path("disk_layer");
        if let Some(mut df) = Fields::of(d, n, &dpath) {
            let symlink_root: String = df.or(d, "symlink_root", String::new());
            let subdirectory: String = df.or(d, "subdirectory", String::new());
            let append_service_cluster = df.or(d, "append_service_cluster", false);
            df.finish(d);
            kinds.push(LayerKind::Disk(DiskLayer {
                symlink_root,
                subdirectory,
                append_service_cluster,
                service_cluster: service_cluster.to_string(),
            }));
        }
    }
    if let Some(n) = l.take("admin_layer") {
        if let Some(a) = Fields::of(d, n, &l.field_path("admin_layer")) {
            a.finish(d);
        }
        kinds.push(LayerKind::Admin);
    }
    l.unsupported_because(d, "rtds_layer", "a runtime from xDS (RTDS) is not supported; remove it");
    l.finish(d);
    if kinds.len() > 1 {
        d.error(ErrorKind::Invalid, path, line, "set only one of `static_layer`, `disk_layer`, `admin_layer`");
        return None;
    }
    match kinds.pop() {
        Some(kind) => Some(RuntimeLayer { name, kind }),
        None => {
            d.error(ErrorKind::Missing, path, line, "a layer needs one of `static_layer`, `disk_layer`, `admin_layer`");
            None
        }
    }
}

/// Envoy's `ProtoLayer::walkProtoValue`: flatten a static-layer value under `key`.
fn walk(d: &mut Decoder, node: &Node, key: &str, layer_path: &str, out: &mut Vec<(String, Entry)>) {
    let path = join(layer_path, key);
    match &node.value {
        Value::Null | Value::Seq(_) => {
            d.invalid(node, &path, format!("Invalid runtime entry value for {key}"));
        }
        Value::Scalar { text, quoted } => {
            let raw = if *quoted { text.clone() } else { number_text(text) };
            push(out, key, Entry::parse(&raw));
        }
        Value::Map(fields) => {
            let fractional =
                fields.is_empty() || fields.iter().any(|(k, _)| k.name == "numerator" || k.name == "denominator");
            if fractional {
                let mut sub = Decoder::new();
                let p = FractionalPercent::decode(&mut sub, node, &path).filter(|_| sub.errors.is_empty());
                if p.is_none() {
                    // Envoy logs the value as no valid fractional percent and keeps its text.
                    d.warn(&path, node.line, "not a valid FractionalPercent: only its text is kept");
                }
                let raw = Json::from_node(node).render().lines().map(str::trim).collect::<Vec<_>>().join(" ");
                push(out, key, Entry::fractional(p, raw));
            } else {
                for (k, v) in fields {
                    walk(d, v, &format!("{key}.{}", k.name), layer_path, out);
                }
            }
        }
    }
}

/// The text Envoy gives a YAML number when it round-trips it (`5.0` is `5`); any other
/// plain scalar as written.
fn number_text(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 && !text.contains(['x', 'o']) => {
            format!("{}", v as i64)
        }
        _ => text.to_string(),
    }
}

/// The first value of a key wins (a protobuf map's `emplace`).
fn push(out: &mut Vec<(String, Entry)>, key: &str, e: Entry) {
    if !out.iter().any(|(k, _)| k == key) {
        out.push((key.to_string(), e));
    }
}

/// `node.cluster` of a bootstrap document, if set (Envoy's service cluster).
pub fn service_cluster(root: &Node) -> String {
    let Value::Map(fields) = &root.value else { return String::new() };
    let Some((_, node)) = fields.iter().find(|(k, _)| k.name == "node") else { return String::new() };
    let Value::Map(nf) = &node.value else { return String::new() };
    match nf.iter().find(|(k, _)| k.name == "cluster").map(|(_, v)| &v.value) {
        Some(Value::Scalar { text, .. }) => text.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
