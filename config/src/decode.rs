//! Decoding a [`Node`] tree into typed config, following proto3's JSON mapping.
//!
//! The rules Envoy applies to a static bootstrap, and so do we:
//! - a field may be spelled in snake_case or lowerCamelCase, not both at once;
//! - a field that is not part of the message is an error naming its full path and line
//!   (with a suggestion when it is a near miss);
//! - a real Envoy field that sluice does not implement is an "unsupported" error; one that
//!   is harmless to skip is accepted with a warning, once per field path;
//! - wrappers (`UInt32Value`, `BoolValue`) are plain scalars, 64-bit integers may be
//!   strings, durations are `"1.5s"` strings, enums are names (in any letter case, as
//!   Envoy's loader accepts them) or numbers, `null` means "absent".
//!
//! Decoding never stops at the first error: every error of the document is collected so
//! that `--mode validate` reports them all at once.

use std::collections::HashSet;
use std::time::Duration;

use crate::error::{ConfigError, ErrorKind, Warning};
use crate::node::{Key, Node, Value};

/// Collects errors and warnings while a document is decoded.
#[derive(Debug, Default)]
pub struct Decoder {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
    warned: HashSet<String>,
    /// Dynamic resources (xDS): a field that is not part of the message is a warning,
    /// collected in `unknown_fields`, instead of an error (Envoy's dynamic validation
    /// visitor, unless `--reject-unknown-dynamic-fields`).
    pub unknown_fields_lenient: bool,
    pub unknown_fields: Vec<ConfigError>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, kind: ErrorKind, path: &str, line: u32, message: impl Into<String>) {
        self.errors.push(ConfigError { kind, path: path.to_string(), line, message: message.into() });
    }

    pub fn invalid(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.error(ErrorKind::Invalid, path, node.line, message);
    }

    /// Warn that a field of the by-design list ([`crate::inert::INERT`]) has no effect,
    /// once per path with indices removed.
    pub fn warn_inert(&mut self, path: &str, line: u32, reason: &str) {
        let pattern: String = strip_indices(path);
        if self.warned.insert(pattern) {
            self.warnings.push(Warning {
                path: path.to_string(),
                line,
                message: format!("has no effect in sluice: {reason}"),
            });
        }
    }

    /// A warning about something accepted that the user should know of.
    pub fn warn(&mut self, path: &str, line: u32, message: impl Into<String>) {
        self.warnings.push(Warning { path: path.to_string(), line, message: message.into() });
    }

    /// Decode `node` as `T`, recording errors under `path`.
    pub fn decode<T: Decode>(&mut self, node: &Node, path: &str) -> Option<T> {
        T::decode(self, node, path)
    }
}

fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// A type that can be read from a config node.
pub trait Decode: Sized {
    /// Decode, or record why not (and return `None`).
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self>;
}

/// `path.field`, or `field` at the root.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// `path[i]`.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// lowerCamelCase to snake_case (`useOriginalDst` → `use_original_dst`).
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The stored (snake_cased) form of a field's proto3 JSON name, for names where the
/// round trip is lossy: `accept_http_10` is `acceptHttp10` in JSON, which
/// [`snake_case`] reads back as `accept_http10`.
fn json_alias(name: &str) -> String {
    let mut camel = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            camel.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    snake_case(&camel)
}

struct Entry<'n> {
    name: String,
    key: &'n Key,
    node: &'n Node,
    used: bool,
}

