DROP TABLE audit_events;
DROP TABLE server_secrets;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE access_tokens;
DROP TABLE sessions;
DROP TABLE clients;
DROP TABLE users;
