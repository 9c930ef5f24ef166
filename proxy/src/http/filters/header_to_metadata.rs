//! The header-to-metadata filter (`envoy.extensions.filters.http.header_to_metadata.v3.Config`),
//! as Envoy's header_to_metadata_filter.cc: each request rule (response rule) reads a
//! request (response) header — every value joined with `,` — or a cookie, and sets
//! `key` in `metadata_namespace` of the stream's dynamic metadata: `on_header_present`
//! with the rule's `value`, else the header's value (after `regex_value_rewrite`);
//! `on_header_missing` with its `value`. The value is decoded (`BASE64`) and typed
//! (`STRING`, `NUMBER`, a serialized `PROTOBUF_VALUE`); one that is empty, 8 KiB or
//! longer, or fails to decode is not set. `remove` drops the header once read. The most
//! specific per-route config (rules and `stat_prefix`) replaces the filter's.
//!
//! Like Envoy's filter it never clears the route cache: the route was chosen before the
//! filter ran, so a route's `match.dynamic_metadata` does not see what it sets; access
//! logs (`%DYNAMIC_METADATA(ns:key)%`) do. With `stat_prefix`, counters
//! `http_filter_name.<stat_prefix>.{request,response}_rules_processed`,
//! `..._metadata_added`, `..._header_not_found`, `base64_decode_failed`,
//! `header_value_too_long`, `regex_substitution_failed`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use prost_reflect::prost::Message;
use prost_reflect::prost_types;
use sluice_config::filters::header_to_metadata::{
    HeaderToMetadata, KeyValuePair, Rule, Selector, ValueEncode, ValueType,
};
use sluice_config::metadata::{Struct, Value};
use sluice_config::route::decode_base64;

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::router::route_match::request_header_value;
use crate::stats::SharedCounter;

/// Envoy's `MAX_HEADER_VALUE_LEN`.
const MAX_HEADER_VALUE_LEN: usize = 8 * 1024;

/// Counters of one direction.
#[derive(Debug)]
struct DirectionStats {
    rules_processed: Arc<SharedCounter>,
    metadata_added: Arc<SharedCounter>,
    header_not_found: Arc<SharedCounter>,
}

#[derive(Debug)]
struct Stats {
    request: DirectionStats,
    response: DirectionStats,
    base64_decode_failed: Arc<SharedCounter>,
    header_value_too_long: Arc<SharedCounter>,
    regex_substitution_failed: Arc<SharedCounter>,
}

/// The filter's rules and stats.
#[derive(Debug)]
pub struct HeaderToMetadataConfig {
    rules: Arc<HeaderToMetadata>,
    stats: Option<Stats>,
}

impl HeaderToMetadataConfig {
    pub fn new(c: &HeaderToMetadata, counters: &mut CounterSet) -> HeaderToMetadataConfig {
        let stats = (!c.stat_prefix.is_empty()).then(|| {
            let p = format!("http_filter_name.{}.", c.stat_prefix);
            let mut dir = |d: &str| DirectionStats {
                rules_processed: counters.counter(format!("{p}{d}_rules_processed")),
                metadata_added: counters.counter(format!("{p}{d}_metadata_added")),
                header_not_found: counters.counter(format!("{p}{d}_header_not_found")),
            };
            let request = dir("request");
            let response = dir("response");
            Stats {
                request,
                response,
                base64_decode_failed: counters.counter(format!("{p}base64_decode_failed")),
                header_value_too_long: counters.counter(format!("{p}header_value_too_long")),
                regex_substitution_failed: counters.counter(format!("{p}regex_substitution_failed")),
            }
        });
        HeaderToMetadataConfig { rules: Arc::new(c.clone()), stats }
    }
}

/// The filter on one stream, with the config in force (the route's, else the
/// filter's; each with its own stats, as Envoy's `getConfig`).
#[derive(Debug)]
pub struct HeaderToMetadataFilter {
    config: Arc<HeaderToMetadataConfig>,
    rules: Arc<HeaderToMetadata>,
}

impl HeaderToMetadataFilter {
    pub fn new(config: Arc<HeaderToMetadataConfig>, route: &RouteView<'_>, k: usize) -> HeaderToMetadataFilter {
        let config = match route.most_specific(k) {
            Some(PerRouteFilter::HeaderToMetadata(c)) => Arc::clone(c),
            _ => config,
        };
        HeaderToMetadataFilter { rules: Arc::clone(&config.rules), config }
    }

    fn stat(&self, f: impl FnOnce(&Stats) -> &SharedCounter) {
        if let Some(s) = &self.config.stats {
            f(s).inc();
        }
    }

