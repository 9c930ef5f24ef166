//! `config.route.v3.InternalRedirectPolicy` and the route's deprecated
//! `internal_redirect_action: HANDLE_INTERNAL_REDIRECT` (+ `max_internal_redirects`),
//! which Envoy turns into the same policy (config_impl.cc `buildInternalRedirectPolicy`).
//!
//! Envoy's rules kept here: `max_internal_redirects` defaults to 1;
//! `redirect_response_codes` defaults to `[302]` and only 301, 302, 303, 307 and 308
//! are valid, any other code is ignored (as the proto documents; we warn);
//! `response_headers_to_copy` may not name a pseudo-header or `host`. Predicates are
//! chosen by their `typed_config` type: `previous_routes`, `allow_listed_routes`,
//! `safe_cross_scheme`.

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::decode_header_name;
use crate::node::Node;
use crate::proto_enum;

/// The codes an internal redirect may follow.
pub const VALID_REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

const PREVIOUS_ROUTES: &str = "envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig";
const ALLOW_LISTED_ROUTES: &str = "envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig";
const SAFE_CROSS_SCHEME: &str = "envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig";

/// An `InternalRedirectPredicate` extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalRedirectPredicate {
    /// `envoy.internal_redirect_predicates.previous_routes`: a route already targeted by
    /// a redirect of this route in the chain is refused.
    PreviousRoutes,
    /// `envoy.internal_redirect_predicates.allow_listed_routes`: only these target
    /// routes (by name).
    AllowListedRoutes(Vec<String>),
    /// `envoy.internal_redirect_predicates.safe_cross_scheme`: http -> https refused.
    SafeCrossScheme,
}

impl InternalRedirectPredicate {
    /// The extension's canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            InternalRedirectPredicate::PreviousRoutes => "envoy.internal_redirect_predicates.previous_routes",
            InternalRedirectPredicate::AllowListedRoutes(_) => "envoy.internal_redirect_predicates.allow_listed_routes",
            InternalRedirectPredicate::SafeCrossScheme => "envoy.internal_redirect_predicates.safe_cross_scheme",
        }
    }

    /// The extension's `@type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            InternalRedirectPredicate::PreviousRoutes => PREVIOUS_ROUTES,
            InternalRedirectPredicate::AllowListedRoutes(_) => ALLOW_LISTED_ROUTES,
            InternalRedirectPredicate::SafeCrossScheme => SAFE_CROSS_SCHEME,
        }
    }
}

impl Decode for InternalRedirectPredicate {
    /// A `TypedExtensionConfig {name, typed_config}`.
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let _name: String = f.or(d, "name", String::new());
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        let line = f.line();
        f.finish(d);
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "a predicate needs a typed_config with an `@type`");
            return None;
        };
        let mut t = typed_config(d, tc, &tc_path)?;
        let out = match t.type_name.as_str() {
            PREVIOUS_ROUTES => InternalRedirectPredicate::PreviousRoutes,
            SAFE_CROSS_SCHEME => InternalRedirectPredicate::SafeCrossScheme,
            ALLOW_LISTED_ROUTES => {
                let names: Vec<String> = t.fields.list(d, "allowed_route_names");
                if names.iter().any(String::is_empty) {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{tc_path}.allowed_route_names"),
                        tc.line,
                        "a route name must not be empty",
                    );
                }
                InternalRedirectPredicate::AllowListedRoutes(names)
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!(
                        "unsupported internal redirect predicate `{other}` (sluice has previous_routes, allow_listed_routes, safe_cross_scheme)"
                    ),
                );
                t.fields.finish(d);
                return None;
            }
        };
        t.fields.finish(d);
        Some(out)
    }
}

/// `InternalRedirectPolicy`, as the router applies it to the responses of its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRedirectPolicy {
    /// Redirects one downstream request may follow (Envoy's default 1).
    pub max_internal_redirects: u32,
    /// The valid configured codes (default `[302]`).
    pub redirect_response_codes: Vec<u16>,
    pub predicates: Vec<InternalRedirectPredicate>,
    pub allow_cross_scheme_redirect: bool,
    /// Lower-cased header names copied from the redirect response to the new request.
    pub response_headers_to_copy: Vec<String>,
}

