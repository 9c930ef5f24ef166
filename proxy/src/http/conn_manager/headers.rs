//! The connection manager's own header handling (Envoy's `ConnectionManagerUtility`:
//! `mutateRequestHeaders`, `cleanInternalHeaders`, `mutateXfccRequestHeader`,
//! `mutateResponseHeaders`).
//!
//! Requests, in Envoy's order: a client's `x-envoy-internal` is dropped; the trusted
//! client address is found (with `use_remote_address`: the peer, or the Nth address
//! from the right of XFF with `xff_num_trusted_hops` N, and the peer is appended to
//! XFF unless `skip_xff_append`; without it: the original IP detection extensions,
//! by default XFF with `xff_num_trusted_hops`, one of which may reject the request);
//! `x-forwarded-proto` is overwritten unless a trusted hop set it; `:scheme` is set
//! (`scheme_header_transformation.scheme_to_overwrite`, else XFP, else the transport);
//! the request is internal only if the address may be trusted (use_remote_address
//! without XFF, or an extension that says so, e.g. XFF holding one address) and is in
//! `internal_address_config` (nothing is, unset). Internal requests get
//! `x-envoy-internal: true`; external ones lose the `x-envoy-*` control headers and
//! the routes' `internal_only_headers`, edge ones (external with `use_remote_address`)
//! also the decorator and downstream-service headers, and get
//! `x-envoy-external-address`. Then `via`, `x-request-id` (replaced on edge requests
//! unless `preserve_external_request_id`, added where absent) and XFCC. Responses:
//! `server` per `server_header_transformation`, `date` when absent, `via`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::OnceLock;

use sluice_config::hcm::{
    ForwardClientCertDetails, HttpConnectionManager, InternalAddressConfig, ServerHeaderTransformation,
    SetCurrentClientCertDetails,
};

use crate::http::conn_manager::config::HcmConfig;
use crate::http::conn_manager::original_ip::{
    append_xff, is_internal_address, last_address_from_xff, IpDetection, XFF,
};
use crate::http::conn_manager::xfcc::{self, XFCC};
use crate::http::request_id::uuid4;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::rng::Rng;

/// Removed from edge requests only (`cleanInternalHeaders`, `edge_request`).
const EDGE_ONLY_CLEANED: &[&[u8]] =
    &[b"x-envoy-decorator-operation", b"x-envoy-downstream-service-cluster", b"x-envoy-downstream-service-node"];

/// Removed from every external request, edge or not (`cleanInternalHeaders`).
const EXTERNAL_CLEANED: &[&[u8]] = &[
    b"x-envoy-retriable-status-codes",
    b"x-envoy-retriable-header-names",
    b"x-envoy-retry-on",
    b"x-envoy-retry-grpc-on",
    b"x-envoy-max-retries",
    b"x-envoy-upstream-alt-stat-name",
    b"x-envoy-upstream-rq-timeout-ms",
    b"x-envoy-upstream-rq-per-try-timeout-ms",
    b"x-envoy-upstream-rq-timeout-alt-response",
    b"x-envoy-expected-rq-timeout-ms",
    b"x-envoy-force-trace",
    b"x-envoy-ip-tags",
    b"x-envoy-original-url",
    b"x-envoy-hedge-on-per-try-timeout",
];

const INTERNAL: &[u8] = b"x-envoy-internal";
const EXTERNAL_ADDRESS: &[u8] = b"x-envoy-external-address";
const XFP: &[u8] = b"x-forwarded-proto";

/// The HCM options that decide a request's headers, compiled once.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub skip_xff_append: bool,
    pub internal_address_config: Option<InternalAddressConfig>,
    /// Run in order when `use_remote_address` is off; never empty.
    pub ip_detection: Vec<IpDetection>,
    pub forward_client_cert: ForwardClientCertDetails,
    pub client_cert_details: SetCurrentClientCertDetails,
    pub scheme_to_overwrite: Option<String>,
    /// Empty: no `via`.
    pub via: String,
    pub generate_request_id: bool,
    pub preserve_external_request_id: bool,
    /// Appended to XFF instead of a loopback peer (Envoy's `LocalInfo` address).
    pub local_address: IpAddr,
}

