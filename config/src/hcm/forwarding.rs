//! The HCM's trust and forwarding options: who the client is and what it may tell the
//! upstream. `internal_address_config`, `original_ip_detection_extensions` (the `xff`
//! and `custom_header` extensions), `forward_client_cert_details`,
//! `set_current_client_cert_details` and `scheme_header_transformation`, decoded with
//! Envoy's defaults and Envoy's load-time checks (an extension may not be mixed with
//! `use_remote_address` or `xff_num_trusted_hops`; `xff_num_trusted_hops` and
//! `xff_trusted_cidrs` are exclusive; `scheme_to_overwrite` is `http` or `https`).
//!
//! `preserve_external_request_id` belongs here too: it decides whether an edge request's
//! `x-request-id` is trusted.
//!
//! `internal_address_config` follows Envoy 1.36 and later, where the runtime guard
//! `envoy.reloadable_features.explicit_internal_address_config` and its legacy
//! RFC 1918 default are gone: unset, no address is internal; set, exactly the
//! addresses in `cidr_ranges` are (and unix socket peers with `unix_sockets`, which
//! sluice accepts as Envoy does; its listeners are IP only, so no peer is one).

use crate::address::CidrRange;
use crate::decode::{scalar, typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

proto_enum! {
    /// `HttpConnectionManager.ForwardClientCertDetails`.
    #[derive(Default)]
    pub enum ForwardClientCertDetails {
        #[default]
        Sanitize = ("SANITIZE", 0),
        ForwardOnly = ("FORWARD_ONLY", 1),
        AppendForward = ("APPEND_FORWARD", 2),
        SanitizeSet = ("SANITIZE_SET", 3),
        AlwaysForwardOnly = ("ALWAYS_FORWARD_ONLY", 4),
    }
}

/// `HttpConnectionManager.InternalAddressConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InternalAddressConfig {
    pub unix_sockets: bool,
    pub cidr_ranges: Vec<CidrRange>,
}

impl Decode for InternalAddressConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let unix_sockets = f.or(d, "unix_sockets", false);
        let cidr_ranges = f.list(d, "cidr_ranges");
        f.finish(d);
        Some(InternalAddressConfig { unix_sockets, cidr_ranges })
    }
}

/// `HttpConnectionManager.SetCurrentClientCertDetails` (all off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetCurrentClientCertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

impl Decode for SetCurrentClientCertDetails {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let details = SetCurrentClientCertDetails {
            subject: f.or(d, "subject", false),
            cert: f.or(d, "cert", false),
            chain: f.or(d, "chain", false),
            dns: f.or(d, "dns", false),
            uri: f.or(d, "uri", false),
        };
        f.finish(d);
        Some(details)
    }
}

/// `core.v3.SchemeHeaderTransformation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemeHeaderTransformation {
    /// `http` or `https`: overwrites `:scheme` and `x-forwarded-proto` of every request.
    pub scheme_to_overwrite: Option<String>,
    /// Set `:scheme` to the upstream connection's (`https` over TLS); unused when
    /// `scheme_to_overwrite` is set.
    pub match_upstream: bool,
}

impl Decode for SchemeHeaderTransformation {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let scheme: Option<String> = f.opt(d, "scheme_to_overwrite");
        let match_upstream = f.or(d, "match_upstream", false);
        let line = f.line();
        f.finish(d);
        if let Some(s) = &scheme {
            if s != "http" && s != "https" {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.scheme_to_overwrite"),
                    line,
                    format!("`{s}` must be one of http, https"),
                );
                return None;
            }
        }
        Some(SchemeHeaderTransformation { scheme_to_overwrite: scheme, match_upstream })
    }
}

/// `envoy.extensions.http.original_ip_detection.xff.v3.XffConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XffConfig {
    pub xff_num_trusted_hops: u32,
    /// `xff_trusted_cidrs.cidrs`; `None` when `xff_trusted_cidrs` is unset.
    pub xff_trusted_cidrs: Option<Vec<CidrRange>>,
    /// Unset means true (Envoy's backwards-compatible default): XFF is not appended.
    pub skip_xff_append: bool,
}

/// `envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomHeaderConfig {
    /// Lower case.
    pub header_name: String,
    pub allow_extension_to_set_address_as_trusted: bool,
    /// `reject_with_status.code` as configured (a code outside 400..=511 means 403).
    pub reject_with_status: Option<u16>,
}

/// One of `original_ip_detection_extensions`, selected by its type URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalIpDetection {
    Xff(XffConfig),
    CustomHeader(CustomHeaderConfig),
}

pub const XFF_TYPE: &str = "envoy.extensions.http.original_ip_detection.xff.v3.XffConfig";
pub const CUSTOM_HEADER_TYPE: &str = "envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig";