/// The fields of one message: take each known field once, then [`Fields::finish`]
/// reports whatever is left as unknown.
pub struct Fields<'n> {
    path: String,
    line: u32,
    entries: Vec<Entry<'n>>,
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// View `node` as a message. `null` is an empty message.
    pub fn of(d: &mut Decoder, node: &'n Node, path: &str) -> Option<Fields<'n>> {
        let mut entries: Vec<Entry<'n>> = Vec::new();
        match &node.value {
            Value::Null => {}
            Value::Map(map) => {
                for (key, value) in map {
                    let name = snake_case(&key.name);
                    if entries.iter().any(|e| e.name == name) {
                        d.error(ErrorKind::Invalid, &join(path, &name), key.line, "field given more than once");
                        continue;
                    }
                    entries.push(Entry { name, key, node: value, used: false });
                }
            }
            _ => {
                d.invalid(node, path, format!("expected an object, found a {}", node.kind_name()));
                return None;
            }
        }
        Some(Fields { path: path.to_string(), line: node.line, entries, known: Vec::new() })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn line(&self) -> u32 {
        self.line
    }

    /// Path of a field of this message.
    pub fn field_path(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// Whether the field is present (and not null). Does not consume it.
    pub fn has(&self, name: &str) -> bool {
        let alt = json_alias(name);
        self.entries.iter().any(|e| (e.name == name || e.name == alt) && e.node.value != Value::Null)
    }

    /// Take the raw node of a field; `null` counts as absent.
    pub fn take(&mut self, name: &'static str) -> Option<&'n Node> {
        self.known.push(name);
        let alt = json_alias(name);
        let entry = self.entries.iter_mut().find(|e| e.name == name || e.name == alt)?;
        entry.used = true;
        if entry.node.value == Value::Null {
            None
        } else {
            Some(entry.node)
        }
    }

    /// An optional field.
    pub fn opt<T: Decode>(&mut self, d: &mut Decoder, name: &'static str) -> Option<T> {
        let node = self.take(name)?;
        T::decode(d, node, &join(&self.path, name))
    }

    /// An optional field with Envoy's default.
    pub fn or<T: Decode>(&mut self, d: &mut Decoder, name: &'static str, default: T) -> T {
        self.opt(d, name).unwrap_or(default)
    }

    /// A field Envoy requires (`[(validate.rules).message.required = true]` or min_len 1).
    pub fn req<T: Decode>(&mut self, d: &mut Decoder, name: &'static str) -> Option<T> {
        match self.take(name) {
            Some(node) => T::decode(d, node, &join(&self.path, name)),
            None => {
                d.error(ErrorKind::Missing, &join(&self.path, name), self.line, "required field is missing");
                None
            }
        }
    }

    /// A repeated field (absent = empty).
    pub fn list<T: Decode>(&mut self, d: &mut Decoder, name: &'static str) -> Vec<T> {
        self.opt::<Vec<T>>(d, name).unwrap_or_default()
    }

    /// Fields that do not change behaviour by design ([`crate::inert::INERT`], which
    /// gives the reason each is harmless): accepted with a warning, once per field.
    pub fn ignored(&mut self, d: &mut Decoder, names: &[&'static str]) {
        for &name in names {
            let reason = crate::inert::reason(name);
            debug_assert!(reason.is_some(), "`{name}` is ignored but not in inert::INERT or inert::PENDING");
            if let Some(node) = self.take(name) {
                d.warn_inert(&join(&self.path, name), node.line, reason.unwrap_or("accepted but ignored"));
            }
        }
    }

    /// A field sluice implements only at Envoy's default: absent or `default` is
    /// accepted (it changes nothing); any other value is unsupported, `why` says what to
    /// do instead.
    pub fn default_only<T: Decode + PartialEq>(&mut self, d: &mut Decoder, name: &'static str, default: T, why: &str) {
        let Some(node) = self.take(name) else { return };
        let path = join(&self.path, name);
        if let Some(v) = T::decode(d, node, &path) {
            if v != default {
                d.error(ErrorKind::Unsupported, &path, node.line, format!("`{name}` is not supported: {why}"));
            }
        }
    }

    /// A field sluice accepts only when empty (`{}`, `[]`, `""`, null), where it
    /// provably changes nothing; with content it is unsupported, `why` says what to do.
    pub fn empty_only(&mut self, d: &mut Decoder, name: &'static str, why: &str) {
        let Some(node) = self.take(name) else { return };
        let empty = match &node.value {
            Value::Null => true,
            Value::Map(m) => m.is_empty(),
            Value::Seq(s) => s.is_empty(),
            Value::Scalar { text, .. } => text.is_empty(),
        };
        if !empty {
            d.error(
                ErrorKind::Unsupported,
                &join(&self.path, name),
                node.line,
                format!("`{name}` is not supported: {why}"),
            );
        }
    }

    /// A real Envoy field sluice does not implement: an error if present, `message`
    /// naming what to do instead.
    pub fn unsupported_because(&mut self, d: &mut Decoder, name: &'static str, message: &str) {
        if let Some(node) = self.take(name) {
            d.error(ErrorKind::Unsupported, &join(&self.path, name), node.line, message);
        }
    }

    /// Real Envoy fields that sluice does not implement: an error if present.
    pub fn unsupported(&mut self, d: &mut Decoder, names: &[&'static str]) {
        for &name in names {
            if let Some(node) = self.take(name) {
                d.error(
                    ErrorKind::Unsupported,
                    &join(&self.path, name),
                    node.line,
                    format!("unsupported field `{name}`: sluice does not implement it"),
                );
            }
        }
    }

    /// Report every field not taken as unknown.
    pub fn finish(self, d: &mut Decoder) {
        for e in self.entries.iter().filter(|e| !e.used) {
            let mut message = format!("unknown field `{}`", e.key.name);
            if let Some(best) = suggest(&e.name, &self.known) {
                message.push_str(&format!(" (did you mean `{best}`?)"));
            }
            let path = join(&self.path, &e.name);
            if d.unknown_fields_lenient {
                d.warn(&path, e.key.line, format!("{message}: ignored in a dynamic resource"));
                d.unknown_fields.push(ConfigError { kind: ErrorKind::UnknownField, path, line: e.key.line, message });
            } else {
                d.error(ErrorKind::UnknownField, &path, e.key.line, message);
            }
        }
    }
}

/// The closest known name within a small edit distance.
fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(dist, k)| *dist <= 2.max(k.len() / 5))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The text of a scalar, or an error.
pub fn scalar<'n>(d: &mut Decoder, node: &'n Node, path: &str, what: &str) -> Option<&'n str> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text),
        _ => {
            d.invalid(node, path, format!("expected {what}, found a {}", node.kind_name()));
            None
        }
    }
}

impl Decode for String {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        scalar(d, node, path, "a string").map(str::to_string)
    }
}

