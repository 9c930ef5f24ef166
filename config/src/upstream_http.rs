//! A cluster's upstream HTTP protocol: `typed_extension_protocol_options`
//! `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` and the deprecated
//! cluster-level `http_protocol_options` / `http2_protocol_options`.
//!
//! Implemented: `explicit_http_config` (`http_protocol_options` → HTTP/1.1,
//! `http2_protocol_options` → HTTP/2 with its SETTINGS and `max_concurrent_streams`
//! as the per-connection stream limit), `use_downstream_protocol_config` (HTTP/2 to
//! the upstream when the downstream stream is HTTP/2, else HTTP/1.1, as Envoy's
//! `ClusterInfoImpl::upstreamHttpProtocol`), `auto_config` (Envoy's mixed pool: each
//! new TLS connection offers ALPN `h2,http/1.1`, or the transport socket's own
//! `alpn_protocols`, and speaks what the origin picked; HTTP/1.1 when it picked
//! `http/1.1` or nothing), and `common_http_protocol_options`. As in Envoy,
//! `auto_config` needs an ALPN transport socket: a cluster without TLS is refused
//! ("ALPN configured for cluster ... which has a non-ALPN transport socket").
//! Rejected with their paths: HTTP/3 (`http3_protocol_options`,
//! `alternate_protocols_cache_options`), upstream HTTP filters and header validation.

use crate::cluster::CommonHttpProtocolOptions;
use crate::decode::{Decoder, Fields};
use crate::error::ErrorKind;
use crate::hcm::Http2ProtocolOptions;
use crate::node::{Node, Value};

/// `common_http_protocol_options` on a cluster: what the upstream side applies is
/// `idle_timeout`, `max_requests_per_connection` and `max_headers_count` (HTTP/1 and
/// HTTP/2 responses); the fields that only the downstream side implements are refused
/// with their path when set, never accepted and ignored.
pub fn check_upstream_common(d: &mut Decoder, common: &CommonHttpProtocolOptions, path: &str, line: u32) {
    use crate::cluster::HeadersWithUnderscoresAction;
    let refused = [
        ("max_connection_duration", common.max_connection_duration.is_some()),
        ("max_stream_duration", common.max_stream_duration.is_some()),
        (
            "headers_with_underscores_action",
            common.headers_with_underscores_action != HeadersWithUnderscoresAction::Allow,
        ),
    ];
    for (field, set) in refused {
        if set {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.{field}"),
                line,
                "not supported on upstream connections (the connection manager's own option is); remove it",
            );
        }
    }
}

/// The inbound flood limits of `http2_protocol_options` are enforced on downstream
/// connections only: on a cluster, a value other than Envoy's default is refused.
pub fn refuse_upstream_flood_limits(d: &mut Decoder, h2: &Http2ProtocolOptions, path: &str, line: u32) {
    for field in h2.non_default_inbound_limits() {
        d.error(
            ErrorKind::Unsupported,
            &format!("{path}.{field}"),
            line,
            "enforced on downstream connections only; remove it from the cluster",
        );
    }
}

/// The codec of an upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamCodec {
    #[default]
    Http1,
    Http2,
}

/// How a cluster picks the protocol of its upstream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// `explicit_http_config` (HTTP/1.1 when nothing is configured).
    Explicit(UpstreamCodec),
    /// `use_downstream_protocol_config`: the downstream stream's protocol.
    UseDownstream,
    /// `auto_config`: the protocol the origin picks by ALPN, per connection.
    Auto,
}

impl Default for UpstreamProtocol {
    fn default() -> Self {
        UpstreamProtocol::Explicit(UpstreamCodec::Http1)
    }
}

impl UpstreamProtocol {
    /// The codec for a request that arrived over HTTP/2 (`downstream_h2`) or HTTP/1.
    /// `Auto` is decided per connection by ALPN (see the router); an upgrade, which
    /// sluice carries over HTTP/1.1 only, gets HTTP/1.1.
    pub fn codec_for(self, downstream_h2: bool) -> UpstreamCodec {
        match self {
            UpstreamProtocol::Explicit(c) => c,
            UpstreamProtocol::UseDownstream if downstream_h2 => UpstreamCodec::Http2,
            UpstreamProtocol::UseDownstream | UpstreamProtocol::Auto => UpstreamCodec::Http1,
        }
    }

