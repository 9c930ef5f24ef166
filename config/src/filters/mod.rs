//! HTTP filter configs beyond fault and router, and `typed_per_filter_config`: the
//! per-route (virtual host, route configuration) filter configs keyed by the filter's
//! name in `http_filters`, with `config.route.v3.FilterConfig` (`config`, `disabled`,
//! `is_optional`) as Envoy's `PerFilterConfigs` reads them.
//!
//! A per-route config is selected by its `@type`. An unknown type is an error naming
//! its path ("Didn't find a registered implementation"), unless it sits in a
//! `FilterConfig` with `is_optional: true`, which is skipped with a warning.

pub mod buffer;
pub mod compression;
pub mod compressor;
pub mod cors;
pub mod csrf;
pub mod decompressor;
pub mod ext_authz;
pub mod grpc;
pub mod header_to_metadata;
pub mod health_check;
pub mod jwt_authn;
pub mod local_ratelimit;
pub mod lua;
pub mod ratelimit;
pub mod rbac;
pub mod rbac_matcher;

use crate::decode::{typed_config, Decoder, TypedConfig};
use crate::error::ErrorKind;
use crate::node::{Node, Value};

use self::buffer::{BufferPerRoute, BUFFER_PER_ROUTE_TYPE};
use self::compressor::{CompressorPerRoute, COMPRESSOR_PER_ROUTE_TYPE};
use self::cors::{CorsPolicy, CORS_POLICY_TYPE};
use self::csrf::{CsrfPolicy, CSRF_TYPE};
use self::ext_authz::{ExtAuthzPerRoute, EXT_AUTHZ_PER_ROUTE_TYPE};
use self::header_to_metadata::{HeaderToMetadata, HEADER_TO_METADATA_TYPE};
use self::jwt_authn::{JwtPerRoute, JWT_PER_ROUTE_TYPE};
use self::local_ratelimit::{LocalRateLimit, LOCAL_RATE_LIMIT_TYPE};
use self::lua::{LuaPerRoute, LUA_PER_ROUTE_TYPE};
use self::ratelimit::{RateLimitPerRoute, RATE_LIMIT_PER_ROUTE_TYPE};
use self::rbac::{RbacPerRoute, RBAC_PER_ROUTE_TYPE};

const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";

/// A filter's per-route config message.
#[derive(Debug, Clone, PartialEq)]
pub enum PerRouteConfig {
    Buffer(BufferPerRoute),
    Compressor(CompressorPerRoute),
    Cors(CorsPolicy),
    Csrf(CsrfPolicy),
    ExtAuthz(ExtAuthzPerRoute),
    HeaderToMetadata(HeaderToMetadata),
    LocalRateLimit(LocalRateLimit),
    Rbac(RbacPerRoute),
    JwtAuthn(JwtPerRoute),
    Lua(LuaPerRoute),
    RateLimit(RateLimitPerRoute),
}

/// One `typed_per_filter_config` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfigEntry {
    /// The filter's `name` in `http_filters`.
    pub name: String,
    /// `FilterConfig.disabled`: the filter does not run for this route.
    pub disabled: bool,
    /// `None`: the filter is enabled here with its own config (an empty
    /// `FilterConfig.config`, or an optional config of an unknown type).
    pub config: Option<PerRouteConfig>,
}

/// `typed_per_filter_config` of a route, virtual host or route configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerFilterConfigs(pub Vec<FilterConfigEntry>);