impl Decode for bool {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let text = scalar(d, node, path, "a boolean")?;
        match text {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                d.invalid(node, path, format!("expected true or false, found `{text}`"));
                None
            }
        }
    }
}

macro_rules! decode_int {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
                let text = scalar(d, node, path, "an integer")?;
                match text.trim().parse::<$t>() {
                    Ok(v) => Some(v),
                    Err(_) => {
                        d.invalid(node, path, format!(
                            "expected an integer in {}..={}, found `{text}`", <$t>::MIN, <$t>::MAX));
                        None
                    }
                }
            }
        }
    )*};
}
decode_int!(u16, u32, u64, i32, i64);

impl Decode for f64 {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let text = scalar(d, node, path, "a number")?;
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                d.invalid(node, path, format!("expected a number, found `{text}`"));
                None
            }
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        match &node.value {
            Value::Seq(items) => {
                Some(items.iter().enumerate().filter_map(|(i, item)| T::decode(d, item, &index(path, i))).collect())
            }
            Value::Null => Some(Vec::new()),
            _ => {
                d.invalid(node, path, format!("expected a list, found a {}", node.kind_name()));
                None
            }
        }
    }
}

/// `google.protobuf.Duration`: `"1.5s"` (proto3 JSON), or `{seconds, nanos}`.
impl Decode for Duration {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        if let Value::Map(_) = node.value {
            let mut f = Fields::of(d, node, path)?;
            let seconds: u64 = f.or(d, "seconds", 0);
            let nanos: u32 = f.or(d, "nanos", 0);
            f.finish(d);
            if nanos >= 1_000_000_000 {
                d.invalid(node, path, "nanos must be below 1e9");
                return None;
            }
            return Some(Duration::new(seconds, nanos));
        }
        let text = scalar(d, node, path, "a duration like \"5s\"")?;
        match parse_duration(text) {
            Some(v) => Some(v),
            None => {
                d.invalid(
                    node,
                    path,
                    format!("expected a non-negative duration like \"5s\" or \"0.25s\", found `{text}`"),
                );
                None
            }
        }
    }
}

/// Parse a proto3 JSON duration: decimal seconds with an `s` suffix, up to 9 fraction
/// digits.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let num = text.trim().strip_suffix('s')?;
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 {
        return None;
    }
    let secs: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut nanos: u32 = 0;
    if !frac.is_empty() {
        nanos = frac.parse().ok()?;
        nanos *= 10u32.pow(9 - frac.len() as u32);
    }
    // Envoy's Duration validation caps seconds at 315576000000 (10,000 years).
    if secs > 315_576_000_000 {
        return None;
    }
    Some(Duration::new(secs, nanos))
}

/// Format a duration the way proto3 JSON does (`"1.500s"`, `"5s"`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
    } else {
        format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
    }
}

/// A protobuf enum: by name or by number.
pub trait ProtoEnum: Sized + Copy + 'static {
    /// (name, number, value) for every variant.
    const VARIANTS: &'static [(&'static str, i32, Self)];

    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::VARIANTS.iter().find(|(_, _, v)| *v == self).map(|(n, _, _)| *n).unwrap_or("?")
    }
}

/// Decode a protobuf enum value.
pub fn decode_enum<T: ProtoEnum>(d: &mut Decoder, node: &Node, path: &str) -> Option<T> {
    let text = scalar(d, node, path, "an enum name")?;
    // Envoy parses JSON with protobuf's `case_insensitive_enum_parsing`: `strict_dns`
    // is STRICT_DNS.
    let hit = T::VARIANTS
        .iter()
        .find(|(name, num, _)| name.eq_ignore_ascii_case(text) || text.parse::<i32>().ok() == Some(*num));
    match hit {
        Some((_, _, v)) => Some(*v),
        None => {
            let names: Vec<&str> = T::VARIANTS.iter().map(|(n, _, _)| *n).collect();
            d.invalid(node, path, format!("unknown value `{text}`; expected one of {}", names.join(", ")));
            None
        }
    }
}

