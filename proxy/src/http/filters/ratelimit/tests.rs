//! The descriptors each action makes, the service's answers and the draft-03
//! `x-ratelimit-*` headers.

use std::net::SocketAddr;
use std::time::Instant;

use sluice_config::node::parse;
use sluice_config::route::rate_limit::RateLimit;

use super::descriptors::RateLimitPolicy;
use super::proto::{DescriptorStatus, Duration, Entry, Limit, RateLimitDescriptor};
use super::*;
use crate::http::async_client::{grpc::frame, Failure, Response};
use crate::http::HeaderMap;

fn cx() -> StreamContext<'static> {
    let a: SocketAddr = "10.1.2.3:4000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
    StreamContext {
        now: Instant::now(),
        remote: a,
        direct_remote: a,
        local,
        sni: None,
        peer_principals: &[],
        tls: false,
        cluster: "web",
        routed: true,
        health_check_failed: false,
        runtime: Box::leak(Box::default()),
    }
}

fn policy(yaml: &str) -> RateLimitPolicy {
    let n = parse(yaml).unwrap();
    let mut d = sluice_config::decode::Decoder::new();
    let limits: Vec<RateLimit> = d.decode(&n, "rate_limits").unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    RateLimitPolicy::new(&limits)
}

fn descriptors(p: &RateLimitPolicy, stage: u32, head: &RequestHead) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    p.populate(stage, head, &cx(), "front", 0, &mut out);
    out.into_iter().map(|d: RateLimitDescriptor| d.entries.into_iter().map(|e| (e.key, e.value)).collect()).collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn each_action_makes_its_entry() {
    let p = policy(
        "- actions:\n  - source_cluster: {}\n  - destination_cluster: {}\n  - request_headers: {header_name: x-user, descriptor_key: user}\n  - remote_address: {}\n  - generic_key: {descriptor_value: v, descriptor_key: g}\n  - header_value_match: {descriptor_value: gets, headers: [{name: ':method', string_match: {exact: GET}}]}\n",
    );
    let mut head = RequestHead { method: "GET".into(), path: "/".into(), ..RequestHead::default() };
    head.headers.append(b"x-user", b"bob");
    assert_eq!(
        descriptors(&p, 0, &head),
        vec![kv(&[
            ("source_cluster", "front"),
            ("destination_cluster", "web"),
            ("user", "bob"),
            ("remote_address", "10.1.2.3"),
            ("g", "v"),
            ("header_match", "gets"),
        ])]
    );
    // A missing header drops the descriptor; a header match that fails does too.
    head.headers.remove(b"x-user");
    assert!(descriptors(&p, 0, &head).is_empty());
    assert!(descriptors(&p, 1, &head).is_empty(), "another stage");
}

#[test]
fn skip_if_absent_expect_match_and_disable_key() {
    let p = policy(
        "- actions:\n  - request_headers: {header_name: x-user, descriptor_key: user, skip_if_absent: true}\n  - generic_key: {descriptor_value: a}\n- actions:\n  - header_value_match: {descriptor_value: not-get, expect_match: false, headers: [{name: ':method', string_match: {exact: GET}}]}\n- stage: 1\n  disable_key: off\n  actions: [{remote_address: {}}]\n",
    );
    let head = RequestHead { method: "POST".into(), path: "/".into(), ..RequestHead::default() };
    assert_eq!(descriptors(&p, 0, &head), vec![kv(&[("generic_key", "a")]), kv(&[("header_match", "not-get")])]);
    assert_eq!(descriptors(&p, 1, &head), vec![kv(&[("remote_address", "10.1.2.3")])], "runtime default: 100%");
}

fn grpc_ok(r: &RateLimitResponse) -> Outcome {
    let head = ResponseHead { status: 200, ..ResponseHead::default() };
    let mut t = HeaderMap::default();
    t.set(b"grpc-status", b"0");
    Ok(Response { head, body: frame(&r.encode_to_vec()), trailers: Some(t) })
}

#[test]
fn answers() {
    let over = RateLimitResponse { overall_code: 2, raw_body: b"slow down".to_vec(), ..Default::default() };
    assert_eq!(answer(grpc_ok(&over)), Answer::OverLimit(over));
    let unknown = RateLimitResponse::default();
    assert_eq!(answer(grpc_ok(&unknown)), Answer::Ok(unknown), "UNKNOWN is not over the limit");
    assert_eq!(answer(Err(Failure::Timeout)), Answer::Error);
    let garbage = Ok(Response {
        head: ResponseHead { status: 200, ..ResponseHead::default() },
        body: frame(b"\xff\xff\xff"),
        trailers: Some({
            let mut t = HeaderMap::default();
            t.set(b"grpc-status", b"0");
            t
        }),
    });
    assert_eq!(answer(garbage), Answer::Error);
}

#[test]
fn draft_03_headers_name_the_closest_limit() {
    let status = |per: u32, unit: i32, name: &str, remaining: u32, reset: i64| DescriptorStatus {
        code: 1,
        current_limit: Some(Limit { requests_per_unit: per, unit, name: name.into() }),
        limit_remaining: remaining,
        duration_until_reset: Some(Duration { seconds: reset, nanos: 0 }),
    };
    let h =
        x_ratelimit_headers(&[status(100, 2, "", 40, 30), status(10, 1, "per-ip", 3, 1), DescriptorStatus::default()]);
    let get = |n: &str| h.iter().find(|(k, _)| k == n.as_bytes()).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(get("x-ratelimit-limit").as_deref(), Some("10, 100;w=60, 10;w=1;name=\"per-ip\""));
    assert_eq!(get("x-ratelimit-remaining").as_deref(), Some("3"));
    assert_eq!(get("x-ratelimit-reset").as_deref(), Some("1"));
    assert!(x_ratelimit_headers(&[]).is_empty());
    let _ = Entry::default();
}
