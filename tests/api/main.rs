//! Integration tests: each spawns a real tokend on port 0 against its own database and talks HTTP.
//! Set `TOKEND_TEST_DATABASE_URL=postgres://…` to run the same suite on PostgreSQL.

mod account;
mod admin;
mod authorization_code;
mod bad_requests;
mod bearer;
mod cli;
mod client_credentials;
mod cors;
mod discovery;
mod helpers;
mod introspection;
mod jwt_attacks;
mod logs;
mod metrics;
mod nodes;
mod openapi;
mod outage;
mod password_grant;
mod personal_tokens;
mod purge;
mod races;
mod refresh;
mod resource_server;
mod revocation;
mod schema;
mod security;
mod status_list;
mod throttle;
mod token_endpoint;
mod write_gate;
