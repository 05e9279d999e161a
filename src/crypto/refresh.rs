//! Refresh tokens (storage v2): computed from their session, never stored.
//!
//! ```text
//! tokend_rt_ + base64url( session id (16 bytes) ‖ generation (8 bytes, big-endian) ‖ tag (32 bytes) )
//! tag = HMAC-SHA256(refresh key, "tokend-rt" ‖ session id ‖ generation ‖ refresh_secret)
//! ```
//!
//! The refresh key is one 256-bit server secret (sealed at rest with the key-encryption key when
//! one is set); `refresh_secret` is 256 random bits on each session row. Forging a token needs
//! both: the database alone has no key, the key alone has no secret. The token of a given
//! generation is always the same string, which is what lets a grace-window replay get the very
//! successor the first request got.

use hmac::Mac;

use super::token::TokenKind;
use super::{b64url, b64url_decode, random_bytes, HmacKey};

/// Bound into every tag, so the refresh key's MACs can never be mistaken for another purpose's.
const LABEL: &[u8] = b"tokend-rt";
const BODY_LEN: usize = 16 + 8 + 32;
/// `tokend_rt_` and 56 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 10 + 75;

/// A session's refresh secret: 256 bits from the OS CSPRNG, stored in base64url.
pub struct RefreshSecret([u8; 32]);

impl std::fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshSecret(<redacted>)")
    }
}

impl RefreshSecret {
    pub fn generate() -> RefreshSecret {
        RefreshSecret(random_bytes::<32>())
    }

    /// The stored form of a session's secret; `None` if it is not one.
    pub fn from_stored(value: &str) -> Option<RefreshSecret> {
        b64url_decode(value)?.try_into().ok().map(RefreshSecret)
    }

    pub fn to_stored(&self) -> String {
        b64url(&self.0)
    }
}

