//! Requirements, compiled (Envoy's jwt_authn `Verifier` tree and `Authenticator`), and
//! how they judge one request.
//!
//! A provider requirement verifies the tokens found at that provider's locations and
//! fails on the first bad one (all must be good: a good and a bad token together must not
//! pass); `requires_all` fails with its first failing child; `requires_any` passes with
//! its first passing child, else fails with the most telling child status (an error other
//! than "missing" or "unknown issuer" first), unless it holds `allow_missing` (and the
//! status is "missing") or `allow_missing_or_failed`. `allow_missing` and
//! `allow_missing_or_failed` on their own verify every token at every provider's
//! locations, each with the provider of its issuer. Verification here is synchronous:
//! local keys are parsed once per config, and remote ones ([`Context::fetches`] says
//! which a request needs) are fetched by the filter before it verifies.
//!
//! A provider requirement looks each token up in its provider's per-worker token cache
//! first (`jwt_cache_hit` / `jwt_cache_miss`, counted as Envoy does even when the cache
//! is off); a hit skips the parse and the signature check but still goes through the
//! issuer, time and audience checks, and a token that passed them all is cached.
//!
//! A good token's payload goes where its provider says (`forward_payload_header`,
//! `claim_to_headers`, `payload_in_metadata`, `header_in_metadata`) and, unless
//! `forward`, the token is removed from the request.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sluice_config::filters::jwt_authn::{JwtProvider, JwtRequirement};
use sluice_config::metadata::{Struct, Value};

use super::extractor::{At, Extractor, Location};
use super::jwks::Jwks;
use super::jwt::Jwt;
use super::remote_jwks::RemoteJwks;
use super::status::Status;
use super::worker::WorkerState;
use crate::http::RequestHead;
use crate::stats::SharedCounter;

/// Audiences a token must name one of (jwt_verify_lib's `CheckAudience`): compared
/// without an `http://` / `https://` scheme and without a trailing `/`.
#[derive(Debug, Clone, Default)]
pub struct Audiences(Vec<String>);

fn normalize(a: &str) -> &str {
    let a = a.strip_prefix("http://").or_else(|| a.strip_prefix("https://")).unwrap_or(a);
    a.strip_suffix('/').unwrap_or(a)
}

impl Audiences {
    pub fn new(list: &[String]) -> Audiences {
        Audiences(list.iter().map(|a| normalize(a).to_string()).collect())
    }

    fn allowed(&self, jwt: &[String]) -> bool {
        self.0.is_empty() || jwt.iter().any(|a| self.0.iter().any(|c| c == normalize(a)))
    }
}

/// A provider with its keys.
#[derive(Debug)]
pub struct Provider {
    pub config: JwtProvider,
    /// `local_jwks`; `None`: the JWKS did not parse (every token fails with "no valid
    /// key", as Envoy), or the keys are remote.
    pub jwks: Option<Jwks>,
    /// `remote_jwks`: the keys are fetched per worker.
    pub remote: Option<RemoteJwks>,
    audiences: Audiences,
    /// `max_lifetime` (or unbounded with `require_expiration`): `exp` must be set and
    /// no further than this from now.
    max_exp: Option<Option<Duration>>,
}

