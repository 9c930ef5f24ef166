//! The test file: Envoy's `test/tools/router_check/validation.proto` (`Validation`),
//! decoded with the config decoder, so JSON or YAML (JSON with trailing commas too),
//! snake_case or lowerCamelCase, unknown fields rejected with their path and line.
//!
//! As in Envoy, an absent `validate` field is not checked, while `""` is checked and
//! means "expect nothing".

use sluice_config::decode::{join, Decode, Decoder, Fields};
use sluice_config::error::{ErrorKind, Warning};
use sluice_config::matcher::HeaderMatcher;
use sluice_config::metadata::{decode_struct, update_struct, Metadata, Struct};
use sluice_config::node::Node;

/// `Validation`.
#[derive(Debug, Clone)]
pub struct Validation {
    pub tests: Vec<ValidationItem>,
}

impl Decode for Validation {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let tests: Vec<ValidationItem> = f.list(d, "tests");
        // Engine settings such as `re2.max_program_size.error_level`.
        if let Some(n) = f.take("runtime") {
            d.warnings.push(Warning {
                path: f.field_path("runtime"),
                line: n.line,
                message: "runtime overrides have no effect in sluice route-check".into(),
            });
        }
        f.finish(d);
        if tests.is_empty() && d.errors.is_empty() {
            d.error(ErrorKind::Invalid, &join(path, "tests"), line, "a test file needs at least one test");
        }
        Some(Validation { tests })
    }
}

/// `ValidationItem`.
#[derive(Debug, Clone)]
pub struct ValidationItem {
    pub test_name: String,
    pub input: ValidationInput,
    pub validate: ValidationAssert,
}

impl Decode for ValidationItem {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let test_name: Option<String> = f.req(d, "test_name");
        let input: Option<ValidationInput> = f.req(d, "input");
        let validate: Option<ValidationAssert> = f.req(d, "validate");
        f.finish(d);
        let test_name = test_name?;
        if test_name.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.test_name"), line, "must not be empty");
            return None;
        }
        Some(ValidationItem { test_name, input: input?, validate: validate? })
    }
}

/// `config.core.v3.HeaderValue` as the tool uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue {
    pub key: String,
    pub value: String,
}

impl Decode for HeaderValue {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let key: Option<String> = f.req(d, "key");
        let value: String = f.or(d, "value", String::new());
        f.finish(d);
        let key = key?;
        if key.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.key"), line, "must not be empty");
            return None;
        }
        Some(HeaderValue { key: key.to_ascii_lowercase(), value })
    }
}

/// `ValidationInput`.
#[derive(Debug, Clone)]
pub struct ValidationInput {
    pub authority: String,
    pub path: String,
    pub method: String,
    pub random_value: u64,
    pub ssl: bool,
    pub internal: bool,
    pub additional_request_headers: Vec<HeaderValue>,
    pub additional_response_headers: Vec<HeaderValue>,
    /// The one runtime key that is "on" for this test: a route's `runtime_fraction`
    /// matches only when its key is this one and `random_value` falls in its default
    /// fraction (the tool's `runtimeMock`).
    pub runtime: String,
    /// Dynamic metadata set on the stream before routing, in order.
    pub dynamic_metadata: Vec<SetMetadata>,
}

/// `extensions.filters.http.set_metadata.v3.Metadata`, the tool's `dynamic_metadata`
/// input: `value` goes into `metadata_namespace`; when the namespace already has a
/// value it is merged in (`StructUtil::update`) only with `allow_overwrite`.
#[derive(Debug, Clone)]
pub struct SetMetadata {
    pub metadata_namespace: String,
    pub value: Option<Struct>,
    pub allow_overwrite: bool,
}

