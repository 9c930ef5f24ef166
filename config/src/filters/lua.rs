//! `extensions.filters.http.lua.v3.Lua` and `LuaPerRoute`: the scripts of the Lua
//! filter. Every source (`default_source_code`, the deprecated `inline_code`, each
//! `source_codes` entry, a route's `source_code`) is read here, at load, so a missing
//! file is an error with its path; the proxy compiles the text once per config.
//!
//! `clear_route_cache` (default true) is implemented; `LuaPerRoute.filter_context`
//! (not implemented by Envoy either) is rejected.

use crate::decode::{Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::{Node, Value};
use crate::tls::DataSource;

pub const LUA_TYPE: &str = "envoy.extensions.filters.http.lua.v3.Lua";
pub const LUA_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.lua.v3.LuaPerRoute";

/// One script: where it came from (as configured, for the config dump) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuaSource {
    pub source: DataSource,
    pub code: String,
    /// The config path of the source (errors from compiling it name it).
    pub path: String,
}

/// `Lua`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lua {
    /// `default_source_code`, or the deprecated `inline_code` (as an inline string).
    pub default_source_code: Option<LuaSource>,
    /// `source_codes`, in config order.
    pub source_codes: Vec<(String, LuaSource)>,
    pub stat_prefix: String,
    /// `clear_route_cache` (BoolValue; absent = true).
    pub clear_route_cache: bool,
}

impl Lua {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<Lua> {
        let line = f.line();
        let inline_path = f.field_path("inline_code");
        let inline_code: Option<String> = f.opt(d, "inline_code");
        let dsc_path = f.field_path("default_source_code");
        let dsc = f.take("default_source_code");
        let sc_path = f.field_path("source_codes");
        let sc = f.take("source_codes");
        let stat_prefix = f.or(d, "stat_prefix", String::new());
        let clear_route_cache = f.or(d, "clear_route_cache", true);
        f.finish(d);
        let mut default_source_code = None;
        match (inline_code, dsc) {
            (Some(_), Some(_)) => {
                d.error(
                    ErrorKind::Invalid,
                    &dsc_path,
                    line,
                    "Error: Only one of `inline_code` or `default_source_code` can be set for the Lua filter.",
                );
                return None;
            }
            (Some(code), None) => {
                d.warn(&inline_path, line, "`inline_code` is deprecated: use `default_source_code.inline_string`");
                default_source_code =
                    Some(LuaSource { source: DataSource::InlineString(code.clone()), code, path: inline_path });
            }
            (None, Some(node)) => default_source_code = Some(read_source(d, node, &dsc_path)?),
            (None, None) => {}
        }
        let mut source_codes = Vec::new();
        if let Some(node) = sc {
            let Value::Map(entries) = &node.value else {
                d.invalid(node, &sc_path, "source_codes must be a map of name to DataSource");
                return None;
            };
            for (k, v) in entries {
                let p = format!("{sc_path}.{}", k.name);
                source_codes.push((k.name.clone(), read_source(d, v, &p)?));
            }
        }
        Some(Lua { default_source_code, source_codes, stat_prefix, clear_route_cache })
    }
}

/// `LuaPerRoute` (exactly one of `disabled: true`, `name`, `source_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuaPerRoute {
    Disabled,
    /// A key of the filter's `source_codes` (checked against the filter when the
    /// connection manager is built).
    Name(String),
    SourceCode(LuaSource),
}

impl LuaPerRoute {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<LuaPerRoute> {
        let path = f.path().to_string();
        let line = f.line();
        let disabled: Option<bool> = f.opt(d, "disabled");
        let name: Option<String> = f.opt(d, "name");
        let sc_path = f.field_path("source_code");
        let sc = f.take("source_code");
        f.unsupported_because(
            d,
            "filter_context",
            "`filter_context` is not implemented (Envoy hides it as not implemented too)",
        );
        f.finish(d);
        match (disabled, name, sc) {
            (Some(true), None, None) => Some(LuaPerRoute::Disabled),
            (Some(false), None, None) => {
                d.error(ErrorKind::Invalid, &format!("{path}.disabled"), line, "value must equal true");
                None
            }
            (None, Some(n), None) => {
                if n.is_empty() {
                    d.error(ErrorKind::Invalid, &format!("{path}.name"), line, "value length must be at least 1");
                    return None;
                }
                Some(LuaPerRoute::Name(n))
            }
            (None, None, Some(node)) => Some(LuaPerRoute::SourceCode(read_source(d, node, &sc_path)?)),
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    &path,
                    line,
                    "exactly one of `disabled`, `name` and `source_code` must be set",
                );
                None
            }
        }
    }
}

