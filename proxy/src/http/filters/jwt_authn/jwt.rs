//! A JWT taken apart (jwt_verify_lib's `Jwt::parseFromString`): the three base64url
//! parts, the header's `alg` and `kid`, the payload's registered claims, and the time
//! checks (`verifyTimeConstraint`). Every malformed part has its own [`Status`]; nothing
//! here panics on input. The payload is kept as parsed JSON for `claim_to_headers` and
//! `payload_in_metadata`, and as its base64url text for `forward_payload_header`. A
//! `Jwt` owns a copy of its token, so a verified one can live on in the token cache.

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::status::Status;

/// A parsed (not yet verified) token.
#[derive(Debug)]
pub struct Jwt {
    pub alg: Algorithm,
    pub alg_name: &'static str,
    pub kid: Option<String>,
    pub iss: String,
    pub sub: String,
    pub audiences: Vec<String>,
    /// 0: absent.
    pub exp: u64,
    pub nbf: u64,
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    /// The token as sent.
    token: Box<str>,
    /// The lengths of the header and payload parts.
    header_len: usize,
    payload_len: usize,
}

/// base64url without padding (trailing `=` tolerated), as RFC 7515 encodes JWS parts.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

/// A base64url JSON object: `Err(true)` when the base64 is bad, `Err(false)` the JSON.
fn object(part: &str) -> Result<Map<String, Value>, bool> {
    match serde_json::from_slice(&b64url_decode(part).ok_or(true)?) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(false),
    }
}

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return None,
    })
}

/// A string claim (absent: empty); another type is `bad`.
fn string_claim(p: &Map<String, Value>, name: &str, bad: Status) -> Result<String, Status> {
    match p.get(name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad),
    }
}

/// A NumericDate claim (absent: 0): not a number is `not_int`, a negative one `range`.
fn time_claim(p: &Map<String, Value>, name: &str, not_int: Status, range: Status) -> Result<u64, Status> {
    match p.get(name) {
        None => Ok(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Ok(v),
            None => n.as_f64().filter(|f| *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64).ok_or(range),
        },
        Some(_) => Err(not_int),
    }
}

impl Jwt {
    pub fn parse(token: &str) -> Result<Jwt, Status> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Status::JwtBadFormat);
        };
        let header = object(h).map_err(|b64| {
            if b64 {
                Status::JwtHeaderParseErrorBadBase64
            } else {
                Status::JwtHeaderParseErrorBadJson
            }
        })?;
        let alg_name = match header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => return Err(Status::JwtHeaderBadAlg),
        };
        let alg = algorithm(alg_name).ok_or(Status::JwtHeaderNotImplementedAlg)?;
        // The name borrowed from the token would need the header to outlive `self`;
        // keep the canonical static name instead.
        let alg_name = canonical(alg);
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(Status::JwtHeaderBadKid),
        };
        let payload = object(p).map_err(|b64| {
            if b64 {
                Status::JwtPayloadParseErrorBadBase64
            } else {
                Status::JwtPayloadParseErrorBadJson
            }
        })?;
        let iss = string_claim(&payload, "iss", Status::JwtPayloadParseErrorIssNotString)?;
        let sub = string_claim(&payload, "sub", Status::JwtPayloadParseErrorSubNotString)?;
        string_claim(&payload, "jti", Status::JwtPayloadParseErrorJtiNotString)?;
        let (ni, nr) = (Status::JwtPayloadParseErrorIatNotInteger, Status::JwtPayloadParseErrorIatOutOfRange);
        time_claim(&payload, "iat", ni, nr)?;
        let (ni, nr) = (Status::JwtPayloadParseErrorNbfNotInteger, Status::JwtPayloadParseErrorNbfOutOfRange);
        let nbf = time_claim(&payload, "nbf", ni, nr)?;
        let (ni, nr) = (Status::JwtPayloadParseErrorExpNotInteger, Status::JwtPayloadParseErrorExpOutOfRange);
        let exp = time_claim(&payload, "exp", ni, nr)?;
        let audiences = match payload.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(v)) => {
                let mut out = Vec::with_capacity(v.len());
                for a in v {
                    match a {
                        Value::String(a) => out.push(a.clone()),
                        _ => return Err(Status::JwtPayloadParseErrorAudNotString),
                    }
                }
                out
            }
            Some(_) => return Err(Status::JwtPayloadParseErrorAudNotString),
        };
        if b64url_decode(s).is_none() {
            return Err(Status::JwtSignatureParseErrorBadBase64);
        }
        Ok(Jwt {
            alg,
            alg_name,
            kid,
            iss,
            sub,
            audiences,
            exp,
            nbf,
            header,
            payload,
            token: token.into(),
            header_len: h.len(),
            payload_len: p.len(),
        })
    }

    /// The token as sent.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The payload as sent (base64url, no padding).
    pub fn payload_b64(&self) -> &str {
        self.token.get(self.header_len + 1..self.header_len + 1 + self.payload_len).unwrap_or("")
    }

    /// `header.payload`, what the signature covers.
    pub fn signed(&self) -> &str {
        self.token.get(..self.header_len + 1 + self.payload_len).unwrap_or("")
    }

    /// The signature as sent (base64url).
    pub fn signature(&self) -> &str {
        self.token.get(self.header_len + self.payload_len + 2..).unwrap_or("")
    }

    /// `verifyTimeConstraint`: `nbf` and `exp` with `skew` seconds of tolerance.
    pub fn verify_time(&self, now: u64, skew: u64) -> Status {
        if self.nbf != 0 && now.saturating_add(skew) < self.nbf {
            return Status::JwtNotYetValid;
        }
        if self.exp != 0 && now > self.exp.saturating_add(skew) {
            return Status::JwtExpired;
        }
        Status::Ok
    }
}

