//! `mutate_request` against the cases Envoy's "IP address detection" documentation
//! tabulates, and the sanitising rules around them.

use super::*;
use sluice_config::address::CidrRange;

fn policy(use_remote_address: bool, hops: u32) -> HeaderPolicy {
    HeaderPolicy {
        use_remote_address,
        xff_num_trusted_hops: hops,
        skip_xff_append: false,
        internal_address_config: Some(InternalAddressConfig {
            unix_sockets: false,
            cidr_ranges: vec!["10.0.0.0/8".parse::<CidrRange>().unwrap()],
        }),
        ip_detection: vec![IpDetection::default_xff(hops)],
        forward_client_cert: ForwardClientCertDetails::Sanitize,
        client_cert_details: SetCurrentClientCertDetails::default(),
        scheme_to_overwrite: None,
        via: String::new(),
        generate_request_id: true,
        preserve_external_request_id: false,
        local_address: "192.0.2.200".parse().unwrap(),
    }
}

struct Run {
    head: RequestHead,
    origin: Result<Origin, u16>,
}

impl Run {
    fn get(&self, name: &str) -> Option<&str> {
        self.head.headers.get_str(name.as_bytes())
    }
}

fn run(p: &HeaderPolicy, peer: &str, headers: &[(&str, &str)]) -> Run {
    run_tls(p, peer, false, headers)
}

fn run_tls(p: &HeaderPolicy, peer: &str, tls: bool, headers: &[(&str, &str)]) -> Run {
    let mut head = RequestHead::default();
    for (n, v) in headers {
        head.headers.append(n.as_bytes(), v.as_bytes());
    }
    let conn =
        DownstreamInfo { peer: SocketAddr::new(peer.parse().unwrap(), 5555), tls, mtls: false, xfcc_element: None };
    let mut rng = Rng::new(7);
    let origin = mutate_request_with(p, &[], &mut head, &conn, &mut rng);
    Run { head, origin }
}

const XFF3: &str = "203.0.113.128, 203.0.113.10, 203.0.113.1";

#[test]
fn example_1_edge_without_trusted_proxies() {
    let r = run(&policy(true, 0), "192.0.2.5", &[("x-forwarded-for", XFF3), ("x-envoy-internal", "true")]);
    let o = r.origin.unwrap();
    assert_eq!(o.remote, "192.0.2.5:5555".parse().unwrap(), "XFF is ignored");
    assert!(!o.internal);
    assert_eq!(r.get("x-envoy-external-address"), Some("192.0.2.5"));
    assert_eq!(r.get("x-forwarded-for"), Some("203.0.113.128, 203.0.113.10, 203.0.113.1,192.0.2.5"));
    assert_eq!(r.get("x-envoy-internal"), None);
}

#[test]
fn example_2_internal_proxy_behind_the_edge() {
    let xff = "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5";
    let r =
        run(&policy(false, 0), "10.11.12.13", &[("x-forwarded-for", xff), ("x-envoy-external-address", "192.0.2.5")]);
    let o = r.origin.unwrap();
    assert_eq!(o.remote.ip(), "192.0.2.5".parse::<IpAddr>().unwrap(), "last address in XFF");
    assert!(!o.internal);
    assert_eq!(r.get("x-envoy-external-address"), Some("192.0.2.5"), "not modified");
    assert_eq!(r.get("x-forwarded-for"), Some(xff), "not appended");
    assert_eq!(r.get("x-envoy-internal"), None);
}

#[test]
fn example_3_edge_with_two_trusted_proxies() {
    let r = run(&policy(true, 2), "192.0.2.5", &[("x-forwarded-for", XFF3)]);
    let o = r.origin.unwrap();
    assert_eq!(o.remote.ip(), "203.0.113.10".parse::<IpAddr>().unwrap());
    assert_eq!(r.get("x-envoy-external-address"), Some("203.0.113.10"));
    assert_eq!(r.get("x-forwarded-for"), Some("203.0.113.128, 203.0.113.10, 203.0.113.1,192.0.2.5"));
    // Fewer than N addresses: the peer.
    let r = run(&policy(true, 2), "192.0.2.5", &[("x-forwarded-for", "203.0.113.1")]);
    assert_eq!(r.get("x-envoy-external-address"), Some("192.0.2.5"));
}

