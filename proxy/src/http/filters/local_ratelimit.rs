//! The local rate limit filter (`envoy.extensions.filters.http.local_ratelimit.v3.
//! LocalRateLimit`), as Envoy's local_ratelimit.cc: a token bucket shared by every
//! worker (lock-free: one atomic holding the time the bucket was last empty, as
//! Envoy's `AtomicTokenBucketImpl` — tokens accrue continuously at
//! `tokens_per_fill / fill_interval` up to `max_tokens`).
//!
//! While `filter_enabled` hits, each request takes a token (`enabled`, then `ok` or
//! `rate_limited`); a request without one is answered `status` (429)
//! `local_rate_limited` with `response_headers_to_add` and response flag `RL` while
//! `filter_enforced` hits (`enforced`), else it goes on with
//! `request_headers_to_add_when_not_enforced`. The most specific per-route config
//! (with its own bucket and stats) replaces the filter's. With
//! `enable_x_ratelimit_headers: DRAFT_VERSION_03` responses carry `x-ratelimit-limit`,
//! `-remaining` and `-reset`. Stats: `<stat_prefix>.http_local_rate_limit.*`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sluice_config::core::AppendAction;
use sluice_config::filters::local_ratelimit::{LocalRateLimit, TokenBucket, XRateLimitHeaders};

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::{mix, CounterSet};
use crate::http::response_flags::ResponseFlags;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::stats::SharedCounter;

/// A token bucket shared by the workers.
#[derive(Debug)]
pub struct AtomicTokenBucket {
    base: Instant,
    /// Nanoseconds after `base` at which the bucket was (or would have been) empty.
    empty_at: AtomicU64,
    max_tokens: f64,
    /// Tokens per nanosecond.
    rate: f64,
}

/// What a request saw of the bucket (for the `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    pub allowed: bool,
    pub max_tokens: u32,
    pub remaining: u32,
    /// Seconds until the next token.
    pub reset_seconds: u64,
}

impl AtomicTokenBucket {
    /// A full bucket at `now`.
    pub fn new(b: &TokenBucket, now: Instant) -> AtomicTokenBucket {
        let rate = b.tokens_per_fill as f64 / b.fill_interval.as_nanos() as f64;
        let max_tokens = b.max_tokens as f64;
        // `base` lies far enough back that the bucket starts full.
        let full_after = (max_tokens / rate).ceil() as u64;
        let base = now.checked_sub(std::time::Duration::from_nanos(full_after)).unwrap_or(now);
        AtomicTokenBucket { base, empty_at: AtomicU64::new(0), max_tokens, rate }
    }

    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_nanos().min(u64::MAX as u128) as u64
    }

    /// Take one token if there is one.
    pub fn consume(&self, now: Instant) -> BucketState {
        let t = self.nanos(now);
        let mut old = self.empty_at.load(Ordering::Acquire);
        loop {
            let tokens = (t.saturating_sub(old) as f64 * self.rate).min(self.max_tokens);
            if tokens < 1.0 {
                return self.state(false, tokens);
            }
            // The bucket now holds `tokens - 1`: it was empty that long ago.
            let new = t.saturating_sub(((tokens - 1.0) / self.rate).ceil() as u64);
            match self.empty_at.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return self.state(true, tokens - 1.0),
                Err(v) => old = v,
            }
        }
    }

    fn state(&self, allowed: bool, tokens: f64) -> BucketState {
        let reset = if tokens >= self.max_tokens { 0.0 } else { (1.0 - tokens.fract()) / self.rate / 1e9 };
        BucketState {
            allowed,
            max_tokens: self.max_tokens as u32,
            remaining: tokens.max(0.0) as u32,
            reset_seconds: reset.ceil() as u64,
        }
    }
}

/// One `LocalRateLimit` compiled: its bucket and stats.
#[derive(Debug)]
pub struct LocalRateLimitConfig {
    config: LocalRateLimit,
    bucket: Option<AtomicTokenBucket>,
    enabled: Arc<SharedCounter>,
    enforced: Arc<SharedCounter>,
    rate_limited: Arc<SharedCounter>,
    ok: Arc<SharedCounter>,
}

impl LocalRateLimitConfig {
    pub fn new(c: &LocalRateLimit, counters: &mut CounterSet) -> Result<LocalRateLimitConfig, String> {
        for h in c.response_headers_to_add.iter().chain(&c.request_headers_to_add_when_not_enforced) {
            if h.value.contains('%') {
                return Err(format!(
                    "header `{}`: formatter commands in local rate limit headers are not supported yet",
                    h.key
                ));
            }
        }
        let prefix = format!("{}.http_local_rate_limit.", c.stat_prefix);
        Ok(LocalRateLimitConfig {
            config: c.clone(),
            bucket: c.token_bucket.as_ref().map(|b| AtomicTokenBucket::new(b, Instant::now())),
            enabled: counters.counter(format!("{prefix}enabled")),
            enforced: counters.counter(format!("{prefix}enforced")),
            rate_limited: counters.counter(format!("{prefix}rate_limited")),
            ok: counters.counter(format!("{prefix}ok")),
        })
    }
}

