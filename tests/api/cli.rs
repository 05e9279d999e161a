//! The command line, run as a separate process against the same database as a running server.

use reqwest::StatusCode;

use crate::helpers::*;

/// The Passport story: a user signed in on three devices; an operator changes the password from
/// the shell; every device is out at once and only the new password works.
#[tokio::test]
async fn set_password_logs_the_user_out_of_every_device() {
    let app = spawn_app().await;
    app.create_user("erin", "old-password-1", false).await;
    let devices = [
        app.login("erin", "old-password-1").await,
        app.login("erin", "old-password-1").await,
        app.login("erin", "old-password-1").await,
    ];
    let bystander = app.login("admin", ADMIN_PASSWORD).await;

    let (code, stdout, stderr) = app
        .cli(
            &["--json", "user", "set-password", "erin", "--password-stdin"],
            Some("new-password-2\n"),
        )
        .await;
    assert_eq!(code, 0, "stderr: {stderr}");
    let counts: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON counts");
    assert_eq!(counts["sessions_revoked"], 3);
    assert_eq!(counts["access_tokens_revoked"], 3);
    assert_eq!(counts["refresh_tokens_revoked"], 3);

    for device in &devices {
        assert_eq!(
            app.me(&device.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_error(
            app.refresh(device.refresh()).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
        let sid = claims(&device.access)["sid"]
            .as_str()
            .expect("sid")
            .to_owned();
        assert_eq!(
            app.session(&sid).await.revoked_reason.as_deref(),
            Some("password_changed")
        );
    }
    assert_error(
        app.password_grant("erin", "old-password-1").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The trailing newline was not part of the password.
    let fresh = app.login("erin", "new-password-2").await;
    assert_eq!(app.me(&fresh.access).await.status(), StatusCode::OK);
    assert_eq!(app.me(&bystander.access).await.status(), StatusCode::OK);
    assert!(!app.audit("password_changed").await.is_empty());
}

#[tokio::test]
async fn set_password_can_keep_sessions_and_logout_all_ends_them() {
    let app = spawn_app().await;
    app.create_user("frank", "old-password-1", false).await;
    let device = app.login("frank", "old-password-1").await;
    let (code, _, stderr) = app
        .cli(
            &[
                "user",
                "set-password",
                "frank",
                "--password-stdin",
                "--keep-sessions",
            ],
            Some("new-password-2\n"),
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(app.me(&device.access).await.status(), StatusCode::OK);

    let (code, stdout, _) = app
        .cli(&["--json", "user", "sessions", "frank"], None)
        .await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(listed["sessions"].as_array().expect("list").len(), 1);
    assert_eq!(listed["sessions"][0]["id"], claims(&device.access)["sid"]);

    let (code, stdout, _) = app
        .cli(&["--json", "user", "logout-all", "frank"], None)
        .await;
    assert_eq!(code, 0);
    let counts: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(counts["sessions_revoked"], 1);
    assert_eq!(
        app.me(&device.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let sid = claims(&device.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("admin_logout_all")
    );
}

#[tokio::test]
async fn user_create_and_its_errors() {
    let app = spawn_app().await;
    let (code, stdout, stderr) = app
        .cli(
            &["--json", "user", "create", "grace", "--password-stdin"],
            Some("grace-password\n"),
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(created["username"], "grace");
    assert!(
        created.get("password").is_none(),
        "a given password is never printed"
    );
    app.login("grace", "grace-password").await;

    let (code, stdout, stderr) = app
        .cli(
            &["user", "create", "grace", "--password-stdin"],
            Some("another-password\n"),
        )
        .await;
    assert_eq!(code, 1, "a taken name is a failed operation");
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("taken"), "{stderr}");

    let (code, _, stderr) = app
        .cli(
            &["user", "create", "shorty", "--password-stdin"],
            Some("short\n"),
        )
        .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("8 to 1024"), "{stderr}");

    // A generated password is shown once and works.
    let (code, stdout, _) = app.cli(&["--json", "user", "create", "heidi"], None).await;
    assert_eq!(code, 0);
    let created: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    app.login(
        "heidi",
        created["password"].as_str().expect("generated password"),
    )
    .await;

    let (code, _, stderr) = app.cli(&["user", "set-password", "nobody"], None).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no such user"), "{stderr}");
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let app = spawn_app().await;
    for args in [
        vec!["user"],
        vec!["frobnicate"],
        vec!["user", "create"],
        vec!["client", "create", "x", "--bogus"],
    ] {
        let (code, _, stderr) = app.cli(&args, None).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.to_lowercase().contains("usage"), "{stderr}");
    }
}

#[tokio::test]
async fn client_create_list_and_delete() {
    let app = spawn_app().await;
    let (code, stdout, stderr) = app
        .cli(
            &[
                "--json",
                "client",
                "create",
                "billing",
                "--grant",
                "client_credentials",
                "--scope",
                "invoices",
                "--audience",
                "https://billing.example",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let id = created["client_id"].as_str().expect("client_id").to_owned();
    let secret = created["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_owned();
    assert!(secret.starts_with("tokend_cs_"));

    let t = tokens(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;
    assert_eq!(t.body["scope"], "invoices");
    assert_eq!(
        claims(&t.access)["aud"],
        serde_json::json!([app.address, "https://billing.example"])
    );
    let (rs, rs_secret) = app.confidential_client(&["x"]).await;
    assert_eq!(
        json(app.introspect(&rs, &rs_secret, &t.access).await).await["active"],
        true
    );

    let (code, stdout, _) = app.cli(&["--json", "client", "list"], None).await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let ids: Vec<_> = listed["clients"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["client_id"].clone())
        .collect();
    assert!(ids.contains(&serde_json::json!(id)) && ids.contains(&serde_json::json!(CLI)));
    assert!(
        !stdout.contains(&secret) && !stdout.contains("secret_hash"),
        "no secrets in the list"
    );

    let (code, stdout, _) = app.cli(&["--json", "client", "delete", &id], None).await;
    assert_eq!(code, 0);
    let counts: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(counts["sessions_revoked"], 1);
    assert_eq!(
        json(app.introspect(&rs, &rs_secret, &t.access).await).await,
        serde_json::json!({"active": false})
    );
    let again = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await;
    assert_error(again, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let (code, _, stderr) = app.cli(&["client", "delete", &id], None).await;
    assert_eq!(code, 1, "deleting twice fails: {stderr}");

    let (code, stdout, _) = app
        .cli(
            &[
                "--json",
                "client",
                "create",
                "spa",
                "--public",
                "--grant",
                "refresh_token",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0);
    let public: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert!(
        public.get("client_secret").is_none(),
        "no secret for public clients"
    );
}

#[tokio::test]
async fn a_bad_configuration_value_stops_start_up_naming_the_variable() {
    use std::process::Command;
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("serve")
        .env("TOKEND_ACCESS_TOKEN_TTL", "5 minutes")
        .env(
            "TOKEND_DATABASE_URL",
            "sqlite:///nonexistent/never-created.db",
        )
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TOKEND_ACCESS_TOKEN_TTL"), "{stderr}");
}

#[tokio::test]
async fn admin_commands_never_rotate_the_signing_key() {
    let app = spawn_app().await;
    let before = app.db(tokend::store::keys::all).await;
    let (code, _, stderr) = app
        .cli_env(
            &["user", "sessions", "admin"],
            None,
            &[("TOKEND_SIGNING_ALG", "RS256")],
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let after = app.db(tokend::store::keys::all).await;
    assert_eq!(after.len(), before.len());
    assert_eq!(after[0].kid, before[0].kid);
    assert!(after[0].retired_at.is_none());

    // `keys rotate` is the explicit way, and it works.
    let (code, stdout, stderr) = app.cli(&["--json", "keys", "rotate"], None).await;
    assert_eq!(code, 0, "{stderr}");
    let rotated: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let keys = app.db(tokend::store::keys::all).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys.iter()
            .find(|k| k.retired_at.is_none())
            .expect("active")
            .kid,
        rotated["kid"]
    );
}

#[tokio::test]
async fn a_public_client_needs_an_explicit_grant() {
    let app = spawn_app().await;
    let (code, stdout, stderr) = app
        .cli(&["client", "create", "spa", "--public"], None)
        .await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("--grant"), "{stderr}");
    assert_eq!(
        app.db(tokend::store::clients::list).await.len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn operator_commands_mirror_the_admin_api() {
    let app = spawn_app().await;
    app.create_user("yara", "yara-password", false).await;
    let device = app.login("yara", "yara-password").await;
    let other = app.login("yara", "yara-password").await;
    let cli = |args: &'static [&'static str]| {
        let app = &app;
        async move {
            let (code, stdout, stderr) = app.cli(args, None).await;
            assert_eq!(code, 0, "{args:?}: {stderr}");
            serde_json::from_str::<serde_json::Value>(stdout.trim())
                .unwrap_or_else(|_| panic!("{args:?}: {stdout}"))
        }
    };

    let users = cli(&["--json", "user", "list"]).await;
    let names: Vec<_> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(
        names,
        vec![serde_json::json!("admin"), serde_json::json!("yara")]
    );
    assert!(!users.to_string().contains("argon2"));

    // End one session by id.
    let sid = claims(&device.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let (code, _, stderr) = app.cli(&["session", "end", &sid], None).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        app.me(&device.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("admin_session_ended")
    );

    // Disable and enable.
    let disabled = cli(&["--json", "user", "disable", "yara"]).await;
    assert_eq!(disabled["sessions_revoked"], 1);
    assert_eq!(
        app.me(&other.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        app.password_grant("yara", "yara-password").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    cli(&["--json", "user", "enable", "yara"]).await;
    app.login("yara", "yara-password").await;

    // The audit trail, filtered.
    let events = cli(&[
        "--json",
        "audit",
        "--user",
        "yara",
        "--kind",
        "user_disabled",
    ])
    .await;
    let events = events["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "user_disabled");
    assert!(
        events[0]["actor_id"].is_null(),
        "the operator's shell has no user id"
    );
    let keys = cli(&["--json", "keys", "list"]).await;
    assert_eq!(keys["keys"].as_array().expect("keys").len(), 1);
    assert_eq!(keys["keys"][0]["active"], true);
}

#[tokio::test]
async fn a_command_failing_right_after_start_up_exits_1_every_time() {
    // On PostgreSQL, a command that failed at once (a wrong key-encryption key) used to exit
    // while r2d2 was still opening a connection in the background, and OpenSSL's exit handler
    // then crashed it (SIGSEGV, exit 139, in a few runs out of twenty). Every run must exit 1.
    use base64::Engine as _;
    let kek = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let right = tokend::crypto::keys::KeyEncryptionKey::parse(&kek(42)).expect("kek");
    let app = spawn_app_with(|c| c.key_encryption_key = Some(right)).await;
    let wrong = kek(7);
    for run in 0..20 {
        let (code, _, stderr) = app
            .cli_env(
                &["keys", "rotate"],
                None,
                &[("TOKEND_KEY_ENCRYPTION_KEY", &wrong)],
            )
            .await;
        assert_eq!(code, 1, "run {run}: {stderr}");
        assert!(stderr.contains("does not decrypt"), "run {run}: {stderr}");
    }
}

#[tokio::test]
async fn an_unknown_audit_kind_is_a_usage_error_listing_the_valid_ones() {
    let app = spawn_app().await;
    let (code, stdout, stderr) = app.cli(&["audit", "--kind", "nonsense"], None).await;
    assert_eq!(code, 2, "{stdout} {stderr}");
    assert!(
        stderr.contains("signin_failure") && stderr.contains("refresh_reuse"),
        "{stderr}"
    );
    let (code, _, stderr) = app.cli(&["audit", "--kind", "signin_success"], None).await;
    assert_eq!(code, 0, "{stderr}");
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    assert_error(
        app.get("/admin/audit?kind=nonsense", &admin.access).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn admin_commands_never_create_a_database_and_a_bad_path_fails_at_once() {
    let dir = std::env::temp_dir().join(format!("tokend-nodb-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("tokend.db");
    let url = format!("sqlite://{}", path.display());
    // The wrong directory: an error naming the path, and no empty database left behind.
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_cli_env(&url, &["user", "list"], None, &[])
    })
    .await
    .expect("cli");
    assert_eq!(code, 1, "{stdout} {stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        !path.exists(),
        "an admin command created {}",
        path.display()
    );

    // A directory that does not exist: `migrate` fails at once with one line naming the path.
    let missing = format!("sqlite://{}/no/such/dir/tokend.db", dir.display());
    let started = std::time::Instant::now();
    let (code, _, stderr) = tokio::task::spawn_blocking({
        let missing = missing.clone();
        move || run_cli_env(&missing, &["migrate"], None, &[])
    })
    .await
    .expect("cli");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "it failed at once"
    );
    assert!(stderr.contains("no/such/dir/tokend.db"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    // With `migrate` in the right directory it is created, and admin commands then work.
    let (code, _, stderr) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_cli_env(&url, &["migrate"], None, &[])
    })
    .await
    .expect("cli");
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || run_cli_env(&url, &["user", "list"], None, &[]))
            .await
            .expect("cli");
    assert_eq!(code, 0, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_config_error_names_the_file_it_came_from() {
    let dir = std::env::temp_dir().join(format!("tokend-conf-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad2.toml");
    std::fs::write(&file, "access_token_ttl = \"0s\"\n").expect("write");
    let path = file.to_str().expect("utf-8").to_owned();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        run_cli_env(
            "sqlite://unused.db",
            &["--config", &path, "user", "list"],
            None,
            &[],
        )
    })
    .await
    .expect("cli");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("access_token_ttl (in "), "{stderr}");
    assert!(stderr.contains("bad2.toml"), "{stderr}");
    assert!(!stderr.contains("TOKEND_ACCESS_TOKEN_TTL"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_postgres_database_that_does_not_exist_fails_at_once_in_one_line() {
    // Runs in the PostgreSQL half of the suite, where a server is known to answer.
    let Ok(admin) = std::env::var("TOKEND_TEST_DATABASE_URL") else {
        return;
    };
    if admin.is_empty() {
        return;
    }
    let base = &admin[..admin.rfind('/').expect("a database in the URL")];
    let missing = format!("{base}/tokend_missing_{}", uuid::Uuid::new_v4().simple());
    let started = std::time::Instant::now();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        run_cli_env(
            &missing,
            &["user", "list"],
            None,
            &[("TOKEND_DB_TIMEOUT", "10s")],
        )
    })
    .await
    .expect("cli");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it did not wait for the timeout"
    );
    assert!(
        stderr.contains("tokend_missing_") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

/// Issue 15 point 3: once the server secrets and the signing key are sealed, only `keys rotate`
/// needs the key-encryption key; every command that signs, tags and seals nothing runs without it
/// and touches no secret. A wrong key is refused by every command that is given one.
#[tokio::test]
async fn after_a_sealed_start_only_keys_rotate_needs_the_key_encryption_key() {
    use base64::Engine as _;
    let kek = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let right = tokend::crypto::keys::KeyEncryptionKey::parse(&kek(42)).expect("kek");
    let app = spawn_app_with(|c| c.key_encryption_key = Some(right)).await;
    app.create_user("erin", "erin-password", false).await;
    let device = app.login("erin", "erin-password").await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let secrets = || app.db(tokend::store::keys::secrets);
    let sealed_before = secrets().await;
    for name in ["csrf_key", "refresh_key"] {
        let value = &sealed_before
            .iter()
            .find(|(n, _)| n == name)
            .expect("the secret")
            .1;
        assert!(value.starts_with("enc:v1:"), "{name} is sealed");
    }
    let keys_before = app.db(tokend::store::keys::all).await;
    assert!(keys_before[0].private_key.starts_with("enc:v1:"));

    let (code, stdout, stderr) = app
        .cli(
            &[
                "--json",
                "client",
                "create",
                "billing",
                "--grant",
                "client_credentials",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "client create: {stderr}");
    let client: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();
    let sid = device.sid();
    let commands: Vec<Vec<&str>> = vec![
        vec!["user", "list"],
        vec!["user", "sessions", "erin"],
        vec!["audit", "--limit", "5"],
        vec!["keys", "list"],
        vec!["client", "list"],
        vec!["token", "purge", "--dry-run"],
        vec!["token", "purge"],
        vec!["session", "end", &sid],
        vec!["user", "logout-all", "erin"],
        vec!["user", "disable", "erin"],
        vec!["user", "enable", "erin"],
        vec!["user", "create", "zoe"],
        vec!["user", "set-password", "zoe"],
        vec!["client", "delete", &client_id],
    ];
    for args in &commands {
        let (code, _, stderr) = app.cli(args, None).await;
        assert_eq!(code, 0, "{args:?} without the key-encryption key: {stderr}");
    }
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("admin_session_ended"),
        "the commands did their work"
    );

    // `keys rotate` makes a key that must be sealed: without the key it stops, in one line.
    let (code, stdout, stderr) = app.cli(&["keys", "rotate"], None).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the signing keys are encrypted at rest")
            && stderr.contains("TOKEND_KEY_ENCRYPTION_KEY"),
        "{stderr}"
    );
    // A wrong key is refused wherever it is given, before anything is read or written.
    let wrong = kek(7);
    for args in [vec!["user", "list"], vec!["keys", "rotate"]] {
        let (code, _, stderr) = app
            .cli_env(&args, None, &[("TOKEND_KEY_ENCRYPTION_KEY", &wrong)])
            .await;
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains("does not decrypt"), "{args:?}: {stderr}");
    }
    assert_eq!(
        app.db(tokend::store::keys::all).await.len(),
        1,
        "no key added"
    );
    assert_eq!(secrets().await, sealed_before, "no secret touched");

    // The right key rotates, sealed; the server goes on refreshing with the secrets it has.
    let right = kek(42);
    let (code, _, stderr) = app
        .cli_env(
            &["keys", "rotate"],
            None,
            &[("TOKEND_KEY_ENCRYPTION_KEY", &right)],
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let keys = app.db(tokend::store::keys::all).await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.private_key.starts_with("enc:v1:")));
    let refreshed = tokens(app.refresh(admin.refresh()).await).await;
    assert_eq!(app.me(&refreshed.access).await.status(), StatusCode::OK);
}

/// Sealed server secrets beside a plain signing key (a key-encryption key set after the first
/// start): a rotation without the key would add a plain key, so it is refused too.
#[tokio::test]
async fn a_rotation_without_the_key_encryption_key_is_refused_once_the_secrets_are_sealed() {
    use base64::Engine as _;
    let kek = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let plain = spawn_app().await;
    let parsed = tokend::crypto::keys::KeyEncryptionKey::parse(&kek).expect("kek");
    let sealing = spawn_on(plain.db.clone(), |c| c.key_encryption_key = Some(parsed)).await;
    let keys = sealing.db(tokend::store::keys::all).await;
    assert_eq!(keys.len(), 1);
    assert!(
        !keys[0].private_key.starts_with("enc:"),
        "the first key stays plain"
    );

    let (code, _, stderr) = sealing.cli(&["keys", "rotate"], None).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "the server secret refresh_key is encrypted at rest: set TOKEND_KEY_ENCRYPTION_KEY"
        ),
        "{stderr}"
    );
    assert_eq!(sealing.db(tokend::store::keys::all).await.len(), 1);
    let (code, _, stderr) = sealing.cli(&["user", "list"], None).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sealing
        .cli_env(
            &["keys", "rotate"],
            None,
            &[("TOKEND_KEY_ENCRYPTION_KEY", &kek)],
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let keys = sealing.db(tokend::store::keys::all).await;
    assert!(
        keys[0].private_key.starts_with("enc:v1:"),
        "the new key is sealed"
    );
}

/// Issue 15 point 11: a validation error says what was wrong and what a valid value looks like;
/// a value the command cannot parse is bad usage (exit 2), one the operation refuses exits 1, and
/// neither changes anything.
#[tokio::test]
async fn cli_validation_errors_show_a_valid_value() {
    let app = spawn_app().await;
    let refused = [
        (
            vec!["client", "create", "spa", "--public", "--grant", "authorization_code", "--redirect-uri", "notauri"],
            "redirect_uris: \"notauri\" is not an absolute URI without a fragment, e.g. https://app.example/callback",
        ),
        (
            vec!["client", "create", "spa", "--public", "--grant", "password", "--origin", "https://app.example/path"],
            "allowed_origins: \"https://app.example/path\" is not an origin (http or https, a host, an optional port, no path), e.g. https://app.example or http://127.0.0.1:5173",
        ),
        (
            vec!["client", "create", "api", "--grant", "implicit"],
            "grant_types: \"implicit\" is not a grant type (one of authorization_code, password, refresh_token, client_credentials)",
        ),
        (
            vec!["client", "create", "api", "--scope", "read write"],
            "scopes: \"read write\" is not one scope (one scope per value), e.g. read",
        ),
        (
            vec!["client", "create", "api", "--audience", "two words"],
            "audiences: \"two words\" is not an audience (one value without spaces, up to 2000 bytes), e.g. https://api.example",
        ),
        (
            vec!["user", "create", "bad name"],
            "username: \"bad name\" is not a username (1 to 64 letters, digits, '.', '_', '@' or '-'), e.g. alice or alice.smith@example.com",
        ),
    ];
    let before = app.row_counts().await;
    for (args, message) in &refused {
        let (code, stdout, stderr) = app.cli(args, None).await;
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert_eq!(
            stderr.trim(),
            format!("tokend: error: {message}"),
            "{args:?}"
        );
    }
    let usage = [
        (vec!["audit", "--limit", "0"], "\"0\" is not a whole number from 1 to 1000, e.g. --limit 100"),
        (
            vec!["session", "end", "not-a-session"],
            "\"not-a-session\" is not a session id; one looks like 01a200c7-8d73-7751-ac07-e54806b61a2a",
        ),
        (
            vec!["client", "delete", "no such client"],
            "\"no such client\" is not a client id (letters, digits, '-', '_' and '.'), e.g. tokend-cli",
        ),
        (
            vec!["user", "logout-all", "admin", "--kind", "client_credentials"],
            "\"client_credentials\" is not a session kind; one of password, authorization_code, personal_access_token, e.g. --kind personal_access_token",
        ),
    ];
    for (args, message) in &usage {
        let (code, _, stderr) = app.cli(args, None).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
        // API.md: bad usage prints the usage text, of the command that was meant.
        let command = args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .take(2)
            .filter(|a| {
                [
                    "audit",
                    "session",
                    "end",
                    "client",
                    "delete",
                    "user",
                    "logout-all",
                ]
                .contains(a)
            })
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            stderr.contains(&format!("Usage: tokend {command}")),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(app.row_counts().await, before, "nothing changed");
}

/// A `serve` without the key-encryption key, on a database whose signing key is sealed and whose
/// server secrets are not made yet (as after the storage v2 upgrade), stops before it makes them:
/// it would have made them in plain.
#[tokio::test]
async fn serve_without_the_key_makes_no_plain_secret_next_to_a_sealed_signing_key() {
    use base64::Engine as _;
    use diesel::prelude::*;
    let kek = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let key = tokend::crypto::keys::KeyEncryptionKey::parse(&kek).expect("kek");
    let app = spawn_app_with(|c| c.key_encryption_key = Some(key)).await;
    app.db(|conn| {
        conn.write(|conn| {
            use tokend::store::schema::server_secrets;
            Ok(tokend::db!(conn, c => diesel::delete(server_secrets::table).execute(c))?)
        })
    })
    .await;
    let url = app.db.url.clone();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        run_cli_env(&url, &["serve"], None, &[("TOKEND_BIND", "127.0.0.1:0")])
    })
    .await
    .expect("task");
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        app.row_counts().await["server_secrets"],
        0,
        "no secret made: {stderr}"
    );
}
