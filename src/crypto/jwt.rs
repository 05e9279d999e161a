//! RFC 9068 access tokens: issuing, and validation that checks everything jsonwebtoken leaves to us
//! (`typ`, required `iss`/`aud`/`exp`/`nbf`, the `kid` → key → algorithm binding).

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, SigningKey};

/// Fixed clock leeway for `exp` and `nbf`, in seconds (SECURITY.md 13: small and fixed).
pub const LEEWAY_SECONDS: u64 = 5;
/// Longer strings are not tokens we issued; refuse before parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub sid: String,
    /// The session's entry in a status list (draft-ietf-oauth-status-list); absent only in
    /// tokens signed before status lists existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TokenStatus>,
}

/// The `status` claim of a referenced token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenStatus {
    pub status_list: StatusListReference,
}

/// Where a token's status is: entry `idx` of the list served at `uri`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusListReference {
    pub idx: i64,
    pub uri: String,
}

/// The claims of a status list token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusListClaims {
    /// The list's own uri.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Seconds a consumer may cache the list before it fetches it again.
    pub ttl: u64,
    pub status_list: StatusListBits,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusListBits {
    pub bits: u8,
    /// base64url (no padding) of the zlib DEFLATE of the bit array, least significant bit first.
    pub lst: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token names no key or an unknown key")]
    UnknownKey,
    #[error("the token's signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// Signs an access token (`typ: at+jwt`) with `key`.
pub fn sign(key: &SigningKey, claims: &AccessClaims) -> anyhow::Result<String> {
    sign_typed(key, "at+jwt", claims)
}

/// Signs a status list token (`typ: statuslist+jwt`) with `key`.
pub fn sign_status_list(key: &SigningKey, claims: &StatusListClaims) -> anyhow::Result<String> {
    sign_typed(key, "statuslist+jwt", claims)
}

/// A JWT of type `typ`, naming `key` in its `kid`.
fn sign_typed<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> anyhow::Result<String> {
    let mut header = Header::new(key.alg.jwt_algorithm());
    header.typ = Some(typ.to_owned());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.key)
        .map_err(|e| anyhow::anyhow!("signing a {typ}: {e}"))
}

/// The `kid` of a JWT-shaped string, without verifying anything (to decide whether to reload keys).
pub fn kid_of(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

/// Validates an access token completely: signature by the key its `kid` names (with that key's
/// one algorithm), `typ`, `iss`, `aud` (must contain `audience`), `exp`, `nbf`.
/// `check_exp = false` is for revocation, where an expired token is still identified.
pub fn verify(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    check_exp: bool,
) -> Result<AccessClaims, JwtError> {
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(JwtError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(JwtError::WrongType);
    }
    let kid = header.kid.as_deref().ok_or(JwtError::UnknownKey)?;
    let key = keys.verifier(kid).ok_or(JwtError::UnknownKey)?;
    // A key serves one algorithm: a header naming another (HS256 with the public key as secret,
    // `none`) is refused before any verification happens.
    if header.alg != key.alg.jwt_algorithm() {
        return Err(JwtError::Invalid);
    }
    let mut validation = Validation::new(key.alg.jwt_algorithm());
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = check_exp;
    validation.validate_nbf = check_exp;
    validation.validate_aud = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    match jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(err) => match err.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(JwtError::Expired),
            _ => Err(JwtError::Invalid),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crypto::keys::{generate, SigningAlg, VerifyingKey};

    fn keyset(alg: SigningAlg) -> (KeySet, Arc<SigningKey>) {
        let generated = generate(alg).expect("generate");
        let signing = Arc::new(
            SigningKey::from_pem(&generated.kid, alg, &generated.private_pem).expect("load"),
        );
        let verifying =
            VerifyingKey::from_jwk_json(&generated.kid, alg, &generated.public_jwk).expect("jwk");
        let mut set = KeySet {
            signing: Some(signing.clone()),
            ..Default::default()
        };
        set.verifying
            .insert(generated.kid.clone(), Arc::new(verifying));
        (set, signing)
    }

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: "user".into(),
            aud: vec!["http://issuer".into()],
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "jti".into(),
            client_id: "client".into(),
            scope: "account".into(),
            sid: "sid".into(),
            status: None,
        }
    }

    #[test]
    fn round_trip_for_every_algorithm() {
        let now = chrono::Utc::now().timestamp();
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
            let (set, key) = keyset(alg);
            let token = sign(&key, &claims(now)).expect("sign");
            assert_eq!(
                verify(&token, &set, "http://issuer", "http://issuer", true),
                Ok(claims(now))
            );
            assert_eq!(
                verify(&token, &set, "http://other", "http://issuer", true),
                Err(JwtError::Invalid),
                "wrong iss"
            );
            assert_eq!(
                verify(&token, &set, "http://issuer", "http://other", true),
                Err(JwtError::Invalid),
                "wrong aud"
            );
        }
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let now = chrono::Utc::now().timestamp();
        let (set, key) = keyset(SigningAlg::EdDsa);
        let mut expired = claims(now - 1000);
        expired.exp = now - 60;
        let token = sign(&key, &expired).expect("sign");
        assert_eq!(
            verify(&token, &set, "http://issuer", "http://issuer", true),
            Err(JwtError::Expired)
        );
        assert!(verify(&token, &set, "http://issuer", "http://issuer", false).is_ok());
        let mut future = claims(now);
        future.nbf = now + 120;
        let token = sign(&key, &future).expect("sign");
        assert_eq!(
            verify(&token, &set, "http://issuer", "http://issuer", true),
            Err(JwtError::Invalid)
        );
    }
}
