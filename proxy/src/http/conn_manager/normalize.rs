//! Path and host normalisation of a request (Envoy's `ConnectionManagerUtility::
//! maybeNormalizePath` and `maybeNormalizeHost`), applied once per request after the
//! request headers are prepared and before the route lookup and any HTTP filter.
//!
//! Envoy's order: a path with a fragment (`#`) is refused; then
//! `path_with_escaped_slashes_action` (`%2F`, `%5C`: keep, reject, unescape and
//! redirect, unescape and forward); `normalize_path` (refusal: 400); `merge_slashes`;
//! then the host: `strip_trailing_host_dot`, then `strip_matching_host_port` or
//! `strip_any_host_port`. A refusal is a 400 and counts
//! `downstream_rq_failed_path_normalization`; a redirect is a 307 to the normalised
//! path and counts `downstream_rq_redirected_with_normalized_path`, except for a gRPC
//! request (gRPC clients do not follow redirects), which is refused. A refusal of a
//! gRPC request takes Envoy's gRPC local-reply form (200, `grpc-status: 13`). As in
//! Envoy, no
//! `x-envoy-original-path` is added: the origin sees only the normalised path.

use sluice_config::hcm::{HttpConnectionManager, PathWithEscapedSlashesAction, StripPortMode};

use crate::http::path;
use crate::http::RequestHead;
use crate::stats::HttpStats;

/// What to do with `%2F` and `%5C` in a path (Envoy's `PathWithEscapedSlashesAction`,
/// with `IMPLEMENTATION_SPECIFIC_DEFAULT` resolved at load to Envoy's default,
/// `KEEP_UNCHANGED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    KeepUnchanged,
    RejectRequest,
    UnescapeAndRedirect,
    UnescapeAndForward,
}

/// The HCM's path and host options, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNormalization {
    pub normalize_path: bool,
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
    pub strip_trailing_host_dot: bool,
    pub strip_port: StripPortMode,
}

impl PathNormalization {
    pub fn new(c: &HttpConnectionManager) -> PathNormalization {
        let escaped_slashes = match c.path_with_escaped_slashes_action {
            PathWithEscapedSlashesAction::ImplementationSpecificDefault
            | PathWithEscapedSlashesAction::KeepUnchanged => EscapedSlashes::KeepUnchanged,
            PathWithEscapedSlashesAction::RejectRequest => EscapedSlashes::RejectRequest,
            PathWithEscapedSlashesAction::UnescapeAndRedirect => EscapedSlashes::UnescapeAndRedirect,
            PathWithEscapedSlashesAction::UnescapeAndForward => EscapedSlashes::UnescapeAndForward,
        };
        PathNormalization {
            normalize_path: c.normalize_path,
            merge_slashes: c.merge_slashes,
            escaped_slashes,
            strip_trailing_host_dot: c.strip_trailing_host_dot,
            strip_port: c.strip_port_mode,
        }
    }
}

/// `maybeNormalizePath`'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAction {
    Continue,
    Reject,
    Redirect,
}

/// A local reply instead of routing the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 400 with an empty body; for a gRPC request Envoy's gRPC form of it: 200,
    /// `grpc-status: 13` (INTERNAL, Envoy's `httpToGrpcStatus(400)`).
    BadRequest { grpc: bool },
    /// 307 with `location` set to the normalised path.
    Redirect(String),
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Reply::BadRequest { grpc: true } => 200,
            Reply::BadRequest { grpc: false } => 400,
            Reply::Redirect(_) => 307,
        }
    }

    /// The headers the reply carries besides the local reply's own.
    pub fn headers(&self) -> Vec<(&[u8], &[u8])> {
        match self {
            Reply::BadRequest { grpc: true } => {
                vec![(&b"content-type"[..], &b"application/grpc"[..]), (b"grpc-status", b"13")]
            }
            Reply::BadRequest { grpc: false } => Vec::new(),
            Reply::Redirect(path) => vec![(&b"location"[..], path.as_bytes())],
        }
    }
}