impl Provider {
    pub fn new(config: &JwtProvider, jwks: Option<Jwks>) -> Provider {
        let max_exp = match (config.max_lifetime, config.require_expiration) {
            (Some(d), _) => Some(Some(d)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        Provider { audiences: Audiences::new(&config.audiences), config: config.clone(), jwks, remote: None, max_exp }
    }

    fn lifetime_allowed(&self, now: u64, exp: u64) -> bool {
        match self.max_exp {
            None => true,
            Some(_) if exp == 0 => false,
            Some(None) => true,
            Some(Some(max)) => (exp as i128 - now as i128) < max.as_secs() as i128 + i128::from(max.subsec_nanos() > 0),
        }
    }
}

/// A compiled `JwtRequirement`.
#[derive(Debug)]
pub enum Verifier {
    AllowAll,
    Provider { provider: usize, audiences: Option<Audiences>, extractor: Extractor },
    Any { children: Vec<Verifier>, allow_missing: bool, allow_missing_or_failed: bool },
    All(Vec<Verifier>),
    AllowMissing(Extractor),
    AllowMissingOrFailed(Extractor),
}

impl Verifier {
    /// Compile; provider names were checked when the config was decoded.
    pub fn new(r: &JwtRequirement, providers: &[Provider]) -> Verifier {
        let by_name = |n: &str| providers.iter().position(|p| p.config.name == n);
        let all = || Extractor::new(providers.iter().map(|p| &p.config));
        let provider = |n: &str, audiences: Option<Audiences>| match by_name(n) {
            Some(i) => Verifier::Provider { provider: i, audiences, extractor: Extractor::new([&providers[i].config]) },
            None => Verifier::AllowMissingOrFailed(Extractor::default()),
        };
        match r {
            JwtRequirement::AllowAll => Verifier::AllowAll,
            JwtRequirement::ProviderName(n) => provider(n, None),
            JwtRequirement::ProviderAndAudiences { provider_name, audiences } => {
                let a = (!audiences.is_empty()).then(|| Audiences::new(audiences));
                provider(provider_name, a)
            }
            JwtRequirement::RequiresAll(v) => Verifier::All(v.iter().map(|c| Verifier::new(c, providers)).collect()),
            JwtRequirement::RequiresAny(v) => {
                let mut children = Vec::new();
                let (mut allow_missing, mut allow_missing_or_failed) = (false, false);
                for c in v {
                    match c {
                        JwtRequirement::AllowMissing => allow_missing = true,
                        JwtRequirement::AllowMissingOrFailed => allow_missing_or_failed = true,
                        c => children.push(Verifier::new(c, providers)),
                    }
                }
                if children.is_empty() {
                    children.push(if allow_missing_or_failed {
                        Verifier::AllowMissingOrFailed(all())
                    } else {
                        Verifier::AllowMissing(all())
                    });
                }
                Verifier::Any { children, allow_missing, allow_missing_or_failed }
            }
            JwtRequirement::AllowMissing => Verifier::AllowMissing(all()),
            JwtRequirement::AllowMissingOrFailed => Verifier::AllowMissingOrFailed(all()),
        }
    }
}

/// What one verification needs besides the request.
pub struct Context<'a> {
    pub providers: &'a [Provider],
    /// Unix seconds.
    pub now: u64,
    /// The same moment on the monotonic clock (remote keys' expiry).
    pub instant: Instant,
    /// Providers whose remote keys this request fetched and failed to get.
    pub fetch_failed: &'a [usize],
    pub jwt_cache_hit: &'a SharedCounter,
    pub jwt_cache_miss: &'a SharedCounter,
    /// This worker's state of the config (token caches).
    pub worker: &'a mut WorkerState,
    /// `payload_in_metadata` / `header_in_metadata` entries of good tokens.
    pub extracted: Struct,
}

impl Context<'_> {
    /// Judge `head` by `v`.
    pub fn verify(&mut self, v: &Verifier, head: &mut RequestHead) -> Status {
        match v {
            Verifier::AllowAll => Status::Ok,
            Verifier::Provider { provider, audiences, extractor } => {
                let p = Auth {
                    provider: Some(*provider),
                    audiences: audiences.as_ref(),
                    allow_failed: false,
                    allow_missing: false,
                };
                self.authenticate(p, extractor, head)
            }
            Verifier::All(children) => {
                for c in children {
                    let s = self.verify(c, head);
                    if s != Status::Ok {
                        return s;
                    }
                }
                Status::Ok
            }
            Verifier::Any { children, allow_missing, allow_missing_or_failed } => {
                let mut statuses = Vec::with_capacity(children.len());
                for c in children {
                    let s = self.verify(c, head);
                    if s == Status::Ok {
                        return Status::Ok;
                    }
                    statuses.push(s);
                }
                let mut last = Status::JwtMissed;
                for s in statuses {
                    if !matches!(s, Status::JwtMissed | Status::JwtUnknownIssuer) || last == Status::JwtMissed {
                        last = s;
                    }
                }
                if *allow_missing_or_failed || (*allow_missing && last == Status::JwtMissed) {
                    Status::Ok
                } else {
                    last
                }
            }
            Verifier::AllowMissing(e) => {
                let a = Auth { provider: None, audiences: None, allow_failed: false, allow_missing: true };
                self.authenticate(a, e, head)
            }
            Verifier::AllowMissingOrFailed(e) => {
                let a = Auth { provider: None, audiences: None, allow_failed: true, allow_missing: true };
                self.authenticate(a, e, head)
            }
        }
    }

