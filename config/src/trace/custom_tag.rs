//! `type.tracing.v3.CustomTag`: the tags of `HttpConnectionManager.Tracing.custom_tags`
//! and a route's `tracing.custom_tags`, each a literal, an environment variable (read
//! once at load), a request header, or a value of request, route, cluster or host
//! metadata (`CustomTag.Metadata`, read as Envoy's `MetadataCustomTag` does when the
//! span is finished).

use crate::decode::{join, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

/// `type.tracing.v3.CustomTag`: a span tag whose value comes from the config, the
/// environment, a request header or metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTag {
    pub tag: String,
    pub value: CustomTagValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomTagValue {
    Literal(String),
    /// The variable's value, read once at load, else `default_value`.
    Environment {
        name: String,
        default_value: String,
    },
    /// The request header's value, else `default_value` (no tag when both are empty).
    RequestHeader {
        name: String,
        default_value: String,
    },
    /// `metadata`: the value at `filter`/`path` in the `kind`'s metadata (a string as
    /// is, a number as `absl::StrCat` prints it, a bool `true`/`false`, a list or struct
    /// as JSON), else `default_value` (no tag when that is empty).
    Metadata {
        kind: MetadataKind,
        filter: String,
        path: Vec<String>,
        default_value: String,
    },
}

/// `type.metadata.v3.MetadataKind`: whose metadata a metadata custom tag reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// The stream's dynamic metadata (what filters set).
    Request,
    /// The selected route's `metadata`.
    Route,
    /// The upstream host's cluster's `metadata` (none before a host is chosen).
    Cluster,
    /// The upstream host's `lb_endpoints[].metadata`.
    Host,
}

/// `CustomTag.Metadata`.
fn decode_metadata_tag(d: &mut Decoder, node: &Node, path: &str) -> Option<CustomTagValue> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let kind_node = f.take("kind");
    let kind_path = f.field_path("kind");
    let key_node = f.take("metadata_key");
    let key_path = f.field_path("metadata_key");
    let default_value: String = f.or(d, "default_value", String::new());
    f.finish(d);
    let Some(kind_node) = kind_node else {
        d.error(
            ErrorKind::Missing,
            &kind_path,
            line,
            "a metadata custom tag needs `kind` (request, route, cluster or host)",
        );
        return None;
    };
    let mut k = Fields::of(d, kind_node, &kind_path)?;
    let mut kinds = Vec::new();
    for (name, kind) in [
        ("request", MetadataKind::Request),
        ("route", MetadataKind::Route),
        ("cluster", MetadataKind::Cluster),
        ("host", MetadataKind::Host),
    ] {
        if let Some(n) = k.take(name) {
            let inner = Fields::of(d, n, &join(&kind_path, name))?;
            inner.finish(d);
            kinds.push(kind);
        }
    }
    k.finish(d);
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        _ => {
            d.error(
                ErrorKind::Invalid,
                &kind_path,
                kind_node.line,
                "`kind` needs exactly one of request, route, cluster, host",
            );
            return None;
        }
    };
    let Some(key_node) = key_node else {
        d.error(ErrorKind::Missing, &key_path, line, "a metadata custom tag needs `metadata_key` (key and path)");
        return None;
    };
    let mut m = Fields::of(d, key_node, &key_path)?;
    let filter: Option<String> = m.req(d, "key");
    let segments: Vec<PathSegment> = m.list(d, "path");
    m.finish(d);
    let filter = filter?;
    if filter.is_empty() {
        d.error(ErrorKind::Invalid, &join(&key_path, "key"), key_node.line, "must not be empty");
    }
    if segments.is_empty() {
        d.error(ErrorKind::Invalid, &join(&key_path, "path"), key_node.line, "needs at least one segment");
    }
    Some(CustomTagValue::Metadata { kind, filter, path: segments.into_iter().map(|s| s.0).collect(), default_value })
}

/// `MetadataKey.PathSegment`: `{key: NAME}`.
struct PathSegment(String);

impl Decode for PathSegment {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let key: Option<String> = f.req(d, "key");
        f.finish(d);
        let key = key?;
        if key.is_empty() {
            d.error(ErrorKind::Invalid, &join(path, "key"), line, "must not be empty");
        }
        Some(PathSegment(key))
    }
}

impl Decode for CustomTag {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let tag: Option<String> = f.req(d, "tag");
        let mut value = None;
        if let Some(n) = f.take("literal") {
            let p = f.field_path("literal");
            let mut l = Fields::of(d, n, &p)?;
            let v: Option<String> = l.req(d, "value");
            l.finish(d);
            value = v.map(CustomTagValue::Literal);
        }
        for (key, is_env) in [("environment", true), ("request_header", false)] {
            if let Some(n) = f.take(key) {
                let p = f.field_path(key);
                let mut l = Fields::of(d, n, &p)?;
                let name: Option<String> = l.req(d, "name");
                let default_value: String = l.or(d, "default_value", String::new());
                l.finish(d);
                let name = name?;
                value = Some(if is_env {
                    CustomTagValue::Environment { name, default_value }
                } else {
                    CustomTagValue::RequestHeader { name: name.to_ascii_lowercase(), default_value }
                });
            }
        }
        if let Some(n) = f.take("metadata") {
            let p = f.field_path("metadata");
            value = Some(decode_metadata_tag(d, n, &p)?);
        }
        f.finish(d);
        let tag = tag?;
        if tag.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.tag"), line, "must not be empty");
        }
        let Some(value) = value else {
            d.error(
                ErrorKind::Missing,
                path,
                line,
                "a custom tag needs one of `literal`, `environment`, `request_header`, `metadata`",
            );
            return None;
        };
        Some(CustomTag { tag, value })
    }
}
