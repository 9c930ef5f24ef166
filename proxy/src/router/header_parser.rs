//! Applying one level of `*_headers_to_add` / `*_headers_to_remove`, as Envoy's
//! `HeaderParser::evaluateHeaders`:
//!
//! 1. remove every `*_headers_to_remove` name;
//! 2. format every value against the headers as they are now (so no added value sees
//!    another one of the same level), dropping empty values unless `keep_empty_value`;
//! 3. decide per `append_action` on the headers as they were before any add:
//!    `APPEND_IF_EXISTS_OR_ADD` adds, `ADD_IF_ABSENT` adds only when absent,
//!    `OVERWRITE_IF_EXISTS_OR_ADD` replaces (or adds), `OVERWRITE_IF_EXISTS` replaces
//!    only when present;
//! 4. apply all overwrites, then all adds.

use std::borrow::Cow;

use sluice_config::core::AppendAction;
use sluice_config::route::HeaderMutations;

use crate::http::HeaderMap;

use super::formatter::{format, FormatContext};

/// The decided changes of one level, ready to apply.
pub(crate) struct Plan<'t> {
    overwrite: Vec<(&'t str, Cow<'t, [u8]>)>,
    add: Vec<(&'t str, Cow<'t, [u8]>)>,
}

/// Step 1: removals.
pub(crate) fn remove(m: &HeaderMutations, headers: &mut HeaderMap) {
    for name in &m.to_remove {
        headers.remove(name.as_bytes());
    }
}

/// Steps 2 and 3, against `headers` (the map about to be mutated) and the context the
/// formatters read.
pub(crate) fn plan<'t>(m: &'t HeaderMutations, headers: &HeaderMap, cx: &FormatContext<'_>) -> Plan<'t> {
    let mut p = Plan { overwrite: Vec::new(), add: Vec::new() };
    for h in &m.to_add {
        let value = format(&h.value, cx);
        if value.is_empty() && !h.keep_empty_value {
            continue;
        }
        let key = h.key.as_str();
        match h.append_action {
            AppendAction::AppendIfExistsOrAdd => p.add.push((key, value)),
            AppendAction::AddIfAbsent => {
                if !headers.contains(key.as_bytes()) {
                    p.add.push((key, value));
                }
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains(key.as_bytes()) {
                    p.overwrite.push((key, value));
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => p.overwrite.push((key, value)),
        }
    }
    p
}

/// Step 4.
pub(crate) fn apply(p: Plan<'_>, headers: &mut HeaderMap) {
    for (k, v) in &p.overwrite {
        headers.set(k.as_bytes(), v);
    }
    for (k, v) in &p.add {
        headers.append(k.as_bytes(), v);
    }
}
