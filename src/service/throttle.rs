//! Sign-in throttling (SECURITY.md 22), kept in the database so it holds across nodes.
//!
//! Per username: `TOKEND_SIGNIN_USER_FREE` failures (5) within `TOKEND_SIGNIN_USER_WINDOW` (1h) are
//! free; each failure after that blocks the name for twice as long as the last, from 1 s up to
//! `TOKEND_SIGNIN_MAX_DELAY` (60 s). A success clears it. Per client address: the same with
//! `TOKEND_SIGNIN_IP_FREE` (20) failures within `TOKEND_SIGNIN_IP_WINDOW` (10m). The cap is what
//! keeps an attacker from locking a real user out for long: at worst they wait a minute.
//! A blocked attempt is refused before any Argon2 work.

use chrono::NaiveDateTime;

use super::{chrono_duration, RequestMeta, ServiceError};
use crate::config::Config;
use crate::store::{self, Conn};

fn user_key(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The keys an attempt counts against.
pub fn keys(username: &str, meta: &RequestMeta) -> Vec<String> {
    let mut keys = vec![user_key(username)];
    if let Some(ip) = &meta.ip {
        keys.push(ip_key(ip));
    }
    keys
}

/// `Err(Throttled)` when any key is blocked right now.
pub fn check(conn: &mut Conn, keys: &[String], now: NaiveDateTime) -> Result<(), ServiceError> {
    let wait = store::throttle::find(conn, keys)?
        .iter()
        .filter_map(|row| row.blocked_until)
        .filter(|until| *until > now)
        .max();
    match wait {
        None => Ok(()),
        Some(until) => {
            let millis = (until - now).num_milliseconds().max(1);
            Err(ServiceError::Throttled((millis as u64).div_ceil(1000)))
        }
    }
}

/// The delay after `failures` failures of which `free` are free: 1 s, 2 s, 4 s … up to `max`.
pub fn delay(failures: i64, free: i64, max: std::time::Duration) -> Option<std::time::Duration> {
    let over = failures - free;
    if over <= 0 {
        return None;
    }
    let seconds = 1u64
        .checked_shl((over - 1).min(32) as u32)
        .unwrap_or(u64::MAX);
    Some(std::time::Duration::from_secs(seconds).min(max))
}

/// Counts a failed sign-in against every key (call inside a write transaction).
pub fn record_failure(
    conn: &mut Conn,
    config: &Config,
    keys: &[String],
    now: NaiveDateTime,
) -> store::Result<()> {
    for key in keys {
        let (free, window) = if key.starts_with("ip:") {
            (config.signin_ip_free, config.signin_ip_window)
        } else {
            (config.signin_user_free, config.signin_user_window)
        };
        let row = store::throttle::add_failure(conn, key, now, now - chrono_duration(window))?;
        if let Some(wait) = delay(row.failures, free, config.signin_max_delay) {
            store::throttle::block_until(conn, key, now + chrono_duration(wait))?;
        }
    }
    Ok(())
}

/// A successful sign-in clears the username's count (the address keeps its window).
pub fn record_success(conn: &mut Conn, username: &str) -> store::Result<()> {
    store::throttle::clear(conn, &user_key(username))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_back_off_doubles_from_one_second_and_is_capped() {
        let max = Duration::from_secs(60);
        let delays: Vec<_> = (1..=13)
            .map(|f| delay(f, 5, max).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            delays,
            vec![
                None,
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(delay(i64::MAX, 5, max), Some(max));
    }
}
