//! Envoy's discovery messages on the wire, through the descriptors of Envoy's own
//! protos: `DiscoveryRequest` / `DeltaDiscoveryRequest` encoded from JSON, responses
//! decoded and their resources (`google.protobuf.Any`) written as proto3 JSON, the
//! tree sluice's config decoder reads.
//!
//! The descriptors are the FileDescriptorSet of the whole xDS API
//! (proxy/proto/xds/xds-descriptors.bin, see scripts/xds_descriptor.sh): every Envoy
//! message and extension a resource may carry, so an `Any` inside a resource (an HCM's
//! `typed_config`) is expanded by its `@type` as a YAML bootstrap writes it. Checked in
//! rather than compiled at build time: a protobuf compiler in the build costs minutes
//! on a clean build for a schema that changes only with Envoy's.
//!
//! The JSON is pretty-printed, one field a line, so that a decoder error's line points
//! into the resource it names. Nothing here panics on input: a response that does not
//! decode, or holds a type the descriptors lack, is an error for the caller to NACK.

use std::sync::LazyLock;

use prost_reflect::prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions, Value};

static DESCRIPTORS: &[u8] = include_bytes!("../../../proto/xds/xds-descriptors.bin");

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("xDS descriptors: {e}")));

fn message(name: &str) -> Result<MessageDescriptor, String> {
    let pool = POOL.as_ref().map_err(Clone::clone)?;
    pool.get_message_by_name(name).ok_or_else(|| format!("xDS descriptors: no message `{name}`"))
}

/// Encode `json` (proto3 JSON) as the message `name`.
pub fn encode(name: &str, json: &serde_json::Value) -> Result<Vec<u8>, String> {
    let desc = message(name)?;
    let msg = DynamicMessage::deserialize(desc, json).map_err(|e| format!("{name}: {e}"))?;
    Ok(msg.encode_to_vec())
}

/// A message as pretty proto3 JSON (field names as in the .proto, 64-bit integers as
/// numbers, `Any` expanded with its `@type`).
pub fn to_json(msg: &DynamicMessage) -> Result<String, String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::pretty(&mut out);
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
    msg.serialize_with_options(&mut ser, &opts).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// A state-of-the-world `DiscoveryResponse`, as the config decoder reads it.
#[derive(Debug, Clone)]
pub struct Response {
    pub type_url: String,
    pub version_info: String,
    pub nonce: String,
    /// `{version_info, resources: [{"@type": ..., ...}]}` as pretty JSON.
    pub document: String,
    /// The fields its descriptors do not know (see [`unknown_fields`]).
    pub unknown_fields: Vec<String>,
}

/// An incremental `DeltaDiscoveryResponse`.
#[derive(Debug, Clone)]
pub struct DeltaResponse {
    pub type_url: String,
    pub system_version_info: String,
    pub nonce: String,
    /// Each added or changed resource: its name, version and body as
    /// `{resources: [{"@type": ..., ...}]}` (one resource) pretty JSON.
    pub resources: Vec<(String, String, String)>,
    pub removed: Vec<String>,
    /// The fields of the resources that their descriptors do not know.
    pub unknown_fields: Vec<String>,
}

