//! Where a request carries its JWTs (Envoy's jwt_authn `Extractor`): the providers'
//! `from_headers` (after `value_prefix`), `from_params` (percent-decoded) and
//! `from_cookies`, or, for a provider that names none, `Authorization: Bearer <token>`
//! and the `access_token` query parameter. One extractor serves one provider, or all of
//! them (`allow_missing`, `allow_missing_or_failed`); each location remembers which
//! issuers named it, and a token found there must come from one of them.
//!
//! Locations are tried headers first, then parameters, then cookies, each in name
//! order, as Envoy's ordered maps do. The headers a provider writes
//! (`forward_payload_header`, `claim_to_headers`) are removed from the request before
//! extraction, so a client cannot send them itself.
//!
//! Extraction borrows: a token found in a header, a cookie or a parameter without
//! percent-escapes is a slice of the request, not a copy (a request's token is looked
//! up in the cache by that slice).

use std::borrow::Cow;
use std::collections::BTreeMap;

use sluice_config::filters::jwt_authn::JwtProvider;

use crate::http::RequestHead;

/// The issuers that named a location; empty issuer: any.
#[derive(Debug, Clone, Default)]
pub struct IssuerChecker {
    allow_all: bool,
    issuers: Vec<String>,
}

impl IssuerChecker {
    fn add(&mut self, issuer: &str) {
        if issuer.is_empty() {
            self.allow_all = true;
        } else if !self.issuers.iter().any(|i| i == issuer) {
            self.issuers.push(issuer.to_string());
        }
    }

    pub fn allows(&self, iss: &str) -> bool {
        self.allow_all || self.issuers.iter().any(|i| i == iss)
    }
}

#[derive(Debug, Clone)]
struct HeaderLocation {
    name: String,
    prefix: String,
    issuers: IssuerChecker,
}

/// Where a token was found (what `forward: false` removes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Header(usize),
    Param(usize),
    Cookie,
}

/// A token found on the request (borrowed from it unless percent-decoded).
#[derive(Debug, Clone)]
pub struct Location<'h> {
    pub token: Cow<'h, str>,
    pub at: At,
}

/// Where a token was found and which issuers may sign it there: what a token's checks
/// need of its [`Location`] once the token itself is no longer borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub place: Place,
    issuers: usize,
}

/// The compiled locations of one or more providers.
#[derive(Debug, Clone, Default)]
pub struct Extractor {
    headers: Vec<HeaderLocation>,
    params: Vec<(String, IssuerChecker)>,
    cookies: Vec<(String, IssuerChecker)>,
    sanitize: Vec<String>,
}

const BEARER: &str = "Bearer ";
const ACCESS_TOKEN: &str = "access_token";

impl Extractor {
    pub fn new<'a>(providers: impl IntoIterator<Item = &'a JwtProvider>) -> Extractor {
        let mut headers: BTreeMap<String, HeaderLocation> = BTreeMap::new();
        let mut params: BTreeMap<String, IssuerChecker> = BTreeMap::new();
        let mut cookies: BTreeMap<String, IssuerChecker> = BTreeMap::new();
        let mut sanitize = Vec::new();
        let mut header = |name: &str, prefix: &str, issuer: &str| {
            let loc = headers.entry(format!("{name}{prefix}")).or_insert_with(|| HeaderLocation {
                name: name.to_string(),
                prefix: prefix.to_string(),
                issuers: IssuerChecker::default(),
            });
            loc.issuers.add(issuer);
        };
        for p in providers {
            for h in &p.from_headers {
                header(&h.name, &h.value_prefix, &p.issuer);
            }
            for q in &p.from_params {
                params.entry(q.clone()).or_default().add(&p.issuer);
            }
            for c in &p.from_cookies {
                cookies.entry(c.clone()).or_default().add(&p.issuer);
            }
            if p.from_headers.is_empty() && p.from_params.is_empty() && p.from_cookies.is_empty() {
                header("authorization", BEARER, &p.issuer);
                params.entry(ACCESS_TOKEN.to_string()).or_default().add(&p.issuer);
            }
            if !p.forward_payload_header.is_empty() {
                sanitize.push(p.forward_payload_header.clone());
            }
            sanitize.extend(p.claim_to_headers.iter().map(|c| c.header_name.clone()));
        }
        Extractor {
            headers: headers.into_values().collect(),
            params: params.into_iter().collect(),
            cookies: cookies.into_iter().collect(),
            sanitize,
        }
    }

    /// `sanitizeHeaders`: drop the headers the providers write.
    pub fn sanitize(&self, head: &mut RequestHead) {
        for h in &self.sanitize {
            head.headers.remove(h.as_bytes());
        }
    }

    /// Whether a token from `loc` may carry issuer `iss`.
    pub fn issuer_allowed(&self, loc: At, iss: &str) -> bool {
        let n = self.headers.len();
        let m = self.params.len();
        let checker = if loc.issuers < n {
            &self.headers[loc.issuers].issuers
        } else if loc.issuers < n + m {
            &self.params[loc.issuers - n].1
        } else {
            match self.cookies.get(loc.issuers - n - m) {
                Some(c) => &c.1,
                None => return false,
            }
        };
        checker.allows(iss)
    }

    /// Every token on the request, in Envoy's order.
    pub fn extract<'h>(&self, head: &'h RequestHead) -> Tokens<'h> {
        let mut out = Tokens::new();
        for (i, loc) in self.headers.iter().enumerate() {
            let name = loc.name.as_bytes();
            for (_, value) in head.headers.iter().filter(|(n, _)| *n == name) {
                let Ok(value) = std::str::from_utf8(value) else { continue };
                let token = if loc.prefix.is_empty() {
                    value
                } else {
                    // The prefix's first occurrence, which is most often at the start.
                    let found = if value.starts_with(loc.prefix.as_str()) { Some(0) } else { value.find(&*loc.prefix) };
                    let Some(pos) = found else { continue };
                    token_after(value, pos + loc.prefix.len())
                };
                out.push(Location { token: Cow::Borrowed(token), at: At { place: Place::Header(i), issuers: i } });
            }
        }
        let n = self.headers.len();
        if !self.params.is_empty() {
            for (j, (name, _)) in self.params.iter().enumerate() {
                if let Some(v) = first_param(&head.path, name) {
                    out.push(Location { token: v, at: At { place: Place::Param(j), issuers: n + j } });
                }
            }
        }
        for (j, (name, _)) in self.cookies.iter().enumerate() {
            if let Some(v) = cookie(head, name) {
                let at = At { place: Place::Cookie, issuers: n + self.params.len() + j };
                out.push(Location { token: Cow::Borrowed(v), at });
            }
        }
        out
    }

    /// `removeJwt`: take the token's header (every value of it) or query parameter off
    /// the request; cookies stay, as in Envoy.
    pub fn remove(&self, head: &mut RequestHead, at: At) {
        match at.place {
            Place::Header(i) => {
                if let Some(h) = self.headers.get(i) {
                    head.headers.remove(h.name.as_bytes());
                }
            }
            Place::Param(j) => {
                if let Some((name, _)) = self.params.get(j) {
                    head.path = remove_param(&head.path, name);
                }
            }
            Place::Cookie => {}
        }
    }
}

