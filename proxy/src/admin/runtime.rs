//! `GET /runtime` and `POST /runtime_modify`, as Envoy's `RuntimeHandler`.
//!
//! `/runtime` answers `{"entries": {KEY: {"final_value": V, "layer_values": [..]}},
//! "layers": [NAMES]}`: every key any layer holds (sorted), its value in each layer
//! (`""` where a layer lacks it) and the value in force. `/runtime_modify?k=v&...`
//! writes the admin layer (an empty value removes that key's override) and publishes
//! a new snapshot at once; without query parameters it answers 400 with the usage,
//! without an admin layer 503 "No admin layer specified". The parameters come from the
//! query string only: a form body is a content type a browser may send cross-origin,
//! which the admin server refuses on mutating endpoints (see `guard`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::handlers::{json_str, Response};
use super::AdminState;

/// `GET /runtime`.
pub fn show(state: &AdminState) -> Response {
    let snapshot = state.runtime.lock().unwrap_or_else(|e| e.into_inner()).snapshot();
    let layers = snapshot.layers();
    let keys: BTreeSet<&String> = layers.iter().flat_map(|l| l.values.keys()).collect();
    let mut s = String::from("{\n \"entries\": {");
    for (i, key) in keys.iter().enumerate() {
        let _ = write!(s, "{}\n  {}: {{\n   \"final_value\": ", if i > 0 { "," } else { "" }, json_str(key));
        s.push_str(&json_str(snapshot.get(key).unwrap_or("")));
        s.push_str(",\n   \"layer_values\": [");
        for (j, l) in layers.iter().enumerate() {
            let v = l.values.get(*key).map(|e| e.raw.as_str()).unwrap_or("");
            let _ = write!(s, "{}{}", if j > 0 { ", " } else { "" }, json_str(v));
        }
        s.push_str("]\n  }");
    }
    s.push_str(if keys.is_empty() { "},\n \"layers\": [" } else { "\n },\n \"layers\": [" });
    for (j, l) in layers.iter().enumerate() {
        let _ = write!(s, "{}{}", if j > 0 { ", " } else { "" }, json_str(&l.name));
    }
    s.push_str("]\n}\n");
    Response::json(s)
}

/// `POST /runtime_modify`.
pub fn modify(state: &AdminState, params: &[(String, String)]) -> Response {
    if params.is_empty() {
        return Response::text(
            400,
            "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\nuse an empty value to remove a previously added override",
        );
    }
    let mut loader = state.runtime.lock().unwrap_or_else(|e| e.into_inner());
    match loader.merge_admin(params) {
        Ok(()) => Response::text(200, "OK\n"),
        Err(e) => Response::text(503, e),
    }
}
