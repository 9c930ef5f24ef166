//! The outcome of verifying a request's JWTs: jwt_verify_lib's `Status`, with its texts
//! (the body of Envoy's 401/403) and the `%RESPONSE_CODE_DETAILS%` Envoy derives from
//! them (`jwt_authn_access_denied{<text with spaces as _>}`).

/// `google::jwt_verify::Status`, the variants this verifier produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    JwtMissed,
    JwtNotYetValid,
    JwtExpired,
    JwtBadFormat,
    JwtHeaderParseError,
    JwtHeaderBadAlg,
    JwtHeaderNotImplementedAlg,
    JwtHeaderBadKid,
    JwtPayloadParseError,
    JwtSignatureParseError,
    JwtUnknownIssuer,
    JwtAudienceNotAllowed,
    JwtVerificationFail,
    JwksNoValidKeys,
    JwksKidAlgMismatch,
}

impl Status {
    /// `getStatusString`.
    pub fn text(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::JwtMissed => "Jwt is missing",
            Status::JwtNotYetValid => "Jwt not yet valid",
            Status::JwtExpired => "Jwt is expired",
            Status::JwtBadFormat => "Jwt is not in the form of Header.Payload.Signature",
            Status::JwtHeaderParseError => "Jwt header is an invalid Base64url input or an invalid JSON",
            Status::JwtHeaderBadAlg => "Jwt header [alg] field is not a string",
            Status::JwtHeaderNotImplementedAlg => "Jwt header [alg] field value is invalid",
            Status::JwtHeaderBadKid => "Jwt header [kid] field is not a string",
            Status::JwtPayloadParseError => "Jwt payload is an invalid Base64 or an invalid JSON",
            Status::JwtSignatureParseError => "Jwt signature is an invalid Base64",
            Status::JwtUnknownIssuer => "Jwt issuer is not configured",
            Status::JwtAudienceNotAllowed => "Audiences in Jwt are not allowed",
            Status::JwtVerificationFail => "Jwt verification fails",
            Status::JwksNoValidKeys => "Jwks doesn't have any valid public key",
            Status::JwksKidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
        }
    }

    /// Envoy's `generateRcDetails(getStatusString(status))`.
    pub fn details(self) -> &'static str {
        match self {
            Status::Ok => "jwt_authn_access_denied{OK}",
            Status::JwtMissed => "jwt_authn_access_denied{Jwt_is_missing}",
            Status::JwtNotYetValid => "jwt_authn_access_denied{Jwt_not_yet_valid}",
            Status::JwtExpired => "jwt_authn_access_denied{Jwt_is_expired}",
            Status::JwtBadFormat => "jwt_authn_access_denied{Jwt_is_not_in_the_form_of_Header.Payload.Signature}",
            Status::JwtHeaderParseError => {
                "jwt_authn_access_denied{Jwt_header_is_an_invalid_Base64url_input_or_an_invalid_JSON}"
            }
            Status::JwtHeaderBadAlg => "jwt_authn_access_denied{Jwt_header_[alg]_field_is_not_a_string}",
            Status::JwtHeaderNotImplementedAlg => "jwt_authn_access_denied{Jwt_header_[alg]_field_value_is_invalid}",
            Status::JwtHeaderBadKid => "jwt_authn_access_denied{Jwt_header_[kid]_field_is_not_a_string}",
            Status::JwtPayloadParseError => {
                "jwt_authn_access_denied{Jwt_payload_is_an_invalid_Base64_or_an_invalid_JSON}"
            }
            Status::JwtSignatureParseError => "jwt_authn_access_denied{Jwt_signature_is_an_invalid_Base64}",
            Status::JwtUnknownIssuer => "jwt_authn_access_denied{Jwt_issuer_is_not_configured}",
            Status::JwtAudienceNotAllowed => "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}",
            Status::JwtVerificationFail => "jwt_authn_access_denied{Jwt_verification_fails}",
            Status::JwksNoValidKeys => "jwt_authn_access_denied{Jwks_doesn't_have_any_valid_public_key}",
            Status::JwksKidAlgMismatch => "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}",
        }
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
        for s in [
            Status::JwtMissed,
            Status::JwtExpired,
            Status::JwtBadFormat,
            Status::JwtHeaderParseError,
            Status::JwtPayloadParseError,
            Status::JwtUnknownIssuer,
            Status::JwtAudienceNotAllowed,
            Status::JwtVerificationFail,
            Status::JwksNoValidKeys,
            Status::JwksKidAlgMismatch,
            Status::JwtHeaderNotImplementedAlg,
        ] {
            assert_eq!(s.details(), format!("jwt_authn_access_denied{{{}}}", s.text().replace(' ', "_")));
        }
        assert_eq!(Status::JwtAudienceNotAllowed.http_status(), 403);
        assert_eq!(Status::JwtMissed.http_status(), 401);
    }
}