#[test]
fn example_4_internal_proxy_behind_example_3() {
    let xff = "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5";
    let r = run(&policy(false, 2), "10.11.12.13", &[("x-forwarded-for", xff)]);
    let o = r.origin.unwrap();
    assert_eq!(o.remote.ip(), "203.0.113.10".parse::<IpAddr>().unwrap());
    assert!(!o.internal);
    assert_eq!(r.get("x-envoy-external-address"), None);
}

#[test]
fn examples_5_and_6_internal_clients() {
    // 5: no XFF, so no trusted address from it: external (the header is not set).
    let r = run(&policy(false, 0), "10.20.30.40", &[]);
    assert!(!r.origin.unwrap().internal);
    assert_eq!(r.get("x-envoy-internal"), None);
    assert_eq!(r.origin.unwrap().remote, "10.20.30.40:5555".parse().unwrap());
    // 6: XFF holds one internal address.
    let r = run(&policy(false, 0), "10.20.30.50", &[("x-forwarded-for", "10.20.30.40")]);
    let o = r.origin.unwrap();
    assert!(o.internal);
    assert_eq!(o.remote.ip(), "10.20.30.40".parse::<IpAddr>().unwrap());
    assert_eq!(r.get("x-envoy-internal"), Some("true"));
    assert_eq!(r.get("x-envoy-external-address"), None);
}

#[test]
fn use_remote_address_is_internal_only_without_xff() {
    let p = policy(true, 0);
    let r = run(&p, "10.1.1.1", &[("x-envoy-upstream-rq-timeout-ms", "5")]);
    assert!(r.origin.unwrap().internal);
    assert_eq!(r.get("x-envoy-internal"), Some("true"));
    assert_eq!(r.get("x-envoy-upstream-rq-timeout-ms"), Some("5"), "kept on an internal request");
    assert_eq!(r.get("x-forwarded-for"), Some("10.1.1.1"));
    // The reported bug: a client XFF made the request internal.
    let r = run(&p, "10.1.1.1", &[("x-forwarded-for", "10.2.2.2"), ("x-envoy-upstream-rq-timeout-ms", "5")]);
    assert!(!r.origin.unwrap().internal);
    assert_eq!(r.get("x-envoy-upstream-rq-timeout-ms"), None);
    assert_eq!(r.get("x-envoy-external-address"), Some("10.1.1.1"));
}

#[test]
fn no_address_is_internal_without_internal_address_config() {
    let mut p = policy(true, 0);
    p.internal_address_config = None;
    for peer in ["10.1.1.1", "127.0.0.1", "192.168.1.1", "fd00::1"] {
        assert!(!run(&p, peer, &[]).origin.unwrap().internal, "{peer}");
    }
}

#[test]
fn external_requests_lose_control_headers() {
    let mut all: Vec<(&str, &str)> =
        EXTERNAL_CLEANED.iter().chain(EDGE_ONLY_CLEANED).map(|n| (std::str::from_utf8(n).unwrap(), "1")).collect();
    all.push(("x-envoy-external-address", "6.6.6.6"));
    all.push(("x-envoy-internal", "true"));
    let edge = run(&policy(true, 0), "203.0.113.9", &all);
    for (name, _) in &all {
        let want = if *name == "x-envoy-external-address" { Some("203.0.113.9") } else { None };
        assert_eq!(edge.get(name), want, "{name} on an edge request");
    }
    // External but not edge (use_remote_address off): the edge-only ones stay.
    let mid = run(&policy(false, 0), "203.0.113.9", &all);
    for name in EXTERNAL_CLEANED {
        assert_eq!(mid.head.headers.get(name), None);
    }
    for name in EDGE_ONLY_CLEANED {
        assert_eq!(mid.head.headers.get(name), Some(&b"1"[..]));
    }
    assert_eq!(mid.get("x-envoy-external-address"), Some("6.6.6.6"), "not modified when not edge");
    assert_eq!(mid.get("x-envoy-internal"), None);
}

#[test]
fn loopback_peers_append_the_local_address() {
    let r = run(&policy(true, 0), "127.0.0.1", &[]);
    assert_eq!(r.get("x-forwarded-for"), Some("192.0.2.200"));
    let mut p = policy(true, 0);
    p.skip_xff_append = true;
    assert_eq!(run(&p, "203.0.113.9", &[]).get("x-forwarded-for"), None);
}