    /// Envoy's `AuthenticatorImpl::verify`: the tokens, last found first.
    ///
    /// The tokens are judged while borrowed from the request; what a good token does
    /// to the request (`handleGoodJwt`) follows, in the same order. Judging a token
    /// never reads what an earlier good token changed, so the request ends as if each
    /// good token's changes had come right after it.
    fn authenticate(&mut self, a: Auth<'_>, extractor: &Extractor, head: &mut RequestHead) -> Status {
        extractor.sanitize(head);
        let mut good = Goods::new();
        let status = self.judge(&a, extractor, head, &mut good);
        for (p, jwt, at) in good {
            self.good(p, &jwt, extractor, at, head);
        }
        status
    }

    /// The verdict on the request's tokens; the good ones judged before it in `good`.
    fn judge(&mut self, a: &Auth<'_>, extractor: &Extractor, head: &RequestHead, good: &mut Goods) -> Status {
        let mut tokens = extractor.extract(head);
        let Some(mut loc) = tokens.pop() else {
            return if a.allow_missing || a.allow_failed { Status::Ok } else { Status::JwtMissed };
        };
        loop {
            let status = match self.one(a, extractor, &loc) {
                Ok((p, jwt)) => {
                    good.push((p, jwt, loc.at));
                    Status::Ok
                }
                Err(s) => s,
            };
            if (status != Status::Ok && !a.allow_failed && !a.allow_missing) || tokens.is_empty() {
                return if a.allow_failed || (a.allow_missing && status == Status::JwtMissed) {
                    Status::Ok
                } else {
                    status
                };
            }
            loc = match tokens.pop() {
                Some(l) => l,
                None => return status,
            };
        }
    }

    /// `startVerify` for one token: the provider that judged it good and the token
    /// (cached once verified).
    fn one(&mut self, a: &Auth<'_>, extractor: &Extractor, loc: &Location<'_>) -> Result<(usize, Rc<Jwt>), Status> {
        let mut cached = None;
        if let Some(p) = a.provider {
            let cache = self.worker.providers.get_mut(p).and_then(|s| s.jwt_cache.as_mut());
            cached = cache.and_then(|c| c.lookup(&loc.token, self.now));
            if cached.is_some() {
                self.jwt_cache_hit.inc();
            } else {
                self.jwt_cache_miss.inc();
            }
        }
        let hit = cached.is_some();
        let jwt = match cached {
            Some(j) => j,
            None => Rc::new(Jwt::parse(&loc.token)?),
        };
        let p = self.claims(a, extractor, loc.at, &jwt)?;
        if !hit {
            let s = self.signature(p, &jwt);
            if s != Status::Ok {
                return Err(s);
            }
        }
        if let (Some(p), false) = (a.provider, hit) {
            if let Some(c) = self.worker.providers.get_mut(p).and_then(|s| s.jwt_cache.as_mut()) {
                c.insert(Rc::clone(&jwt));
            }
        }
        Ok((p, jwt))
    }