    /// Whether any request of the cluster may go upstream over HTTP/2.
    pub fn may_use_http2(self) -> bool {
        !matches!(self, UpstreamProtocol::Explicit(UpstreamCodec::Http1))
    }
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpProtocolOptions {
    pub common: CommonHttpProtocolOptions,
    pub protocol: UpstreamProtocol,
    /// The HTTP/2 options (Envoy's defaults when unset).
    pub http2: Http2ProtocolOptions,
}

pub(crate) const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// `Http1ProtocolOptions` of an upstream: what sluice's HTTP/1.1 client does is Envoy's
/// default, so only the defaults are accepted; the server-side options are inert.
pub(crate) fn upstream_http1_options(d: &mut Decoder, f: &mut Fields<'_>) {
    f.ignored(d, &["accept_http_10", "default_host_for_http_10"]);
    f.empty_only(d, "header_key_format", "only Envoy's default (lower-case header names) is implemented; remove it");
    f.default_only(d, "enable_trailers", false, "sluice drops HTTP/1.1 trailers (Envoy's default); remove it");
    f.default_only(d, "allow_chunked_length", false, "only Envoy's default (false) is implemented upstream; remove it");
}

/// Decode the `http_protocol_options` / `http2_protocol_options` pair of an
/// `explicit_http_config`, a `use_downstream_protocol_config` or an `auto_config` at
/// `path`.
fn decode_pair(d: &mut Decoder, node: &Node, path: &str, auto: bool) -> Option<(bool, Option<Http2ProtocolOptions>)> {
    let mut e = Fields::of(d, node, path)?;
    if auto {
        // HTTP/3 and its alternate-protocols cache (AutoHttpConfig only).
        e.unsupported(d, &["alternate_protocols_cache_options"]);
    }
    let mut h1 = false;
    if let Some(h) = e.take("http_protocol_options") {
        if let Some(mut hf) = Fields::of(d, h, &format!("{path}.http_protocol_options")) {
            upstream_http1_options(d, &mut hf);
            hf.finish(d);
        }
        h1 = true;
    }
    let h2 = e.opt::<Http2ProtocolOptions>(d, "http2_protocol_options");
    if let Some(h2) = &h2 {
        refuse_upstream_flood_limits(d, h2, &format!("{path}.http2_protocol_options"), node.line);
    }
    e.unsupported(d, &["http3_protocol_options"]);
    e.finish(d);
    Some((h1, h2))
}

pub(crate) fn decode_extension_protocol_options(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<HttpProtocolOptions> {
    let Value::Map(entries) = &node.value else {
        d.invalid(node, path, "expected a map from extension name to typed config");
        return None;
    };
    let mut out = None;
    for (key, value) in entries {
        let epath = format!("{path}.{}", key.name);
        if key.name != HTTP_PROTOCOL_OPTIONS {
            d.error(ErrorKind::Unsupported, &epath, key.line, format!("unsupported protocol options `{}`", key.name));
            continue;
        }
        let Some(mut t) = crate::decode::typed_config(d, value, &epath) else {
            continue;
        };
        if t.type_name != HTTP_PROTOCOL_OPTIONS {
            d.error(
                ErrorKind::Invalid,
                &format!("{epath}.@type"),
                value.line,
                format!("expected {HTTP_PROTOCOL_OPTIONS}"),
            );
            continue;
        }
        let common_path = format!("{epath}.common_http_protocol_options");
        let mut opts = HttpProtocolOptions {
            common: t.fields.or(d, "common_http_protocol_options", CommonHttpProtocolOptions::default()),
            ..HttpProtocolOptions::default()
        };
        check_upstream_common(d, &opts.common, &common_path, value.line);
        let mut chosen = 0;
        if let Some(n) = t.fields.take("explicit_http_config") {
            chosen += 1;
            let ep = format!("{epath}.explicit_http_config");
            match decode_pair(d, n, &ep, false) {
                Some((true, Some(_))) => {
                    d.invalid(n, &ep, "set exactly one of http_protocol_options, http2_protocol_options")
                }
                Some((_, Some(h2))) => {
                    opts.protocol = UpstreamProtocol::Explicit(UpstreamCodec::Http2);
                    opts.http2 = h2;
                }
                Some((true, None)) => {}
                Some((false, None)) => d.invalid(n, &ep, "set one of http_protocol_options, http2_protocol_options"),
                None => {}
            }
        }
        if let Some(n) = t.fields.take("use_downstream_protocol_config") {
            chosen += 1;
            let up = format!("{epath}.use_downstream_protocol_config");
            if let Some((_, h2)) = decode_pair(d, n, &up, false) {
                opts.protocol = UpstreamProtocol::UseDownstream;
                opts.http2 = h2.unwrap_or_default();
            }
        }
        if let Some(n) = t.fields.take("auto_config") {
            chosen += 1;
            let ap = format!("{epath}.auto_config");
            if let Some((_, h2)) = decode_pair(d, n, &ap, true) {
                opts.protocol = UpstreamProtocol::Auto;
                opts.http2 = h2.unwrap_or_default();
            }
        }
        if chosen > 1 {
            d.invalid(
                value,
                &epath,
                "set only one of explicit_http_config, use_downstream_protocol_config, auto_config",
            );
        }
        t.fields.unsupported(d, &["upstream_http_protocol_options", "http_filters", "header_validation_config"]);
        t.fields.finish(d);
        out = Some(opts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Decoder;
    use crate::node::parse;

    fn decode(yaml: &str) -> (Option<HttpProtocolOptions>, String) {
        let node = parse(yaml).expect("yaml");
        let mut d = Decoder::default();
        let o = decode_extension_protocol_options(&mut d, &node, "c");
        let errors = format!("{:?}", d.errors);
        (o, errors)
    }

    const T: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

    #[test]
    fn downstream_only_common_options_are_refused_upstream() {
        let (_, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, common_http_protocol_options: {{ idle_timeout: 5s, max_stream_duration: 2s, max_connection_duration: 9s, headers_with_underscores_action: DROP_HEADER }}, explicit_http_config: {{ http_protocol_options: {{}} }} }}"
        ));
        for field in ["max_stream_duration", "max_connection_duration", "headers_with_underscores_action"] {
            assert!(e.contains(&format!("{T}.common_http_protocol_options.{field}")), "{field}: {e}");
        }
        let (o, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, common_http_protocol_options: {{ idle_timeout: 5s, max_headers_count: 50 }}, explicit_http_config: {{ http_protocol_options: {{}} }} }}"
        ));
        assert_eq!(e, "[]");
        assert_eq!(o.expect("decoded").common.max_headers_count, 50);
    }

    #[test]
    fn explicit_http2_with_its_settings() {
        let (o, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, explicit_http_config: {{ http2_protocol_options: {{ max_concurrent_streams: 7 }} }} }}"
        ));
        let o = o.expect("decoded");
        assert_eq!(e, "[]");
        assert_eq!(o.protocol, UpstreamProtocol::Explicit(UpstreamCodec::Http2));
        assert_eq!(o.http2.max_concurrent_streams, 7);
        assert_eq!(o.http2.initial_stream_window_size, 268_435_456);
    }

    #[test]
    fn use_downstream_follows_the_downstream() {
        let (o, e) =
            decode(&format!("{T}: {{ '@type': type.googleapis.com/{T}, use_downstream_protocol_config: {{}} }}"));
        assert_eq!(e, "[]");
        let p = o.expect("decoded").protocol;
        assert_eq!(p.codec_for(true), UpstreamCodec::Http2);
        assert_eq!(p.codec_for(false), UpstreamCodec::Http1);
    }

    #[test]
    fn auto_config_picks_by_alpn_and_refuses_http3() {
        let (o, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, auto_config: {{ http2_protocol_options: {{ max_concurrent_streams: 9 }} }} }}"
        ));
        assert_eq!(e, "[]");
        let o = o.expect("decoded");
        assert_eq!(o.protocol, UpstreamProtocol::Auto);
        assert!(o.protocol.may_use_http2());
        assert_eq!(o.http2.max_concurrent_streams, 9);
        for field in ["http3_protocol_options", "alternate_protocols_cache_options"] {
            let (_, e) =
                decode(&format!("{T}: {{ '@type': type.googleapis.com/{T}, auto_config: {{ {field}: {{}} }} }}"));
            assert!(e.contains(&format!("{T}.auto_config.{field}")), "{field}: {e}");
        }
    }

    #[test]
    fn downstream_only_flood_limits_are_refused_on_a_cluster() {
        let (_, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, explicit_http_config: {{ http2_protocol_options: {{ max_inbound_priority_frames_per_stream: 5 }} }} }}"
        ));
        assert!(
            e.contains(&format!(
                "{T}.explicit_http_config.http2_protocol_options.max_inbound_priority_frames_per_stream"
            )),
            "{e}"
        );
    }

    #[test]
    fn conflicts_are_rejected_with_their_paths() {
        let (_, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, auto_config: {{}}, explicit_http_config: {{ http_protocol_options: {{}} }} }}"
        ));
        assert!(e.contains("only one of"), "{e}");
        let (_, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, explicit_http_config: {{ http_protocol_options: {{}}, http2_protocol_options: {{}} }} }}"
        ));
        assert!(e.contains("explicit_http_config"), "{e}");
        let (_, e) = decode(&format!(
            "{T}: {{ '@type': type.googleapis.com/{T}, explicit_http_config: {{ http2_protocol_options: {{ max_concurrent_streams: 0 }} }} }}"
        ));
        assert!(e.contains("max_concurrent_streams"), "{e}");
    }
}