#[test]
fn repeated_xff_lines_are_one_list() {
    let r = run(&policy(false, 1), "10.0.0.9", &[("x-forwarded-for", "203.0.113.1"), ("x-forwarded-for", "10.0.0.2")]);
    assert_eq!(r.origin.unwrap().remote.ip(), "203.0.113.1".parse::<IpAddr>().unwrap());
    assert_eq!(r.head.headers.count(b"x-forwarded-for"), 1);
}

#[test]
fn forwarded_proto_and_scheme() {
    // Untrusted downstream: overwritten from the transport.
    let r = run_tls(&policy(true, 0), "203.0.113.9", true, &[("x-forwarded-proto", "http")]);
    assert_eq!((r.get("x-forwarded-proto"), r.head.scheme.as_str()), (Some("https"), "https"));
    // A trusted hop's value stays, and :scheme follows it.
    let r = run(&policy(true, 1), "203.0.113.9", &[("x-forwarded-proto", "https")]);
    assert_eq!((r.get("x-forwarded-proto"), r.head.scheme.as_str()), (Some("https"), "https"));
    let r = run(&policy(false, 0), "203.0.113.9", &[]);
    assert_eq!((r.get("x-forwarded-proto"), r.head.scheme.as_str()), (Some("http"), "http"));
    let mut p = policy(false, 0);
    p.scheme_to_overwrite = Some("https".into());
    let r = run(&p, "203.0.113.9", &[("x-forwarded-proto", "http")]);
    assert_eq!((r.get("x-forwarded-proto"), r.head.scheme.as_str()), (Some("https"), "https"));
}

#[test]
fn extensions_decide_and_may_reject() {
    let mut p = policy(false, 0);
    p.ip_detection =
        vec![IpDetection::CustomHeader { name: b"x-real-ip".to_vec(), allow_trusted: true, reject_status: Some(401) }];
    let r = run(&p, "203.0.113.9", &[("x-real-ip", "10.9.9.9")]);
    assert!(r.origin.unwrap().internal, "trusted by the extension and inside 10/8");
    assert_eq!(run(&p, "203.0.113.9", &[]).origin, Err(401));
    p.ip_detection =
        vec![IpDetection::CustomHeader { name: b"x-real-ip".to_vec(), allow_trusted: false, reject_status: None }];
    let r = run(&p, "203.0.113.9", &[("x-real-ip", "10.9.9.9")]);
    let o = r.origin.unwrap();
    assert!(!o.internal, "not trusted: external");
    assert_eq!(o.remote.ip(), "10.9.9.9".parse::<IpAddr>().unwrap());
    // The xff extension with trusted CIDRs appends the peer unless skip_xff_append.
    p.ip_detection = vec![IpDetection::Xff {
        num_trusted_hops: 0,
        trusted_cidrs: vec!["192.0.2.0/24".parse().unwrap()],
        skip_xff_append: false,
    }];
    let r = run(&p, "192.0.2.5", &[("x-forwarded-for", "203.0.113.128, 203.0.113.10, 192.0.2.1")]);
    assert_eq!(r.origin.unwrap().remote.ip(), "203.0.113.10".parse::<IpAddr>().unwrap());
    assert_eq!(r.get("x-forwarded-for"), Some("203.0.113.128, 203.0.113.10, 192.0.2.1,192.0.2.5"));
}

#[test]
fn via_and_request_id() {
    let mut p = policy(false, 0);
    p.via = "sluice".into();
    let r = run(&p, "203.0.113.9", &[("via", "1.1 a"), ("x-request-id", "keep")]);
    assert_eq!(r.get("via"), Some("1.1 a, sluice"));
    assert_eq!(r.get("x-request-id"), Some("keep"), "kept when not edge");
    let r = run(&policy(true, 0), "203.0.113.9", &[("x-request-id", "spoof")]);
    assert_ne!(r.get("x-request-id"), Some("spoof"), "regenerated on an edge request");
    let mut p = policy(true, 0);
    p.preserve_external_request_id = true;
    assert_eq!(run(&p, "203.0.113.9", &[("x-request-id", "kept")]).get("x-request-id"), Some("kept"));
    assert_eq!(run(&p, "203.0.113.9", &[]).get("x-request-id").map(str::len), Some(36), "added when absent");
}
