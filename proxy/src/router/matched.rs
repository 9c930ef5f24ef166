//! A matched route: what the connection manager and the router filter ask of it.
//!
//! - forwarding routes: the cluster (resolved, weighted pick included), the typed
//!   policies (timeout, idle timeout, retry, mirror, hash), and
//!   [`Matched::finalize_request_headers`] (header mutations, host and path rewrites);
//! - direct responses and redirects (including `require_tls`):
//!   [`Matched::local_reply`] builds the whole response head and returns the body;
//! - both: [`Matched::finalize_response_headers`] for the response path.
//!
//! Header mutations run in Envoy's order: weighted-cluster level first, then route,
//! virtual host, route configuration — or the reverse of those three when
//! `most_specific_header_mutations_wins` is set — with later levels winning.

use std::borrow::Cow;
use std::time::Duration;

use sluice_config::route::{
    Action, ClusterNotFoundResponseCode, ClusterWeight, DirectResponseAction, HashPolicy, HeaderMutations, HostRewrite,
    IdleTimeout, InternalRedirectPolicy, RedirectAction, RequestMirrorPolicy, RetryPolicy, Route, RouteAction,
    VirtualHost,
};

use crate::http::{RequestHead, ResponseHead};

use super::config::{virtual_cluster_name, RouteTable};
use super::formatter::{FormatContext, StreamInfo};
use super::header_parser;
use super::rewrite::{new_uri, redirect_path_rewrite, rewritten_path, set_path, ssl_redirect_uri, update_authority};
use super::route_match::{matched_prefix_len, path_only, request_header_first};
use super::vhost::VhostIndex;

/// The cluster a forwarding route picked for one request.
#[derive(Debug, Clone)]
pub struct ClusterChoice<'t> {
    /// The cluster name; empty when a `cluster_header` was missing (the router then
    /// answers `cluster_not_found_response_code`).
    pub name: Cow<'t, str>,
    /// The weighted entry, when the route uses `weighted_clusters`.
    pub weighted: Option<&'t ClusterWeight>,
}

#[derive(Debug, Clone)]
pub(crate) enum Target<'t> {
    Entry {
        entry: &'t Route,
        cluster: Option<ClusterChoice<'t>>,
    },
    /// `require_tls` answered with a 301 to https.
    SslRedirect,
}

