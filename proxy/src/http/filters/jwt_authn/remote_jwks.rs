//! `remote_jwks`: a provider's keys fetched over HTTP through a cluster (Envoy's
//! `JwksFetcher`), per worker, and kept for `cache_duration` (Envoy's thread-local
//! `JwksData::setRemoteJwks` / `isExpired`).
//!
//! The fetch is a GET of `http_uri.uri` (`:scheme`, `:authority` and path taken from
//! the URI, as Envoy's `prepareHeaders`) sent to `http_uri.cluster` through the worker's
//! async client, bounded by `http_uri.timeout`. A 200 with a body that parses as a JWKS
//! is a success (`jwks_fetch_success`); another status, an empty body, a JWKS that does
//! not parse, a reset or the timeout is a failure (`jwks_fetch_failed`), and the
//! request's tokens of that provider fail with "Jwks remote fetch is failed". As in
//! Envoy, every request that finds its provider's keys missing or expired fetches them
//! itself (fetches in flight are not shared) and a failure is not remembered: the next
//! request fetches again.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::filters::jwt_authn::RemoteJwksConfig;

use super::jwks::Jwks;
use crate::http::async_client::{AsyncClient, Outcome, Request};
use crate::http::{HeaderMap, RequestHead};
use crate::upstream::cluster_manager::ClusterManager;

/// A provider's remote key source, compiled once per config.
#[derive(Debug)]
pub struct RemoteJwks {
    client: Arc<AsyncClient>,
    request: Request,
    cache_duration: Duration,
}

/// Keys a worker fetched, and until when they hold.
#[derive(Debug)]
pub struct Fetched {
    pub jwks: Rc<Jwks>,
    /// `None`: a `cache_duration` past what the clock can count (never expires).
    pub expires: Option<Instant>,
}

impl Fetched {
    /// Envoy's `isExpired`: `now >= expire`.
    pub fn fresh(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// `Http::Utility::extractHostPathFromUri`: `scheme://host/path` → (scheme, host,
/// path); the path is `/` when the URI has none.
fn split_uri(uri: &str) -> (&str, &str, &str) {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("http", uri));
    match rest.find('/') {
        Some(i) => (scheme, &rest[..i], &rest[i..]),
        None => (scheme, rest, "/"),
    }
}

impl RemoteJwks {
    /// Compile; an error (for the field's path) when the cluster is unknown.
    pub fn new(c: &RemoteJwksConfig, clusters: &Arc<ClusterManager>) -> Result<RemoteJwks, String> {
        let route_extra = c.retry_policy.as_ref().map(|p| p.route_retry_policy()).unwrap_or_default();
        let client = AsyncClient::with_route(&c.cluster, clusters, &route_extra)
            .map_err(|e| format!("http_uri.cluster: {e}"))?;
        let (scheme, authority, path) = split_uri(&c.uri);
        let head = RequestHead {
            method: "GET".into(),
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.into(),
            path: path.into(),
            version: Some(crate::http::Version::Http11),
            headers: HeaderMap::default(),
        };
        let request = Request { head, body: Vec::new(), timeout: Some(c.timeout) };
        Ok(RemoteJwks { client, request, cache_duration: c.cache_duration })
    }

    pub fn client(&self) -> &Arc<AsyncClient> {
        &self.client
    }

    /// The fetch request.
    pub fn request(&self) -> Request {
        self.request.clone()
    }

    /// The keys in a fetch's `outcome`, kept until `now + cache_duration`; the error
    /// says why the fetch failed.
    pub fn fetched(&self, outcome: Outcome, now: Instant) -> Result<Fetched, String> {
        let r = outcome.map_err(|f| format!("{f:?}"))?;
        if r.head.status != 200 {
            return Err(format!("response status code {}", r.head.status));
        }
        if r.body.is_empty() {
            return Err("body is empty".into());
        }
        let jwks = Jwks::parse(&r.body).map_err(|e| format!("invalid jwks: {e}"))?;
        Ok(Fetched { jwks: Rc::new(jwks), expires: now.checked_add(self.cache_duration) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_gives_scheme_authority_and_path() {
        assert_eq!(
            split_uri("https://idp.example:8443/.well-known/jwks.json?x=1"),
            ("https", "idp.example:8443", "/.well-known/jwks.json?x=1")
        );
        assert_eq!(split_uri("http://idp"), ("http", "idp", "/"));
        assert_eq!(split_uri("idp/keys"), ("http", "idp", "/keys"));
    }
}
