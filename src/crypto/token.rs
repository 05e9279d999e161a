//! Opaque tokens: personal access tokens and client secrets, each 256 bits from the OS CSPRNG
//! behind a prefix that says what it is, of which only the SHA-256 is ever stored; and the prefix
//! of refresh tokens, which are computed from their session ([`super::refresh`]).

use std::fmt;

use super::{b64url, random_bytes, sha256_hex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    Personal,
    ClientSecret,
}

impl TokenKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Refresh => "tokend_rt_",
            TokenKind::Personal => "tokend_pat_",
            TokenKind::ClientSecret => "tokend_cs_",
        }
    }

    /// The kind a presented string claims to be, by its prefix.
    pub fn of(value: &str) -> Option<TokenKind> {
        [
            TokenKind::Refresh,
            TokenKind::Personal,
            TokenKind::ClientSecret,
        ]
        .into_iter()
        .find(|kind| value.starts_with(kind.prefix()))
    }
}

/// An opaque token value. Its `Debug` hides the value so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(<redacted>)")
    }
}

/// The SHA-256 (hex) of an opaque token: what the database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

impl OpaqueToken {
    pub fn generate(kind: TokenKind) -> OpaqueToken {
        OpaqueToken(format!(
            "{}{}",
            kind.prefix(),
            b64url(&random_bytes::<32>())
        ))
    }

    /// Wraps a presented value (not checked: an unknown value simply matches no stored hash).
    pub fn from_presented(value: &str) -> OpaqueToken {
        OpaqueToken(value.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(sha256_hex(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_carry_their_prefix_and_256_bits() {
        let token = OpaqueToken::generate(TokenKind::Personal);
        let body = token.expose().strip_prefix("tokend_pat_").expect("prefix");
        assert_eq!(body.len(), 43, "32 bytes in unpadded base64url");
        assert_ne!(token, OpaqueToken::generate(TokenKind::Personal));
        assert_eq!(TokenKind::of(token.expose()), Some(TokenKind::Personal));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let token = OpaqueToken::generate(TokenKind::Personal);
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