/// The base64url-and-dots run that starts at or after `after` (Envoy's `extractJWT`);
/// the value from `after` on when there is none.
fn token_after(value: &str, after: usize) -> &str {
    let rest = value.get(after..).unwrap_or("");
    let is_jwt = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match rest.find(is_jwt) {
        Some(start) => &rest[start..],
        None => value,
    }
}

/// The tokens of one request: one or two without an allocation.
pub type Tokens<'h> = smallvec::SmallVec<[Location<'h>; 2]>;

/// `s` percent-decoded (borrowed when it has no escape).
fn percent_decode(s: &str) -> Cow<'_, str> {
    if memchr::memchr(b'%', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn query(path: &str) -> Option<&str> {
    let q = &path[memchr::memchr(b'?', path.as_bytes())? + 1..];
    Some(memchr::memchr(b'#', q.as_bytes()).map_or(q, |i| &q[..i]))
}

/// The first value of query parameter `name`, percent-decoded
/// (`QueryParamsMulti::parseAndDecodeQueryString` + `getFirstValue`).
fn first_param<'p>(path: &'p str, name: &str) -> Option<Cow<'p, str>> {
    for p in query(path)?.split('&') {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if percent_decode(k) == name {
            return Some(percent_decode(v));
        }
    }
    None
}

/// `path` without the query parameters named `name`.
fn remove_param(path: &str, name: &str) -> String {
    let Some(qs) = path.find('?') else {
        return path.to_string();
    };
    let (base, rest) = path.split_at(qs);
    let (q, frag) = match rest.find('#') {
        Some(i) => (&rest[1..i], &rest[i..]),
        None => (&rest[1..], ""),
    };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| !p.is_empty() && percent_decode(p.split_once('=').map_or(*p, |(k, _)| k)) != name)
        .collect();
    if kept.is_empty() {
        format!("{base}{frag}")
    } else {
        format!("{base}?{}{frag}", kept.join("&"))
    }
}

/// The first cookie named `name` (`Http::Utility::parseCookies`: `;`-separated pairs,
/// surrounding spaces trimmed, a quoted value unquoted).
fn cookie<'h>(head: &'h RequestHead, name: &str) -> Option<&'h str> {
    for h in head.headers.get_all(b"cookie") {
        let Ok(h) = std::str::from_utf8(h) else { continue };
        for pair in h.split(';') {
            let pair = pair.trim_start_matches(' ');
            let Some((k, v)) = pair.split_once('=') else { continue };
            if k == name {
                let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                return Some(v);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_after_the_prefix() {
        assert_eq!(token_after("Bearer a.b.c", 7), "a.b.c");
        assert_eq!(token_after("Bearer   \"a.b.c", 7), "a.b.c");
        assert_eq!(token_after("Bearer ", 7), "Bearer ");
    }

    #[test]
    fn params_and_cookies() {
        assert_eq!(first_param("/p?x=1&access_token=a%2Eb.c", "access_token").as_deref(), Some("a.b.c"));
        assert_eq!(first_param("/p?x=1", "access_token"), None);
        assert_eq!(remove_param("/p?x=1&jwt=t&y=2", "jwt"), "/p?x=1&y=2");
        assert_eq!(remove_param("/p?jwt=t", "jwt"), "/p");
        let mut head = RequestHead::default();
        head.headers.append(b"cookie", b"a=1; session=\"tok.en.x\"; b=2");
        assert_eq!(cookie(&head, "session"), Some("tok.en.x"));
        assert_eq!(cookie(&head, "c"), None);
    }
}
