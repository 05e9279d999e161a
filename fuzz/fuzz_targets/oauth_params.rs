//! The token, revocation and introspection endpoints' body parsers, form and JSON: any bytes
//! either parse into parameters (no repeats, at most 32) or give a 400, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokend::http::params::{parse_form, parse_json, Params, MAX_FIELDS};

fuzz_target!(|data: &[u8]| {
    for parsed in [parse_form(data), parse_json(data)] {
        if let Ok(pairs) = parsed {
            if let Ok(params) = Params::from_pairs(pairs.clone()) {
                assert!(pairs.len() <= MAX_FIELDS);
                for (name, value) in &pairs {
                    // Empty values count as absent (RFC 6749 §3.1); others are found as given.
                    assert_eq!(params.get(name), Some(value.as_str()).filter(|v| !v.is_empty()));
                }
            }
        }
    }
});
