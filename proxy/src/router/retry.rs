//! Retry decisions for one request (Envoy's retry_state_impl.cc).
//!
//! The route's (or virtual host's) `retry_policy.retry_on` is ORed with the request's
//! `x-envoy-retry-on`; `x-envoy-max-retries` overrides `num_retries`;
//! `x-envoy-retry-grpc-on` adds gRPC conditions (`cancelled`, `deadline-exceeded`,
//! `internal`, `resource-exhausted`, `unavailable`: a trailers-only response's
//! `grpc-status`); `x-envoy-retriable-status-codes` (comma-separated codes) adds to
//! `retriable_status_codes` and `x-envoy-retriable-header-names` (comma-separated
//! names, each matching when the response has that header) to `retriable_headers`.
//! All of them are consumed (never sent upstream). Back-off is fully
//! jittered and exponential: before retry *n* (from 1) Envoy waits a uniform random
//! time below `min((2^n - 1) × base, max)` (base 25 ms and max 10 × base by default).

use std::time::Duration;

use sluice_config::matcher::{HeaderMatch, HeaderMatcher};
use sluice_config::route::{RetryOn, RetryPolicy};

use crate::http::{RequestHead, ResponseHead};
use crate::router::route_match::response_header_value;

/// Why an attempt failed without a usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The connection could not be established (refused, unreachable, timed out).
    ConnectFailure,
    /// The connection broke before a complete response head.
    Reset,
    /// The per-try timeout fired.
    PerTryTimeout,
    /// The per-try idle timeout fired.
    PerTryIdleTimeout,
}

#[derive(Debug, Clone)]
pub struct RetryState {
    retry_on: RetryOn,
    remaining: u32,
    retriable_status_codes: Vec<u16>,
    retriable_headers: Vec<HeaderMatcher>,
    base: Duration,
    max: Duration,
    /// Exponent state of the back-off (Envoy's `current_retry_`).
    current: u32,
    /// Retries done so far.
    pub retries: u32,
}

impl RetryState {
    /// The retry state of a request, or `None` when it may not be retried at all.
    /// Reads (and removes) `x-envoy-retry-on` and `x-envoy-max-retries`.
    pub fn new(policy: Option<&RetryPolicy>, head: &mut RequestHead) -> Option<RetryState> {
        let mut header_on = head.headers.get_str(b"x-envoy-retry-on").map(|v| RetryOn::parse(v).0);
        if let Some(grpc) = head.headers.get_str(b"x-envoy-retry-grpc-on").map(|v| RetryOn::parse(v).0) {
            header_on = Some(header_on.map_or(grpc, |h| h | grpc));
        }
        let header_max = head.headers.get_str(b"x-envoy-max-retries").and_then(|v| v.trim().parse::<u32>().ok());
        let header_codes: Vec<u16> = head
            .headers
            .get_str(b"x-envoy-retriable-status-codes")
            .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
            .unwrap_or_default();
        let header_names: Vec<HeaderMatcher> = head
            .headers
            .get_str(b"x-envoy-retriable-header-names")
            .map(|v| v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(present_matcher).collect())
            .unwrap_or_default();
        for name in [
            &b"x-envoy-retry-on"[..],
            b"x-envoy-retry-grpc-on",
            b"x-envoy-max-retries",
            b"x-envoy-retriable-status-codes",
            b"x-envoy-retriable-header-names",
        ] {
            head.headers.remove(name);
        }
        let default = RetryPolicy::default();
        let p = policy.unwrap_or(&default);
        let retry_on = match header_on {
            Some(h) => p.retry_on | h,
            None => p.retry_on,
        };
        if retry_on.is_empty() {
            return None;
        }
        if !p.retriable_request_headers.is_empty() {
            let ok = p
                .retriable_request_headers
                .iter()
                .all(|m| m.matches(crate::router::route_match::request_header_value(head, &m.name).as_deref()));
            if !ok {
                return None;
            }
        }
        Some(RetryState {
            retry_on,
            remaining: header_max.unwrap_or(p.num_retries),
            retriable_status_codes: [&p.retriable_status_codes[..], &header_codes].concat(),
            retriable_headers: [&p.retriable_headers[..], &header_names].concat(),
            base: p.retry_back_off.base_interval,
            max: p.retry_back_off.max_interval,
            current: 1,
            retries: 0,
        })
    }

