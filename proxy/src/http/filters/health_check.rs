//! The health check filter (`envoy.extensions.filters.http.health_check.v3.
//! HealthCheck`), as Envoy's health_check.cc: a request matching every `headers`
//! matcher is a health check. Without `pass_through_mode` the proxy answers it: 200,
//! or 503 with response flag `LH` while admin `/healthcheck/fail` is in force; with
//! it, the check goes upstream unless the server is failing (then 503 here). The
//! answer to a health check carries `x-envoy-upstream-healthchecked-cluster` (the
//! node's cluster; sluice has none, so it is empty); while failing, every other
//! response carries `x-envoy-immediate-health-check-fail: true`.
//!
//! Envoy answers once the request's body has arrived; sluice answers on the headers
//! (the body of a request answered locally is read and dropped by the connection
//! manager, so the client sees the same response).

use std::sync::Arc;

use sluice_config::filters::health_check::HealthCheck;

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::response_flags::ResponseFlags;
use crate::http::{RequestHead, ResponseHead};
use crate::router::route_match::request_header_value;

/// The health check filter on one stream.
#[derive(Debug)]
pub struct HealthCheckFilter {
    config: Arc<HealthCheck>,
    health_check_request: bool,
    failing: bool,
}

impl HealthCheckFilter {
    pub fn new(config: Arc<HealthCheck>) -> HealthCheckFilter {
        HealthCheckFilter { config, health_check_request: false, failing: false }
    }
}

impl StreamFilter for HealthCheckFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        self.failing = cx.health_check_failed;
        self.health_check_request =
            self.config.headers.iter().all(|m| m.matches(request_header_value(head, &m.name).as_deref()));
        if !self.health_check_request || (self.config.pass_through_mode && !self.failing) {
            return HeadersStatus::Continue;
        }
        let status = if self.failing {
            cb.set_flag(ResponseFlags::FAILED_LOCAL_HEALTH_CHECK);
            503
        } else {
            200
        };
        cb.send_local_reply(status, b"", Vec::new(), "health_check");
        HeadersStatus::StopIteration
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, _end: bool, _cb: &mut FilterCallbacks) -> HeadersStatus {
        if self.health_check_request {
            head.headers.set(b"x-envoy-upstream-healthchecked-cluster", b"");
        } else if self.failing {
            head.headers.set(b"x-envoy-immediate-health-check-fail", b"true");
        }
        HeadersStatus::Continue
    }
}