/// Declare a protobuf enum with its names and numbers and a `Decode` impl.
#[macro_export]
macro_rules! proto_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = ($text:literal, $num:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }
        impl $crate::decode::ProtoEnum for $name {
            const VARIANTS: &'static [(&'static str, i32, Self)] = &[$(($text, $num, $name::$variant)),+];
        }
        impl $crate::decode::Decode for $name {
            fn decode(d: &mut $crate::decode::Decoder, node: &$crate::node::Node, path: &str) -> Option<Self> {
                $crate::decode::decode_enum(d, node, path)
            }
        }
    };
}

/// An extension config (`google.protobuf.Any`): the type name after the last `/` of
/// `@type`, and the message's other fields.
pub struct TypedConfig<'n> {
    pub type_name: String,
    pub fields: Fields<'n>,
}

/// Read a `typed_config` Any. Envoy selects extensions by type URL, never by name.
pub fn typed_config<'n>(d: &mut Decoder, node: &'n Node, path: &str) -> Option<TypedConfig<'n>> {
    let mut fields = Fields::of(d, node, path)?;
    let Some(url) = fields.take("@type") else {
        d.error(ErrorKind::Missing, &join(path, "@type"), node.line, "typed_config needs an `@type`");
        return None;
    };
    let url = scalar(d, url, &join(path, "@type"), "a type URL")?;
    let type_name = url.rsplit('/').next().unwrap_or(url).to_string();
    Some(TypedConfig { type_name, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.25s"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        assert_eq!(parse_duration(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1.0000000001s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "3600s");
    }

    #[test]
    fn camel_case_and_unknown_fields() {
        let n = parse("useOriginalDst: true\nconect_timeout: 1s\n").unwrap();
        let mut d = Decoder::new();
        let mut f = Fields::of(&mut d, &n, "x").unwrap();
        let v: Option<bool> = f.opt(&mut d, "use_original_dst");
        let _: Option<Duration> = f.opt(&mut d, "connect_timeout");
        f.finish(&mut d);
        assert_eq!(v, Some(true));
        assert_eq!(d.errors.len(), 1);
        let e = &d.errors[0];
        assert_eq!(e.kind, ErrorKind::UnknownField);
        assert_eq!(e.path, "x.conect_timeout");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("did you mean `connect_timeout`"), "{}", e.message);
    }

    #[test]
    fn both_spellings_is_an_error() {
        let n = parse("bind_to_port: true\nbindToPort: false\n").unwrap();
        let mut d = Decoder::new();
        Fields::of(&mut d, &n, "l").unwrap();
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].line, 2);
    }

    #[test]
    fn int_as_string_and_range() {
        let n = parse("a: \"5\"\nb: 70000\nc: -1\n").unwrap();
        let mut d = Decoder::new();
        let mut f = Fields::of(&mut d, &n, "").unwrap();
        assert_eq!(f.opt::<u64>(&mut d, "a"), Some(5));
        assert_eq!(f.opt::<u16>(&mut d, "b"), None);
        assert_eq!(f.opt::<u32>(&mut d, "c"), None);
        assert_eq!(d.errors.len(), 2);
        assert_eq!(d.errors[0].path, "b");
    }

    #[test]
    fn ignored_warns_once_per_field() {
        let n = parse("- {node: 1}\n- {node: 2}\n").unwrap();
        let mut d = Decoder::new();
        let Value::Seq(items) = &n.value else { panic!() };
        for (i, item) in items.iter().enumerate() {
            let mut f = Fields::of(&mut d, item, &index("xs", i)).unwrap();
            f.ignored(&mut d, &["node"]);
            f.finish(&mut d);
        }
        assert!(d.errors.is_empty());
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].path, "xs[0].node");
    }

    proto_enum! {
        pub enum Color { Red = ("RED", 0), Blue = ("BLUE", 1) }
    }

    #[test]
    fn enums_by_name_or_number() {
        let n = parse("[RED, 1, GREEN, red, Blue]").unwrap();
        let mut d = Decoder::new();
        let v: Vec<Color> = d.decode(&n, "c").unwrap();
        assert_eq!(v, vec![Color::Red, Color::Blue, Color::Red, Color::Blue]);
        assert_eq!(d.errors.len(), 1);
        assert!(d.errors[0].message.contains("RED, BLUE"));
    }

    #[test]
    fn typed_config_type_name() {
        let n = parse("\"@type\": type.googleapis.com/envoy.x.v3.Foo\nbar: 1\n").unwrap();
        let mut d = Decoder::new();
        let mut t = typed_config(&mut d, &n, "f").unwrap();
        assert_eq!(t.type_name, "envoy.x.v3.Foo");
        assert_eq!(t.fields.opt::<u32>(&mut d, "bar"), Some(1));
        t.fields.finish(&mut d);
        assert!(d.errors.is_empty());
    }
}