impl Default for InternalRedirectPolicy {
    fn default() -> Self {
        InternalRedirectPolicy {
            max_internal_redirects: 1,
            redirect_response_codes: vec![302],
            predicates: Vec::new(),
            allow_cross_scheme_redirect: false,
            response_headers_to_copy: Vec::new(),
        }
    }
}

impl InternalRedirectPolicy {
    /// Whether a response with this status is redirected internally.
    pub fn should_redirect_for(&self, status: u16) -> bool {
        self.redirect_response_codes.contains(&status)
    }
}

impl Decode for InternalRedirectPolicy {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let max_internal_redirects = f.or(d, "max_internal_redirects", 1u32);
        let codes_path = f.field_path("redirect_response_codes");
        let codes: Vec<u32> = f.list(d, "redirect_response_codes");
        let predicates = f.list(d, "predicates");
        let allow_cross_scheme_redirect = f.or(d, "allow_cross_scheme_redirect", false);
        let copy_path = f.field_path("response_headers_to_copy");
        let copy_nodes: Vec<&Node> = match f.take("response_headers_to_copy") {
            Some(Node { value: crate::node::Value::Seq(items), .. }) => items.iter().collect(),
            Some(n) => {
                d.invalid(n, &copy_path, "expected a list of header names");
                Vec::new()
            }
            None => Vec::new(),
        };
        let line = f.line();
        f.finish(d);
        if codes.len() > 5 {
            d.error(ErrorKind::Invalid, &codes_path, line, "at most 5 codes");
        }
        let redirect_response_codes = if codes.is_empty() {
            vec![302]
        } else {
            let mut out = Vec::new();
            for c in codes {
                match VALID_REDIRECT_CODES.iter().find(|v| u32::from(**v) == c) {
                    Some(v) => out.push(*v),
                    None => d.warn(
                        &codes_path,
                        line,
                        format!("{c} is ignored, as Envoy does: only 301, 302, 303, 307 and 308 are redirected"),
                    ),
                }
            }
            out
        };
        let mut response_headers_to_copy = Vec::new();
        for (i, n) in copy_nodes.into_iter().enumerate() {
            let p = format!("{copy_path}[{i}]");
            let Some(name) = decode_header_name(d, n, &p) else { continue };
            if name.starts_with(':') || name == "host" {
                d.invalid(n, &p, "response_headers_to_copy cannot contain pseudo-headers or `host`");
                continue;
            }
            response_headers_to_copy.push(name);
        }
        Some(InternalRedirectPolicy {
            max_internal_redirects,
            redirect_response_codes,
            predicates,
            allow_cross_scheme_redirect,
            response_headers_to_copy,
        })
    }
}

proto_enum! {
    /// `RouteAction.InternalRedirectAction` (deprecated).
    pub enum InternalRedirectAction {
        PassThrough = ("PASS_THROUGH_INTERNAL_REDIRECT", 0),
        Handle = ("HANDLE_INTERNAL_REDIRECT", 1),
    }
}

/// The route's policy from `internal_redirect_policy`, else from the deprecated
/// `internal_redirect_action` + `max_internal_redirects` (Envoy's
/// `buildInternalRedirectPolicy`); `None`: redirects pass to the client.
pub(crate) fn decode_route_policy(d: &mut Decoder, f: &mut Fields<'_>) -> Option<InternalRedirectPolicy> {
    let policy: Option<InternalRedirectPolicy> = f.opt(d, "internal_redirect_policy");
    let action = f.or(d, "internal_redirect_action", InternalRedirectAction::PassThrough);
    let max: Option<u32> = f.opt(d, "max_internal_redirects");
    if policy.is_some() {
        return policy;
    }
    match action {
        InternalRedirectAction::PassThrough => None,
        InternalRedirectAction::Handle => {
            Some(InternalRedirectPolicy { max_internal_redirects: max.unwrap_or(1), ..Default::default() })
        }
    }
}