impl HeaderPolicy {
    pub fn new(c: &HttpConnectionManager) -> HeaderPolicy {
        let fwd = &c.forwarding;
        let mut ip_detection: Vec<IpDetection> =
            fwd.original_ip_detection_extensions.iter().map(|e| IpDetection::from_config(&e.config)).collect();
        if ip_detection.is_empty() {
            ip_detection.push(IpDetection::default_xff(c.xff_num_trusted_hops));
        }
        HeaderPolicy {
            use_remote_address: c.use_remote_address,
            xff_num_trusted_hops: c.xff_num_trusted_hops,
            skip_xff_append: c.skip_xff_append,
            internal_address_config: fwd.internal_address_config.clone(),
            ip_detection,
            forward_client_cert: fwd.forward_client_cert_details,
            client_cert_details: fwd.set_current_client_cert_details,
            scheme_to_overwrite: fwd.scheme_header_transformation.as_ref().and_then(|s| s.scheme_to_overwrite.clone()),
            via: c.via.clone(),
            generate_request_id: c.generate_request_id,
            preserve_external_request_id: fwd.preserve_external_request_id,
            local_address: local_address(),
        }
    }
}

/// This host's address as Envoy's `LocalInfo` has it: the source address the host
/// would use towards a public address (found by connecting a UDP socket, which sends
/// nothing), else `127.0.0.1`. Computed once.
pub fn local_address() -> IpAddr {
    static ADDRESS: OnceLock<IpAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        let found = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).map(|()| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip());
        match found {
            Ok(ip) if !ip.is_unspecified() && !ip.is_loopback() => ip,
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    })
}

/// What the HCM knows of the downstream connection.
#[derive(Debug, Clone, Copy)]
pub struct DownstreamInfo<'a> {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The client presented a verified certificate.
    pub mtls: bool,
    /// This hop's XFCC element (mTLS and a mode that sets one).
    pub xfcc_element: Option<&'a str>,
}

/// What header processing decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The trusted client address (for `%DOWNSTREAM_REMOTE_ADDRESS%`, hashing); port 0
    /// when it came from a header.
    pub remote: SocketAddr,
    pub internal: bool,
}

/// Prepare a request's headers as Envoy's `mutateRequestHeaders` does; `Err(status)`:
/// an original IP detection extension rejects the request.
pub fn mutate_request(
    cfg: &HcmConfig,
    head: &mut RequestHead,
    conn: &DownstreamInfo<'_>,
    rng: &mut Rng,
) -> Result<Origin, u16> {
    mutate_request_with(&cfg.headers, cfg.routes.internal_only_headers(), head, conn, rng)
}

