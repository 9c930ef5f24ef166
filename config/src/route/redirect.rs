//! `config.route.v3.RedirectAction`: scheme, host, port and path of the redirect URL,
//! the response code (301 by default) and `strip_query`.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::RegexRewrite;
use crate::node::Node;
use crate::proto_enum;

proto_enum! {
    /// `RedirectAction.RedirectResponseCode`.
    pub enum RedirectResponseCode {
        MovedPermanently = ("MOVED_PERMANENTLY", 0),
        Found = ("FOUND", 1),
        SeeOther = ("SEE_OTHER", 2),
        TemporaryRedirect = ("TEMPORARY_REDIRECT", 3),
        PermanentRedirect = ("PERMANENT_REDIRECT", 4),
    }
}

impl RedirectResponseCode {
    pub fn status(self) -> u16 {
        match self {
            RedirectResponseCode::MovedPermanently => 301,
            RedirectResponseCode::Found => 302,
            RedirectResponseCode::SeeOther => 303,
            RedirectResponseCode::TemporaryRedirect => 307,
            RedirectResponseCode::PermanentRedirect => 308,
        }
    }
}

/// The scheme of the redirect URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeRedirect {
    /// The request's `:scheme`.
    Keep,
    /// `https_redirect: true`
    Https,
    /// `scheme_redirect`
    Scheme(String),
}

/// The path of the redirect URL.
#[derive(Debug, Clone, PartialEq)]
pub enum PathRedirect {
    Keep,
    /// `path_redirect` (may carry its own query, which then wins and is never stripped).
    Path(String),
    /// `prefix_rewrite`: the matched prefix replaced.
    PrefixRewrite(String),
    RegexRewrite(RegexRewrite),
}

/// `config.route.v3.RedirectAction`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectAction {
    pub scheme: SchemeRedirect,
    pub host_redirect: Option<String>,
    pub port_redirect: Option<u16>,
    pub path: PathRedirect,
    pub response_code: RedirectResponseCode,
    pub strip_query: bool,
}

impl Decode for RedirectAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let https = f.or(d, "https_redirect", false);
        let scheme_redirect: String = f.or(d, "scheme_redirect", String::new());
        let host_redirect: String = f.or(d, "host_redirect", String::new());
        let port: u32 = f.or(d, "port_redirect", 0);
        let path_redirect: String = f.or(d, "path_redirect", String::new());
        let prefix_rewrite: String = f.or(d, "prefix_rewrite", String::new());
        let has_regex = f.has("regex_rewrite");
        let regex_rewrite: Option<RegexRewrite> = f.opt(d, "regex_rewrite");
        let response_code = f.or(d, "response_code", RedirectResponseCode::MovedPermanently);
        let strip_query = f.or(d, "strip_query", false);
        f.finish(d);
        let scheme = match (https, scheme_redirect.is_empty()) {
            (true, false) => {
                d.error(ErrorKind::Invalid, path, line, "set only one of `https_redirect` and `scheme_redirect`");
                return None;
            }
            (true, true) => SchemeRedirect::Https,
            (false, false) => SchemeRedirect::Scheme(scheme_redirect),
            (false, true) => SchemeRedirect::Keep,
        };
        if port > 65535 {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.port_redirect"),
                line,
                format!("port {port} is not in 0..=65535"),
            );
            return None;
        }
        for (name, v) in
            [("host_redirect", &host_redirect), ("path_redirect", &path_redirect), ("prefix_rewrite", &prefix_rewrite)]
        {
            if v.bytes().any(|b| b.is_ascii_control()) {
                d.error(ErrorKind::Invalid, &format!("{path}.{name}"), line, "may not contain control characters");
                return None;
            }
        }
        let set = [!path_redirect.is_empty(), !prefix_rewrite.is_empty(), has_regex].iter().filter(|b| **b).count();
        if set > 1 {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "set only one of `path_redirect`, `prefix_rewrite`, `regex_rewrite`",
            );
            return None;
        }
        let path_kind = if !path_redirect.is_empty() {
            PathRedirect::Path(path_redirect)
        } else if !prefix_rewrite.is_empty() {
            PathRedirect::PrefixRewrite(prefix_rewrite)
        } else if has_regex {
            PathRedirect::RegexRewrite(regex_rewrite?)
        } else {
            PathRedirect::Keep
        };
        Some(RedirectAction {
            scheme,
            host_redirect: (!host_redirect.is_empty()).then_some(host_redirect),
            port_redirect: (port != 0).then_some(port as u16),
            path: path_kind,
            response_code,
            strip_query,
        })
    }
}