impl Decode for SetMetadata {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let ns: Option<String> = f.req(d, "metadata_namespace");
        let value = match f.take("value") {
            Some(n) => Some(decode_struct(d, n, &join(path, "value"))?),
            None => None,
        };
        let allow_overwrite = f.or(d, "allow_overwrite", false);
        // Typed metadata is never read by route matching.
        f.unsupported(d, &["typed_value"]);
        f.finish(d);
        let ns = ns?;
        if ns.is_empty() {
            d.error(ErrorKind::Invalid, &join(path, "metadata_namespace"), line, "must not be empty");
            return None;
        }
        Some(SetMetadata { metadata_namespace: ns, value, allow_overwrite })
    }
}

/// Apply the `dynamic_metadata` inputs as the tool's `applyDynamicMetadata` does.
pub fn apply_dynamic_metadata(inputs: &[SetMetadata]) -> Metadata {
    let mut md = Metadata::default();
    for m in inputs {
        let Some(value) = &m.value else { continue };
        match md.filter_metadata.get_mut(&m.metadata_namespace) {
            None => {
                md.filter_metadata.insert(m.metadata_namespace.clone(), value.clone());
            }
            Some(existing) if m.allow_overwrite => update_struct(existing, value),
            Some(_) => {}
        }
    }
    md
}

impl Decode for ValidationInput {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let authority: Option<String> = f.req(d, "authority");
        let path_value: Option<String> = f.req(d, "path");
        let method: String = f.or(d, "method", String::new());
        let random_value: u64 = f.or(d, "random_value", 0);
        let ssl = f.or(d, "ssl", false);
        let internal = f.or(d, "internal", false);
        let additional_request_headers = f.list(d, "additional_request_headers");
        let additional_response_headers = f.list(d, "additional_response_headers");
        let runtime: String = f.or(d, "runtime", String::new());
        let dynamic_metadata: Vec<SetMetadata> = f.list(d, "dynamic_metadata");
        f.finish(d);
        let (authority, path_value) = (authority?, path_value?);
        for (name, v) in [("authority", &authority), ("path", &path_value)] {
            if v.is_empty() {
                d.error(ErrorKind::Invalid, &format!("{path}.{name}"), line, "must not be empty");
                return None;
            }
        }
        Some(ValidationInput {
            authority,
            path: path_value,
            method,
            random_value,
            ssl,
            internal,
            additional_request_headers,
            additional_response_headers,
            runtime,
            dynamic_metadata,
        })
    }
}

/// `ValidationAssert`: `None` = not checked.
#[derive(Debug, Clone, Default)]
pub struct ValidationAssert {
    pub cluster_name: Option<String>,
    pub virtual_cluster_name: Option<String>,
    pub virtual_host_name: Option<String>,
    pub host_rewrite: Option<String>,
    pub path_rewrite: Option<String>,
    pub path_redirect: Option<String>,
    pub code_redirect: Option<u32>,
    pub request_header_matches: Vec<HeaderMatcher>,
    pub response_header_matches: Vec<HeaderMatcher>,
    /// Deprecated: exact first value (`""` = absent).
    pub request_header_fields: Vec<HeaderValue>,
    pub response_header_fields: Vec<HeaderValue>,
}

/// A `google.protobuf.StringValue`: a present `null` is "not set", `""` is checked.
fn string_value(d: &mut Decoder, f: &mut Fields<'_>, name: &'static str) -> Option<String> {
    f.opt(d, name)
}

impl Decode for ValidationAssert {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let a = ValidationAssert {
            cluster_name: string_value(d, &mut f, "cluster_name"),
            virtual_cluster_name: string_value(d, &mut f, "virtual_cluster_name"),
            virtual_host_name: string_value(d, &mut f, "virtual_host_name"),
            host_rewrite: string_value(d, &mut f, "host_rewrite"),
            path_rewrite: string_value(d, &mut f, "path_rewrite"),
            path_redirect: string_value(d, &mut f, "path_redirect"),
            code_redirect: f.opt(d, "code_redirect"),
            request_header_matches: f.list(d, "request_header_matches"),
            response_header_matches: f.list(d, "response_header_matches"),
            request_header_fields: f.list(d, "request_header_fields"),
            response_header_fields: f.list(d, "response_header_fields"),
        };
        f.finish(d);
        Some(a)
    }
}