    /// `writeHeaderToMetadata`: every rule in order; one `setDynamicMetadata` per
    /// namespace at the end.
    fn write(
        &self,
        rules: &[Rule],
        mut read: impl FnMut(&Rule) -> Option<String>,
        request: bool,
        cb: &mut FilterCallbacks,
    ) {
        fn dir(s: &Stats, request: bool) -> &DirectionStats {
            if request {
                &s.request
            } else {
                &s.response
            }
        }
        let mut by_ns: BTreeMap<&str, Struct> = BTreeMap::new();
        for rule in rules {
            let value = read(rule);
            self.stat(|s| &dir(s, request).rules_processed);
            let (value, kv) = match (value, &rule.on_header_present, &rule.on_header_missing) {
                (Some(v), Some(kv), _) => (v, kv),
                (None, _, Some(kv)) => {
                    self.stat(|s| &dir(s, request).header_not_found);
                    (String::new(), kv)
                }
                _ => continue,
            };
            let value = if !kv.value.is_empty() {
                kv.value.clone()
            } else if let Some(re) = &kv.regex_value_rewrite {
                let out = re.replace_all(&value);
                if !value.is_empty() && out.is_empty() {
                    self.stat(|s| &s.regex_substitution_failed);
                }
                out
            } else {
                value
            };
            if value.is_empty() {
                continue;
            }
            if let Some(v) = self.typed_value(kv, value) {
                by_ns.entry(kv.metadata_namespace.as_str()).or_default().insert(kv.key.clone(), v);
                self.stat(|s| &dir(s, request).metadata_added);
            }
        }
        for (ns, fields) in by_ns {
            cb.set_dynamic_metadata(ns, fields);
        }
    }

    /// `addMetadata`: length limit, decoding, typing; `None` when not added.
    fn typed_value(&self, kv: &KeyValuePair, value: String) -> Option<Value> {
        if value.len() >= MAX_HEADER_VALUE_LEN {
            self.stat(|s| &s.header_value_too_long);
            return None;
        }
        let bytes: Cow<'_, [u8]> = match kv.encode {
            ValueEncode::None => Cow::Borrowed(value.as_bytes()),
            ValueEncode::Base64 => match decode_base64(&value) {
                Some(b) if !b.is_empty() => Cow::Owned(b),
                _ => {
                    self.stat(|s| &s.base64_decode_failed);
                    return None;
                }
            },
        };
        match kv.r#type {
            ValueType::String => Some(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
            ValueType::Number => {
                let text = std::str::from_utf8(&bytes).ok()?.trim_matches(|c: char| c.is_ascii_whitespace());
                text.parse::<f64>().ok().map(Value::Number)
            }
            ValueType::ProtobufValue => prost_types::Value::decode(bytes.as_ref()).ok().and_then(|v| from_proto(&v)),
        }
    }
}

/// A decoded `google.protobuf.Value` as metadata (`None`: no kind set).
fn from_proto(v: &prost_types::Value) -> Option<Value> {
    use prost_types::value::Kind;
    Some(match v.kind.as_ref()? {
        Kind::NullValue(_) => Value::Null,
        Kind::NumberValue(n) => Value::Number(*n),
        Kind::StringValue(s) => Value::String(s.clone()),
        Kind::BoolValue(b) => Value::Bool(*b),
        Kind::StructValue(s) => {
            Value::Struct(s.fields.iter().filter_map(|(k, v)| Some((k.clone(), from_proto(v)?))).collect())
        }
        Kind::ListValue(l) => Value::List(l.values.iter().filter_map(from_proto).collect()),
    })
}

/// `Http::Utility::parseCookieValue`: the first cookie named `name` in the `cookie`
/// headers (surrounding double quotes removed); `None` when absent or empty.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(b"cookie") {
        for pair in v.split(|&b| b == b';') {
            let pair = pair.trim_ascii_start();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else { continue };
            if &pair[..eq] != name.as_bytes() {
                continue;
            }
            let mut val = &pair[eq + 1..];
            if val.len() >= 2 && val[0] == b'"' && val[val.len() - 1] == b'"' {
                val = &val[1..val.len() - 1];
            }
            return (!val.is_empty()).then(|| String::from_utf8_lossy(val).into_owned());
        }
    }
    None
}

/// Every value of `name` joined with `,`, then removed when the rule says so.
fn take_header(headers: &mut HeaderMap, name: &str, joined: Option<Cow<'_, [u8]>>, remove: bool) -> Option<String> {
    let value = joined.map(|v| String::from_utf8_lossy(&v).into_owned())?;
    if remove {
        headers.remove(name.as_bytes());
    }
    Some(value)
}