/// A `DataSource` and its text, read now; an error names `path`.
fn read_source(d: &mut Decoder, node: &Node, path: &str) -> Option<LuaSource> {
    let source: DataSource = crate::decode::Decode::decode(d, node, path)?;
    match source.read() {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(code) => Some(LuaSource { source, code, path: path.to_string() }),
            Err(_) => {
                d.invalid(node, path, "the Lua source is not UTF-8");
                None
            }
        },
        Err(e) => {
            d.invalid(node, path, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse;

    fn lua(yaml: &str) -> (Option<Lua>, Decoder) {
        let n = parse(yaml).unwrap();
        let mut d = Decoder::new();
        let f = Fields::of(&mut d, &n, "f").unwrap();
        (Lua::decode_fields(&mut d, f), d)
    }

    fn per_route(yaml: &str) -> (Option<LuaPerRoute>, Decoder) {
        let n = parse(yaml).unwrap();
        let mut d = Decoder::new();
        let f = Fields::of(&mut d, &n, "r").unwrap();
        (LuaPerRoute::decode_fields(&mut d, f), d)
    }

    #[test]
    fn sources_stat_prefix_and_route_cache() {
        let (l, d) = lua("default_source_code: {inline_string: 'x = 1'}\nsource_codes:\n  a.lua: {inline_string: 'y = 2'}\nstat_prefix: p\nclear_route_cache: false\n");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let l = l.unwrap();
        assert_eq!(l.default_source_code.unwrap().code, "x = 1");
        assert_eq!(l.source_codes[0].0, "a.lua");
        assert_eq!(l.source_codes[0].1.path, "f.source_codes.a.lua");
        assert_eq!(l.stat_prefix, "p");
        assert!(!l.clear_route_cache);
        // The deprecated inline_code stands for default_source_code, with a warning.
        let (l, d) = lua("inline_code: 'z = 3'\n");
        assert_eq!(l.unwrap().default_source_code.unwrap().code, "z = 3");
        assert!(d.warnings.iter().any(|w| w.path == "f.inline_code"));
        assert!(lua("").0.unwrap().clear_route_cache, "clear_route_cache defaults to true");
    }

    #[test]
    fn conflicts_and_missing_files_are_errors_with_their_path() {
        let (_, d) = lua("inline_code: a\ndefault_source_code: {inline_string: b}\n");
        assert!(d.errors[0].message.contains("Only one of `inline_code` or `default_source_code`"), "{:?}", d.errors);
        let (_, d) = lua("default_source_code: {filename: /nonexistent/sluice.lua}\n");
        assert_eq!(d.errors[0].path, "f.default_source_code");
        assert!(d.errors[0].message.contains("cannot read /nonexistent/sluice.lua"), "{:?}", d.errors);
        let (_, d) = lua("inline_code: a\nfoo: 1\n");
        assert!(d.errors.iter().any(|e| e.path == "f.foo"), "{:?}", d.errors);
    }

    #[test]
    fn per_route_overrides() {
        assert_eq!(per_route("disabled: true\n").0, Some(LuaPerRoute::Disabled));
        assert_eq!(per_route("name: a.lua\n").0, Some(LuaPerRoute::Name("a.lua".into())));
        assert!(matches!(per_route("source_code: {inline_string: x}\n").0, Some(LuaPerRoute::SourceCode(_))));
        let (_, d) = per_route("disabled: false\n");
        assert_eq!(d.errors[0].path, "r.disabled");
        let (_, d) = per_route("name: ''\n");
        assert_eq!(d.errors[0].path, "r.name");
        let (_, d) = per_route("disabled: true\nname: a\n");
        assert!(d.errors[0].message.contains("exactly one of"), "{:?}", d.errors);
        let (_, d) = per_route("name: a\nfilter_context: {k: v}\n");
        assert_eq!(d.errors[0].path, "r.filter_context");
    }
}