/// `maybeNormalizePath` on `head.path`. A path that does not start with `/` (`*`) is
/// left alone: it is not a path Envoy would route.
pub fn normalize_path(cfg: &PathNormalization, head: &mut RequestHead) -> PathAction {
    if !head.path.starts_with('/') {
        return PathAction::Continue;
    }
    // envoy.reloadable_features.http_reject_path_with_fragment (on by default).
    if head.path.contains('#') {
        return PathAction::Reject;
    }
    let mut action = PathAction::Continue;
    if cfg.escaped_slashes != EscapedSlashes::KeepUnchanged {
        if let Some(unescaped) = path::unescape_slashes(&head.path) {
            match cfg.escaped_slashes {
                EscapedSlashes::RejectRequest => return PathAction::Reject,
                EscapedSlashes::UnescapeAndRedirect => action = PathAction::Redirect,
                EscapedSlashes::UnescapeAndForward | EscapedSlashes::KeepUnchanged => {}
            }
            head.path = unescaped;
        }
    }
    if cfg.normalize_path {
        match path::canonical_path(&head.path) {
            Some(p) => head.path = p,
            None => return PathAction::Reject,
        }
    }
    // After normalisation, to catch slashes it produced from escapes.
    if cfg.merge_slashes {
        if let Some(p) = path::merge_slashes(&head.path) {
            head.path = p;
        }
    }
    action
}

/// `maybeNormalizeHost` on `head.authority`; `local_port` is the port the connection
/// arrived on (for `strip_matching_host_port`).
pub fn normalize_host(cfg: &PathNormalization, head: &mut RequestHead, local_port: u16) {
    if cfg.strip_trailing_host_dot {
        if let Some(h) = path::strip_trailing_host_dot(&head.authority) {
            head.authority = h;
        }
    }
    let listener_port = match cfg.strip_port {
        StripPortMode::None => return,
        StripPortMode::Matching => Some(local_port),
        StripPortMode::Any => None,
    };
    if let Some(len) = path::strip_port_from_host(&head.authority, listener_port).map(str::len) {
        head.authority.truncate(len);
    }
}

