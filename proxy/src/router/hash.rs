//! Request hashing for consistent-hash load balancers (a route's `hash_policy`).
//!
//! Envoy's hash_policy.cc: each policy yields an optional 64-bit xxHash; results are
//! combined as `hash = rotl(hash, 1) ^ new`, and a `terminal` policy that produced a
//! hash stops the evaluation.

use std::net::SocketAddr;

use sluice_config::route::{HashPolicy, HashPolicyKind};

use crate::http::RequestHead;
use crate::router::route_match::first_query_value;

/// Evaluate a list of hash policies for a request.
pub trait HashPolicyEval {
    fn evaluate(&self, head: &RequestHead, remote: Option<SocketAddr>) -> Option<u64>;
}

fn xxh(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

impl HashPolicyEval for [HashPolicy] {
    fn evaluate(&self, head: &RequestHead, remote: Option<SocketAddr>) -> Option<u64> {
        let mut hash: Option<u64> = None;
        for p in self {
            let h = match &p.kind {
                HashPolicyKind::Header {
                    name,
                    regex_rewrite,
                } => {
                    let values: Vec<&[u8]> = match name.as_str() {
                        ":authority" | "host" => vec![head.authority.as_bytes()],
                        ":path" => vec![head.path.as_bytes()],
                        ":method" => vec![head.method.as_bytes()],
                        n => head.headers.get_all(n.as_bytes()).collect(),
                    };
                    if values.is_empty() {
                        None
                    } else {
                        // Envoy hashes each value and combines them in order.
                        let mut acc = 0u64;
                        for v in values {
                            let v = match regex_rewrite {
                                Some(r) => r.replace_all(&String::from_utf8_lossy(v)).into_bytes(),
                                None => v.to_vec(),
                            };
                            acc = acc.rotate_left(1) ^ xxh(&v);
                        }
                        Some(acc)
                    }
                }
                HashPolicyKind::Cookie { name, .. } => cookie(head, name).map(xxh),
                HashPolicyKind::SourceIp => remote.map(|r| xxh(r.ip().to_string().as_bytes())),
                HashPolicyKind::QueryParameter { name } => {
                    first_query_value(&head.path, name).map(xxh)
                }
                #[allow(unreachable_patterns)]
                _ => None,
            };
            if let Some(h) = h {
                hash = Some(match hash {
                    Some(prev) => prev.rotate_left(1) ^ h,
                    None => h,
                });
                if p.terminal {
                    break;
                }
            }
        }
        hash
    }
}

/// The value of cookie `name` in the request's `cookie` headers.
fn cookie<'a>(head: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    for v in head.headers.get_all(b"cookie") {
        for pair in v.split(|&b| b == b';') {
            let pair = trim(pair);
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

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_cookie_hashes() {
        let policies = [HashPolicy {
            kind: HashPolicyKind::Header {
                name: "x-user".into(),
                regex_rewrite: None,
            },
            terminal: false,
        }];
        let mut a = RequestHead::default();
        a.headers.append(b"x-user", b"alice");
        let mut b = RequestHead::default();
        b.headers.append(b"x-user", b"bob");
        let ha = policies.evaluate(&a, None).unwrap();
        assert_eq!(ha, policies.evaluate(&a, None).unwrap());
        assert_ne!(ha, policies.evaluate(&b, None).unwrap());
        assert_eq!(policies.evaluate(&RequestHead::default(), None), None);
        let mut c = RequestHead::default();
        c.headers.append(b"cookie", b"a=1; session=\"xyz\"");
        assert_eq!(cookie(&c, "session"), Some(&b"xyz"[..]));
        assert_eq!(cookie(&c, "a"), Some(&b"1"[..]));
        assert_eq!(cookie(&c, "b"), None);
    }
}