/// What a matched route does with the request.
#[derive(Debug, Clone, Copy)]
pub enum RouteKind<'t> {
    /// Forward upstream (`route`).
    Forward(&'t RouteAction),
    /// Answer with a redirect (`redirect`).
    Redirect(&'t RedirectAction),
    /// Answer directly (`direct_response`).
    DirectResponse(&'t DirectResponseAction),
    /// `require_tls`: 301 to the https URL.
    SslRedirect,
}

/// The result of [`RouteTable::route`].
#[derive(Debug, Clone)]
pub struct Matched<'t> {
    pub(crate) table: &'t RouteTable,
    pub(crate) vhost: &'t VirtualHost,
    pub(crate) vhost_index: VhostIndex,
    pub(crate) target: Target<'t>,
}

static EMPTY: HeaderMutations = HeaderMutations { to_add: Vec::new(), to_remove: Vec::new() };

impl<'t> Matched<'t> {
    pub fn virtual_host(&self) -> &'t VirtualHost {
        self.vhost
    }

    /// `route.name` (`""` for the `require_tls` redirect).
    pub fn route_name(&self) -> &'t str {
        match &self.target {
            Target::Entry { entry, .. } => &entry.name,
            Target::SslRedirect => "",
        }
    }

    /// `(virtual host index, route index)` in the route configuration; `None` for the
    /// `require_tls` redirect (route-check coverage).
    pub fn route_position(&self) -> Option<(usize, usize)> {
        let entry = self.entry()?;
        let j = self.vhost.routes.iter().position(|r| std::ptr::eq(r, entry))?;
        Some((self.vhost_index, j))
    }

    pub fn kind(&self) -> RouteKind<'t> {
        match &self.target {
            Target::SslRedirect => RouteKind::SslRedirect,
            Target::Entry { entry, .. } => match &entry.action {
                Action::Route(a) => RouteKind::Forward(a),
                Action::Redirect(r) => RouteKind::Redirect(r),
                Action::DirectResponse(d) => RouteKind::DirectResponse(d),
            },
        }
    }

    /// Whether the route answers locally (redirect, direct response, `require_tls`).
    pub fn is_direct_response(&self) -> bool {
        !matches!(self.kind(), RouteKind::Forward(_))
    }

    /// The cluster picked for this request (forwarding routes only).
    pub fn cluster(&self) -> Option<&ClusterChoice<'t>> {
        match &self.target {
            Target::Entry { cluster, .. } => cluster.as_ref(),
            Target::SslRedirect => None,
        }
    }

    /// The cluster name, or `""` for direct responses (route-check's `cluster_name`).
    pub fn cluster_name(&self) -> &str {
        self.cluster().map(|c| c.name.as_ref()).unwrap_or("")
    }

    /// The route action of a forwarding route.
    pub fn route_action(&self) -> Option<&'t RouteAction> {
        match self.kind() {
            RouteKind::Forward(a) => Some(a),
            _ => None,
        }
    }

    /// Status when the picked cluster does not exist (503 unless configured).
    pub fn cluster_not_found_response_code(&self) -> u16 {
        self.route_action()
            .map(|a| a.cluster_not_found_response_code)
            .unwrap_or(ClusterNotFoundResponseCode::ServiceUnavailable)
            .status()
    }

    /// The upstream timeout spanning all tries; `None` disables it (default 15 s).
    pub fn timeout(&self) -> Option<Duration> {
        self.route_action().and_then(|a| a.timeout)
    }

    /// The stream idle timeout override.
    pub fn idle_timeout(&self) -> IdleTimeout {
        self.route_action().map(|a| a.idle_timeout).unwrap_or(IdleTimeout::Inherit)
    }

    /// The maximum stream duration override (`max_stream_duration.max_stream_duration`).
    pub fn max_stream_duration(&self) -> IdleTimeout {
        self.route_action().map(|a| a.max_stream_duration).unwrap_or(IdleTimeout::Inherit)
    }

    /// `max_stream_duration.grpc_timeout_header_max` / `_offset`, when set.
    pub fn grpc_timeout_header(&self) -> Option<sluice_config::route::GrpcTimeoutHeader> {
        self.route_action().and_then(|a| a.grpc_timeout_header)
    }

    /// The route's retry policy, else the virtual host's (never merged).
    pub fn retry_policy(&self) -> Option<&'t RetryPolicy> {
        self.route_action()?.retry_policy.as_ref().or(self.vhost.retry_policy.as_ref())
    }

    /// The route's `internal_redirect_policy` (forwarding routes only).
    pub fn internal_redirect_policy(&self) -> Option<&'t InternalRedirectPolicy> {
        self.route_action()?.internal_redirect_policy.as_ref()
    }

    /// Whether the route's hedge policy (else the virtual host's, never merged) hedges
    /// on per-try timeouts.
    pub fn hedge_on_per_try_timeout(&self) -> bool {
        let route = self.route_action().and_then(|a| a.hedge_policy);
        route.or(self.vhost.hedge_policy).is_some_and(|h| h.hedge_on_per_try_timeout)
    }

    /// The route's mirror policies, else the virtual host's, else the route config's.
    pub fn mirror_policies(&self) -> &'t [RequestMirrorPolicy] {
        match self.route_action() {
            Some(a) if !a.request_mirror_policies.is_empty() => &a.request_mirror_policies,
            Some(_) => self.table.vhost_mirrors(self.vhost_index),
            None => &[],
        }
    }

    pub fn hash_policy(&self) -> &'t [HashPolicy] {
        self.route_action().map(|a| a.hash_policy.as_slice()).unwrap_or(&[])
    }

    /// `auto_host_rewrite`: the router filter sets `:authority` to the chosen upstream
    /// host's hostname.
    pub fn auto_host_rewrite(&self) -> bool {
        matches!(self.route_action().map(|a| &a.host_rewrite), Some(HostRewrite::Auto))
    }

    /// `include_request_attempt_count` of the virtual host.
    pub fn include_request_attempt_count(&self) -> bool {
        self.vhost.include_request_attempt_count
    }

    pub fn include_attempt_count_in_response(&self) -> bool {
        self.vhost.include_attempt_count_in_response
    }

    /// The virtual cluster of the request (for route-check; no stats are kept).
    pub fn virtual_cluster_name(&self, req: &RequestHead) -> &'t str {
        virtual_cluster_name(self.vhost, req)
    }

    pub(crate) fn entry(&self) -> Option<&'t Route> {
        match &self.target {
            Target::Entry { entry, .. } => Some(entry),
            Target::SslRedirect => None,
        }
    }

    /// Route, virtual-host and route-config mutations in application order.
    fn levels(&self, request: bool) -> [&'t HeaderMutations; 3] {
        let (route, vh, rc) = match (self.entry(), request) {
            (Some(e), true) => (&e.request_headers, &self.vhost.request_headers, &self.table.config.request_headers),
            (Some(e), false) => {
                (&e.response_headers, &self.vhost.response_headers, &self.table.config.response_headers)
            }
            // The require_tls redirect applies no header mutations.
            (None, _) => (&EMPTY, &EMPTY, &EMPTY),
        };
        if self.table.config.most_specific_header_mutations_wins {
            [rc, vh, route]
        } else {
            [route, vh, rc]
        }
    }

    fn context<'a>(
        &'a self,
        info: &'a StreamInfo<'a>,
        request: Option<&'a RequestHead>,
        response: Option<&'a ResponseHead>,
    ) -> FormatContext<'a> {
        FormatContext {
            info,
            request,
            response,
            route_name: self.route_name(),
            cluster: self.cluster().map(|c| c.name.as_ref()),
        }
    }

    fn mutate_request(&self, m: &HeaderMutations, req: &mut RequestHead, info: &StreamInfo<'_>) {
        if m.is_empty() {
            return;
        }
        header_parser::remove(m, &mut req.headers);
        let plan = {
            let cx = self.context(info, Some(req), None);
            header_parser::plan(m, &req.headers, &cx)
        };
        header_parser::apply(plan, &mut req.headers);
    }

    fn mutate_response(&self, m: &HeaderMutations, resp: &mut ResponseHead, req: &RequestHead, info: &StreamInfo<'_>) {
        if m.is_empty() {
            return;
        }
        header_parser::remove(m, &mut resp.headers);
        let plan = {
            let cx = self.context(info, Some(req), Some(resp));
            header_parser::plan(m, &resp.headers, &cx)
        };
        header_parser::apply(plan, &mut resp.headers);
    }

    /// Prepare the request for the upstream (Envoy's `finalizeRequestHeaders`):
    /// weighted-cluster mutations and `host_rewrite_literal`, the three levels of
    /// `request_headers_to_add/remove`, the route's host rewrite, then its path rewrite.
    /// With `keep_original` (the router's default, off with `suppress_envoy_headers`)
    /// a rewritten path is kept in `x-envoy-original-path`. No-op for direct responses.
    pub fn finalize_request_headers(&self, req: &mut RequestHead, info: &StreamInfo<'_>, keep_original: bool) {
        let (Some(entry), Some(action)) = (self.entry(), self.route_action()) else {
            return;
        };
        if let Some(cw) = self.cluster().and_then(|c| c.weighted) {
            self.mutate_request(&cw.request_headers, req, info);
            if let Some(h) = &cw.host_rewrite_literal {
                req.authority.clear();
                req.authority.push_str(h);
            }
        }
        for m in self.levels(true) {
            self.mutate_request(m, req, info);
        }
        let new_host: Option<Cow<'_, str>> = match &action.host_rewrite {
            HostRewrite::Literal(h) => Some(Cow::Borrowed(h.as_str())),
            HostRewrite::Header(h) => {
                request_header_first(req, h).map(|v| Cow::Owned(String::from_utf8_lossy(v).into_owned()))
            }
            HostRewrite::PathRegex(re) => Some(Cow::Owned(re.replace_all(path_only(&req.path)))),
            HostRewrite::None | HostRewrite::Auto => None,
        };
        if let Some(h) = new_host.filter(|h| !h.is_empty()) {
            update_authority(req, &h, action.append_x_forwarded_host);
        }
        let matched = matched_prefix_len(&entry.r#match, &req.path);
        let new_path =
            rewritten_path(&req.path, matched, action.prefix_rewrite.as_deref(), action.regex_rewrite.as_ref());
        if let Some(p) = new_path {
            set_path(req, p, keep_original);
        }
    }

    /// Apply the route's response mutations (Envoy's `finalizeResponseHeaders`):
    /// weighted-cluster level first, then the three levels.
    pub fn finalize_response_headers(&self, resp: &mut ResponseHead, req: &RequestHead, info: &StreamInfo<'_>) {
        if let Some(cw) = self.cluster().and_then(|c| c.weighted) {
            self.mutate_response(&cw.response_headers, resp, req, info);
        }
        for m in self.levels(false) {
            self.mutate_response(m, resp, req, info);
        }
    }

    /// For a redirect route: apply its `prefix_rewrite` / `regex_rewrite` to `:path`
    /// (Envoy's `rewritePathHeader`), before [`Matched::new_uri`].
    pub fn rewrite_path_header(&self, req: &mut RequestHead, keep_original: bool) {
        let (Some(entry), RouteKind::Redirect(r)) = (self.entry(), self.kind()) else {
            return;
        };
        let (prefix, regex) = redirect_path_rewrite(r);
        let matched = matched_prefix_len(&entry.r#match, &req.path);
        if let Some(p) = rewritten_path(&req.path, matched, prefix, regex) {
            set_path(req, p, keep_original);
        }
    }

    /// The URL of a direct response (Envoy's `newUri`): the redirect target for
    /// redirects and `require_tls`, the request's own URL for a plain direct response;
    /// `None` for forwarding routes.
    pub fn new_uri(&self, req: &RequestHead) -> Option<String> {
        match self.kind() {
            RouteKind::Forward(_) => None,
            RouteKind::Redirect(r) => Some(new_uri(Some(r), req)),
            RouteKind::DirectResponse(_) => Some(new_uri(None, req)),
            RouteKind::SslRedirect => Some(ssl_redirect_uri(req)),
        }
    }

    /// Status of a direct response: the redirect code, the configured status, or 301
    /// for `require_tls`.
    pub fn direct_response_status(&self) -> Option<u16> {
        match self.kind() {
            RouteKind::Forward(_) => None,
            RouteKind::Redirect(r) => Some(r.response_code.status()),
            RouteKind::DirectResponse(d) => Some(d.status),
            RouteKind::SslRedirect => Some(301),
        }
    }

    /// Build the local reply of a direct response, as Envoy's router does: rewrite the
    /// path (redirects), set `:status`, `location` (201 and 3xx), apply the response
    /// mutations, then `content-length` and `content-type: text/plain` (if absent) for
    /// a non-empty body, or no content headers for an empty one. Returns the body, or
    /// `None` (and changes nothing) for a forwarding route.
    pub fn local_reply(
        &self,
        req: &mut RequestHead,
        info: &StreamInfo<'_>,
        keep_original: bool,
        resp: &mut ResponseHead,
    ) -> Option<&'t [u8]> {
        let status = self.direct_response_status()?;
        self.rewrite_path_header(req, keep_original);
        resp.status = status;
        let body: &'t [u8] = match self.kind() {
            RouteKind::DirectResponse(d) => d.body.as_deref().unwrap_or(&[]),
            _ => &[],
        };
        // router.cc: `location` for 201 and every 3xx (RFC 7231 section 7.1.2).
        if status == 201 || (300..400).contains(&status) {
            if let Some(uri) = self.new_uri(req) {
                resp.headers.append(b"location", uri.as_bytes());
            }
        }
        let info = StreamInfo { response_code: Some(status), ..*info };
        self.finalize_response_headers(resp, req, &info);
        if body.is_empty() {
            resp.headers.remove(b"content-length");
            resp.headers.remove(b"content-type");
        } else {
            resp.headers.set(b"content-length", body.len().to_string().as_bytes());
            if !resp.headers.contains(b"content-type") {
                resp.headers.append(b"content-type", b"text/plain");
            }
        }
        Some(body)
    }
}