impl OriginalIpDetection {
    pub fn type_name(&self) -> &'static str {
        match self {
            OriginalIpDetection::Xff(_) => XFF_TYPE,
            OriginalIpDetection::CustomHeader(_) => CUSTOM_HEADER_TYPE,
        }
    }
}

/// A `core.v3.TypedExtensionConfig` holding an original IP detection extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalIpDetectionExtension {
    pub name: String,
    pub config: OriginalIpDetection,
}

impl Decode for OriginalIpDetectionExtension {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        f.finish(d);
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "an extension needs a typed_config with an `@type`");
            return None;
        };
        let t = typed_config(d, tc, &tc_path)?;
        let config = match t.type_name.as_str() {
            XFF_TYPE => OriginalIpDetection::Xff(decode_xff(d, t.fields)?),
            CUSTOM_HEADER_TYPE => OriginalIpDetection::CustomHeader(decode_custom_header(d, t.fields)?),
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!("unsupported original IP detection extension `{other}`"),
                );
                return None;
            }
        };
        Some(OriginalIpDetectionExtension { name: name?, config })
    }
}

fn decode_xff(d: &mut Decoder, mut f: Fields<'_>) -> Option<XffConfig> {
    let line = f.line();
    let path = f.path().to_string();
    let xff_num_trusted_hops = f.or(d, "xff_num_trusted_hops", 0u32);
    let cidrs: Option<TrustedCidrs> = f.opt(d, "xff_trusted_cidrs");
    let skip_xff_append = f.or(d, "skip_xff_append", true);
    f.finish(d);
    if cidrs.is_some() && xff_num_trusted_hops > 0 {
        // XffIPDetection::create
        d.error(ErrorKind::Invalid, &path, line, "Cannot set both xff_num_trusted_hops and xff_trusted_cidrs");
        return None;
    }
    Some(XffConfig { xff_num_trusted_hops, xff_trusted_cidrs: cidrs.map(|c| c.0), skip_xff_append })
}

/// `XffTrustedCidrs`.
struct TrustedCidrs(Vec<CidrRange>);

impl Decode for TrustedCidrs {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let cidrs = f.list(d, "cidrs");
        f.finish(d);
        Some(TrustedCidrs(cidrs))
    }
}

fn decode_custom_header(d: &mut Decoder, mut f: Fields<'_>) -> Option<CustomHeaderConfig> {
    let line = f.line();
    let path = f.field_path("header_name");
    let header_name: Option<String> = f.req(d, "header_name");
    let allow = f.or(d, "allow_extension_to_set_address_as_trusted", false);
    let reject: Option<HttpStatus> = f.opt(d, "reject_with_status");
    f.finish(d);
    let header_name = header_name?;
    if header_name.is_empty() || !header_name.bytes().all(is_token_char) {
        d.error(ErrorKind::Invalid, &path, line, format!("`{header_name}` is not a valid HTTP header name"));
        return None;
    }
    Some(CustomHeaderConfig {
        header_name: header_name.to_ascii_lowercase(),
        allow_extension_to_set_address_as_trusted: allow,
        reject_with_status: reject.map(|s| s.0),
    })
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `type.v3.HttpStatus`: `code`, a `StatusCode` by name or number (not `Empty`).
struct HttpStatus(u16);

/// `type.v3.StatusCode`.
const STATUS_CODES: &[(&str, u16)] = &[
    ("Continue", 100),
    ("OK", 200),
    ("Created", 201),
    ("Accepted", 202),
    ("NonAuthoritativeInformation", 203),
    ("NoContent", 204),
    ("ResetContent", 205),
    ("PartialContent", 206),
    ("MultiStatus", 207),
    ("AlreadyReported", 208),
    ("IMUsed", 226),
    ("MultipleChoices", 300),
    ("MovedPermanently", 301),
    ("Found", 302),
    ("SeeOther", 303),
    ("NotModified", 304),
    ("UseProxy", 305),
    ("TemporaryRedirect", 307),
    ("PermanentRedirect", 308),
    ("BadRequest", 400),
    ("Unauthorized", 401),
    ("PaymentRequired", 402),
    ("Forbidden", 403),
    ("NotFound", 404),
    ("MethodNotAllowed", 405),
    ("NotAcceptable", 406),
    ("ProxyAuthenticationRequired", 407),
    ("RequestTimeout", 408),
    ("Conflict", 409),
    ("Gone", 410),
    ("LengthRequired", 411),
    ("PreconditionFailed", 412),
    ("PayloadTooLarge", 413),
    ("URITooLong", 414),
    ("UnsupportedMediaType", 415),
    ("RangeNotSatisfiable", 416),
    ("ExpectationFailed", 417),
    ("MisdirectedRequest", 421),
    ("UnprocessableEntity", 422),
    ("Locked", 423),
    ("FailedDependency", 424),
    ("UpgradeRequired", 426),
    ("PreconditionRequired", 428),
    ("TooManyRequests", 429),
    ("RequestHeaderFieldsTooLarge", 431),
    ("InternalServerError", 500),
    ("NotImplemented", 501),
    ("BadGateway", 502),
    ("ServiceUnavailable", 503),
    ("GatewayTimeout", 504),
    ("HTTPVersionNotSupported", 505),
    ("VariantAlsoNegotiates", 506),
    ("InsufficientStorage", 507),
    ("LoopDetected", 508),
    ("NotExtended", 510),
    ("NetworkAuthenticationRequired", 511),
];

impl Decode for HttpStatus {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let code = f.take("code");
        let line = f.line();
        f.finish(d);
        let code_path = format!("{path}.code");
        let Some(code) = code else {
            d.error(ErrorKind::Missing, &code_path, line, "required field is missing");
            return None;
        };
        let text = scalar(d, code, &code_path, "a status code")?;
        let hit = STATUS_CODES.iter().find(|(name, num)| *name == text || text.parse::<u16>().ok() == Some(*num));
        match hit {
            Some((_, num)) => Some(HttpStatus(*num)),
            None => {
                d.invalid(code, &code_path, format!("`{text}` is not a StatusCode (e.g. 403 or Forbidden)"));
                None
            }
        }
    }
}

