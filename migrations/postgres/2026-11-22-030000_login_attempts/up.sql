-- Sign-in throttling, shared by every node: one row per username ("user:NAME") and per client
-- address ("ip:ADDRESS") with its recent failures and how long it must wait.
CREATE TABLE login_attempts (
    key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    window_started_at TIMESTAMP NOT NULL,
    blocked_until TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX login_attempts_updated_at_idx ON login_attempts (updated_at);