/// Envoy's `Grpc::Common::hasGrpcContentType`: `application/grpc` or
/// `application/grpc+...` (not `application/grpc-web`).
fn is_grpc(head: &RequestHead) -> bool {
    head.headers
        .get(b"content-type")
        .and_then(|v| v.strip_prefix(b"application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+')
}

/// Normalise the request's path, then its host, as Envoy's connection manager does
/// before routing; `Some` is the local reply to send instead (counted in `stats`).
pub fn apply(cfg: &PathNormalization, head: &mut RequestHead, local_port: u16, stats: &HttpStats) -> Option<Reply> {
    match normalize_path(cfg, head) {
        PathAction::Continue => {}
        // gRPC clients do not follow redirects: refused as well.
        PathAction::Reject | PathAction::Redirect if is_grpc(head) => {
            stats.downstream_rq_failed_path_normalization.inc();
            return Some(Reply::BadRequest { grpc: true });
        }
        PathAction::Reject => {
            stats.downstream_rq_failed_path_normalization.inc();
            return Some(Reply::BadRequest { grpc: false });
        }
        PathAction::Redirect => {
            stats.downstream_rq_redirected_with_normalized_path.inc();
            return Some(Reply::Redirect(head.path.clone()));
        }
    }
    normalize_host(cfg, head, local_port);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(escaped_slashes: EscapedSlashes, normalize_path: bool, merge_slashes: bool) -> PathNormalization {
        PathNormalization {
            normalize_path,
            merge_slashes,
            escaped_slashes,
            strip_trailing_host_dot: false,
            strip_port: StripPortMode::None,
        }
    }

    fn run(c: &PathNormalization, path: &str) -> (PathAction, String) {
        let mut head = RequestHead { path: path.to_string(), ..RequestHead::default() };
        let a = normalize_path(c, &mut head);
        (a, head.path)
    }

    #[test]
    fn nothing_configured_changes_nothing() {
        let c = cfg(EscapedSlashes::KeepUnchanged, false, false);
        for p in ["/a/./b/../c", "//a//b", "/a%2Fb", "/a%5cb?x=%2f"] {
            assert_eq!(run(&c, p), (PathAction::Continue, p.to_string()));
        }
    }

    #[test]
    fn fragments_are_refused_whatever_the_config() {
        assert_eq!(run(&cfg(EscapedSlashes::KeepUnchanged, false, false), "/a#b").0, PathAction::Reject);
        assert_eq!(run(&cfg(EscapedSlashes::KeepUnchanged, true, true), "/a?x#b").0, PathAction::Reject);
    }

    #[test]
    fn escaped_slash_actions() {
        let reject = cfg(EscapedSlashes::RejectRequest, false, false);
        assert_eq!(run(&reject, "/a%2Fb").0, PathAction::Reject);
        assert_eq!(run(&reject, "/a%5cb").0, PathAction::Reject);
        assert_eq!(
            run(&reject, "/a/b?x=%2F"),
            (PathAction::Continue, "/a/b?x=%2F".into()),
            "the query is not looked at"
        );
        assert_eq!(run(&reject, "/a%2Bb"), (PathAction::Continue, "/a%2Bb".into()));
        let redirect = cfg(EscapedSlashes::UnescapeAndRedirect, false, false);
        assert_eq!(run(&redirect, "/a%2Fb?q"), (PathAction::Redirect, "/a/b?q".into()));
        assert_eq!(run(&redirect, "/a/b"), (PathAction::Continue, "/a/b".into()));
        let forward = cfg(EscapedSlashes::UnescapeAndForward, false, false);
        assert_eq!(run(&forward, "/a%2fb%5Cc"), (PathAction::Continue, "/a/b\\c".into()));
        // With normalize_path the backslash becomes a slash; merge_slashes then merges.
        let all = cfg(EscapedSlashes::UnescapeAndForward, true, true);
        assert_eq!(run(&all, "/a%2F%2Fb%5C..%5Cc"), (PathAction::Continue, "/a/c".into()));
        let redirect_all = cfg(EscapedSlashes::UnescapeAndRedirect, true, true);
        assert_eq!(run(&redirect_all, "/x/%2E%2e/z%2f%2Fabc"), (PathAction::Redirect, "/z/abc".into()));
    }

    #[test]
    fn normalize_then_merge() {
        let c = cfg(EscapedSlashes::KeepUnchanged, true, true);
        assert_eq!(run(&c, "/a/./c/../b"), (PathAction::Continue, "/a/b".into()));
        assert_eq!(run(&c, "//a///b/"), (PathAction::Continue, "/a/b/".into()));
        assert_eq!(run(&c, "/a/%00"), (PathAction::Reject, "/a/%00".into()));
        assert_eq!(run(&c, "*"), (PathAction::Continue, "*".into()), "asterisk form is not a path");
        let merge_only = cfg(EscapedSlashes::KeepUnchanged, false, true);
        assert_eq!(run(&merge_only, "//a/./b"), (PathAction::Continue, "/a/./b".into()));
    }

    #[test]
    fn host_normalisation() {
        let host = |strip_port: StripPortMode, dot: bool, authority: &str| {
            let c = PathNormalization {
                strip_trailing_host_dot: dot,
                strip_port,
                ..cfg(EscapedSlashes::KeepUnchanged, false, false)
            };
            let mut head = RequestHead { authority: authority.to_string(), ..RequestHead::default() };
            normalize_host(&c, &mut head, 8080);
            head.authority
        };
        assert_eq!(host(StripPortMode::None, false, "a.test.:8080"), "a.test.:8080");
        assert_eq!(host(StripPortMode::Matching, false, "a.test:8080"), "a.test");
        assert_eq!(host(StripPortMode::Matching, false, "a.test:9090"), "a.test:9090");
        assert_eq!(host(StripPortMode::Any, false, "10.0.0.1:9090"), "10.0.0.1");
        assert_eq!(host(StripPortMode::None, true, "a.test."), "a.test");
        assert_eq!(host(StripPortMode::Matching, true, "a.test.:8080"), "a.test", "the dot first, then the port");
    }

    #[test]
    fn grpc_content_types() {
        let grpc = |ct: &str| {
            let mut head = RequestHead::default();
            head.headers.set(b"content-type", ct.as_bytes());
            is_grpc(&head)
        };
        assert!(grpc("application/grpc") && grpc("application/grpc+proto"));
        assert!(!grpc("application/grpc-web") && !grpc("text/plain"));
    }
}
