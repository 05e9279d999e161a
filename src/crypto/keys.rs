//! Signing keys: generation (EdDSA, ES256, RS256), PEM and JWK forms, encryption at rest with a
//! key-encryption key, and the in-memory key set every node verifies with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::random_bytes;

/// The signing algorithms tokend offers; a key serves exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    EdDsa,
    Es256,
    Rs256,
}

impl SigningAlg {
    pub fn parse(value: &str) -> Option<SigningAlg> {
        match value {
            "EdDSA" => Some(SigningAlg::EdDsa),
            "ES256" => Some(SigningAlg::Es256),
            "RS256" => Some(SigningAlg::Rs256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
        }
    }

    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlg::EdDsa => Algorithm::EdDSA,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::Rs256 => Algorithm::RS256,
        }
    }
}

/// The 32-byte key that encrypts private signing keys at rest (ChaCha20-Poly1305).
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

const ENCRYPTED_PREFIX: &str = "enc:v1:";

impl KeyEncryptionKey {
    /// Parses 32 bytes in standard base64.
    pub fn parse(value: &str) -> Result<KeyEncryptionKey, String> {
        let bytes = STANDARD
            .decode(value.trim())
            .map_err(|_| "must be 32 bytes in base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be exactly 32 bytes in base64".to_owned())?;
        Ok(KeyEncryptionKey(key))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// Encrypts a private key; the key id is bound as associated data.
    pub fn seal(&self, kid: &str, plaintext: &str) -> anyhow::Result<String> {
        let nonce = random_bytes::<12>();
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("encrypting signing key {kid}"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(out)))
    }

    fn open(&self, kid: &str, stored: &str) -> anyhow::Result<String> {
        let bytes = STANDARD
            .decode(stored)
            .with_context(|| format!("signing key {kid} is not valid encrypted data"))?;
        if bytes.len() < 12 {
            anyhow::bail!("signing key {kid} is not valid encrypted data");
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!("TOKEND_KEY_ENCRYPTION_KEY does not decrypt key {kid}: wrong key")
            })?;
        String::from_utf8(plain).with_context(|| format!("signing key {kid} decrypts to non-UTF-8"))
    }
}

/// Whether a stored secret (a private key, a server secret) is sealed with a key-encryption key.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with("enc:")
}

/// Turns the stored form of a secret (a private key, a server secret) back into plain text,
/// refusing to guess.
pub fn unseal(kek: Option<&KeyEncryptionKey>, kid: &str, stored: &str) -> anyhow::Result<String> {
    match (stored.strip_prefix(ENCRYPTED_PREFIX), kek) {
        (Some(sealed), Some(kek)) => kek.open(kid, sealed),
        (Some(_), None) => anyhow::bail!(
            "key {kid} is encrypted at rest: set TOKEND_KEY_ENCRYPTION_KEY to the key it was encrypted with"
        ),
        (None, _) => Ok(stored.to_owned()),
    }
}

/// A freshly generated key pair: the private key as PKCS#8 PEM and the public key as a JWK.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub private_pem: String,
    pub public_jwk: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn generate(alg: SigningAlg) -> anyhow::Result<GeneratedKey> {
    let der: Vec<u8> = match alg {
        SigningAlg::EdDsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| anyhow::anyhow!("generating an Ed25519 key"))?
            .as_ref()
            .to_vec(),
        SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| anyhow::anyhow!("generating a P-256 key"))?
            .as_ref()
            .to_vec(),
        SigningAlg::Rs256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map_err(|_| anyhow::anyhow!("generating an RSA-2048 key"))?
            .as_ref()
            .to_vec(),
    };
    let private_pem = pem("PRIVATE KEY", &der);
    let kid = crate::crypto::b64url(&random_bytes::<12>());
    let signing = SigningKey::from_pem(&kid, alg, &private_pem)?;
    let public_jwk = serde_json::to_string(&signing.public_jwk()?)?;
    Ok(GeneratedKey {
        kid,
        alg,
        private_pem,
        public_jwk,
    })
}

/// A key that signs.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub key: EncodingKey,
}

impl SigningKey {
    pub fn from_pem(kid: &str, alg: SigningAlg, private_pem: &str) -> anyhow::Result<SigningKey> {
        let key = match alg {
            SigningAlg::EdDsa => EncodingKey::from_ed_pem(private_pem.as_bytes()),
            SigningAlg::Es256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            SigningAlg::Rs256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        }
        .with_context(|| format!("loading signing key {kid}"))?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }

    /// The public half as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> anyhow::Result<Jwk> {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg.jwt_algorithm())
            .with_context(|| format!("deriving the public key of {}", self.kid))?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match self.alg {
            SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
            SigningAlg::Es256 => KeyAlgorithm::ES256,
            SigningAlg::Rs256 => KeyAlgorithm::RS256,
        });
        Ok(jwk)
    }
}

/// A key that verifies: one algorithm, one public key.
pub struct VerifyingKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub key: DecodingKey,
    pub jwk: Jwk,
}

impl VerifyingKey {
    pub fn from_jwk_json(
        kid: &str,
        alg: SigningAlg,
        public_jwk: &str,
    ) -> anyhow::Result<VerifyingKey> {
        let jwk: Jwk = serde_json::from_str(public_jwk)
            .with_context(|| format!("parsing the JWK of {kid}"))?;
        let key = DecodingKey::from_jwk(&jwk)
            .with_context(|| format!("loading the public key of {kid}"))?;
        Ok(VerifyingKey {
            kid: kid.to_owned(),
            alg,
            key,
            jwk,
        })
    }
}

/// The keys one node holds: the one it signs with and every one it accepts.
#[derive(Default)]
pub struct KeySet {
    pub signing: Option<Arc<SigningKey>>,
    pub verifying: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    pub fn verifier(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.verifying.get(kid)
    }

    /// The public keys for the JWKS document, in a stable order (by `kid`).
    pub fn jwks(&self) -> Vec<Jwk> {
        let mut keys: Vec<&Arc<VerifyingKey>> = self.verifying.values().collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        keys.into_iter().map(|k| k.jwk.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_key_that_loads_back() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
            let key = generate(alg).expect("generate");
            SigningKey::from_pem(&key.kid, alg, &key.private_pem).expect("load private");
            let verifying =
                VerifyingKey::from_jwk_json(&key.kid, alg, &key.public_jwk).expect("load public");
            assert_eq!(
                verifying.jwk.common.key_id.as_deref(),
                Some(key.kid.as_str())
            );
            assert!(
                !key.public_jwk.contains("\"d\""),
                "{alg:?} JWK must not carry the private part"
            );
        }
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_kid() {
        let kek = KeyEncryptionKey::parse(&STANDARD.encode([7u8; 32])).expect("kek");
        let other = KeyEncryptionKey::parse(&STANDARD.encode([8u8; 32])).expect("kek");
        let sealed = kek.seal("kid1", "secret pem").expect("seal");
        assert!(!sealed.contains("secret pem"));
        assert_eq!(
            unseal(Some(&kek), "kid1", &sealed).expect("open"),
            "secret pem"
        );
        assert!(unseal(Some(&other), "kid1", &sealed).is_err());
        assert!(unseal(Some(&kek), "kid2", &sealed).is_err());
        assert!(unseal(None, "kid1", &sealed).is_err());
        assert_eq!(unseal(Some(&kek), "kid1", "plain").expect("plain"), "plain");
    }

    #[test]
    fn key_encryption_key_must_be_32_bytes_of_base64() {
        assert!(KeyEncryptionKey::parse("not base64!").is_err());
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([1u8; 16])).is_err());
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([1u8; 32])).is_ok());
    }
}
