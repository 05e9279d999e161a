ALTER TABLE clients DROP COLUMN refresh_token_cookie;
DROP TABLE auth_codes;
