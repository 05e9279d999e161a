-- Token Status List (draft-ietf-oauth-status-list): every session whose tokens are JWTs has one
-- entry (status_list, status_idx) in a list tokend signs and serves; its bit is 1 once the
-- session is revoked (docs/revocation.md, "Revocation at resource servers").
ALTER TABLE sessions ADD COLUMN status_list BIGINT;
ALTER TABLE sessions ADD COLUMN status_idx BIGINT;
-- sessions_revoked_at_idx becomes partial and carries the entry. Purge finds revoked sessions by
-- it, and only ended sessions need to be in it: a full index moved every live session's entry on
-- a revocation, where logout-all of 10,000 sessions spent most of its time (docs/benchmarks.md).
-- Building a list reads its revoked entries from this index alone: a sign-in adds nothing to any
-- index, and a revocation one entry in this one index, where a second index on the entry would
-- cost every revoked session one more index write (on PostgreSQL a revocation is never a HOT
-- update). No unique index on the entry either, for the same reason: entries are unique because
-- blocks are (status_list_blocks' primary key) and a node hands out a block's entries one by one
-- from memory.
DROP INDEX sessions_revoked_at_idx;
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at, status_list, status_idx) WHERE revoked_at IS NOT NULL;

-- Entries are handed out in blocks of 1,024: a node claims a block with one insert, then gives
-- its entries to its sign-ins from memory, so no sign-in locks a shared counter row.
CREATE TABLE status_list_blocks (
    list BIGINT NOT NULL,
    block BIGINT NOT NULL,
    claimed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (list, block)
);

-- Live sessions from before get entries too (lists of 1,048,576 entries, numbered from 1), so
-- the access tokens their refreshes sign carry a status like every other.
UPDATE sessions SET status_list = 1 + numbered.n / 1048576, status_idx = numbered.n % 1048576
  FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) - 1 AS n
          FROM sessions
         WHERE revoked_at IS NULL
           AND expires_at > strftime('%Y-%m-%d %H:%M:%f', 'now')
           AND kind <> 'personal_access_token') AS numbered
 WHERE sessions.id = numbered.id;
INSERT INTO status_list_blocks (list, block, claimed_at)
SELECT DISTINCT status_list, status_idx / 1024, strftime('%Y-%m-%d %H:%M:%f', 'now')
  FROM sessions WHERE status_list IS NOT NULL;