fn canonical(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `s` in base64url without padding (test tokens).
    pub(in crate::http::filters::jwt_authn) fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..=c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    fn token(h: &str, p: &str) -> String {
        format!("{}.{}.c2ln", b64(h), b64(p))
    }

    #[test]
    fn malformed_parts_have_their_own_status() {
        let err = |t: &str| Jwt::parse(t).err();
        assert_eq!(err("a.b"), Some(Status::JwtBadFormat));
        assert_eq!(err("a.b.c.d"), Some(Status::JwtBadFormat));
        assert_eq!(err("!!.b.c"), Some(Status::JwtHeaderParseErrorBadBase64));
        assert_eq!(err(&format!("{}.b.c", b64("{"))), Some(Status::JwtHeaderParseErrorBadJson));
        assert_eq!(err(&token(r#"{"alg":1}"#, "{}")), Some(Status::JwtHeaderBadAlg));
        assert_eq!(err(&token(r#"{"alg":"none"}"#, "{}")), Some(Status::JwtHeaderNotImplementedAlg));
        assert_eq!(err(&token(r#"{"alg":"RS256","kid":3}"#, "{}")), Some(Status::JwtHeaderBadKid));
        assert_eq!(err(&token(r#"{"alg":"RS256"}"#, "[]")), Some(Status::JwtPayloadParseErrorBadJson));
        let rs = |p: &str| err(&token(r#"{"alg":"RS256"}"#, p));
        assert_eq!(rs(r#"{"exp":"soon"}"#), Some(Status::JwtPayloadParseErrorExpNotInteger));
        assert_eq!(rs(r#"{"nbf":-1}"#), Some(Status::JwtPayloadParseErrorNbfOutOfRange));
        assert_eq!(rs(r#"{"iss":1}"#), Some(Status::JwtPayloadParseErrorIssNotString));
        assert_eq!(rs(r#"{"aud":[1]}"#), Some(Status::JwtPayloadParseErrorAudNotString));
        let bad_sig = format!("{}.{}.a*b", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert_eq!(err(&bad_sig), Some(Status::JwtSignatureParseErrorBadBase64));
    }

    #[test]
    fn claims_and_time_constraints() {
        let t = token(r#"{"alg":"ES256","kid":"k1"}"#, r#"{"iss":"i","sub":"s","aud":"a","exp":1000,"nbf":500}"#);
        let j = Jwt::parse(&t).unwrap();
        assert_eq!((j.iss.as_str(), j.sub.as_str(), j.kid.as_deref()), ("i", "s", Some("k1")));
        assert_eq!(j.audiences, vec!["a".to_string()]);
        assert_eq!(j.verify_time(700, 60), Status::Ok);
        assert_eq!(j.verify_time(441, 60), Status::Ok, "nbf with skew");
        assert_eq!(j.verify_time(439, 60), Status::JwtNotYetValid);
        assert_eq!(j.verify_time(1060, 60), Status::Ok, "exp with skew");
        assert_eq!(j.verify_time(1061, 60), Status::JwtExpired);
        assert!(t.starts_with(j.signed()) && t.ends_with(j.signature()));
        assert_eq!(format!("{}.{}.{}", j.signed(), j.signature(), ""), format!("{t}."));
        assert_eq!(j.payload_b64(), t.split('.').nth(1).unwrap());
    }
}