/// [`mutate_request`] with the policy and the routes' `internal_only_headers` given.
pub fn mutate_request_with(
    p: &HeaderPolicy,
    internal_only_headers: &[String],
    head: &mut RequestHead,
    conn: &DownstreamInfo<'_>,
    rng: &mut Rng,
) -> Result<Origin, u16> {
    let h = &mut head.headers;
    // Envoy's header map holds one XFF and one XFCC; repeated lines are joined.
    coalesce(h, XFF);
    coalesce(h, XFCC);
    h.remove(INTERNAL);
    let peer = conn.peer.ip();
    let appended = if peer.is_loopback() { p.local_address } else { peer };
    let mut trusted: Option<IpAddr> = None;
    let mut allow_trusted_address_checks = false;
    if p.use_remote_address {
        allow_trusted_address_checks = !h.contains(XFF);
        if p.xff_num_trusted_hops > 0 {
            trusted = last_address_from_xff(h.get(XFF), p.xff_num_trusted_hops - 1).0;
        }
        trusted = trusted.or(Some(peer));
        if !p.skip_xff_append {
            append_xff(h, appended);
        }
        // A prior hop that is not trusted may not set x-forwarded-proto.
        if p.xff_num_trusted_hops == 0 || !h.contains(XFP) {
            h.set(XFP, scheme_of(conn.tls).as_bytes());
        }
    } else {
        let mut skip_append = true;
        for ext in &p.ip_detection {
            let d = ext.detect(h, peer)?;
            skip_append = d.skip_xff_append;
            if let Some(address) = d.address {
                trusted = Some(address);
                allow_trusted_address_checks = d.allow_trusted_address_checks;
                break;
            }
        }
        if !skip_append {
            append_xff(h, appended);
        }
    }
    if !h.contains(XFP) {
        h.set(XFP, scheme_of(conn.tls).as_bytes());
    }
    if let Some(scheme) = &p.scheme_to_overwrite {
        head.scheme.clear();
        head.scheme.push_str(scheme);
        h.set(XFP, scheme.as_bytes());
    }
    if head.scheme.is_empty() {
        let scheme = match h.get(XFP) {
            Some(b"http") => "http",
            Some(b"https") => "https",
            _ => scheme_of(conn.tls),
        };
        head.scheme.push_str(scheme);
    }
    let internal = allow_trusted_address_checks
        && trusted.is_some_and(|a| is_internal_address(p.internal_address_config.as_ref(), a));
    let remote = match trusted {
        Some(ip) if ip != peer => SocketAddr::new(ip, 0),
        _ => conn.peer,
    };
    let edge = !internal && p.use_remote_address;
    if internal {
        h.set(INTERNAL, b"true");
    } else {
        if edge {
            for name in EDGE_ONLY_CLEANED {
                h.remove(name);
            }
        }
        for name in EXTERNAL_CLEANED {
            h.remove(name);
        }
        for name in internal_only_headers {
            h.remove(name.as_bytes());
        }
    }
    if !p.via.is_empty() {
        append_via(h, p.via.as_bytes());
    }
    if edge {
        h.set(EXTERNAL_ADDRESS, remote.ip().to_string().as_bytes());
    }
    // Set unconditionally on edge requests unless preserve_external_request_id.
    let force = edge && !p.preserve_external_request_id;
    if p.generate_request_id && (force || !h.contains(b"x-request-id")) {
        h.set(b"x-request-id", &uuid4(rng));
    }
    xfcc::mutate(h, p.forward_client_cert, conn.mtls, conn.xfcc_element);
    Ok(Origin { remote, internal })
}

fn scheme_of(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// Join repeated lines of `name` into one, comma-separated.
fn coalesce(h: &mut HeaderMap, name: &[u8]) {
    if h.count(name) < 2 {
        return;
    }
    let joined = h.get_all(name).collect::<Vec<_>>().join(&b","[..]);
    h.set(name, &joined);
}

fn append_via(headers: &mut HeaderMap, via: &[u8]) {
    match headers.get(b"via") {
        Some(v) if !v.is_empty() => {
            let mut joined = v.to_vec();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(via);
            headers.set(b"via", &joined);
        }
        _ => headers.set(b"via", via),
    }
}

/// Envoy's `mutateResponseHeaders` plus the HCM's server/date handling.
pub fn mutate_response(cfg: &HcmConfig, head: &mut ResponseHead, date: &[u8]) {
    match cfg.server_header_transformation {
        ServerHeaderTransformation::Overwrite => head.headers.set(b"server", cfg.server_name.as_bytes()),
        ServerHeaderTransformation::AppendIfAbsent => {
            if !head.headers.contains(b"server") {
                head.headers.append(b"server", cfg.server_name.as_bytes());
            }
        }
        ServerHeaderTransformation::PassThrough => {}
    }
    if !head.headers.contains(b"date") {
        head.headers.append(b"date", date);
    }
    if !cfg.headers.via.is_empty() {
        append_via(&mut head.headers, cfg.headers.via.as_bytes());
    }
}

#[cfg(test)]
mod tests;