impl StreamFilter for HeaderToMetadataFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        _cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let rules = Arc::clone(&self.rules);
        self.write(
            &rules.request_rules,
            |rule| match &rule.selector {
                Selector::Header(h) => {
                    let joined = request_header_value(head, h).map(|v| Cow::Owned(v.into_owned()));
                    take_header(&mut head.headers, h, joined, rule.remove)
                }
                Selector::Cookie(c) => cookie_value(&head.headers, c),
            },
            true,
            cb,
        );
        HeadersStatus::Continue
    }

    fn encode_headers(
        &mut self,
        head: &mut ResponseHead,
        _end_stream: bool,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let rules = Arc::clone(&self.rules);
        self.write(
            &rules.response_rules,
            |rule| match &rule.selector {
                Selector::Header(h) => {
                    let joined = joined(&head.headers, h);
                    take_header(&mut head.headers, h, joined, rule.remove)
                }
                Selector::Cookie(c) => cookie_value(&head.headers, c),
            },
            false,
            cb,
        );
        HeadersStatus::Continue
    }
}

/// Every value of a response header joined with `,` (owned: the header may be removed).
fn joined<'a>(headers: &HeaderMap, name: &str) -> Option<Cow<'a, [u8]>> {
    let mut out: Option<Vec<u8>> = None;
    for v in headers.get_all(name.as_bytes()) {
        match &mut out {
            None => out = Some(v.to_vec()),
            Some(o) => {
                o.push(b',');
                o.extend_from_slice(v);
            }
        }
    }
    out.map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> HeaderToMetadata {
        let node = sluice_config::node::parse(yaml).unwrap();
        let mut d = sluice_config::decode::Decoder::new();
        let f = sluice_config::decode::Fields::of(&mut d, &node, "c").unwrap();
        let c = HeaderToMetadata::decode_fields(&mut d, f, false);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        c.unwrap()
    }

    fn run(yaml: &str, headers: &[(&str, &str)]) -> (Vec<(String, Struct)>, RequestHead, u64) {
        let mut counters = CounterSet::default();
        let cfg = Arc::new(HeaderToMetadataConfig::new(&config(yaml), &mut counters));
        let f = HeaderToMetadataFilter { rules: Arc::clone(&cfg.rules), config: cfg };
        let mut head = RequestHead { path: "/p".into(), ..RequestHead::default() };
        for (k, v) in headers {
            head.headers.append(k.as_bytes(), v.as_bytes());
        }
        let mut cb = FilterCallbacks::default();
        let rules = Arc::clone(&f.rules);
        let mut h = std::mem::take(&mut head);
        f.write(
            &rules.request_rules,
            |rule| match &rule.selector {
                Selector::Header(n) => {
                    let j = request_header_value(&h, n).map(|v| Cow::Owned(v.into_owned()));
                    take_header(&mut h.headers, n, j, rule.remove)
                }
                Selector::Cookie(c) => cookie_value(&h.headers, c),
            },
            true,
            &mut cb,
        );
        let added = counters.0.iter().find(|(n, _)| n.ends_with("request_metadata_added")).map_or(0, |(_, c)| c.get());
        (cb.metadata, h, added)
    }

    #[test]
    fn present_missing_types_and_remove() {
        let (md, head, added) = run(
            "stat_prefix: s
request_rules:
- {header: x-ver, on_header_present: {metadata_namespace: ns, key: ver, type: NUMBER}, remove: true}
- {header: x-none, on_header_missing: {metadata_namespace: ns, key: none, value: dflt}}
- {header: x-b64, on_header_present: {key: b, encode: BASE64}}
- {header: x-bad, on_header_present: {key: bad, encode: BASE64}}
- {cookie: sess, on_header_present: {metadata_namespace: ns, key: sess}}
- {header: x-re, on_header_present: {metadata_namespace: ns, key: re, regex_value_rewrite: {pattern: {regex: '^v(\\d+)$'}, substitution: '\\1'}}}
",
            &[("x-ver", " 2.5 "), ("x-b64", "aGVsbG8"), ("x-bad", "!!"), ("cookie", "a=1; sess=\"abc\""), ("x-re", "v7")],
        );
        let ns = &md.iter().find(|(n, _)| n == "ns").unwrap().1;
        assert_eq!(ns["ver"], Value::Number(2.5));
        assert_eq!(ns["none"], Value::String("dflt".into()));
        assert_eq!(ns["sess"], Value::String("abc".into()));
        assert_eq!(ns["re"], Value::String("7".into()));
        let def = &md.iter().find(|(n, _)| n == "envoy.filters.http.header_to_metadata").unwrap().1;
        assert_eq!(def["b"], Value::String("hello".into()));
        assert!(!def.contains_key("bad"));
        assert!(head.headers.get(b"x-ver").is_none());
        assert_eq!(added, 5);
    }

    #[test]
    fn protobuf_value_is_decoded() {
        let v = prost_types::Value { kind: Some(prost_types::value::Kind::BoolValue(true)) };
        let b64 = sluice_config::dump::base64(&v.encode_to_vec());
        let (md, _, _) = run(
            "request_rules: [{header: x-v, on_header_present: {metadata_namespace: ns, key: v, type: PROTOBUF_VALUE, encode: BASE64}}]",
            &[("x-v", &b64)],
        );
        assert_eq!(md[0].1["v"], Value::Bool(true));
    }
}
