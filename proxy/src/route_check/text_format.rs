//! Test files in protobuf text format (`.pb_text`), as Envoy's tool reads them
//! (`MessageUtil::loadFromFile` picks the parser by the file's extension).
//!
//! The text is parsed against the descriptor of route-check's copy of Envoy's
//! `validation.proto` (proxy/proto/router_check/validation.descriptor.bin, made by
//! scripts/router_check_descriptor.sh), so unknown
//! fields and type errors are refused by the protobuf parser with its line and column.
//! The message is then written as proto3 JSON (wrappers as their value, `Struct` as an
//! object, field names as in the .proto) and handed to the loader of YAML/JSON files.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

static DESCRIPTORS: &[u8] = include_bytes!("../../proto/router_check/validation.descriptor.bin");

static VALIDATION: LazyLock<Result<MessageDescriptor, String>> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("route-check schema: {e}"))?;
    pool.get_message_by_name("envoy.RouterCheckToolSchema.Validation")
        .ok_or_else(|| "route-check schema: no envoy.RouterCheckToolSchema.Validation".to_string())
});

/// Whether `path` names a protobuf text file.
pub fn is_text_format(path: &str) -> bool {
    path.ends_with(".pb_text")
}

/// Parse a `Validation` in text format; returns it as JSON.
pub fn to_json(text: &str) -> Result<String, String> {
    let desc = VALIDATION.as_ref().map_err(Clone::clone)?;
    let msg = DynamicMessage::parse_text_format(desc.clone(), text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
    msg.serialize_with_options(&mut ser, &opts).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_the_json_the_loader_reads() {
        let json = to_json(
            r#"tests {
                test_name: "t"
                input: { authority: "a" path: "/" method: "GET" random_value: 115
                         dynamic_metadata { metadata_namespace: "ns" value { fields { key: "k" value { string_value: "v" } } } } }
                validate: { cluster_name: { value: "" } code_redirect { value: 301 } }
            }"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let t = &v["tests"][0];
        assert_eq!(t["input"]["random_value"], 115);
        assert_eq!(t["input"]["dynamic_metadata"][0]["value"]["k"], "v");
        assert_eq!(t["validate"]["cluster_name"], "");
        assert_eq!(t["validate"]["code_redirect"], 301);
        assert!(t["validate"].get("path_redirect").is_none());
    }

    #[test]
    fn unknown_fields_and_bad_syntax_are_errors() {
        assert!(to_json("tests { nope: 1 }").unwrap_err().contains("nope"));
        assert!(to_json("tests { test_name: ").is_err());
    }
}
