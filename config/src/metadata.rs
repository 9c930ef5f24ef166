//! `google.protobuf.Struct` / `Value` and `config.core.v3.Metadata` (filter name →
//! `Struct`): the shape of Envoy's dynamic metadata, which filters write on a stream
//! (`StreamInfo::dynamicMetadata`) and route `match.dynamic_metadata` reads.
//!
//! A config or test file gives a `Struct` as YAML/JSON, as Envoy's `loadFromYaml` turns
//! it into protobuf: a quoted scalar is a string, an unquoted one a number, `true` /
//! `false`, `null`, or else a string. Lookups ([`Metadata::value`]) follow Envoy's
//! `Config::Metadata::metadataValue`: a missing namespace or key, or a key under a value
//! that is not a struct, reads as "no value" (`None`, protobuf's `KIND_NOT_SET`).

use std::collections::BTreeMap;

use crate::decode::{index, join, Decode, Decoder, Fields};
use crate::node::{Node, Value as NodeValue};

/// `google.protobuf.Struct`.
pub type Struct = BTreeMap<String, Value>;

/// `google.protobuf.Value` with a kind set.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Number(f64),
    String(String),
    Bool(bool),
    Struct(Struct),
    List(Vec<Value>),
}

impl Value {
    /// The value as Envoy's `%DYNAMIC_METADATA%` prints it: a string as is, anything
    /// else as JSON.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            other => other.to_json(),
        }
    }

    /// Protobuf's JSON rendering (`MessageUtil::getJsonStringFromMessage`).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Number(n) => {
                if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
                    out.push_str(&format!("{}", *n as i64));
                } else {
                    out.push_str(&format!("{n}"));
                }
            }
            Value::String(s) => write_json_string(s, out),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Struct(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Decode for Value {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        Some(match &node.value {
            NodeValue::Null => Value::Null,
            NodeValue::Scalar { text, quoted: true } => Value::String(text.clone()),
            NodeValue::Scalar { text, quoted: false } => match text.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" | "~" => Value::Null,
                t => match t.parse::<f64>() {
                    Ok(n) if !t.eq_ignore_ascii_case("nan") && !t.to_ascii_lowercase().contains("inf") => {
                        Value::Number(n)
                    }
                    _ => Value::String(t.to_string()),
                },
            },
            NodeValue::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, n) in items.iter().enumerate() {
                    out.push(Value::decode(d, n, &index(path, i))?);
                }
                Value::List(out)
            }
            NodeValue::Map(_) => Value::Struct(decode_struct(d, node, path)?),
        })
    }
}

/// Decode a `google.protobuf.Struct` (an object of values).
pub fn decode_struct(d: &mut Decoder, node: &Node, path: &str) -> Option<Struct> {
    let NodeValue::Map(entries) = &node.value else {
        d.invalid(node, path, format!("expected an object, found a {}", node.kind_name()));
        return None;
    };
    let mut out = Struct::new();
    for (k, v) in entries {
        let value = Value::decode(d, v, &join(path, &k.name))?;
        out.insert(k.name.clone(), value);
    }
    Some(out)
}

/// `StructUtil::update`: merge `from` into `into`. Structs merge key by key, lists
/// append, anything else replaces.
pub fn update_struct(into: &mut Struct, from: &Struct) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Struct(a)), Value::Struct(b)) => update_struct(a, b),
            (Some(Value::List(a)), Value::List(b)) => a.extend(b.iter().cloned()),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `config.core.v3.Metadata`'s `filter_metadata`: namespace (filter name) → `Struct`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub filter_metadata: BTreeMap<String, Struct>,
}

/// `config.core.v3.Metadata` as a route, cluster or endpoint carries it: its
/// `filter_metadata` (what Envoy's `metadataValue` reads); `typed_filter_metadata` is
/// warned as inert.
impl Decode for Metadata {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let mut out = Metadata::default();
        if let Some(n) = f.take("filter_metadata") {
            let fpath = f.field_path("filter_metadata");
            let NodeValue::Map(entries) = &n.value else {
                d.invalid(n, &fpath, format!("expected an object, found a {}", n.kind_name()));
                return None;
            };
            for (k, v) in entries {
                let fields = decode_struct(d, v, &join(&fpath, &k.name))?;
                out.filter_metadata.insert(k.name.clone(), fields);
            }
        }
        f.ignored(d, &["typed_filter_metadata"]);
        f.finish(d);
        Some(out)
    }
}

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.filter_metadata.is_empty()
    }

    /// `metadataValue(metadata, filter, path)`; `None` is "no value".
    pub fn value(&self, filter: &str, path: &[String]) -> Option<&Value> {
        let mut fields = self.filter_metadata.get(filter)?;
        let (last, init) = path.split_last()?;
        for key in init {
            match fields.get(key)? {
                Value::Struct(s) => fields = s,
                _ => return None,
            }
        }
        fields.get(last)
    }

    /// Set `key` in namespace `ns` (`setDynamicMetadata` with a one-key struct).
    pub fn set(&mut self, ns: &str, key: &str, value: Value) {
        self.filter_metadata.entry(ns.to_string()).or_default().insert(key.to_string(), value);
    }

    /// `StreamInfo::setDynamicMetadata(ns, fields)`: merge `fields` into the
    /// namespace, key by key (a key's old value is replaced).
    pub fn merge_namespace(&mut self, ns: &str, fields: Struct) {
        let slot = self.filter_metadata.entry(ns.to_string()).or_default();
        for (k, v) in fields {
            slot.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, Value)]) -> Struct {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn lookup_follows_nested_structs_only() {
        let mut m = Metadata::default();
        m.filter_metadata.insert(
            "ns".into(),
            s(&[("a", Value::Struct(s(&[("b", Value::String("x".into()))]))), ("c", Value::Number(1.0))]),
        );
        assert_eq!(m.value("ns", &["a".into(), "b".into()]), Some(&Value::String("x".into())));
        assert_eq!(m.value("ns", &["c".into(), "b".into()]), None);
        assert_eq!(m.value("other", &["a".into()]), None);
        assert_eq!(m.value("ns", &[]), None);
    }

    #[test]
    fn update_merges_structs_appends_lists() {
        let mut a = s(&[
            ("k", Value::Struct(s(&[("x", Value::Bool(true))]))),
            ("l", Value::List(vec![Value::Null])),
            ("v", Value::Number(1.0)),
        ]);
        let b = s(&[
            ("k", Value::Struct(s(&[("y", Value::Bool(false))]))),
            ("l", Value::List(vec![Value::Bool(true)])),
            ("v", Value::String("2".into())),
        ]);
        update_struct(&mut a, &b);
        assert_eq!(Value::Struct(a).to_json(), r#"{"k":{"x":true,"y":false},"l":[null,true],"v":"2"}"#);
    }
}