impl PerFilterConfigs {
    pub fn get(&self, name: &str) -> Option<&FilterConfigEntry> {
        self.0.iter().find(|e| e.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decode the map (absent: empty).
    pub(crate) fn decode(d: &mut Decoder, node: Option<&Node>, path: &str) -> PerFilterConfigs {
        let Some(node) = node else {
            return PerFilterConfigs::default();
        };
        let Value::Map(entries) = &node.value else {
            if node.value != Value::Null {
                d.invalid(node, path, "typed_per_filter_config must be a map of filter name to config");
            }
            return PerFilterConfigs::default();
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let p = format!("{path}.{}", k.name);
            if let Some(e) = decode_entry(d, &k.name, v, &p) {
                out.push(e);
            }
        }
        PerFilterConfigs(out)
    }
}

fn decode_entry(d: &mut Decoder, name: &str, node: &Node, path: &str) -> Option<FilterConfigEntry> {
    let t = typed_config(d, node, path)?;
    if t.type_name != FILTER_CONFIG_TYPE {
        let config = decode_per_route(d, t, path, false)?;
        return Some(FilterConfigEntry { name: name.to_string(), disabled: false, config });
    }
    let mut f = t.fields;
    let disabled = f.or(d, "disabled", false);
    let is_optional = f.or(d, "is_optional", false);
    let inner = f.take("config");
    let inner_path = f.field_path("config");
    f.finish(d);
    if disabled {
        // Envoy: an explicitly disabled filter's config is not looked at.
        return Some(FilterConfigEntry { name: name.to_string(), disabled: true, config: None });
    }
    let Some(inner) = inner else {
        d.error(
            ErrorKind::Missing,
            path,
            node.line,
            format!("Empty route/virtual host per filter configuration for {name} filter"),
        );
        return None;
    };
    if matches!(&inner.value, Value::Map(m) if m.is_empty()) {
        // An empty `config`: the filter is enabled explicitly, with its own config.
        return Some(FilterConfigEntry { name: name.to_string(), disabled: false, config: None });
    }
    let t = typed_config(d, inner, &inner_path)?;
    let config = decode_per_route(d, t, &inner_path, is_optional)?;
    Some(FilterConfigEntry { name: name.to_string(), disabled: false, config })
}

/// `Some(None)`: an optional config of an unknown type (skipped, the filter enabled).
fn decode_per_route(
    d: &mut Decoder,
    t: TypedConfig<'_>,
    path: &str,
    is_optional: bool,
) -> Option<Option<PerRouteConfig>> {
    let line = t.fields.line();
    Some(Some(match t.type_name.as_str() {
        BUFFER_PER_ROUTE_TYPE => PerRouteConfig::Buffer(BufferPerRoute::decode_fields(d, t.fields)?),
        COMPRESSOR_PER_ROUTE_TYPE => PerRouteConfig::Compressor(CompressorPerRoute::decode_fields(d, t.fields)?),
        CORS_POLICY_TYPE => PerRouteConfig::Cors(CorsPolicy::decode_fields(d, t.fields)?),
        CSRF_TYPE => PerRouteConfig::Csrf(CsrfPolicy::decode_fields(d, t.fields)?),
        EXT_AUTHZ_PER_ROUTE_TYPE => PerRouteConfig::ExtAuthz(ExtAuthzPerRoute::decode_fields(d, t.fields)?),
        HEADER_TO_METADATA_TYPE => {
            PerRouteConfig::HeaderToMetadata(HeaderToMetadata::decode_fields(d, t.fields, true)?)
        }
        LOCAL_RATE_LIMIT_TYPE => PerRouteConfig::LocalRateLimit(LocalRateLimit::decode_fields(d, t.fields, true)?),
        RBAC_PER_ROUTE_TYPE => PerRouteConfig::Rbac(RbacPerRoute::decode_fields(d, t.fields)?),
        JWT_PER_ROUTE_TYPE => PerRouteConfig::JwtAuthn(JwtPerRoute::decode_fields(d, t.fields)?),
        LUA_PER_ROUTE_TYPE => PerRouteConfig::Lua(LuaPerRoute::decode_fields(d, t.fields)?),
        RATE_LIMIT_PER_ROUTE_TYPE => PerRouteConfig::RateLimit(RateLimitPerRoute::decode_fields(d, t.fields)?),
        other if is_optional => {
            d.warn(
                &format!("{path}.@type"),
                line,
                format!("optional per-route filter config of type `{other}` is not supported by sluice: skipped"),
            );
            return Some(None);
        }
        other => {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.@type"),
                line,
                format!("Didn't find a registered implementation for per-route filter config with type URL: `{other}`"),
            );
            return None;
        }
    }))
}

#[cfg(test)]
mod tests;
