//! Queries of the status lists (draft-ietf-oauth-status-list): claiming a block of entries, and
//! reading which entries of a list are revoked.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{sessions, status_list_blocks};
use super::{Conn, Result};
use crate::db;

/// Entries in one list: 1 bit each, 128 KiB before compression.
pub const LIST_SIZE: i64 = 1 << 20;
/// Entries a node claims at once.
pub const BLOCK_SIZE: i64 = 1024;
const BLOCKS_PER_LIST: i64 = LIST_SIZE / BLOCK_SIZE;
/// Claims that lost a race to another node before this one gives up (each loser retries at once
/// with the block after the winner's).
const CLAIM_TRIES: usize = 16;

/// A block of entries: `list`, and indices `first .. first + BLOCK_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub list: i64,
    pub first: i64,
}

/// The block after the newest one claimed (lists are numbered from 1).
fn next_after(last: Option<(i64, i64)>) -> (i64, i64) {
    match last {
        None => (1, 0),
        Some((list, block)) if block + 1 < BLOCKS_PER_LIST => (list, block + 1),
        Some((list, _)) => (list + 1, 0),
    }
}

/// Claims the next unclaimed block for this node. One insert, its own transaction (call outside
/// any other): a block is never handed out twice, whichever nodes claim at once.
pub fn claim_block(conn: &mut Conn, now: NaiveDateTime) -> Result<Block> {
    for _ in 0..CLAIM_TRIES {
        let last: Option<(i64, i64)> = db!(conn, c => status_list_blocks::table
            .select((status_list_blocks::list, status_list_blocks::block))
            .order((status_list_blocks::list.desc(), status_list_blocks::block.desc()))
            .limit(1)
            .get_result(c)
            .optional())?;
        let (list, block) = next_after(last);
        let claimed = conn.write_statement(|conn| {
            Ok(
                db!(conn, c => diesel::insert_into(status_list_blocks::table)
                .values((
                    status_list_blocks::list.eq(list),
                    status_list_blocks::block.eq(block),
                    status_list_blocks::claimed_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c))?,
            )
        })?;
        if claimed == 1 {
            return Ok(Block {
                list,
                first: block * BLOCK_SIZE,
            });
        }
    }
    Err(anyhow::anyhow!("no status list block could be claimed in {CLAIM_TRIES} tries").into())
}

/// The newest list any node has claimed entries in (`None`: no list yet).
pub fn newest_list(conn: &mut Conn) -> Result<Option<i64>> {
    Ok(db!(conn, c => status_list_blocks::table
        .select(diesel::dsl::max(status_list_blocks::list))
        .get_result::<Option<i64>>(c))?)
}

/// The indices of `list`'s revoked entries, read from `sessions_revoked_at_idx` alone (it holds
/// only ended sessions, with their entries).
pub fn revoked_indices(conn: &mut Conn, list: i64) -> Result<Vec<i64>> {
    Ok(db!(conn, c => sessions::table
        .select(sessions::status_idx.assume_not_null())
        .filter(sessions::status_list.eq(list))
        .filter(sessions::revoked_at.is_not_null())
        .load(c))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_fill_a_list_then_open_the_next() {
        assert_eq!(next_after(None), (1, 0));
        assert_eq!(next_after(Some((1, 0))), (1, 1));
        assert_eq!(next_after(Some((1, BLOCKS_PER_LIST - 1))), (2, 0));
        assert_eq!(LIST_SIZE % BLOCK_SIZE, 0);
    }
}