    /// The checks before the signature (also a cache hit's): the issuer, the times and
    /// the audiences; the provider that judges the token.
    fn claims(&self, a: &Auth<'_>, extractor: &Extractor, at: At, jwt: &Jwt) -> Result<usize, Status> {
        if !extractor.issuer_allowed(at, &jwt.iss) {
            return Err(Status::JwtUnknownIssuer);
        }
        let Some(p) = a.provider.or_else(|| self.by_issuer(&jwt.iss)) else {
            return Err(Status::JwtUnknownIssuer);
        };
        let provider = &self.providers[p];
        let skew = match provider.config.clock_skew_seconds {
            0 => 60,
            s => u64::from(s),
        };
        let s = jwt.verify_time(self.now, skew);
        if s != Status::Ok {
            return Err(s);
        }
        if !provider.lifetime_allowed(self.now, jwt.exp) {
            return Err(Status::JwtExpired);
        }
        if !a.audiences.unwrap_or(&provider.audiences).allowed(&jwt.audiences) {
            return Err(Status::JwtAudienceNotAllowed);
        }
        Ok(p)
    }

    /// The signature, against the provider's local keys or this worker's fetched ones.
    fn signature(&self, p: usize, jwt: &Jwt) -> Status {
        let provider = &self.providers[p];
        if provider.remote.is_some() {
            return match self.fresh_keys(p) {
                Some(jwks) => jwks.verify(jwt),
                None => Status::JwksFetchFail,
            };
        }
        match &provider.jwks {
            Some(jwks) => jwks.verify(jwt),
            None => Status::JwksNoValidKeys,
        }
    }

    /// This worker's fetched keys of `p`, unless expired.
    fn fresh_keys(&self, p: usize) -> Option<&Jwks> {
        let f = self.worker.providers.get(p)?.remote.as_ref()?;
        f.fresh(self.instant).then_some(&*f.jwks)
    }

    /// The remote providers whose keys `v` would need for `head`'s tokens and this
    /// worker lacks (missing or expired): a token that fails its claims, is a cache hit
    /// or belongs to a provider whose fetch already failed needs none (Envoy fetches
    /// only when it reaches the signature check).
    pub fn fetches(&mut self, v: &Verifier, head: &RequestHead, out: &mut Vec<usize>) {
        match v {
            Verifier::AllowAll => {}
            Verifier::Provider { provider, audiences, extractor } => {
                let a = Auth {
                    provider: Some(*provider),
                    audiences: audiences.as_ref(),
                    allow_failed: false,
                    allow_missing: false,
                };
                self.scan(&a, extractor, head, out);
            }
            Verifier::All(children) | Verifier::Any { children, .. } => {
                for c in children {
                    self.fetches(c, head, out);
                }
            }
            Verifier::AllowMissing(e) | Verifier::AllowMissingOrFailed(e) => {
                let a = Auth { provider: None, audiences: None, allow_failed: true, allow_missing: true };
                self.scan(&a, e, head, out);
            }
        }
    }

    fn scan(&mut self, a: &Auth<'_>, extractor: &Extractor, head: &RequestHead, out: &mut Vec<usize>) {
        for loc in extractor.extract(head) {
            if let Some(p) = a.provider {
                let needs_keys = self.providers[p].remote.is_some() && self.fresh_keys(p).is_none();
                if !needs_keys || out.contains(&p) || self.fetch_failed.contains(&p) {
                    continue;
                }
                let cache = self.worker.providers.get_mut(p).and_then(|s| s.jwt_cache.as_mut());
                if cache.and_then(|c| c.lookup(&loc.token, self.now)).is_some() {
                    continue;
                }
            }
            let Ok(jwt) = Jwt::parse(&loc.token) else { continue };
            let Ok(p) = self.claims(a, extractor, loc.at, &jwt) else { continue };
            if self.providers[p].remote.is_some()
                && self.fresh_keys(p).is_none()
                && !out.contains(&p)
                && !self.fetch_failed.contains(&p)
            {
                out.push(p);
            }
        }
    }

    /// `findByIssuer`: the first provider with this issuer, else the first without one.
    fn by_issuer(&self, iss: &str) -> Option<usize> {
        let find = |i: &str| self.providers.iter().position(|p| p.config.issuer == i);
        find(iss).or_else(|| if iss.is_empty() { None } else { find("") })
    }

