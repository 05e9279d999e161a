//! The Token Status List (draft-ietf-oauth-status-list): how resource servers that verify
//! tokend's JWTs themselves learn of a revocation without asking tokend about each token.
//!
//! Every session whose tokens are JWTs has one entry (list, index) and every access token it gets
//! names it (`status`). The entry's bit is 1 once the session is revoked. A node hands out entries
//! from a block of [`BLOCK_SIZE`] it claimed with one insert, so sign-ins share no counter row; an
//! entry is never given to a second session. A node builds a list from the `sessions` table at
//! most once per `ttl` and serves that signed copy until it is `ttl` old.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{Ctx, Result};
use crate::crypto::jwt::{
    self, StatusListBits, StatusListClaims, StatusListReference, TokenStatus,
};
use crate::store::status_lists::{Block, BLOCK_SIZE, LIST_SIZE};
use crate::store::{self, Conn};

/// Unknown list numbers above the newest known one look the newest up again at most this often.
const NEWEST_RECHECK: Duration = Duration::from_secs(1);

/// A session's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub list: i64,
    pub idx: i64,
}

/// The uri of list `list` (`GET` serves it; tokens carry it).
pub fn list_uri(issuer: &str, list: i64) -> String {
    format!("{issuer}/oauth/statuslists/{list}")
}

/// The `status` claim naming `entry`.
pub fn claim(issuer: &str, entry: Entry) -> TokenStatus {
    TokenStatus {
        status_list: StatusListReference {
            idx: entry.idx,
            uri: list_uri(issuer, entry.list),
        },
    }
}

/// A signed list, as a node serves it until it is `ttl` old.
#[derive(Debug)]
pub struct BuiltList {
    pub jwt: String,
    /// Quoted strong validator of `jwt`.
    pub etag: String,
    pub built: Instant,
    /// Entries set to 1.
    pub revoked: usize,
}

/// A node's status-list state: the block it hands entries out of, and the lists it built.
#[derive(Default)]
pub struct StatusLists {
    /// The block being handed out and its next index.
    block: parking_lot::Mutex<Option<(Block, i64)>>,
    /// Entries handed out for sign-ins that were refused before any session took them: given
    /// out again first, so refused attempts do not use the lists up.
    returned: parking_lot::Mutex<Vec<Entry>>,
    /// Held while claiming a block, so concurrent sign-ins that find the block used up claim one
    /// block, not one each.
    claiming: parking_lot::Mutex<()>,
    built: parking_lot::RwLock<HashMap<i64, Arc<BuiltList>>>,
    /// One build at a time on this node (builds are rare: once per list per `ttl`).
    building: tokio::sync::Mutex<()>,
    /// The newest list number known to exist, and when it was last looked up.
    newest: parking_lot::Mutex<(i64, Option<Instant>)>,
}

impl StatusLists {
    fn take(&self) -> Option<Entry> {
        if let Some(entry) = self.returned.lock().pop() {
            return Some(entry);
        }
        let mut guard = self.block.lock();
        let (block, next) = guard.as_mut()?;
        if *next >= block.first + BLOCK_SIZE {
            return None;
        }
        let entry = Entry {
            list: block.list,
            idx: *next,
        };
        *next += 1;
        Some(entry)
    }

    /// An entry for a session about to open. From memory, except once per [`BLOCK_SIZE`]
    /// sessions, when the node claims a new block (a statement of its own: call it before the
    /// sign-in's transaction, never inside it).
    pub async fn allocate(ctx: &Ctx) -> Result<Entry> {
        if let Some(entry) = ctx.status.take() {
            return Ok(entry);
        }
        let lists = ctx.status.clone();
        ctx.db(move |conn| Ok(lists.take_or_claim(conn)?)).await
    }

    /// Gives back an entry no session took: call only when the sign-in was refused by a
    /// transaction that committed without opening a session (never after an error, whose commit
    /// may have happened).
    pub fn unused(&self, entry: Entry) {
        let mut returned = self.returned.lock();
        if returned.len() < BLOCK_SIZE as usize {
            returned.push(entry);
        }
    }

    fn take_or_claim(&self, conn: &mut Conn) -> store::Result<Entry> {
        let _claiming = self.claiming.lock();
        if let Some(entry) = self.take() {
            return Ok(entry);
        }
        let block = store::status_lists::claim_block(conn, store::now())?;
        crate::metrics::status_list_block_claimed();
        {
            let mut newest = self.newest.lock();
            newest.0 = newest.0.max(block.list);
        }
        *self.block.lock() = Some((block, block.first + 1));
        Ok(Entry {
            list: block.list,
            idx: block.first,
        })
    }

