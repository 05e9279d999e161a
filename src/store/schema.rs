// @generated automatically by Diesel CLI.

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        kind -> Text,
        reason -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    auth_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        code_challenge -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        session_id -> Nullable<Text>,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        is_public -> Bool,
        grant_types -> Text,
        redirect_uris -> Text,
        scopes -> Text,
        allowed_origins -> Text,
        audiences -> Text,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        refresh_token_cookie -> Bool,
    }
}

diesel::table! {
    login_attempts (key) {
        key -> Text,
        failures -> BigInt,
        window_started_at -> Timestamp,
        blocked_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    personal_access_tokens (id) {
        id -> Text,
        session_id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        client_id -> Text,
        kind -> Text,
        scope -> Text,
        device_name -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        refresh_generation -> BigInt,
        refresh_secret -> Nullable<Text>,
        rotated_at -> Nullable<Timestamp>,
        refresh_expires_at -> Nullable<Timestamp>,
        access_expires_at -> Nullable<Timestamp>,
        parent_session_id -> Nullable<Text>,
        status_list -> Nullable<BigInt>,
        status_idx -> Nullable<BigInt>,
    }
}

diesel::table! {
    status_list_blocks (list, block) {
        list -> BigInt,
        block -> BigInt,
        claimed_at -> Timestamp,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key -> Text,
        public_jwk -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        disabled_at -> Nullable<Timestamp>,
        password_changed_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(auth_codes -> clients (client_id));
diesel::joinable!(auth_codes -> sessions (session_id));
diesel::joinable!(auth_codes -> users (user_id));
diesel::joinable!(personal_access_tokens -> sessions (session_id));
diesel::joinable!(personal_access_tokens -> users (user_id));
diesel::joinable!(sessions -> clients (client_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    auth_codes,
    clients,
    login_attempts,
    personal_access_tokens,
    server_secrets,
    sessions,
    signing_keys,
    status_list_blocks,
    users,
);
