//! Path and host rewrites, and the redirect URL, exactly as Envoy builds them.
//!
//! - Path (config_impl.cc `rewritePathByPrefixOrRegex`): `prefix_rewrite` replaces the
//!   matched prefix (the configured `prefix`/`path`, or the whole path of a regex
//!   route) and keeps the rest, query included; `regex_rewrite` rewrites the path
//!   without its query and re-appends the query. A rewrite that yields an empty path
//!   is not applied. The old path goes to `x-envoy-original-path` when asked.
//! - Redirect URL (http/utility.cc `newUri`): scheme from `scheme_redirect` /
//!   `https_redirect` / the request's `:scheme`; host from `host_redirect` or the
//!   request host, whose port is dropped when `port_redirect` is set or when the
//!   scheme changes away from the port's default (`:80` for http, `:443` for https,
//!   judged against `x-forwarded-proto`); path from `path_redirect` (keeping the
//!   request's query unless the redirect path has its own) or the (rewritten) request
//!   path, always starting with `/`; `strip_query` drops the query unless it came from
//!   `path_redirect`.

use sluice_config::matcher::RegexRewrite;
use sluice_config::route::{PathRedirect, RedirectAction, SchemeRedirect};

use crate::http::RequestHead;

use super::config::forwarded_proto;
use super::route_match::path_only;

/// The new `:path` for a prefix or regex rewrite, or `None` when nothing changes.
pub(crate) fn rewritten_path(
    path: &str,
    matched_len: usize,
    prefix_rewrite: Option<&str>,
    regex: Option<&RegexRewrite>,
) -> Option<String> {
    if let Some(prefix) = prefix_rewrite {
        // The matcher guaranteed the prefix; a filter may have changed the path since.
        let rest = path.get(matched_len..)?;
        let mut out = String::with_capacity(prefix.len() + rest.len());
        out.push_str(prefix);
        out.push_str(rest);
        return (!out.is_empty()).then_some(out);
    }
    let regex = regex?;
    let only = path_only(path);
    let new_only = regex.replace_all(only);
    if new_only.is_empty() {
        return None;
    }
    let mut out = new_only;
    out.push_str(&path[only.len()..]);
    Some(out)
}

/// Set `:path`, keeping the old one in `x-envoy-original-path` when asked.
pub(crate) fn set_path(req: &mut RequestHead, new_path: String, keep_original: bool) {
    if keep_original {
        let old = std::mem::take(&mut req.path);
        req.headers.set(b"x-envoy-original-path", old.as_bytes());
    }
    req.path = new_path;
}

/// `Http::Utility::updateAuthority`: set the host, appending the old one to
/// `x-forwarded-host` when asked (once: not when it is already the last value).
pub(crate) fn update_authority(req: &mut RequestHead, host: &str, append_xfh: bool) {
    if append_xfh && !req.authority.is_empty() {
        let already_last = req
            .headers
            .get(b"x-forwarded-host")
            .and_then(|v| v.split(|b| *b == b',').next_back())
            .is_some_and(|last| last == req.authority.as_bytes());
        if !already_last {
            match req.headers.get(b"x-forwarded-host").map(<[u8]>::to_vec) {
                Some(mut v) if !v.is_empty() => {
                    v.push(b',');
                    v.extend_from_slice(req.authority.as_bytes());
                    req.headers.set(b"x-forwarded-host", &v);
                }
                _ => req.headers.set(b"x-forwarded-host", req.authority.as_bytes()),
            }
        }
    }
    req.authority.clear();
    req.authority.push_str(host);
}

fn scheme_is(s: &str, want: &str) -> bool {
    s.eq_ignore_ascii_case(want)
}

/// The request host for a redirect: the port dropped when a port is being set, or when
/// the scheme changes away from the port's default.
fn process_request_host<'a>(req: &'a RequestHead, new_scheme: &str, new_port: Option<u16>) -> &'a str {
    let host = req.authority.as_str();
    if host.is_empty() {
        return host;
    }
    let host_end = if host.starts_with('[') { host.rfind("]:").map(|i| i + 1) } else { host.rfind(':') };
    let Some(end) = host_end else { return host };
    let port = &host[end..];
    let proto = forwarded_proto(req);
    let mut remove = new_port.is_some();
    if new_scheme != proto {
        remove |= scheme_is(proto, "https") && port == ":443";
        remove |= scheme_is(proto, "http") && port == ":80";
    }
    if remove {
        &host[..end]
    } else {
        host
    }
}

/// Envoy's `Http::Utility::newUri` for a redirect config (`None`: a plain direct
/// response, whose "redirect path" route-check reports as the request's own URL).
pub(crate) fn new_uri(redirect: Option<&RedirectAction>, req: &RequestHead) -> String {
    let scheme = match redirect.map(|r| &r.scheme) {
        Some(SchemeRedirect::Scheme(s)) => s.as_str(),
        Some(SchemeRedirect::Https) => "https",
        _ => req.scheme.as_str(),
    };
    let port = redirect.and_then(|r| r.port_redirect);
    let host = match redirect.and_then(|r| r.host_redirect.as_deref()) {
        Some(h) => h,
        None => process_request_host(req, scheme, port),
    };
    let current = req.path.as_str();
    let (mut path, path_has_query) = match redirect.map(|r| &r.path) {
        Some(PathRedirect::Path(p)) => {
            if p.contains('?') {
                (p.clone(), true)
            } else {
                let mut s = p.clone();
                if let Some(q) = current.find('?') {
                    s.push_str(&current[q..]);
                }
                (s, false)
            }
        }
        _ => (current.to_string(), false),
    };
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if redirect.is_some_and(|r| r.strip_query) && !path_has_query {
        if let Some(q) = path.find('?') {
            path.truncate(q);
        }
    }
    let mut uri = String::with_capacity(scheme.len() + host.len() + path.len() + 10);
    uri.push_str(scheme);
    uri.push_str("://");
    uri.push_str(host);
    if let Some(p) = port {
        uri.push(':');
        uri.push_str(&p.to_string());
    }
    uri.push_str(&path);
    uri
}

/// `Http::Utility::createSslRedirectPath`: `https://<host><path>` for `require_tls`.
pub(crate) fn ssl_redirect_uri(req: &RequestHead) -> String {
    format!("https://{}{}", req.authority, req.path)
}

/// The path rewrite a redirect applies to `:path` before the URL is built.
pub(crate) fn redirect_path_rewrite(r: &RedirectAction) -> (Option<&str>, Option<&RegexRewrite>) {
    match &r.path {
        PathRedirect::PrefixRewrite(p) => (Some(p.as_str()), None),
        PathRedirect::RegexRewrite(re) => (None, Some(re)),
        _ => (None, None),
    }
}
