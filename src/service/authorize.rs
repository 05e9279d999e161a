//! The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9700 §2.1.1): a user signs
//! in on tokend's own page, the client gets a code at its registered redirect URI and exchanges it
//! at the token endpoint. Codes are 256 bits from the CSPRNG, stored only as their SHA-256, live
//! 60 s and are used once; a code presented a second time ends the session its first use opened.

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use super::audit::{self, Event};
use super::clients::ClientInfo;
use super::grant_type::GrantType;
use super::issuing::{self, Opening, SessionKind, TokenResponse};
use super::revocation::{self, Reason};
use super::scope::{self, ScopeSet};
use super::signin::{self, SignedIn};
use super::status_list::StatusLists;
use super::{Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::{b64url, constant_time_eq, random_bytes, sha256_hex};
use crate::store::models::AuthCode;
use crate::store::{self, Conn};

/// How long a code can be exchanged (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL_SECS: i64 = 60;

const BAD_CODE: &str = "the authorization code is invalid, expired or already used";

/// A PKCE `code_challenge` for S256 is the base64url SHA-256 of the verifier: 43 characters.
pub fn is_s256_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `code_verifier` (RFC 7636 §4.1): 43 to 128 unreserved characters.
pub fn is_code_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn s256(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// What the user approved on the sign-in page, to be turned into a code.
#[derive(Debug, Clone)]
pub struct Approval {
    pub client: ClientInfo,
    pub redirect_uri: String,
    pub requested: Option<ScopeSet>,
    pub code_challenge: Option<String>,
}

/// Checks the user's credentials on the sign-in page: the same throttling, timing and audit as the
/// password grant.
pub async fn sign_in(
    ctx: &Ctx,
    client: &ClientInfo,
    username: String,
    password: String,
    meta: &RequestMeta,
) -> Result<SignedIn> {
    signin::verify_credentials(ctx, client, username, password, meta).await
}

/// Issues a code for a signed-in user. `invalid_scope` when the user may not hold what was asked
/// for (an `admin` scope for a user who is not an admin).
pub async fn issue_code(
    ctx: &Ctx,
    signed_in: SignedIn,
    approval: Approval,
    meta: RequestMeta,
) -> Result<String> {
    let allowed = signin::allowed_scopes(&approval.client, &signed_in.user);
    let granted =
        scope::grant(approval.requested.as_ref(), &allowed).map_err(ServiceError::InvalidScope)?;
    let code = format!("tokend_ac_{}", b64url(&random_bytes::<32>()));
    let row = AuthCode {
        code_hash: sha256_hex(code.as_bytes()),
        client_id: approval.client.client_id.clone(),
        user_id: signed_in.user.id.clone(),
        redirect_uri: approval.redirect_uri,
        scope: granted.to_string(),
        code_challenge: approval.code_challenge,
        created_at: store::now(),
        expires_at: store::now() + chrono::Duration::seconds(CODE_TTL_SECS),
        used_at: None,
        session_id: None,
    };
    let client = approval.client;
    ctx.write(move |conn| {
        // A code opens a session later: it must not outlive a password change or a disable
        // that committed while this sign-in was in Argon2 (SECURITY.md 30).
        if let Err(refused) = signin::confirm_in_tx(conn, &signed_in, &client, &meta)? {
            return Ok(Err(refused));
        }
        store::codes::insert(conn, &row)?;
        audit::record(
            conn,
            Event {
                kind: "signin_success",
                reason: Some("authorization_page"),
                user_id: Some(&signed_in.user.id),
                client_id: Some(&row.client_id),
                ..Default::default()
            },
            &meta,
        )?;
        Ok(Ok(()))
    })
    .await??;
    Ok(code)
}

/// The `authorization_code` grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6).
pub async fn exchange(
    ctx: &Ctx,
    client: ClientInfo,
    code: String,
    redirect_uri: String,
    verifier: Option<String>,
    meta: RequestMeta,
) -> Result<TokenResponse> {
    client.require_grant(GrantType::AuthorizationCode)?;
    if code.len() > 200 || redirect_uri.len() > 2000 {
        return Err(ServiceError::InvalidGrant(BAD_CODE.to_owned()));
    }
    let key = ctx.keys.signing_key()?;
    let status = StatusLists::allocate(ctx).await?;
    let ctx2 = ctx.clone();
    let outcome = ctx
        .write(move |conn| {
            exchange_in_tx(
                conn,
                &ctx2,
                &key,
                &client,
                Exchange {
                    code: &code,
                    redirect_uri: &redirect_uri,
                    verifier: verifier.as_deref(),
                    status,
                },
                &meta,
            )
        })
        .await?;
    if outcome.is_err() {
        ctx.status.unused(status);
    }
    outcome
}

/// What the client presented, and the status-list entry of the session it would open.
struct Exchange<'a> {
    code: &'a str,
    redirect_uri: &'a str,
    verifier: Option<&'a str>,
    status: super::status_list::Entry,
}

/// Inside one write transaction. Refusals that must stick (a used-up code, a session ended for a
/// replayed code) are `Ok(Err(..))`, so that the transaction commits them.
fn exchange_in_tx(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &crate::crypto::keys::SigningKey,
    client: &ClientInfo,
    exchange: Exchange<'_>,
    meta: &RequestMeta,
) -> store::Result<Result<TokenResponse>> {
    let Exchange {
        code,
        redirect_uri,
        verifier,
        status,
    } = exchange;
    let refused = |why: &str| -> store::Result<Result<TokenResponse>> {
        tracing::info!(client_id = %client.client_id, why, "authorization code refused");
        Ok(Err(ServiceError::InvalidGrant(BAD_CODE.to_owned())))
    };
    let now: NaiveDateTime = store::now();
    let hash = sha256_hex(code.as_bytes());
    let Some(row) = store::codes::find(conn, &hash)? else {
        return refused("unknown");
    };
    if row.client_id != client.client_id {
        // Another client's code: refused, and left alone (the rightful client may still use it).
        return refused("another client's code");
    }
    // The user's lock first, as every transaction that opens a session for the user takes it: a
    // logout-all or password change either committed before (and used this code up) or waits
    // until this exchange has committed its session (and then ends it).
    let Some(user_lock) = store::users::lock(conn, &row.user_id)? else {
        return refused("user gone");
    };
    // Read again under the lock: a concurrent exchange of the same code held it until it had
    // committed its session, and only this reading shows which session a second use must end (on
    // PostgreSQL the first reading may predate that commit).
    let Some(row) = store::codes::find(conn, &hash)? else {
        return refused("unknown");
    };
    if row.used_at.is_some() || store::codes::claim(conn, &hash, now)? == 0 {
        // A second use: whatever the first use issued is revoked (RFC 6749 §4.1.2).
        if let Some(session_id) = &row.session_id {
            let counts = revocation::end_session_in_tx(
                conn,
                session_id,
                Reason::CodeReuse,
                "code_reuse",
                Event {
                    user_id: Some(&row.user_id),
                    session_id: Some(session_id),
                    client_id: Some(&client.client_id),
                    ..Default::default()
                },
                meta,
            )?;
            if counts.sessions_revoked > 0 {
                tracing::warn!(%session_id, client_id = %client.client_id, "authorization code reuse: session revoked");
            }
        }
        return refused("already used");
    }
    // From here on the code is used up, whatever the outcome: a wrong verifier or redirect URI
    // means someone other than the client may hold it.
    if row.expires_at <= now {
        return refused("expired");
    }
    if row.redirect_uri != redirect_uri {
        return refused("redirect_uri differs from the authorization request");
    }
    match (&row.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            if !is_code_verifier(verifier) || !constant_time_eq(challenge, &s256(verifier)) {
                return refused("code_verifier does not match the challenge");
            }
        }
        (Some(_), None) => return refused("code_verifier missing"),
        // A verifier without a challenge is refused too (RFC 9700 §2.1.1: downgrade defence).
        (None, Some(_)) => return refused("code_verifier without a challenge"),
        (None, None) => {}
    }
    if user_lock.disabled_at.is_some() {
        return refused("user disabled");
    }
    let Some(user) = store::users::find_by_id(conn, &row.user_id)? else {
        return refused("user gone");
    };
    let granted = ScopeSet::from_stored(&row.scope);
    let opened = issuing::open_session_in_tx(
        conn,
        ctx,
        key,
        Opening {
            user: Some(&user),
            client,
            kind: SessionKind::AuthorizationCode,
            scope: &granted,
            device_name: None,
            meta,
            status,
        },
    )?;
    let opened = match opened {
        Ok(opened) => opened,
        Err(gone) => return Ok(Err(gone)),
    };
    store::codes::set_session(conn, &hash, &opened.session.id)?;
    // The code's sign-in was recorded when the code was issued.
    audit::record(
        conn,
        Event {
            kind: "code_exchanged",
            reason: Some("authorization_code"),
            user_id: Some(&user.id),
            session_id: Some(&opened.session.id),
            client_id: Some(&client.client_id),
            ..Default::default()
        },
        meta,
    )?;
    Ok(Ok(opened.response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_code_verifier(verifier));
        let challenge = s256(verifier);
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_s256_challenge(&challenge));
    }

    #[test]
    fn verifier_and_challenge_shapes() {
        assert!(!is_code_verifier("short"));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(50))));
        assert!(!is_s256_challenge(&"a".repeat(44)));
        assert!(!is_s256_challenge(&format!("{}=", "a".repeat(42))));
    }
}
