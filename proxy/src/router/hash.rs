//! A request's hash for consistent-hash balancers, from its route's `hash_policy`.
//!
//! The per-policy hashes and their combination are Envoy's (see
//! `upstream::load_balancer::hash_policy`); this module picks each policy's input out
//! of the request: header values (with `regex_rewrite`), a cookie — generated, and set
//! on the response, when the policy has a `ttl` and the request has none — the source
//! IP, or a query parameter.

use std::net::SocketAddr;

use sluice_config::route::{HashPolicy, HashPolicyKind};

use crate::http::RequestHead;
use crate::router::route_match::first_query_value;
use crate::upstream::load_balancer::hash_policy::{
    cookie_hash, generated_cookie_value, header_hash, source_ip_hash, HashAccumulator,
};

/// The hash of one request, and the cookie to set when the policy generated one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHash {
    pub hash: Option<u64>,
    /// A `set-cookie` value for the response.
    pub set_cookie: Option<String>,
}

/// Evaluate a route's hash policies for a request from `remote` (the client address
/// after XFF handling) to `local`.
pub fn evaluate(
    policies: &[HashPolicy],
    head: &RequestHead,
    remote: Option<SocketAddr>,
    local: SocketAddr,
) -> RequestHash {
    let mut acc = HashAccumulator::default();
    let mut set_cookie = None;
    for p in policies {
        if acc.done() {
            break;
        }
        let h = match &p.kind {
            HashPolicyKind::Header { name, regex_rewrite } => {
                let rewritten: Vec<Vec<u8>>;
                let mut values: Vec<&[u8]> = match name.as_str() {
                    ":authority" | "host" => vec![head.authority.as_bytes()],
                    ":path" => vec![head.path.as_bytes()],
                    ":method" => vec![head.method.as_bytes()],
                    n => head.headers.get_all(n.as_bytes()).collect(),
                };
                if let Some(r) = regex_rewrite {
                    rewritten =
                        values.iter().map(|v| r.replace_all(&String::from_utf8_lossy(v)).into_bytes()).collect();
                    values = rewritten.iter().map(Vec::as_slice).collect();
                }
                header_hash(&mut values)
            }
            HashPolicyKind::Cookie { name, ttl, path } => match cookie(head, name) {
                Some(v) => cookie_hash(v),
                None => match (ttl, remote) {
                    (Some(ttl), Some(remote)) => {
                        let value = generated_cookie_value(remote, local);
                        let value = String::from_utf8_lossy(&value).into_owned();
                        let mut c = format!("{name}=\"{value}\"");
                        if !ttl.is_zero() {
                            c.push_str(&format!("; Max-Age={}", ttl.as_secs()));
                        }
                        if !path.is_empty() {
                            c.push_str(&format!("; Path={path}"));
                        }
                        c.push_str("; HttpOnly");
                        set_cookie = Some(c);
                        cookie_hash(value.as_bytes())
                    }
                    _ => None,
                },
            },
            HashPolicyKind::SourceIp => remote.map(|r| source_ip_hash(r.ip())),
            HashPolicyKind::QueryParameter { name } => {
                first_query_value(&head.path, name).map(|v| xxhash_rust::xxh64::xxh64(v, 0))
            }
        };
        acc.add(h, p.terminal);
    }
    RequestHash { hash: acc.finish(), set_cookie }
}

/// The value of cookie `name` in the request's `cookie` headers.
fn cookie<'a>(head: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    for v in head.headers.get_all(b"cookie") {
        for pair in v.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                if &pair[..eq] == name.as_bytes() {
                    let mut val = &pair[eq + 1..];
                    if val.len() >= 2 && val[0] == b'"' && val[val.len() - 1] == b'"' {
                        val = &val[1..val.len() - 1];
                    }
                    return Some(val);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn local() -> SocketAddr {
        "10.0.0.1:80".parse().unwrap()
    }

    #[test]
    fn header_cookie_and_generated_cookie() {
        let policies = [HashPolicy {
            kind: HashPolicyKind::Header { name: "x-user".into(), regex_rewrite: None },
            terminal: false,
        }];
        let mut a = RequestHead::default();
        a.headers.append(b"x-user", b"alice");
        let mut b = RequestHead::default();
        b.headers.append(b"x-user", b"bob");
        let ha = evaluate(&policies, &a, None, local()).hash.unwrap();
        assert_eq!(Some(ha), evaluate(&policies, &a, None, local()).hash);
        assert_ne!(Some(ha), evaluate(&policies, &b, None, local()).hash);
        assert_eq!(evaluate(&policies, &RequestHead::default(), None, local()).hash, None);

        let mut c = RequestHead::default();
        c.headers.append(b"cookie", b"a=1; session=\"xyz\"");
        assert_eq!(cookie(&c, "session"), Some(&b"xyz"[..]));
        assert_eq!(cookie(&c, "b"), None);

        let cookie_policy = [HashPolicy {
            kind: HashPolicyKind::Cookie { name: "sid".into(), ttl: Some(Duration::from_secs(60)), path: "/".into() },
            terminal: false,
        }];
        let r = evaluate(&cookie_policy, &RequestHead::default(), Some("10.0.0.9:5000".parse().unwrap()), local());
        assert!(r.hash.is_some());
        let set = r.set_cookie.unwrap();
        assert!(set.starts_with("sid=\"") && set.ends_with("; Max-Age=60; Path=/; HttpOnly"), "{set}");
    }
}
