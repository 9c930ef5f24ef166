//! The connection manager's own header handling (Envoy's conn_manager_utility.cc).
//!
//! Requests: `x-forwarded-for` (appended with the peer when `use_remote_address`,
//! unless `skip_xff_append`), the internal/edge decision, cleaning `x-envoy-*` control
//! headers and `internal_only_headers` from edge requests, `x-forwarded-proto`,
//! `x-request-id`, `x-envoy-internal`, `via`. Responses: `server` per
//! `server_header_transformation`, `date` when absent, `via`.

use std::net::{IpAddr, SocketAddr};

use sluice_config::hcm::ServerHeaderTransformation;

use crate::http::conn_manager::config::HcmConfig;
use crate::http::request_id::uuid4;
use crate::http::{RequestHead, ResponseHead};
use crate::rng::Rng;

/// Control headers Envoy removes from edge (external) requests.
const EDGE_CLEANED: &[&[u8]] = &[
    b"x-envoy-decorator-operation",
    b"x-envoy-downstream-service-cluster",
    b"x-envoy-downstream-service-node",
    b"x-envoy-external-address",
    b"x-envoy-internal",
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

/// RFC 1918 / loopback / unique-local: Envoy's default "internal" address set.
pub fn is_internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some_and(|m| m.is_private() || m.is_loopback())
        }
    }
}

/// What header processing decided about a request.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The client address Envoy uses (for `%DOWNSTREAM_REMOTE_ADDRESS%`, hashing).
    pub remote: SocketAddr,
    pub internal: bool,
}

/// Prepare a request's headers as Envoy's `mutateRequestHeaders` does.
pub fn mutate_request(cfg: &HcmConfig, head: &mut RequestHead, peer: SocketAddr, tls: bool, rng: &mut Rng) -> Origin {
    let mut remote = peer;
    let internal;
    if cfg.use_remote_address {
        internal = is_internal_address(peer.ip());
        if !cfg.skip_xff_append {
            let ip = peer.ip().to_string();
            match head.headers.get(b"x-forwarded-for") {
                Some(v) if !v.is_empty() => {
                    let mut joined = Vec::with_capacity(v.len() + 2 + ip.len());
                    joined.extend_from_slice(v);
                    joined.extend_from_slice(b", ");
                    joined.extend_from_slice(ip.as_bytes());
                    head.headers.set(b"x-forwarded-for", &joined);
                }
                _ => head.headers.set(b"x-forwarded-for", ip.as_bytes()),
            }
        }
    } else {
        // Trust the XFF hop `xff_num_trusted_hops` from the right, when present.
        if let Some(ip) = xff_client(head, cfg.xff_num_trusted_hops) {
            remote = SocketAddr::new(ip, 0);
        }
        internal = head.headers.get(b"x-envoy-internal") == Some(b"true");
    }
    let edge = cfg.use_remote_address && !internal;
    if edge {
        for name in EDGE_CLEANED {
            head.headers.remove(name);
        }
        for name in cfg.routes.internal_only_headers() {
            head.headers.remove(name.as_bytes());
        }
    }
    if internal && cfg.use_remote_address {
        head.headers.set(b"x-envoy-internal", b"true");
    }
    let scheme: &[u8] = if tls { b"https" } else { b"http" };
    if cfg.use_remote_address || !head.headers.contains(b"x-forwarded-proto") {
        head.headers.set(b"x-forwarded-proto", scheme);
    }
    if head.scheme.is_empty() {
        head.scheme.push_str(if tls { "https" } else { "http" });
    }
    if cfg.generate_request_id && (edge || !head.headers.contains(b"x-request-id")) {
        head.headers.set(b"x-request-id", &uuid4(rng));
    }
    if !cfg.via.is_empty() {
        append_via(&mut head.headers, cfg.via.as_bytes());
    }
    Origin { remote, internal }
}

fn xff_client(head: &RequestHead, trusted_hops: u32) -> Option<IpAddr> {
    let v = head.headers.get_str(b"x-forwarded-for")?;
    let hops: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let idx = hops.len().checked_sub(1 + trusted_hops as usize)?;
    hops[idx].parse().ok()
}

fn append_via(headers: &mut crate::http::HeaderMap, via: &[u8]) {
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
    if !cfg.via.is_empty() {
        append_via(&mut head.headers, cfg.via.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        assert!(is_internal_address("10.1.2.3".parse().unwrap()));
        assert!(is_internal_address("192.168.0.1".parse().unwrap()));
        assert!(is_internal_address("127.0.0.1".parse().unwrap()));
        assert!(!is_internal_address("8.8.8.8".parse().unwrap()));
        assert!(is_internal_address("fd00::1".parse().unwrap()));
    }

    #[test]
    fn xff_trusted_hops() {
        let mut h = RequestHead::default();
        h.headers.append(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2, 3.3.3.3");
        assert_eq!(xff_client(&h, 0), Some("3.3.3.3".parse().unwrap()));
        assert_eq!(xff_client(&h, 1), Some("2.2.2.2".parse().unwrap()));
        assert_eq!(xff_client(&h, 5), None);
    }
}
