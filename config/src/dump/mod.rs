//! The effective config, back to JSON: every field with its value in force (Envoy's
//! defaults included), in proto3 JSON form, so that it decodes back with
//! [`crate::load_str`] to a config that dumps the same. Used by the admin `/config_dump`.
//!
//! Conventions, one per kind of field:
//! - a field with a default is written with its value in force, default or not;
//! - a timeout where Envoy's `0s` means "disabled" is written `0s` when disabled;
//! - a field Envoy leaves unset to mean "not configured" (an optional timeout, a
//!   oneof none of whose members is set) is absent;
//! - a deprecated spelling is written in its modern form with the same behaviour
//!   (header matchers' `exact_match` and friends become `string_match` or
//!   `present_match`; a query-parameter matcher without a specifier becomes
//!   `present_match: true`);
//! - an inline private key is never written: its value becomes `[redacted]` (as Envoy's
//!   `MessageUtil::redact` does for `sensitive` fields), while a key referenced by
//!   filename (or environment variable) is written as that reference;
//! - fields sluice accepts and ignores (tag I in ENVOY_SUBSET.md: access logs, tracing,
//!   stats-only settings) are not part of the effective config and are left out.

mod access_log;
mod bootstrap;
mod cluster;
mod compression;
mod core;
mod ext_authz;
mod filters;
mod hcm;
mod listener;
mod lua;
mod matcher;
mod overload;
mod ratelimit;
mod route;
mod route_action;
mod tls;
mod trace;

use std::fmt::Write;
use std::time::Duration;

use crate::decode::{format_duration, ProtoEnum};

/// A JSON value under construction.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Add a field (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        if let Json::Obj(fields) = &mut self {
            fields.push((key.to_string(), value.into()));
        }
        self
    }

    /// Add a field when `value` is `Some`.
    pub fn with_opt<T: Into<Json>>(self, key: &str, value: Option<T>) -> Json {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// A parsed document as JSON (plain scalars that look like numbers or booleans
    /// stay unquoted).
    pub fn from_node(n: &crate::node::Node) -> Json {
        use crate::node::Value;
        match &n.value {
            Value::Null => Json::Null,
            Value::Scalar { text, quoted: true } => Json::Str(text.clone()),
            Value::Scalar { text, quoted: false } => match text.as_str() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                t if t.parse::<f64>().is_ok() => Json::Num(t.to_string()),
                t => Json::Str(t.to_string()),
            },
            Value::Seq(items) => Json::Arr(items.iter().map(Json::from_node).collect()),
            Value::Map(entries) => {
                Json::Obj(entries.iter().map(|(k, v)| (k.name.clone(), Json::from_node(v))).collect())
            }
        }
    }

    /// Render as indented JSON.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, d: usize| {
            for _ in 0..d {
                out.push_str("  ");
            }
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => write_str(out, s),
            Json::Arr(items) if items.is_empty() => out.push_str("[]"),
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, v) in items.iter().enumerate() {
                    pad(out, depth + 1);
                    v.write(out, depth + 1);
                    if i + 1 < items.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                pad(out, depth);
                out.push(']');
            }
            Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    pad(out, depth + 1);
                    write_str(out, k);
                    out.push_str(": ");
                    v.write(out, depth + 1);
                    if i + 1 < fields.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                pad(out, depth);
                out.push('}');
            }
        }
    }
}

/// A JSON string literal. Besides what JSON requires, every character outside YAML's
/// printable set (DEL, the C1 controls, the BOM, U+FFFE/U+FFFF) is escaped too, so that
/// the dump also reads back through sluice's YAML-based config parser.
pub fn write_str<W: Write>(out: &mut W, s: &str) {
    let _ = out.write_char('"');
    for c in s.chars() {
        let _ = match c {
            '"' => out.write_str("\\\""),
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                write!(out, "\\u{:04x}", c as u32)
            }
            c => out.write_char(c),
        };
    }
    let _ = out.write_char('"');
}

/// Standard base64 with padding (proto3 JSON's `bytes`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<&String> for Json {
    fn from(s: &String) -> Json {
        Json::Str(s.clone())
    }
}

macro_rules! json_num {
    ($($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(n: $t) -> Json {
                Json::Num(n.to_string())
            }
        }
    )*};
}
json_num!(u16, u32, i32, i64, f64);

/// 64-bit integers are strings in proto3 JSON.
impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Str(n.to_string())
    }
}

impl From<Duration> for Json {
    fn from(d: Duration) -> Json {
        Json::Str(format_duration(d))
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

/// A protobuf enum by name.
pub fn enum_name<E: ProtoEnum + PartialEq>(e: E) -> Json {
    Json::Str(e.name().to_string())
}

/// A typed config (`google.protobuf.Any`): `@type` first, then the message fields.
pub fn any(type_name: &str, message: Json) -> Json {
    let mut fields = vec![("@type".to_string(), Json::Str(format!("type.googleapis.com/{type_name}")))];
    if let Json::Obj(f) = message {
        fields.extend(f);
    }
    Json::Obj(fields)
}

/// Things that can be written back as config.
pub trait Dump {
    fn dump(&self) -> Json;
}

impl<T: Dump> From<&T> for Json {
    fn from(v: &T) -> Json {
        v.dump()
    }
}

/// A list of dumpable items.
pub fn list<'a, T: Dump + 'a>(items: impl IntoIterator<Item = &'a T>) -> Json {
    Json::Arr(items.into_iter().map(Dump::dump).collect())
}

/// The admin `/config_dump` body: Envoy's `ConfigDump` with one `BootstrapConfigDump`.
pub fn config_dump(b: &crate::Bootstrap) -> String {
    let dump = Json::obj().with(
        "configs",
        Json::Arr(vec![any("envoy.admin.v3.BootstrapConfigDump", Json::obj().with("bootstrap", b.dump()))]),
    );
    dump.render()
}

#[cfg(test)]
mod tests;
