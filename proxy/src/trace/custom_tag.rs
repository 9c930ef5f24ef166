//! Custom span tags (Envoy's `source/common/tracing/custom_tag_impl.cc`), compiled from
//! `type.tracing.v3.CustomTag`: a literal or an environment variable (both fixed at
//! load), a request header, or a metadata value read when the span is finished
//! (`MetadataCustomTag`): the stream's dynamic metadata, the route's, the upstream
//! cluster's or the upstream host's. A metadata value is written as Envoy writes it: a
//! string as is, a bool `true`/`false`, a number as `absl::StrCat` prints a double (six
//! significant digits, `%g`), a list or struct as protobuf JSON; no value (or null)
//! gives `default_value`, and an empty tag value sets no tag.

use std::sync::Arc;

use sluice_config::metadata::{Metadata, Value};
use sluice_config::trace::{CustomTag, CustomTagValue, MetadataKind};

use crate::http::HeaderMap;
use crate::upstream::cluster_manager::ClusterInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagValue {
    Fixed(String),
    RequestHeader { name: String, default_value: String },
    Metadata { kind: MetadataKind, filter: String, path: Vec<String>, default_value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub name: String,
    pub value: TagValue,
}

pub(crate) fn compile_tags(tags: &[CustomTag]) -> Vec<Tag> {
    tags.iter()
        .map(|t| Tag {
            name: t.tag.clone(),
            value: match &t.value {
                CustomTagValue::Literal(v) => TagValue::Fixed(v.clone()),
                CustomTagValue::Environment { name, default_value } => {
                    TagValue::Fixed(std::env::var(name).unwrap_or_else(|_| default_value.clone()))
                }
                CustomTagValue::RequestHeader { name, default_value } => {
                    TagValue::RequestHeader { name: name.clone(), default_value: default_value.clone() }
                }
                CustomTagValue::Metadata { kind, filter, path, default_value } => TagValue::Metadata {
                    kind: *kind,
                    filter: filter.clone(),
                    path: path.clone(),
                    default_value: default_value.clone(),
                },
            },
        })
        .collect()
}

/// What a finished stream offers custom tags to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagSources<'a> {
    /// The stream's dynamic metadata.
    pub dynamic_metadata: Option<&'a Metadata>,
    /// The selected route's metadata.
    pub route_metadata: Option<&'a Metadata>,
    /// The upstream cluster, once a host was chosen (`upstream_address`).
    pub cluster: Option<&'a ClusterInfo>,
    pub upstream_address: Option<std::net::SocketAddr>,
}

impl TagSources<'_> {
    fn metadata(&self, kind: MetadataKind) -> Option<MetadataRef<'_>> {
        match kind {
            MetadataKind::Request => self.dynamic_metadata.map(MetadataRef::Borrowed),
            MetadataKind::Route => self.route_metadata.map(MetadataRef::Borrowed),
            MetadataKind::Cluster => {
                self.upstream_address.and(self.cluster).map(|c| MetadataRef::Borrowed(&c.config.metadata))
            }
            MetadataKind::Host => {
                let (addr, cluster) = (self.upstream_address?, self.cluster?);
                let hosts = cluster.hosts();
                let host = hosts.hosts.iter().find(|h| h.address == addr)?;
                host.metadata.clone().map(MetadataRef::Owned)
            }
        }
    }
}

enum MetadataRef<'a> {
    Borrowed(&'a Metadata),
    Owned(Arc<Metadata>),
}

impl MetadataRef<'_> {
    fn get(&self) -> &Metadata {
        match self {
            MetadataRef::Borrowed(m) => m,
            MetadataRef::Owned(m) => m,
        }
    }
}

impl Tag {
    /// The tag's value for this stream (empty: no tag).
    pub(crate) fn value(&self, h: &HeaderMap, src: &TagSources<'_>) -> String {
        match &self.value {
            TagValue::Fixed(v) => v.clone(),
            TagValue::RequestHeader { name, default_value } => {
                h.get_str(name.as_bytes()).unwrap_or(default_value).to_string()
            }
            TagValue::Metadata { kind, filter, path, default_value } => src
                .metadata(*kind)
                .and_then(|m| m.get().value(filter, path).and_then(metadata_to_string))
                .unwrap_or_else(|| default_value.clone()),
        }
    }
}

/// `MetadataCustomTag::metadataToString` (None: no value, or null).
fn metadata_to_string(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        Value::Number(n) => Some(six_digits(*n)),
        Value::String(s) => Some(s.clone()),
        Value::List(_) | Value::Struct(_) => Some(v.to_json()),
        Value::Null => None,
    }
}

/// `absl::StrCat(double)`: `%g` with six significant digits.
pub(crate) fn six_digits(n: f64) -> String {
    if n.is_nan() {
        return "nan".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.into();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rounded to six significant digits first: the exponent is the rounded one's.
    let sci = format!("{n:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&exp) {
        let decimals = (5 - exp).max(0) as usize;
        trim(&format!("{n:.decimals$}"))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_absl_str_cat() {
        for (n, want) in [
            (1.0, "1"),
            (3.5, "3.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (999999.5, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (1.0 / 3.0, "0.333333"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(six_digits(n), want, "{n}");
        }
    }

    #[test]
    fn values_and_defaults() {
        let mut md = Metadata::default();
        md.set("ns", "s", Value::String("v".into()));
        md.set("ns", "b", Value::Bool(false));
        md.set("ns", "n", Value::Number(42.0));
        md.set("ns", "l", Value::List(vec![Value::Number(1.0), Value::String("x".into())]));
        md.set("ns", "z", Value::Null);
        let src = TagSources { dynamic_metadata: Some(&md), ..TagSources::default() };
        let tag = |key: &str, kind: MetadataKind| Tag {
            name: "t".into(),
            value: TagValue::Metadata {
                kind,
                filter: "ns".into(),
                path: vec![key.to_string()],
                default_value: "dflt".into(),
            },
        };
        let h = HeaderMap::default();
        assert_eq!(tag("s", MetadataKind::Request).value(&h, &src), "v");
        assert_eq!(tag("b", MetadataKind::Request).value(&h, &src), "false");
        assert_eq!(tag("n", MetadataKind::Request).value(&h, &src), "42");
        assert_eq!(tag("l", MetadataKind::Request).value(&h, &src), r#"[1,"x"]"#);
        assert_eq!(tag("z", MetadataKind::Request).value(&h, &src), "dflt");
        assert_eq!(tag("missing", MetadataKind::Request).value(&h, &src), "dflt");
        // No route, no upstream host: the default.
        assert_eq!(tag("s", MetadataKind::Route).value(&h, &src), "dflt");
        assert_eq!(tag("s", MetadataKind::Cluster).value(&h, &src), "dflt");
        assert_eq!(tag("s", MetadataKind::Host).value(&h, &src), "dflt");
    }
}
