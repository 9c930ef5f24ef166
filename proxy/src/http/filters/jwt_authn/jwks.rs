//! A provider's JSON Web Key Set (RFC 7517), parsed once per config, and the signature
//! check against it (jwt_verify_lib's `verifyJwtWithoutTimeChecking`).
//!
//! Keys: `RSA` (`n`, `e`) for RS*/PS*, `EC` P-256/P-384 (`x`, `y`) for ES256/ES384,
//! `OKP` Ed25519 (`x`) for EdDSA, `oct` (`k`) for HS*. A key is tried when its `kid`
//! (if both sides have one) and its `alg` (if it has one) agree with the token's, and
//! only with the algorithms of its own type, so a public key never serves as an HMAC
//! secret. No matching key: "Jwks doesn't have key to match kid or alg from Jwt"; keys
//! matched but none verified: "Jwt verification fails". The signatures themselves are
//! checked by the `jsonwebtoken` crate (over ring).

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::jwt::Jwt;
use super::status::Status;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec256,
    Ec384,
    Ed,
    Hmac,
}

fn family(alg: Algorithm) -> Family {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Family::Rsa,
        Algorithm::ES256 => Family::Ec256,
        Algorithm::ES384 => Family::Ec384,
        Algorithm::EdDSA => Family::Ed,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
    }
}

struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    family: Family,
    key: DecodingKey,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// A parsed key set.
#[derive(Debug)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

fn str_field<'a>(o: &'a serde_json::Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match o.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("[{name}] is not a string")),
    }
}

fn required<'a>(o: &'a serde_json::Map<String, Value>, name: &str, kty: &str) -> Result<&'a str, String> {
    str_field(o, name)?.ok_or_else(|| format!("[{name}] field is missing for a {kty} key"))
}

impl Jwks {
    /// Parse a JWKS document; the error says what is wrong with it.
    pub fn parse(text: &[u8]) -> Result<Jwks, String> {
        let doc: Value = serde_json::from_slice(text).map_err(|_| "Jwks is an invalid JSON".to_string())?;
        let keys = match doc.get("keys") {
            None => return Err("Jwks does not have [keys] field".into()),
            Some(Value::Array(k)) => k,
            Some(_) => return Err("[keys] in Jwks is not an array".into()),
        };
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let Value::Object(o) = k else {
                return Err(format!("key {i} is not an object"));
            };
            out.push(Self::key(o).map_err(|e| format!("key {i}: {e}"))?);
        }
        if out.is_empty() {
            return Err("Jwks doesn't have any valid public key".into());
        }
        Ok(Jwks { keys: out })
    }

    fn key(o: &serde_json::Map<String, Value>) -> Result<Jwk, String> {
        let kty = str_field(o, "kty")?.ok_or("[kty] is missing in [keys]")?;
        let kid = str_field(o, "kid")?.map(str::to_string);
        let alg = str_field(o, "alg")?.map(str::to_string);
        let bad = |e: jsonwebtoken::errors::Error| format!("{kty} key: {e}");
        let alg_prefix = |p: &str, what: &str| match &alg {
            Some(a) if !a.starts_with(p) => Err(format!("[alg] is not started with [{p}] for {what}")),
            _ => Ok(()),
        };
        let (family, key) = match kty {
            "RSA" => {
                if !matches!(&alg, Some(a) if a.starts_with("PS")) {
                    alg_prefix("RS", "a RSA key")?;
                }
                let key = DecodingKey::from_rsa_components(required(o, "n", "RSA")?, required(o, "e", "RSA")?);
                (Family::Rsa, key.map_err(bad)?)
            }
            "EC" => {
                alg_prefix("ES", "an EC key")?;
                let family = match (str_field(o, "crv")?, alg.as_deref()) {
                    (Some("P-256"), None | Some("ES256")) | (None, Some("ES256")) => Family::Ec256,
                    (Some("P-384"), None | Some("ES384")) | (None, Some("ES384")) => Family::Ec384,
                    _ => return Err("[crv] or [alg] field is not supported for an EC key".into()),
                };
                let key = DecodingKey::from_ec_components(required(o, "x", "EC")?, required(o, "y", "EC")?);
                (family, key.map_err(bad)?)
            }
            "OKP" => {
                if str_field(o, "crv")? != Some("Ed25519") {
                    return Err("[crv] field is not supported for an OKP key (only Ed25519)".into());
                }
                alg_prefix("EdDSA", "an OKP key")?;
                (Family::Ed, DecodingKey::from_ed_components(required(o, "x", "OKP")?).map_err(bad)?)
            }
            "oct" => {
                alg_prefix("HS", "an HMAC key")?;
                let k = required(o, "k", "HMAC")?;
                let secret = super::jwt::b64url_decode(k).ok_or("Jwks Oct key is an invalid Base64")?;
                (Family::Hmac, DecodingKey::from_secret(&secret))
            }
            other => return Err(format!("[kty] `{other}` is not supported in [keys]")),
        };
        Ok(Jwk { kid, alg, family, key })
    }

    /// Check the token's signature with the keys that fit it.
    pub fn verify(&self, jwt: &Jwt) -> Status {
        let mut matched = false;
        for k in &self.keys {
            if let (Some(want), Some(have)) = (jwt.kid.as_deref(), k.kid.as_deref()) {
                if want != have {
                    continue;
                }
            }
            if k.alg.as_deref().is_some_and(|a| a != jwt.alg_name) {
                continue;
            }
            matched = true;
            if k.family != family(jwt.alg) {
                continue;
            }
            if jsonwebtoken::crypto::verify(jwt.signature(), jwt.signed().as_bytes(), &k.key, jwt.alg).unwrap_or(false)
            {
                return Status::Ok;
            }
        }
        if matched {
            Status::JwtVerificationFail
        } else {
            Status::JwksKidAlgMismatch
        }
    }
}
