//! What the HTTP router tells a host about each try: the outlier detector's results and
//! the per-host counters `/clusters` shows (Envoy's router.cc: `onUpstreamHeaders`,
//! `onPerTryTimeoutCommon`, `onResponseTimeout`, `onUpstreamReset`,
//! `chargeUpstreamCode`, `chargeUpstreamAbort`).
//!
//! - Every final response head reports its status (`putHttpResponseCode`): 5xx and
//!   gateway errors feed `consecutive_5xx` and `consecutive_gateway_failure`, every
//!   status the external-origin success-rate window. A retried try, or a 5xx, counts
//!   `rq_error`; anything else `rq_success`.
//! - A try that timed out waiting for its response reports `LocalOriginTimeout` with
//!   the timeout's response code (504, or 204 for
//!   `x-envoy-upstream-rq-timeout-alt-response`): without
//!   `split_external_local_origin_errors` that code is what the detector sees, with it
//!   the timeout is a local-origin failure. It counts `rq_timeout` and `rq_error`.
//! - A reset or a protocol error reports `LocalOriginConnectFailed` (503 without the
//!   split, a local-origin failure with it), as Envoy's `onUpstreamReset` does.
//! - A connection that fails to connect counts `cx_connect_fail`; the result goes
//!   through [`ClusterInfo::put_result`] where it is detected.
//!
//! Everything here is relaxed atomics: no lock, no allocation.

use crate::upstream::cluster_manager::ClusterInfo;
use crate::upstream::host::Host;

use super::Outcome;

/// A final response head arrived from `host` (`retried`: the try is retried).
pub fn response_head(info: &ClusterInfo, host: &Host, status: u16, retried: bool) {
    info.put_http_response_code(host, status);
    if retried || (500..600).contains(&status) {
        Host::inc(&host.rq_error);
    } else {
        Host::inc(&host.rq_success);
    }
}

/// The try timed out before its response head; `code` is the timeout's response code.
pub fn timeout(info: &ClusterInfo, host: &Host, code: u16) {
    Host::inc(&host.rq_timeout);
    Host::inc(&host.rq_error);
    info.put_result_code(host, Outcome::LocalOriginTimeout, code);
}

/// A hedged try's per-try timeout: only the detector hears of it (the try goes on;
/// `rq_timeout` and `rq_error` count if the route timeout ends it).
pub fn soft_timeout(info: &ClusterInfo, host: &Host, code: u16) {
    info.put_result_code(host, Outcome::LocalOriginTimeout, code);
}

/// A hedged try was still waiting for its response when the route timeout fired.
pub fn hedged_timed_out(host: &Host) {
    Host::inc(&host.rq_timeout);
    Host::inc(&host.rq_error);
}

/// The try's stream was reset, or its response could not be parsed; `charged`: no
/// response reached the client, so the try counts as an error of the host.
pub fn reset(info: &ClusterInfo, host: &Host, charged: bool) {
    info.put_result(host, Outcome::LocalOriginConnectFailed);
    if charged {
        Host::inc(&host.rq_error);
    }
}

/// A new connection to `host` is opened.
pub fn connection_opened(host: &Host) {
    Host::inc(&host.cx_total);
}

/// A connection to `host` failed to connect (refused, reset, timed out, TLS handshake);
/// the request it was for counts as an error of the host.
pub fn connect_failed(info: &ClusterInfo, host: &Host, outcome: Outcome) {
    Host::inc(&host.cx_connect_fail);
    Host::inc(&host.rq_error);
    info.put_result(host, outcome);
}

/// A request was attached to a connection of `host` (every try; Envoy's pool counts
/// `rq_total` there and reports the connection as usable to the detector).
pub fn request_sent(info: &ClusterInfo, host: &Host) {
    Host::inc(&host.rq_total);
    info.put_result(host, Outcome::LocalOriginConnectSuccess);
}