/// `HeaderValueOption`s with literal values, applied as their `append_action` says.
fn add_headers(headers: &mut HeaderMap, to_add: &[sluice_config::core::HeaderValueOption]) {
    for h in to_add {
        if h.value.is_empty() && !h.keep_empty_value {
            continue;
        }
        let (k, v) = (h.key.as_bytes(), h.value.as_bytes());
        match h.append_action {
            AppendAction::AppendIfExistsOrAdd => headers.append(k, v),
            AppendAction::AddIfAbsent => {
                if !headers.contains(k) {
                    headers.append(k, v)
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => headers.set(k, v),
            AppendAction::OverwriteIfExists => {
                if headers.contains(k) {
                    headers.set(k, v)
                }
            }
        }
    }
}

/// The filter on one stream.
#[derive(Debug)]
pub struct LocalRateLimitFilter {
    used: Arc<LocalRateLimitConfig>,
    state: Option<BucketState>,
}

impl LocalRateLimitFilter {
    pub fn new(config: &Arc<LocalRateLimitConfig>, route: &RouteView<'_>, k: usize) -> LocalRateLimitFilter {
        let used = match route.most_specific(k) {
            Some(PerRouteFilter::LocalRateLimit(c)) => Arc::clone(c),
            _ => Arc::clone(config),
        };
        LocalRateLimitFilter { used, state: None }
    }
}

impl StreamFilter for LocalRateLimitFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let c = &self.used;
        let r = cb.random();
        if !c.config.filter_enabled.as_ref().is_some_and(|p| cx.enabled(p, r)) {
            return HeadersStatus::Continue;
        }
        c.enabled.inc();
        // No bucket: no limit (Envoy's global config may leave it to the routes).
        let Some(bucket) = &c.bucket else {
            c.ok.inc();
            return HeadersStatus::Continue;
        };
        let state = bucket.consume(cx.now);
        self.state = Some(state);
        if state.allowed {
            c.ok.inc();
            return HeadersStatus::Continue;
        }
        c.rate_limited.inc();
        if !c.config.filter_enforced.as_ref().is_some_and(|p| cx.enabled(p, mix(r))) {
            add_headers(&mut head.headers, &c.config.request_headers_to_add_when_not_enforced);
            return HeadersStatus::Continue;
        }
        c.enforced.inc();
        let mut extra = HeaderMap::new();
        add_headers(&mut extra, &c.config.response_headers_to_add);
        let headers = extra.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        cb.set_flag(ResponseFlags::RATE_LIMITED);
        cb.send_local_reply(c.config.status, b"local_rate_limited", headers, "local_rate_limited");
        HeadersStatus::StopIteration
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, _end: bool, _cb: &mut FilterCallbacks) -> HeadersStatus {
        if let Some(s) =
            self.state.filter(|_| self.used.config.enable_x_ratelimit_headers == XRateLimitHeaders::DraftVersion03)
        {
            head.headers.append(b"x-ratelimit-limit", s.max_tokens.to_string().as_bytes());
            head.headers.append(b"x-ratelimit-remaining", s.remaining.to_string().as_bytes());
            head.headers.append(b"x-ratelimit-reset", s.reset_seconds.to_string().as_bytes());
        }
        HeadersStatus::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_empties_and_refills_continuously() {
        let t0 = Instant::now();
        let b = TokenBucket { max_tokens: 2, tokens_per_fill: 1, fill_interval: Duration::from_secs(1) };
        let bucket = AtomicTokenBucket::new(&b, t0);
        let s = bucket.consume(t0);
        assert_eq!((s.allowed, s.remaining, s.max_tokens), (true, 1, 2));
        assert!(bucket.consume(t0).allowed);
        let s = bucket.consume(t0);
        assert!(!s.allowed);
        assert_eq!((s.remaining, s.reset_seconds), (0, 1));
        assert!(!bucket.consume(t0 + Duration::from_millis(900)).allowed, "not a whole token yet");
        assert!(bucket.consume(t0 + Duration::from_millis(1000)).allowed, "one token a second");
        assert!(!bucket.consume(t0 + Duration::from_millis(1000)).allowed);
        // A long pause fills the bucket up to max_tokens, no more.
        let later = t0 + Duration::from_secs(60);
        assert!(bucket.consume(later).allowed);
        assert!(bucket.consume(later).allowed);
        assert!(!bucket.consume(later).allowed);
    }

    #[test]
    fn bucket_is_shared_by_threads() {
        let t0 = Instant::now();
        let b = TokenBucket { max_tokens: 1000, tokens_per_fill: 1, fill_interval: Duration::from_secs(3600) };
        let bucket = Arc::new(AtomicTokenBucket::new(&b, t0));
        let got: u32 = (0..4)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                std::thread::spawn(move || (0..400).filter(|_| bucket.consume(t0).allowed).count() as u32)
            })
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(got, 1000, "exactly max_tokens requests pass across threads");
    }
}