    /// `handleGoodJwt`.
    fn good(&mut self, p: usize, jwt: &Jwt, extractor: &Extractor, at: At, head: &mut RequestHead) {
        let c = &self.providers[p].config;
        if !c.forward_payload_header.is_empty() {
            let mut v = jwt.payload_b64().to_string();
            if c.pad_forward_payload_header {
                while v.len() % 4 != 0 {
                    v.push('=');
                }
            }
            head.headers.append(c.forward_payload_header.as_bytes(), v.as_bytes());
        }
        for ch in &c.claim_to_headers {
            if let Some(v) = claim(&jwt.payload, &ch.claim_name) {
                head.headers.append(ch.header_name.as_bytes(), v.as_bytes());
            }
        }
        if !c.forward {
            extractor.remove(head, at);
        }
        if !c.header_in_metadata.is_empty() {
            self.extracted.insert(c.header_in_metadata.clone(), Value::Struct(to_struct(&jwt.header)));
        }
        if !c.payload_in_metadata.is_empty() {
            let mut payload = to_struct(&jwt.payload);
            // `normalize_payload_in_metadata`: a string claim becomes the list of its
            // space-separated words.
            for name in &c.space_delimited_claims {
                if let Some(Value::String(text)) = payload.get(name) {
                    let words = text.split(' ').filter(|w| !w.is_empty()).map(|w| Value::String(w.into())).collect();
                    payload.insert(name.clone(), Value::List(words));
                }
            }
            self.extracted.insert(c.payload_in_metadata.clone(), Value::Struct(payload));
        }
    }
}

/// The good tokens of one requirement: provider, token, where it was found.
type Goods = smallvec::SmallVec<[(usize, Rc<Jwt>, At); 1]>;

struct Auth<'a> {
    provider: Option<usize>,
    audiences: Option<&'a Audiences>,
    allow_failed: bool,
    allow_missing: bool,
}

/// A claim as a header value: strings as they are, numbers as Envoy prints them
/// (integers without a fraction, others with six decimals), booleans as `true`/`false`,
/// objects and lists as the base64 of their JSON; null, empty and absent claims give
/// no header.
fn claim(payload: &serde_json::Map<String, Json>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut v = payload.get(parts.next()?)?;
    for part in parts {
        v = v.as_object()?.get(part)?;
    }
    match v {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => {
            let f = n.as_f64()?;
            if f >= 0.0 && f < u64::MAX as f64 && f.fract() == 0.0 {
                Some(format!("{}", f as u64))
            } else {
                Some(format!("{f:.6}"))
            }
        }
        Json::Bool(b) => Some(b.to_string()),
        Json::Object(_) | Json::Array(_) => Some(sluice_config::dump::base64(to_value(v).to_json().as_bytes())),
        _ => None,
    }
}

fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::List(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Struct(to_struct(o)),
    }
}

fn to_struct(o: &serde_json::Map<String, Json>) -> Struct {
    o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_ignore_scheme_and_trailing_slash() {
        let a = Audiences::new(&["https://svc/".to_string(), "other".to_string()]);
        assert!(a.allowed(&["http://svc".to_string()]));
        assert!(a.allowed(&["x".to_string(), "other/".to_string()]));
        assert!(!a.allowed(&["x".to_string()]));
        assert!(!a.allowed(&[]));
        assert!(Audiences::default().allowed(&[]));
    }

    #[test]
    fn claims_as_header_values() {
        let p: serde_json::Map<String, Json> =
            serde_json::from_str(r#"{"sub":"u","n":42,"f":1.5,"b":true,"o":{"k":"v"},"l":[1]}"#).unwrap();
        assert_eq!(claim(&p, "sub").as_deref(), Some("u"));
        assert_eq!(claim(&p, "n").as_deref(), Some("42"));
        assert_eq!(claim(&p, "f").as_deref(), Some("1.500000"));
        assert_eq!(claim(&p, "b").as_deref(), Some("true"));
        assert_eq!(claim(&p, "o.k").as_deref(), Some("v"));
        assert_eq!(claim(&p, "l").as_deref(), Some("WzFd"), "base64 of [1]");
        assert_eq!(claim(&p, "o").as_deref(), Some("eyJrIjoidiJ9"), "base64 of the object's JSON");
        assert_eq!(claim(&p, "missing"), None);
    }
}
