//! `*_headers_to_add` / `*_headers_to_remove` at route-config, virtual-host, route and
//! weighted-cluster level, decoded into one [`HeaderMutations`] per direction.
//!
//! As Envoy's `HeaderParser::configure`: pseudo-headers (`:path` ...) and `host` may be
//! neither added nor removed, and every value is parsed into a [`FormatString`] here so
//! a bad `%COMMAND%` fails the load with its path.

use crate::core::{AppendAction, HeaderValueOption};
use crate::decode::{index, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::decode_header_name;
use crate::node::{Node, Value};

use super::formatter::{self, FormatString};

/// One header to add, with its value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderToAdd {
    /// Lower-cased name.
    pub key: String,
    pub value: FormatString,
    pub append_action: AppendAction,
    pub keep_empty_value: bool,
}

/// Headers to remove, then headers to add (Envoy removes first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderMutations {
    pub to_add: Vec<HeaderToAdd>,
    /// Lower-cased names.
    pub to_remove: Vec<String>,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        self.to_add.is_empty() && self.to_remove.is_empty()
    }

    /// Decode the pair of fields `add` / `remove` of message `f`.
    pub fn decode(d: &mut Decoder, f: &mut Fields<'_>, add: &'static str, remove: &'static str) -> HeaderMutations {
        let add_path = f.field_path(add);
        let add_node = f.take(add);
        let remove_path = f.field_path(remove);
        let remove_node = f.take(remove);
        let mut out = HeaderMutations::default();
        if let Some(node) = add_node {
            out.to_add = decode_adds(d, node, &add_path);
        }
        if let Some(node) = remove_node {
            out.to_remove = decode_removes(d, node, &remove_path);
        }
        out
    }
}

/// Envoy's `HeaderUtility::isModifiableHeader`.
pub fn is_modifiable(name: &str) -> bool {
    !name.starts_with(':') && !name.eq_ignore_ascii_case("host")
}

fn items<'n>(d: &mut Decoder, node: &'n Node, path: &str) -> &'n [Node] {
    match &node.value {
        Value::Seq(items) => items,
        Value::Null => &[],
        _ => {
            d.invalid(node, path, format!("expected a list, found a {}", node.kind_name()));
            &[]
        }
    }
}

fn decode_adds(d: &mut Decoder, node: &Node, path: &str) -> Vec<HeaderToAdd> {
    let mut out = Vec::new();
    for (i, item) in items(d, node, path).iter().enumerate() {
        let ipath = index(path, i);
        let Some(opt) = d.decode::<HeaderValueOption>(item, &ipath) else {
            continue;
        };
        if !is_modifiable(&opt.key) {
            d.error(
                ErrorKind::Invalid,
                &format!("{ipath}.header.key"),
                item.line,
                format!("`{}`: :-prefixed or host headers may not be modified", opt.key),
            );
            continue;
        }
        match formatter::parse(&opt.value) {
            Ok(value)
                if value.pieces.iter().any(|p| {
                    matches!(
                        p,
                        formatter::FormatPiece::Command { command: formatter::Command::DynamicMetadata { .. }, .. }
                    )
                }) =>
            {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{ipath}.header.value"),
                    item.line,
                    "%DYNAMIC_METADATA(...)% is supported in access logs only",
                )
            }
            Ok(value) => out.push(HeaderToAdd {
                key: opt.key,
                value,
                append_action: opt.append_action,
                keep_empty_value: opt.keep_empty_value,
            }),
            Err(e) => d.error(ErrorKind::Invalid, &format!("{ipath}.header.value"), item.line, e.0),
        }
    }
    out
}

fn decode_removes(d: &mut Decoder, node: &Node, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, item) in items(d, node, path).iter().enumerate() {
        let ipath = index(path, i);
        let Some(name) = decode_header_name(d, item, &ipath) else {
            continue;
        };
        if !is_modifiable(&name) {
            d.error(
                ErrorKind::Invalid,
                &ipath,
                item.line,
                format!("`{name}`: :-prefixed or host headers may not be removed"),
            );
            continue;
        }
        out.push(name);
    }
    out
}