    /// Whether a response of `status` (with `head`) calls for a retry by policy
    /// (ignoring how many retries are left).
    pub fn retriable_response(&self, status: u16, head: &ResponseHead) -> bool {
        let on = self.retry_on;
        if on.contains(RetryOn::FIVE_XX) && status >= 500 {
            return true;
        }
        if on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504) {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_4XX) && status == 409 {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_STATUS_CODES) && self.retriable_status_codes.contains(&status) {
            return true;
        }
        if on.contains(RetryOn::ENVOY_RATELIMITED) && head.headers.contains(b"x-envoy-ratelimited") {
            return true;
        }
        if let Some(code) = head.headers.get_str(b"grpc-status").and_then(|v| v.trim().parse::<u32>().ok()) {
            // Envoy's gRPC retry conditions, on a trailers-only response's status.
            let flag = match code {
                1 => RetryOn::GRPC_CANCELLED,
                4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
                8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
                13 => RetryOn::GRPC_INTERNAL,
                14 => RetryOn::GRPC_UNAVAILABLE,
                _ => RetryOn::default(),
            };
            if on.contains(flag) {
                return true;
            }
        }
        if on.contains(RetryOn::RETRIABLE_HEADERS)
            && !self.retriable_headers.is_empty()
            && self.retriable_headers.iter().any(|m| m.matches(response_header_value(head, &m.name).as_deref()))
        {
            return true;
        }
        false
    }

    /// Whether a failed attempt calls for a retry by policy.
    pub fn retriable_reset(&self, reason: ResetReason) -> bool {
        let on = self.retry_on;
        let any_reset =
            on.contains(RetryOn::FIVE_XX) || on.contains(RetryOn::GATEWAY_ERROR) || on.contains(RetryOn::RESET);
        match reason {
            ResetReason::ConnectFailure => {
                any_reset || on.contains(RetryOn::CONNECT_FAILURE) || on.contains(RetryOn::RESET_BEFORE_REQUEST)
            }
            ResetReason::Reset => any_reset,
            ResetReason::PerTryTimeout | ResetReason::PerTryIdleTimeout => any_reset,
        }
    }

    /// Retries left.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Take one retry and return its back-off, given a uniform random number.
    pub fn take(&mut self, random: u64) -> Duration {
        self.remaining = self.remaining.saturating_sub(1);
        self.retries += 1;
        let base = self.base.as_millis().max(1) as u64;
        let max = self.max.as_millis().max(1) as u64;
        let multiplier = (1u64 << self.current.min(62)) - 1;
        let base_backoff = multiplier.saturating_mul(base);
        if base_backoff <= max {
            self.current += 1;
        }
        Duration::from_millis((random % base_backoff.max(1)).min(max))
    }
}

/// A name-only header matcher (it matches when the header is present), as Envoy
/// builds from `x-envoy-retriable-header-names`.
fn present_matcher(name: &str) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_ascii_lowercase(),
        specifier: HeaderMatch::Present(true),
        invert_match: false,
        treat_missing_header_as_empty: false,
        line: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(on: &str, n: u32) -> RetryState {
        let policy = RetryPolicy { retry_on: RetryOn::parse(on).0, num_retries: n, ..RetryPolicy::default() };
        RetryState::new(Some(&policy), &mut RequestHead::default()).unwrap()
    }

    #[test]
    fn policy_and_header_combine() {
        let mut head = RequestHead::default();
        assert!(RetryState::new(None, &mut head).is_none());
        head.headers.append(b"x-envoy-retry-on", b"5xx");
        head.headers.append(b"x-envoy-max-retries", b"4");
        let s = RetryState::new(None, &mut head).unwrap();
        assert_eq!(s.remaining(), 4);
        assert!(s.retriable_response(503, &ResponseHead::default()));
        assert!(!head.headers.contains(b"x-envoy-retry-on"), "control headers are consumed");
    }

    #[test]
    fn retriable_codes_and_header_names_come_from_request_headers() {
        let mut head = RequestHead::default();
        head.headers.append(b"x-envoy-retry-on", b"retriable-status-codes,retriable-headers");
        head.headers.append(b"x-envoy-retriable-status-codes", b"418, 429,x");
        head.headers.append(b"x-envoy-retriable-header-names", b"X-Upstream-Retry, x-other");
        let s = RetryState::new(None, &mut head).unwrap();
        let plain = ResponseHead::default();
        assert!(s.retriable_response(418, &plain) && s.retriable_response(429, &plain));
        assert!(!s.retriable_response(503, &plain));
        let mut tagged = ResponseHead::default();
        tagged.headers.append(b"x-upstream-retry", b"1");
        assert!(s.retriable_response(200, &tagged));
        assert!(!head.headers.contains(b"x-envoy-retriable-status-codes"));
        assert!(!head.headers.contains(b"x-envoy-retriable-header-names"));
    }

    #[test]
    fn status_classes() {
        let resp = ResponseHead::default();
        let g = state("gateway-error", 1);
        assert!(g.retriable_response(502, &resp) && g.retriable_response(504, &resp));
        assert!(!g.retriable_response(500, &resp));
        let r4 = state("retriable-4xx", 1);
        assert!(r4.retriable_response(409, &resp) && !r4.retriable_response(404, &resp));
        let c = state("connect-failure", 1);
        assert!(c.retriable_reset(ResetReason::ConnectFailure));
        assert!(!c.retriable_reset(ResetReason::Reset));
        assert!(!c.retriable_response(503, &resp));
        let f = state("5xx", 1);
        assert!(f.retriable_reset(ResetReason::Reset) && f.retriable_reset(ResetReason::PerTryTimeout));
    }

    #[test]
    fn backoff_is_jittered_exponential_and_capped() {
        let mut s = state("5xx", 10);
        // Default base 25 ms, max 250 ms: bounds 25, 75, 175, 250, 250 ...
        let bounds = [25u64, 75, 175, 250, 250];
        for b in bounds {
            let d = s.take(u64::MAX - 1);
            assert!(d.as_millis() as u64 <= b, "{d:?} > {b}");
        }
        assert_eq!(s.retries, 5);
        assert_eq!(s.remaining(), 5);
    }
}