    /// List `list`, signed: this node's copy while it is younger than `ttl`, else built anew.
    /// `None`: no such list.
    pub async fn get(ctx: &Ctx, list: i64) -> Result<Option<Arc<BuiltList>>> {
        let ttl = ctx.config.status_list_ttl;
        let lists = &ctx.status;
        if let Some(copy) = lists.fresh(list, ttl) {
            return Ok(Some(copy));
        }
        if list < 1 || !Self::exists(ctx, list).await? {
            return Ok(None);
        }
        let _building = lists.building.lock().await;
        if let Some(copy) = lists.fresh(list, ttl) {
            return Ok(Some(copy));
        }
        let key = ctx.keys.signing_key()?;
        let issuer = ctx.config.issuer.clone();
        let built = ctx
            .db(move |conn| {
                let revoked = store::status_lists::revoked_indices(conn, list)?;
                Ok(build(&key, &issuer, list, &revoked, ttl)?)
            })
            .await?;
        crate::metrics::status_list_built(built.built.elapsed());
        let built = Arc::new(built);
        lists.built.write().insert(list, built.clone());
        Ok(Some(built))
    }

    fn fresh(&self, list: i64, ttl: Duration) -> Option<Arc<BuiltList>> {
        self.built
            .read()
            .get(&list)
            .filter(|copy| copy.built.elapsed() < ttl)
            .cloned()
    }

    /// Whether list `list` has been claimed by any node (looked up in the database at most once
    /// a second, so a stream of made-up list numbers costs it little).
    async fn exists(ctx: &Ctx, list: i64) -> Result<bool> {
        {
            let newest = ctx.status.newest.lock();
            if list <= newest.0 {
                return Ok(true);
            }
            if newest.1.is_some_and(|at| at.elapsed() < NEWEST_RECHECK) {
                return Ok(false);
            }
        }
        let found = ctx
            .query(store::status_lists::newest_list)
            .await?
            .unwrap_or(0);
        let mut newest = ctx.status.newest.lock();
        newest.0 = newest.0.max(found);
        newest.1 = Some(Instant::now());
        Ok(list <= newest.0)
    }

    /// The uris of every list (the aggregation endpoint).
    pub async fn all_uris(ctx: &Ctx) -> Result<Vec<String>> {
        let newest = ctx
            .query(store::status_lists::newest_list)
            .await?
            .unwrap_or(0);
        Ok((1..=newest)
            .map(|list| list_uri(&ctx.config.issuer, list))
            .collect())
    }
}

/// The bit array of a list with these entries revoked: 1 bit per entry, least significant bit
/// first, 1 = INVALID.
pub fn bits(revoked: &[i64]) -> Vec<u8> {
    let mut bytes = vec![0u8; (LIST_SIZE / 8) as usize];
    for &idx in revoked {
        if (0..LIST_SIZE).contains(&idx) {
            bytes[(idx / 8) as usize] |= 1 << (idx % 8);
        }
    }
    bytes
}

/// zlib DEFLATE (RFC 1950) of the bit array, as the draft's `lst` requires.
pub fn compress(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// Builds and signs list `list`: `iat` now, `exp` two `ttl`s later (a copy served at the end of
/// its `ttl` stays usable for one more), `ttl` as configured.
pub fn build(
    key: &crate::crypto::keys::SigningKey,
    issuer: &str,
    list: i64,
    revoked: &[i64],
    ttl: Duration,
) -> anyhow::Result<BuiltList> {
    let built = Instant::now();
    let lst = URL_SAFE_NO_PAD.encode(compress(&bits(revoked))?);
    let iat = chrono::Utc::now().timestamp();
    let claims = StatusListClaims {
        sub: list_uri(issuer, list),
        iat,
        exp: iat + 2 * ttl.as_secs() as i64,
        ttl: ttl.as_secs(),
        status_list: StatusListBits { bits: 1, lst },
    };
    let jwt = jwt::sign_status_list(key, &claims)?;
    let digest = Sha256::digest(jwt.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
    Ok(BuiltList {
        jwt,
        etag,
        built,
        revoked: revoked.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_least_significant_first() {
        let bytes = bits(&[0, 9, LIST_SIZE - 1, LIST_SIZE, -1]);
        assert_eq!(bytes.len() as i64, LIST_SIZE / 8);
        assert_eq!(bytes[0], 0b0000_0001);
        assert_eq!(bytes[1], 0b0000_0010);
        assert_eq!(bytes[bytes.len() - 1], 0b1000_0000);
        assert_eq!(bytes.iter().map(|b| b.count_ones()).sum::<u32>(), 3);
    }

    #[test]
    fn the_list_is_zlib() {
        use std::io::Read;
        let packed = compress(&bits(&[3])).expect("compress");
        let mut unpacked = Vec::new();
        flate2::read::ZlibDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .expect("zlib");
        assert_eq!(unpacked, bits(&[3]));
    }
}