fn text(msg: &DynamicMessage, field: &str) -> String {
    match msg.get_field_by_name(field).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Decode a `DiscoveryResponse`.
pub fn decode_response(bytes: &[u8]) -> Result<Response, String> {
    let mut msg = DynamicMessage::decode(message("envoy.service.discovery.v3.DiscoveryResponse")?, bytes)
        .map_err(|e| format!("DiscoveryResponse: {e}"))?;
    let (type_url, version_info, nonce) = (text(&msg, "type_url"), text(&msg, "version_info"), text(&msg, "nonce"));
    // What the document holds is what a resource file holds.
    for f in ["nonce", "canary", "control_plane", "type_url"] {
        msg.clear_field_by_name(f);
    }
    let mut unknown = Vec::new();
    unknown_fields(&msg, "", &mut unknown);
    let document = to_json(&msg)?;
    Ok(Response { type_url, version_info, nonce, document, unknown_fields: unknown })
}

/// Decode a `DeltaDiscoveryResponse`.
pub fn decode_delta_response(bytes: &[u8]) -> Result<DeltaResponse, String> {
    let msg = DynamicMessage::decode(message("envoy.service.discovery.v3.DeltaDiscoveryResponse")?, bytes)
        .map_err(|e| format!("DeltaDiscoveryResponse: {e}"))?;
    let mut resources = Vec::new();
    let mut unknown = Vec::new();
    if let Some(Value::List(list)) = msg.get_field_by_name("resources").as_deref() {
        for (i, r) in list.iter().enumerate() {
            let Value::Message(r) = r else { continue };
            let (name, version) = (text(r, "name"), text(r, "version"));
            let Some(Value::Message(any)) = r.get_field_by_name("resource").as_deref().cloned() else {
                return Err(format!("resource `{name}` has no body"));
            };
            unknown_fields(&any, &format!("resources[{i}]"), &mut unknown);
            let body = to_json(&any)?;
            resources.push((name, version, format!("{{\"resources\": [\n{body}\n]}}")));
        }
    }
    let removed = match msg.get_field_by_name("removed_resources").as_deref() {
        Some(Value::List(l)) => l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    Ok(DeltaResponse {
        type_url: text(&msg, "type_url"),
        system_version_info: text(&msg, "system_version_info"),
        nonce: text(&msg, "nonce"),
        resources,
        removed,
        unknown_fields: unknown,
    })
}

/// Collect the fields of `msg` and of every message in it, `Any` payloads included,
/// that its descriptor does not know (kept by the decoder, dropped from the JSON), as
/// `path: unknown field number N`: Envoy's "unknown fields" of a dynamic resource.
pub fn unknown_fields(msg: &DynamicMessage, path: &str, out: &mut Vec<String>) {
    for f in msg.unknown_fields() {
        out.push(format!("{}: unknown field number {}", if path.is_empty() { "(root)" } else { path }, f.number()));
    }
    if msg.descriptor().full_name() == "google.protobuf.Any" {
        let type_url = text(msg, "type_url");
        let value = match msg.get_field_by_name("value").as_deref() {
            Some(Value::Bytes(b)) => b.clone(),
            _ => return,
        };
        let name = type_url.rsplit('/').next().unwrap_or_default();
        if let Ok(inner) = message(name).and_then(|d| DynamicMessage::decode(d, value).map_err(|e| e.to_string())) {
            unknown_fields(&inner, path, out);
        }
        return;
    }
    for (field, value) in msg.fields() {
        let p = if path.is_empty() { field.name().to_string() } else { format!("{path}.{}", field.name()) };
        unknown_in_value(value, &p, out);
    }
}

fn unknown_in_value(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Message(m) => unknown_fields(m, path, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_in_value(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            for item in entries.values() {
                unknown_in_value(item, path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_with_a_listener_reads_as_a_resource_file() {
        let listener = serde_json::json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "l1",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
            "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "ingress",
                "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/"}, "route": {"cluster": "c", "timeout": "1.500s"}}]}]},
                "http_filters": [{"name": "router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }}]}]
        });
        let bytes = encode(
            "envoy.service.discovery.v3.DiscoveryResponse",
            &serde_json::json!({"version_info": "v1", "nonce": "n1", "type_url": sluice_config::xds::LISTENER_TYPE,
                "resources": [listener]}),
        )
        .unwrap();
        let r = decode_response(&bytes).unwrap();
        assert_eq!((r.version_info.as_str(), r.nonce.as_str()), ("v1", "n1"));
        assert_eq!(r.type_url, sluice_config::xds::LISTENER_TYPE);
        let (res, _) = sluice_config::xds::decode_resources::<sluice_config::listener::Listener>(
            &r.document,
            sluice_config::xds::LISTENER_TYPE,
        )
        .unwrap();
        assert_eq!(res.version_info, "v1");
        assert_eq!(res.items[0].name, "l1");
    }

    #[test]
    fn unknown_fields_inside_a_resource_are_found() {
        let listener = serde_json::json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "l1",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
        });
        let mut body = listener.clone();
        body.as_object_mut().unwrap().remove("@type");
        let mut bytes = encode("envoy.config.listener.v3.Listener", &body).unwrap();
        // Field 999 (varint 7): not part of Listener.
        bytes.extend_from_slice(&[0xb8, 0x3e, 0x07]);
        let any =
            prost_reflect::prost_types::Any { type_url: sluice_config::xds::LISTENER_TYPE.to_string(), value: bytes };
        let mut response = encode(
            "envoy.service.discovery.v3.DiscoveryResponse",
            &serde_json::json!({"version_info": "v1", "type_url": sluice_config::xds::LISTENER_TYPE}),
        )
        .unwrap();
        // resources (field 2) holding the Any.
        let any_bytes = any.encode_to_vec();
        response.push(0x12);
        prost_reflect::prost::encoding::encode_varint(any_bytes.len() as u64, &mut response);
        response.extend_from_slice(&any_bytes);
        let r = decode_response(&response).unwrap();
        assert_eq!(r.unknown_fields, vec!["resources[0]: unknown field number 999".to_string()]);
        let clean = encode(
            "envoy.service.discovery.v3.DiscoveryResponse",
            &serde_json::json!({"version_info": "v1", "type_url": sluice_config::xds::LISTENER_TYPE, "resources": [listener]}),
        )
        .unwrap();
        assert!(decode_response(&clean).unwrap().unknown_fields.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_response(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_delta_response(&[0x0a, 0x05, 1]).is_err());
    }
}
