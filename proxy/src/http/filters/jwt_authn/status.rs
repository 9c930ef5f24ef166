//! The outcome of verifying a request's JWTs: Envoy's `JwtVerify::Status` (its copy of
//! jwt_verify_lib, source/common/jwt/status.cc), with its texts (the body of Envoy's
//! 401/403) and the `%RESPONSE_CODE_DETAILS%` Envoy derives from them
//! (`jwt_authn_access_denied{<text with spaces as _>}`).

use std::sync::OnceLock;

macro_rules! statuses {
    ($($v:ident => $text:expr,)*) => {
        /// The statuses this verifier produces.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Status { $($v,)* }

        const ALL: &[Status] = &[$(Status::$v,)*];

        impl Status {
            /// `getStatusString`.
            pub fn text(self) -> &'static str {
                match self { $(Status::$v => $text,)* }
            }
        }
    };
}

statuses! {
    Ok => "OK",
    JwtMissed => "Jwt is missing",
    JwtNotYetValid => "Jwt not yet valid",
    JwtExpired => "Jwt is expired",
    JwtBadFormat => "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
    JwtHeaderParseErrorBadBase64 => "Jwt header is an invalid Base64url encoded",
    JwtHeaderParseErrorBadJson => "Jwt header is an invalid JSON",
    JwtHeaderBadAlg => "Jwt header [alg] field is required and must be a string",
    JwtHeaderNotImplementedAlg => "Jwt header [alg] is not supported",
    JwtHeaderBadKid => "Jwt header [kid] field is not a string",
    JwtPayloadParseErrorBadBase64 => "Jwt payload is an invalid Base64url encoded",
    JwtPayloadParseErrorBadJson => "Jwt payload is an invalid JSON",
    JwtPayloadParseErrorIssNotString => "Jwt payload [iss] field is not a string",
    JwtPayloadParseErrorSubNotString => "Jwt payload [sub] field is not a string",
    JwtPayloadParseErrorIatNotInteger => "Jwt payload [iat] field is not an integer",
    JwtPayloadParseErrorIatOutOfRange => "Jwt payload [iat] field is not a positive 64 bit integer",
    JwtPayloadParseErrorNbfNotInteger => "Jwt payload [nbf] field is not an integer",
    JwtPayloadParseErrorNbfOutOfRange => "Jwt payload [nbf] field is not a positive 64 bit integer",
    JwtPayloadParseErrorExpNotInteger => "Jwt payload [exp] field is not an integer",
    JwtPayloadParseErrorExpOutOfRange => "Jwt payload [exp] field is not a positive 64 bit integer",
    JwtPayloadParseErrorJtiNotString => "Jwt payload [jti] field is not a string",
    JwtPayloadParseErrorAudNotString => "Jwt payload [aud] field is not a string or string list",
    JwtSignatureParseErrorBadBase64 => "Jwt signature is an invalid Base64url encoded",
    JwtUnknownIssuer => "Jwt issuer is not configured",
    JwtAudienceNotAllowed => "Audiences in Jwt are not allowed",
    JwtVerificationFail => "Jwt verification fails",
    JwksNoValidKeys => "Jwks doesn't have any valid public key",
    JwksKidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
    JwksFetchFail => "Jwks remote fetch is failed",
}

impl Status {
    /// Envoy's `generateRcDetails(getStatusString(status))`, built once.
    pub fn details(self) -> &'static str {
        static DETAILS: OnceLock<Vec<String>> = OnceLock::new();
        let table = DETAILS.get_or_init(|| {
            ALL.iter().map(|s| format!("jwt_authn_access_denied{{{}}}", s.text().replace(' ', "_"))).collect()
        });
        let i = ALL.iter().position(|s| *s == self).unwrap_or(0);
        table.get(i).map_or("jwt_authn_access_denied", String::as_str)
    }

    /// The response status of a failure: 403 for a disallowed audience, else 401.
    pub fn http_status(self) -> u16 {
        if self == Status::JwtAudienceNotAllowed {
            403
        } else {
            401
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_the_text_with_spaces_replaced() {
        assert_eq!(Status::JwtMissed.details(), "jwt_authn_access_denied{Jwt_is_missing}");
        assert_eq!(
            Status::JwksKidAlgMismatch.details(),
            "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}"
        );
        assert_eq!(Status::JwtAudienceNotAllowed.http_status(), 403);
        assert_eq!(Status::JwtMissed.http_status(), 401);
    }
}