/// The HCM fields this module owns, decoded together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    /// `None`: no address is internal.
    pub internal_address_config: Option<InternalAddressConfig>,
    /// Empty: the `xff` extension with the HCM's `xff_num_trusted_hops` (Envoy's
    /// fallback when none is configured).
    pub original_ip_detection_extensions: Vec<OriginalIpDetectionExtension>,
    pub forward_client_cert_details: ForwardClientCertDetails,
    pub set_current_client_cert_details: SetCurrentClientCertDetails,
    pub scheme_header_transformation: Option<SchemeHeaderTransformation>,
    /// Keep an edge request's `x-request-id` instead of replacing it.
    pub preserve_external_request_id: bool,
}

impl Forwarding {
    /// Take this module's fields from the HCM's; `use_remote_address` and
    /// `xff_num_trusted_hops` are the HCM's, for Envoy's mixing checks.
    pub(crate) fn decode_from(
        d: &mut Decoder,
        f: &mut Fields<'_>,
        use_remote_address: bool,
        xff_num_trusted_hops: u32,
    ) -> Forwarding {
        let internal_address_config = f.opt(d, "internal_address_config");
        let ext_path = f.field_path("original_ip_detection_extensions");
        let extensions: Vec<OriginalIpDetectionExtension> = f.list(d, "original_ip_detection_extensions");
        let forward_client_cert_details = f.or(d, "forward_client_cert_details", ForwardClientCertDetails::Sanitize);
        let set_current_client_cert_details = f.or(d, "set_current_client_cert_details", Default::default());
        let scheme_header_transformation = f.opt(d, "scheme_header_transformation");
        let preserve_external_request_id = f.or(d, "preserve_external_request_id", false);
        if !extensions.is_empty() {
            // HttpConnectionManagerConfig's constructor.
            if use_remote_address {
                d.error(
                    ErrorKind::Invalid,
                    &ext_path,
                    f.line(),
                    "Original IP detection extensions and use_remote_address may not be mixed",
                );
            }
            if xff_num_trusted_hops > 0 {
                d.error(
                    ErrorKind::Invalid,
                    &ext_path,
                    f.line(),
                    "Original IP detection extensions and xff_num_trusted_hops may not be mixed",
                );
            }
        }
        Forwarding {
            internal_address_config,
            original_ip_detection_extensions: extensions,
            forward_client_cert_details,
            set_current_client_cert_details,
            scheme_header_transformation,
            preserve_external_request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcm::HttpConnectionManager;
    use crate::listener::NetworkFilterKind;

    fn yaml(extra: &str) -> String {
        format!(
            r#"static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: {{virtual_hosts: [{{name: vh, domains: ['*'], routes: [{{match: {{prefix: /}}, direct_response: {{status: 200}}}}]}}]}}
          http_filters: [{{name: r, typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
{extra}"#
        )
    }

    fn hcm(extra: &str) -> HttpConnectionManager {
        let loaded = crate::load_str(&yaml(extra)).unwrap_or_else(|e| panic!("{e}"));
        match &loaded.bootstrap.listeners[0].filter_chains[0].filters[0].kind {
            NetworkFilterKind::HttpConnectionManager(h) => (**h).clone(),
            other => panic!("{other:?}"),
        }
    }

    fn err(extra: &str) -> String {
        crate::load_str(&yaml(extra)).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("should fail: {extra}"))
    }

    const XFF: &str = "type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig";
    const HEADER: &str =
        "type.googleapis.com/envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig";

    #[test]
    fn defaults() {
        let f = hcm("").forwarding;
        assert_eq!(f, Forwarding::default());
        assert_eq!(f.forward_client_cert_details, ForwardClientCertDetails::Sanitize);
        assert_eq!(f.internal_address_config, None);
    }

    #[test]
    fn every_field_decodes() {
        let f = hcm(concat!(
            "          internal_address_config: {unix_sockets: true, cidr_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}\n",
            "          forward_client_cert_details: APPEND_FORWARD\n",
            "          set_current_client_cert_details: {subject: true, cert: true, chain: true, dns: true, uri: true}\n",
            "          scheme_header_transformation: {scheme_to_overwrite: https}\n",
        ))
        .forwarding;
        let internal = f.internal_address_config.unwrap();
        assert!(internal.unix_sockets);
        assert_eq!(internal.cidr_ranges, vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(f.forward_client_cert_details, ForwardClientCertDetails::AppendForward);
        let all = SetCurrentClientCertDetails { subject: true, cert: true, chain: true, dns: true, uri: true };
        assert_eq!(f.set_current_client_cert_details, all);
        assert_eq!(f.scheme_header_transformation.unwrap().scheme_to_overwrite.as_deref(), Some("https"));
    }

    #[test]
    fn extensions_decode_with_envoys_defaults() {
        let f = hcm(&format!(
            "          original_ip_detection_extensions:\n          - {{name: a, typed_config: {{'@type': {XFF}, xff_trusted_cidrs: {{cidrs: [{{address_prefix: 192.0.2.0, prefix_len: 24}}]}}}}}}\n          - {{name: b, typed_config: {{'@type': {HEADER}, header_name: X-Real-IP, reject_with_status: {{code: Forbidden}}}}}}\n"
        ))
        .forwarding;
        let [a, b] = &f.original_ip_detection_extensions[..] else { panic!() };
        assert_eq!(
            a.config,
            OriginalIpDetection::Xff(XffConfig {
                xff_num_trusted_hops: 0,
                xff_trusted_cidrs: Some(vec!["192.0.2.0/24".parse().unwrap()]),
                skip_xff_append: true,
            })
        );
        assert_eq!(
            b.config,
            OriginalIpDetection::CustomHeader(CustomHeaderConfig {
                header_name: "x-real-ip".into(),
                allow_extension_to_set_address_as_trusted: false,
                reject_with_status: Some(403),
            })
        );
    }

    #[test]
    fn envoys_load_time_checks() {
        let ext = format!(
            "          original_ip_detection_extensions: [{{name: h, typed_config: {{'@type': {HEADER}, header_name: x-ip}}}}]\n"
        );
        let e = err(&format!("          use_remote_address: true\n{ext}"));
        assert!(e.contains("Original IP detection extensions and use_remote_address may not be mixed"), "{e}");
        let e = err(&format!("          xff_num_trusted_hops: 1\n{ext}"));
        assert!(e.contains("Original IP detection extensions and xff_num_trusted_hops may not be mixed"), "{e}");
        let both = format!(
            "          original_ip_detection_extensions: [{{name: x, typed_config: {{'@type': {XFF}, xff_num_trusted_hops: 1, xff_trusted_cidrs: {{cidrs: []}}}}}}]\n"
        );
        assert!(err(&both).contains("Cannot set both xff_num_trusted_hops and xff_trusted_cidrs"));
        let e = err("          scheme_header_transformation: {scheme_to_overwrite: ftp}\n");
        assert!(e.contains("scheme_to_overwrite") && e.contains("http, https"), "{e}");
        let e = err("          forward_client_cert_details: SANITISE\n");
        assert!(e.contains("forward_client_cert_details"), "{e}");
        let e = err(&format!(
            "          original_ip_detection_extensions: [{{name: h, typed_config: {{'@type': {HEADER}, header_name: 'bad name'}}}}]\n"
        ));
        assert!(e.contains("not a valid HTTP header name"), "{e}");
        let e = err(&format!(
            "          original_ip_detection_extensions: [{{name: h, typed_config: {{'@type': {HEADER}, header_name: x, reject_with_status: {{code: 999}}}}}}]\n"
        ));
        assert!(e.contains("StatusCode"), "{e}");
        let e = err(
            "          original_ip_detection_extensions: [{name: h, typed_config: {'@type': type.googleapis.com/envoy.extensions.http.original_ip_detection.nope.v3.Nope}}]\n",
        );
        assert!(e.contains("unsupported original IP detection extension"), "{e}");
    }
}
