//! `Authorization` header values: the Bearer parser (account and admin APIs) and the Basic parser
//! (client authentication). Any bytes give a token, credentials or an error, never a panic; a
//! token that comes out is one b64token with no whitespace.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = tokend::http::bearer::parse(data) {
        assert!(!token.is_empty());
        assert!(!token.contains(char::is_whitespace));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((client_id, _secret)) = tokend::http::client_auth::parse_basic(text) {
            assert!(!client_id.is_empty());
        }
    }
});
