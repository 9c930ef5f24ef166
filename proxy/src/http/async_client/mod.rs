//! The worker's asynchronous HTTP client (Envoy's `Http::AsyncClient`): a filter sends
//! a request to a named cluster, stops iteration, and is resumed by the answer.
//!
//! Contract:
//! - A request goes through the same machinery as a routed request: the worker's own
//!   per-cluster load balancer, connection pools (HTTP/1.1, or HTTP/2 when the cluster
//!   says so), circuit breakers and `cluster.<name>.upstream_*` stats, on whichever
//!   stack backend the worker runs. Nothing is shared with other workers.
//! - [`AsyncClient`] is compiled once per config for one cluster (Envoy's null route:
//!   every path to that cluster, no retries, no route timeout) and shared by workers.
//! - A filter asks for a request through
//!   [`FilterCallbacks::send_request`](crate::http::filter::FilterCallbacks::send_request)
//!   with a tag of its choosing, usually returning `StopIteration`; the connection
//!   manager starts it on the stream's connection and, once it ends, hands the
//!   [`Outcome`] to the filter's
//!   [`on_async_complete`](crate::http::filter::StreamFilter::on_async_complete) —
//!   exactly once per request, unless the downstream stream ends first (the request is
//!   then reset and nothing is delivered).
//! - As in Envoy, any HTTP response is a success, the router's own answers included
//!   (503 `no healthy upstream`, 503 on a connect failure, overflow): the caller
//!   decides what a status means. [`Failure`] is a reset after the response started,
//!   or the request's own `timeout` passing (the request is reset).
//! - Response bodies are bounded by the cluster's `per_connection_buffer_limit_bytes`
//!   (a bigger one is a [`Failure::Reset`]); nothing here blocks, reads the clock
//!   (`now` comes from the worker) or panics on a peer's bytes.
//! - [`grpc`] frames unary gRPC calls on top (HTTP/2 clusters).
//!
//! Later users: jwt_authn's remote JWKS, the ratelimit filter, lua `httpCall`. Requests
//! no downstream stream owns (the tracers' span reports) run through [`detached`].

mod calls;
pub mod detached;
pub mod grpc;
mod sink;

use std::sync::Arc;
use std::time::Duration;

use crate::http::conn_manager::config::HcmConfig;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::upstream::cluster_manager::ClusterManager;

pub use calls::{AsyncCalls, Completed};

/// Requests to one cluster, compiled once per config.
#[derive(Debug)]
pub struct AsyncClient {
    cluster_name: String,
    /// The index of the cluster in the config's cluster manager.
    cluster: usize,
    /// The synthetic connection manager (one route to the cluster, the router alone).
    hcm: HcmConfig,
}

impl AsyncClient {
    /// A client for `cluster` of `clusters`; an error when the cluster is unknown.
    pub fn new(cluster: &str, clusters: &Arc<ClusterManager>) -> Result<Arc<AsyncClient>, String> {
        Self::with_route(cluster, clusters, "")
    }

    /// A client whose requests' route also has `route_extra` (`RouteAction` fields in
    /// flow YAML: a `retry_policy`, as Envoy's `RequestOptions::setRetryPolicy`).
    pub fn with_route(
        cluster: &str,
        clusters: &Arc<ClusterManager>,
        route_extra: &str,
    ) -> Result<Arc<AsyncClient>, String> {
        let index = clusters.index_of(cluster).ok_or_else(|| format!("unknown cluster '{cluster}'"))?;
        let limit = clusters.clusters[index].config.per_connection_buffer_limit_bytes as usize;
        let hcm = sluice_config::hcm::async_client_hcm_with(cluster, route_extra)?;
        let hcm = HcmConfig::new(&hcm, Arc::clone(clusters), limit, "async_client")?;
        Ok(Arc::new(AsyncClient { cluster_name: cluster.to_string(), cluster: index, hcm }))
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// Whether requests that ask for HTTP/2 (gRPC) go upstream over HTTP/2.
    pub fn is_http2(&self) -> bool {
        use sluice_config::upstream_http::UpstreamCodec;
        let c = &self.hcm.clusters.clusters[self.cluster];
        c.config.http_protocol_options.protocol.codec_for(true) == UpstreamCodec::Http2
    }
}

/// One request: its head (`:authority` in `authority`), its whole body, and how long
/// the caller waits for the whole response (`None`: no limit of its own).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// A complete response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// Trailers (HTTP/2 responses that have them: gRPC).
    pub trailers: Option<HeaderMap>,
}

/// Why no response came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The stream was reset (after the response started, or its body passed the
    /// buffer limit).
    Reset,
    /// The request's `timeout` passed.
    Timeout,
}

pub type Outcome = Result<Response, Failure>;

/// A request a filter asked for, not started yet.
#[derive(Debug)]
pub struct Call {
    pub client: Arc<AsyncClient>,
    pub request: Request,
    /// Handed back with the outcome.
    pub tag: u32,
}
