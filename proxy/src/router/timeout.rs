//! A request's final timeouts (Envoy's `FilterUtility::finalTimeout` and
//! `setTimeoutHeaders`, router.cc).
//!
//! The route's `timeout` is the global timeout and its retry policy's
//! `per_try_timeout` the per-try one. Request headers override them:
//! - with the router's `respect_expected_rq_timeout`, `x-envoy-expected-rq-timeout-ms`
//!   (set by an egress Envoy) is the global timeout and stays on the request; without
//!   it, or when the request has none, `x-envoy-upstream-rq-timeout-ms` is, and is
//!   removed;
//! - `x-envoy-upstream-rq-per-try-timeout-ms` sets the per-try timeout, and is removed.
//!
//! A value that is not a number is ignored; 0 disables the timeout. A per-try timeout
//! not shorter than a global one is dropped. Unless Envoy's headers are suppressed,
//! the upstream request carries `x-envoy-expected-rq-timeout-ms`: the per-try timeout
//! if any (and the request does not hedge on it), else the global one.

use std::time::Duration;

use crate::http::RequestHead;

const EXPECTED: &[u8] = b"x-envoy-expected-rq-timeout-ms";
const UPSTREAM: &[u8] = b"x-envoy-upstream-rq-timeout-ms";
const PER_TRY: &[u8] = b"x-envoy-upstream-rq-per-try-timeout-ms";

/// The timeouts a request runs with (`None`: no timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalTimeout {
    pub global: Option<Duration>,
    pub per_try: Option<Duration>,
}

fn header_ms(head: &RequestHead, name: &[u8]) -> Option<Option<Duration>> {
    let ms: u64 = head.headers.get_str(name)?.trim().parse().ok()?;
    Some((ms > 0).then(|| Duration::from_millis(ms)))
}

/// Apply the request's timeout headers to the route's timeouts (see the module docs).
pub fn final_timeout(
    route: Option<Duration>,
    route_per_try: Option<Duration>,
    head: &mut RequestHead,
    respect_expected_rq_timeout: bool,
    insert_expected_header: bool,
    hedge_on_per_try_timeout: bool,
) -> FinalTimeout {
    let mut t = FinalTimeout { global: route, per_try: route_per_try };
    let expected = if respect_expected_rq_timeout { header_ms(head, EXPECTED) } else { None };
    match expected {
        Some(global) => t.global = global,
        None => {
            if let Some(global) = header_ms(head, UPSTREAM) {
                t.global = global;
            }
            head.headers.remove(UPSTREAM);
        }
    }
    if head.headers.contains(PER_TRY) {
        if let Some(per_try) = header_ms(head, PER_TRY) {
            t.per_try = per_try;
        }
        head.headers.remove(PER_TRY);
    }
    if let (Some(p), Some(g)) = (t.per_try, t.global) {
        if p >= g {
            t.per_try = None;
        }
    }
    if insert_expected_header {
        let expected = if hedge_on_per_try_timeout { t.global } else { t.per_try.or(t.global) };
        if let Some(e) = expected {
            head.headers.set(EXPECTED, e.as_millis().to_string().as_bytes());
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        let mut h = RequestHead::default();
        for (n, v) in headers {
            h.headers.append(n.as_bytes(), v.as_bytes());
        }
        h
    }

    const S15: Option<Duration> = Some(Duration::from_secs(15));

    #[test]
    fn the_expected_timeout_is_respected_only_when_configured() {
        let mut h = head(&[("x-envoy-expected-rq-timeout-ms", "200"), ("x-envoy-upstream-rq-timeout-ms", "900")]);
        let t = final_timeout(S15, None, &mut h, true, true, false);
        assert_eq!(t.global, Some(Duration::from_millis(200)));
        assert_eq!(h.headers.get_str(EXPECTED), Some("200"));
        assert!(h.headers.contains(UPSTREAM), "left alone when the expected timeout wins");
        let mut h = head(&[("x-envoy-expected-rq-timeout-ms", "200"), ("x-envoy-upstream-rq-timeout-ms", "900")]);
        let t = final_timeout(S15, None, &mut h, false, true, false);
        assert_eq!(t.global, Some(Duration::from_millis(900)));
        assert_eq!(h.headers.get_str(EXPECTED), Some("900"), "overwritten");
        assert!(!h.headers.contains(UPSTREAM));
    }

    #[test]
    fn per_try_header_and_its_bounds() {
        let mut h = head(&[("x-envoy-upstream-rq-per-try-timeout-ms", "100")]);
        let t = final_timeout(S15, None, &mut h, false, true, false);
        assert_eq!(t.per_try, Some(Duration::from_millis(100)));
        assert_eq!(h.headers.get_str(EXPECTED), Some("100"));
        let mut h = head(&[("x-envoy-upstream-rq-per-try-timeout-ms", "100")]);
        final_timeout(S15, None, &mut h, false, true, true);
        assert_eq!(h.headers.get_str(EXPECTED), Some("15000"), "hedging: the global timeout");
        assert!(!h.headers.contains(PER_TRY));
        let mut h = head(&[("x-envoy-upstream-rq-per-try-timeout-ms", "20000")]);
        let t = final_timeout(S15, None, &mut h, false, false, false);
        assert_eq!(t.per_try, None, "not shorter than the global timeout");
        assert!(!h.headers.contains(EXPECTED));
        let mut h = head(&[("x-envoy-upstream-rq-timeout-ms", "0"), ("x-envoy-upstream-rq-per-try-timeout-ms", "x")]);
        let t = final_timeout(S15, Some(Duration::from_secs(1)), &mut h, false, true, false);
        assert_eq!(t, FinalTimeout { global: None, per_try: Some(Duration::from_secs(1)) });
    }
}
