//! `extensions.filters.http.header_to_metadata.v3.Config`: the filter's config, and
//! the same message per route (which must have rules). Validation follows Envoy's
//! header_to_metadata_filter.cc `Rule::Rule` and `Config::Config`.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::{decode_header_name, RegexRewrite};
use crate::node::Node;
use crate::proto_enum;

pub const HEADER_TO_METADATA_TYPE: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config";

/// The namespace used when a rule names none (Envoy's filter name).
pub const DEFAULT_NAMESPACE: &str = "envoy.filters.http.header_to_metadata";

proto_enum! {
    /// `Config.ValueType`.
    pub enum ValueType {
        String = ("STRING", 0),
        Number = ("NUMBER", 1),
        /// A serialized `google.protobuf.Value`.
        ProtobufValue = ("PROTOBUF_VALUE", 2),
    }
}

proto_enum! {
    /// `Config.ValueEncode`.
    pub enum ValueEncode {
        None = ("NONE", 0),
        Base64 = ("BASE64", 1),
    }
}

/// `Config.KeyValuePair`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValuePair {
    /// Never empty: an empty `metadata_namespace` is [`DEFAULT_NAMESPACE`].
    pub metadata_namespace: String,
    pub key: String,
    /// `""`: the header's value (on_header_present only).
    pub value: String,
    pub regex_value_rewrite: Option<RegexRewrite>,
    pub r#type: ValueType,
    pub encode: ValueEncode,
}

impl Decode for KeyValuePair {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let ns: String = f.or(d, "metadata_namespace", String::new());
        let key: Option<String> = f.req(d, "key");
        let value: String = f.or(d, "value", String::new());
        let regex_value_rewrite = f.opt(d, "regex_value_rewrite");
        let r#type = f.or(d, "type", ValueType::String);
        let encode = f.or(d, "encode", ValueEncode::None);
        f.finish(d);
        let key = key?;
        if key.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.key"), line, "must not be empty");
            return None;
        }
        let metadata_namespace = if ns.is_empty() { DEFAULT_NAMESPACE.to_string() } else { ns };
        Some(KeyValuePair { metadata_namespace, key, value, regex_value_rewrite, r#type, encode })
    }
}

/// Where a rule reads its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// `header` (lower-cased): every value joined with `,`.
    Header(String),
    /// `cookie`: the value of the first cookie of that name.
    Cookie(String),
}

/// `Config.Rule`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub selector: Selector,
    pub on_header_present: Option<KeyValuePair>,
    pub on_header_missing: Option<KeyValuePair>,
    /// Remove the header once read (headers only).
    pub remove: bool,
}

impl Decode for Rule {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let header = match f.take("header") {
            Some(n) => Some(decode_header_name(d, n, &f.field_path("header"))?),
            None => None,
        };
        let cookie: Option<String> = f.opt(d, "cookie");
        let present: Option<KeyValuePair> = f.opt(d, "on_header_present");
        let missing: Option<KeyValuePair> = f.opt(d, "on_header_missing");
        let remove = f.or(d, "remove", false);
        f.finish(d);
        let mut err = |msg: &str| {
            d.error(ErrorKind::Invalid, path, line, msg);
            None
        };
        let selector = match (header.filter(|h| !h.is_empty()), cookie.filter(|c| !c.is_empty())) {
            (Some(_), Some(_)) => return err("Cannot specify both header and cookie in the same rule"),
            (Some(h), None) => Selector::Header(h),
            (None, Some(c)) => {
                if remove {
                    return err("Cannot specify remove for cookie");
                }
                Selector::Cookie(c)
            }
            (None, None) => return err("One of Cookie or Header option needs to be specified"),
        };
        if present.is_none() && missing.is_none() {
            return err("a rule needs `on_header_present` or `on_header_missing`");
        }
        if let Some(p) = &present {
            if !p.value.is_empty() && p.regex_value_rewrite.is_some() {
                return err("Cannot specify both value and regex_value_rewrite");
            }
        }
        if let Some(m) = &missing {
            if m.value.is_empty() {
                return err("Cannot specify on_header_missing rule with an empty value");
            }
        }
        Some(Rule { selector, on_header_present: present, on_header_missing: missing, remove })
    }
}

/// `Config`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderToMetadata {
    pub request_rules: Vec<Rule>,
    pub response_rules: Vec<Rule>,
    /// `stat_prefix`: stats only when set.
    pub stat_prefix: String,
}

impl HeaderToMetadata {
    pub fn decode_fields(d: &mut Decoder, mut f: Fields<'_>, per_route: bool) -> Option<HeaderToMetadata> {
        let line = f.line();
        let path = f.path().to_string();
        let request_rules: Vec<Rule> = f.list(d, "request_rules");
        let response_rules: Vec<Rule> = f.list(d, "response_rules");
        let stat_prefix = f.or(d, "stat_prefix", String::new());
        f.finish(d);
        if per_route && request_rules.is_empty() && response_rules.is_empty() {
            d.error(
                ErrorKind::Invalid,
                &path,
                line,
                "header_to_metadata_filter: Per filter configs must at least specify either request or response rules",
            );
            return None;
        }
        Some(HeaderToMetadata { request_rules, response_rules, stat_prefix })
    }
}
