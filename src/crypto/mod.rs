//! Cryptography: opaque tokens and their hashes, Argon2id passwords, signing keys, JWTs.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod token;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not something a token service can carry on without.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random generator failed");
    buf
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `None` for anything else.
pub fn b64url_decode(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value).ok()
}

/// A 256-bit server-held HMAC key (the refresh key, the sign-in form's CSRF key). Each purpose has
/// a key of its own; `Debug` never shows it.
#[derive(Clone)]
pub struct HmacKey([u8; 32]);

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl HmacKey {
    pub fn generate() -> HmacKey {
        HmacKey(random_bytes::<32>())
    }

    /// Parses the stored form (32 bytes in base64url).
    pub fn from_b64url(value: &str) -> Option<HmacKey> {
        b64url_decode(value)?.try_into().ok().map(HmacKey)
    }

    pub fn to_b64url(&self) -> String {
        b64url(&self.0)
    }

    /// A fresh HMAC-SHA256 under this key.
    pub fn mac(&self) -> Hmac<Sha256> {
        // A 32-byte key: the length HMAC-SHA256 takes without hashing it.
        #[allow(clippy::expect_used)]
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

/// Lower-case hex SHA-256 of `value`.
pub fn sha256_hex(value: &[u8]) -> String {
    let digest = Sha256::digest(value);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    out
}

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