/// What a presented refresh token says about itself, before anything is believed: which session,
/// which generation, and the tag that proves both (or not).
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    pub session_id: String,
    pub generation: i64,
    tag: [u8; 32],
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("session_id", &self.session_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

fn tag(
    key: &HmacKey,
    session_id: &uuid::Uuid,
    generation: i64,
    secret: &RefreshSecret,
) -> impl Mac {
    let mut mac = key.mac();
    mac.update(LABEL);
    mac.update(session_id.as_bytes());
    mac.update(&generation.to_be_bytes());
    mac.update(&secret.0);
    mac
}

/// The refresh token of `generation` in session `session_id`. `None` when the session id is not a
/// UUID or the generation is negative (neither happens for a session tokend made).
pub fn mint(
    key: &HmacKey,
    session_id: &str,
    generation: i64,
    secret: &RefreshSecret,
) -> Option<String> {
    let id = uuid::Uuid::parse_str(session_id).ok()?;
    if generation < 0 {
        return None;
    }
    let mut body = Vec::with_capacity(BODY_LEN);
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(&generation.to_be_bytes());
    body.extend_from_slice(&tag(key, &id, generation, secret).finalize().into_bytes());
    Some(format!("{}{}", TokenKind::Refresh.prefix(), b64url(&body)))
}

/// Reads a presented value's session id, generation and tag; `None` for anything that does not
/// have the shape of a v2 refresh token (a v1 token, garbage). Nothing here is trusted yet.
pub fn parse(value: &str) -> Option<Presented> {
    if value.len() != TOKEN_LEN {
        return None;
    }
    let body = b64url_decode(value.strip_prefix(TokenKind::Refresh.prefix())?)?;
    if body.len() != BODY_LEN {
        return None;
    }
    let (id, rest) = body.split_at(16);
    let (generation, tag) = rest.split_at(8);
    let generation = i64::from_be_bytes(generation.try_into().ok()?);
    if generation < 0 {
        return None;
    }
    Some(Presented {
        session_id: uuid::Uuid::from_slice(id).ok()?.to_string(),
        generation,
        tag: tag.try_into().ok()?,
    })
}

impl Presented {
    /// Whether the tag was made with this key over this session's secret (compared in constant
    /// time). Only a token that verifies says anything about its session.
    pub fn verify(&self, key: &HmacKey, secret: &RefreshSecret) -> bool {
        let Ok(id) = uuid::Uuid::parse_str(&self.session_id) else {
            return false;
        };
        tag(key, &id, self.generation, secret)
            .verify_slice(&self.tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> String {
        uuid::Uuid::now_v7().to_string()
    }

    #[test]
    fn a_minted_token_parses_back_and_verifies() {
        let (key, secret, sid) = (HmacKey::generate(), RefreshSecret::generate(), session());
        let token = mint(&key, &sid, 7, &secret).expect("mint");
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(TokenKind::of(&token), Some(TokenKind::Refresh));
        let presented = parse(&token).expect("parse");
        assert_eq!(presented.session_id, sid);
        assert_eq!(presented.generation, 7);
        assert!(presented.verify(&key, &secret));
    }

    #[test]
    fn the_same_generation_is_the_same_string() {
        let (key, secret, sid) = (HmacKey::generate(), RefreshSecret::generate(), session());
        assert_eq!(mint(&key, &sid, 3, &secret), mint(&key, &sid, 3, &secret));
        assert_ne!(mint(&key, &sid, 3, &secret), mint(&key, &sid, 4, &secret));
    }

    #[test]
    fn neither_the_key_nor_the_secret_alone_makes_a_valid_tag() {
        let (key, secret, sid) = (HmacKey::generate(), RefreshSecret::generate(), session());
        let token = mint(&key, &sid, 0, &secret).expect("mint");
        let presented = parse(&token).expect("parse");
        assert!(
            !presented.verify(&HmacKey::generate(), &secret),
            "another key"
        );
        assert!(
            !presented.verify(&key, &RefreshSecret::generate()),
            "another secret"
        );
    }

    #[test]
    fn changing_any_part_breaks_the_tag() {
        let (key, secret, sid) = (HmacKey::generate(), RefreshSecret::generate(), session());
        let token = mint(&key, &sid, 5, &secret).expect("mint");
        let mut body = b64url_decode(&token[10..]).expect("b64");
        for i in [0, 15, 16, 23, 24, 55] {
            body[i] ^= 1;
            let altered = format!("tokend_rt_{}", b64url(&body));
            if let Some(p) = parse(&altered) {
                assert!(!p.verify(&key, &secret), "byte {i} altered still verifies");
            }
            body[i] ^= 1;
        }
        // Another session's id with this session's tag.
        let other = session();
        let mut moved = uuid::Uuid::parse_str(&other)
            .expect("uuid")
            .as_bytes()
            .to_vec();
        moved.extend_from_slice(&body[16..]);
        let p = parse(&format!("tokend_rt_{}", b64url(&moved))).expect("parse");
        assert_eq!(p.session_id, other);
        assert!(!p.verify(&key, &secret));
    }

    #[test]
    fn v1_tokens_and_garbage_do_not_parse() {
        assert!(parse(&format!("tokend_rt_{}", b64url(&[0u8; 32]))).is_none());
        assert!(parse("tokend_rt_").is_none());
        assert!(parse(&"x".repeat(TOKEN_LEN)).is_none());
        assert!(parse(&format!("tokend_rt_{}", "!".repeat(75))).is_none());
        let mut negative = vec![0u8; BODY_LEN];
        negative[16] = 0x80;
        assert!(parse(&format!("tokend_rt_{}", b64url(&negative))).is_none());
    }

    #[test]
    fn debug_shows_no_tag_or_secret() {
        let (key, secret, sid) = (HmacKey::generate(), RefreshSecret::generate(), session());
        let token = mint(&key, &sid, 1, &secret).expect("mint");
        let shown = format!("{:?} {secret:?} {key:?}", parse(&token).expect("parse"));
        assert!(!shown.contains(&token[10..]));
        assert!(!shown.contains(&secret.to_stored()));
    }
}
