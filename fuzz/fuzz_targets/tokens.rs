//! Whatever a client presents as a token: prefix recognition, hashing, refresh-token parsing and
//! tag checks, scope and duration parsing, and full JWT validation against a real Ed25519 key.
//! Nothing panics, and no input the fuzzer makes up is ever accepted as an access token or as a
//! refresh token of a session.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tokend::crypto::jwt;
use tokend::crypto::keys::{generate, KeySet, SigningAlg, SigningKey, VerifyingKey};
use tokend::crypto::refresh::{self, RefreshSecret};
use tokend::crypto::token::{OpaqueToken, TokenKind};
use tokend::crypto::HmacKey;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let g = generate(SigningAlg::EdDsa).expect("generate");
        let signing = SigningKey::from_pem(&g.kid, SigningAlg::EdDsa, &g.private_pem).expect("load");
        let verifying = VerifyingKey::from_jwk_json(&g.kid, SigningAlg::EdDsa, &g.public_jwk).expect("jwk");
        let mut set = KeySet { signing: Some(Arc::new(signing)), ..Default::default() };
        set.verifying.insert(g.kid.clone(), Arc::new(verifying));
        set
    })
}

fn refresh_key() -> &'static (HmacKey, RefreshSecret) {
    static KEY: OnceLock<(HmacKey, RefreshSecret)> = OnceLock::new();
    KEY.get_or_init(|| (HmacKey::generate(), RefreshSecret::generate()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = TokenKind::of(text);
    let token = OpaqueToken::from_presented(text);
    assert_eq!(token.hash().0.len(), 64);
    if let Some(presented) = refresh::parse(text) {
        let (key, secret) = refresh_key();
        assert!(!presented.verify(key, secret));
    }
    let _ = tokend::service::scope::ScopeSet::parse(text);
    let _ = tokend::config::parse_duration(text);
    let _ = jwt::kid_of(text);
    for check_exp in [true, false] {
        assert!(jwt::verify(text, keys(), "https://issuer", "https://issuer", check_exp).is_err());
    }
});
