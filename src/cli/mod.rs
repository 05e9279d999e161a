//! The command line: `serve`, `migrate`, and admin commands, each a thin call into `service`.
//! Exit codes: 0 success, 1 a failed operation (one line on stderr), 2 bad usage.

use std::io::BufRead as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::Config;
use crate::service::clients::{self, NewClient};
use crate::service::revocation::{Counts, Reason};
use crate::service::{bootstrap, users, Ctx, RequestMeta};
use crate::{crypto, store};

#[derive(Debug, Parser)]
#[command(
    name = "tokend",
    version,
    about = "OAuth 2 token service whose revocations stick",
    after_help = "Every command uses the database of TOKEND_DATABASE_URL (default sqlite://tokend.db, in \
the current directory), read from the environment or from the configuration file (./tokend.toml \
when present, or --config PATH): run admin commands with the server's settings. Exit codes: 0 \
success, 1 a failed operation, 2 bad usage."
)]
pub struct Cli {
    /// Configuration file (default: ./tokend.toml when present)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Machine-readable output
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations, then serve HTTP
    Serve,
    /// Apply migrations and exit
    Migrate,
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// End sessions
    #[command(subcommand)]
    Session(SessionCommand),
    /// Token housekeeping
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit trail, newest first
    Audit {
        /// Only events about this user (a username)
        #[arg(long)]
        user: Option<String>,
        /// Only events of this kind (signin_failure, refresh_reuse, logout_all, …; docs/admin.md)
        #[arg(long, value_parser = parse_audit_kind)]
        kind: Option<String>,
        /// How many events, newest first (1 to 1000)
        #[arg(long, default_value_t = 50, value_parser = parse_limit)]
        limit: i64,
    },
}

fn parse_audit_kind(value: &str) -> Result<String, String> {
    if crate::service::audit::KINDS.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not an audit event kind; one of: {}",
            crate::service::audit::KINDS.join(", ")
        ))
    }
}

fn parse_session_kind(value: &str) -> Result<crate::service::issuing::SessionKind, String> {
    use crate::service::issuing::SessionKind;
    SessionKind::parse(value)
        .filter(|k| *k != SessionKind::ClientCredentials)
        .ok_or_else(|| {
            format!(
                "{} is not a session kind; one of password, authorization_code, personal_access_token, e.g. --kind personal_access_token",
                crate::service::shown(value)
            )
        })
}

fn parse_limit(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            format!(
                "{} is not a whole number from 1 to 1000, e.g. --limit 100",
                crate::service::shown(value)
            )
        })
}

/// A session id is a UUID (`tokend user sessions NAME` lists them).
fn parse_session_id(value: &str) -> Result<String, String> {
    match uuid::Uuid::try_parse(value) {
        Ok(id) if id.hyphenated().to_string() == value => Ok(value.to_owned()),
        _ => Err(format!(
            "{} is not a session id; one looks like 01a200c7-8d73-7751-ac07-e54806b61a2a (tokend user sessions NAME lists them)",
            crate::service::shown(value)
        )),
    }
}

/// A client id: the letters, digits, '-', '_' and '.' tokend gives them (`tokend client list`).
fn parse_client_id(value: &str) -> Result<String, String> {
    if !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{} is not a client id (letters, digits, '-', '_' and '.'), e.g. tokend-cli or 8b435b8d-8136-4394-86ad-d26fc59c992a (tokend client list lists them)",
            crate::service::shown(value)
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Delete sessions that ended (revoked or past their absolute expiry) over
    /// TOKEND_PURGE_RETENTION ago, with their personal-token rows and codes, in batches; a live
    /// session's row is kept (it alone recognises a replayed refresh token)
    Purge {
        /// Count what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// End one session (log that device out)
    End {
        /// The session's id (`tokend user sessions NAME` lists them)
        #[arg(value_parser = parse_session_id)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (a password is generated and shown unless --password-stdin)
    Create {
        /// The username: 1 to 64 letters, digits, ".", "_", "@" and "-"
        name: String,
        /// Make the user an admin (may hold the admin scope)
        #[arg(long)]
        admin: bool,
        /// Read the password from one line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password; logs the user out of every device unless --keep-sessions
    SetPassword {
        /// The user's username
        name: String,
        /// Read the new password from one line of standard input (else one is generated)
        #[arg(long)]
        password_stdin: bool,
        /// Keep the user's sessions (by default a password change logs out every device)
        #[arg(long)]
        keep_sessions: bool,
    },
    /// Revoke every session of a user (or, with --kind, every session of one kind)
    LogoutAll {
        /// The user's username
        name: String,
        /// Only sessions of this kind: password, authorization_code or personal_access_token
        #[arg(long, value_parser = parse_session_kind)]
        kind: Option<crate::service::issuing::SessionKind>,
    },
    /// List a user's live sessions
    Sessions {
        /// The user's username
        name: String,
    },
    /// Disable a user and revoke everything the user holds
    Disable {
        /// The user's username
        name: String,
    },
    /// Enable a disabled user
    Enable {
        /// The user's username
        name: String,
    },
    /// List users
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client (a confidential client's secret is shown once)
    Create(ClientCreate),
    /// List clients
    List,
    /// Delete a client and revoke all its sessions
    Delete {
        /// The client's id (client_id; `tokend client list` lists them)
        #[arg(value_parser = parse_client_id)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    /// A name for people (shown on the sign-in page)
    pub name: String,
    /// A public client (no secret: SPAs, mobile and command-line apps)
    #[arg(long)]
    pub public: bool,
    /// Grant type it may use (repeatable): password, refresh_token, client_credentials, authorization_code
    #[arg(long = "grant", value_name = "G")]
    pub grants: Vec<String>,
    /// A redirect URI of the code flow, exact, e.g. https://app.example/callback (repeatable)
    #[arg(long = "redirect-uri", value_name = "U")]
    pub redirect_uris: Vec<String>,
    /// A scope its tokens may hold, e.g. account or read (repeatable)
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// A browser origin allowed to call tokend for it (CORS), e.g. https://app.example (repeatable)
    #[arg(long = "origin", value_name = "O")]
    pub origins: Vec<String>,
    /// An audience its access tokens carry besides the issuer, e.g. https://api.example (repeatable)
    #[arg(long = "audience", value_name = "A")]
    pub audiences: Vec<String>,
    /// Deliver the refresh token in an HttpOnly cookie scoped to /oauth/token (browser apps).
    #[arg(long = "refresh-cookie")]
    pub refresh_cookie: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key active; the old ones keep verifying until their tokens expire
    Rotate,
    /// List signing keys
    List,
}

/// Reads one line of standard input as a password (the trailing newline is not part of it).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if let Some(stripped) = line.strip_suffix('\n') {
        line = stripped.strip_suffix('\r').unwrap_or(stripped).to_owned();
    }
    Ok(line)
}

fn generated_password() -> String {
    crypto::b64url(&crypto::random_bytes::<15>())
}

fn cli_meta() -> RequestMeta {
    RequestMeta {
        ip: None,
        user_agent: Some(format!("tokend-cli/{}", env!("CARGO_PKG_VERSION"))),
    }
}

fn print_counts(json_out: bool, what: &str, counts: &Counts) {
    if json_out {
        println!("{}", json!(counts));
    } else {
        println!(
            "{what}: {} sessions, {} access tokens, {} refresh tokens revoked",
            counts.sessions_revoked, counts.access_tokens_revoked, counts.refresh_tokens_revoked
        );
    }
}

/// Opens the database for an admin command (blocking: migrations and key loading).
async fn open(config: Config) -> anyhow::Result<Ctx> {
    tokio::task::spawn_blocking(move || bootstrap::open(config, bootstrap::Purpose::Admin)).await?
}

/// Runs an admin command (everything but `serve`).
pub async fn run(command: Command, config: Config, json_out: bool) -> anyhow::Result<()> {
    match command {
        Command::Serve => anyhow::bail!("serve is run by main"),
        Command::Migrate => {
            let url = config.database_url.clone();
            tokio::task::spawn_blocking(move || store::check_database(&url, true)).await??;
            let pool = store::Pool::new(
                &config.database_url,
                &store::PoolOptions {
                    max_size: 1,
                    connect_timeout: config.db_timeout,
                    sqlite_synchronous: config.sqlite_synchronous,
                },
            )?;
            let applied = tokio::task::spawn_blocking(move || pool.migrate()).await??;
            if json_out {
                println!("{}", json!({ "applied": applied }));
            } else if applied.is_empty() {
                println!("the database is up to date");
            } else {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
            Ok(())
        }
        Command::User(cmd) => user(cmd, open(config).await?, json_out).await,
        Command::Client(cmd) => client(cmd, open(config).await?, json_out).await,
        Command::Keys(cmd) => keys(cmd, open(config).await?, json_out).await,
        Command::Token(TokenCommand::Purge { dry_run }) => {
            let ctx = open(config).await?;
            let report = crate::service::purge::run(&ctx, dry_run, None, cli_meta()).await?;
            if json_out {
                println!("{}", json!(report));
            } else {
                let d = report.deleted;
                println!(
                    "{} {} sessions, {} personal tokens, {} authorization codes ({} batches, {} ms)",
                    if dry_run { "would delete" } else { "deleted" },
                    d.sessions,
                    d.personal_access_tokens,
                    d.auth_codes,
                    report.batches,
                    report.elapsed_ms
                );
            }
            Ok(())
        }
        Command::Session(SessionCommand::End { id }) => {
            let ctx = open(config).await?;
            crate::service::sessions::end(
                &ctx,
                id,
                crate::service::sessions::Owner::Admin { actor_id: None },
                Reason::AdminSessionEnded,
                cli_meta(),
            )
            .await?;
            if json_out {
                println!("{}", json!({ "ended": true }));
            } else {
                println!("session ended");
            }
            Ok(())
        }
        Command::Audit { user, kind, limit } => {
            let ctx = open(config).await?;
            let user_id = match user {
                Some(name) => Some(users::find_by_username(&ctx, name).await?.id),
                None => None,
            };
            let filter = store::audit::Filter {
                user_id,
                kind,
                session_id: None,
                limit,
            };
            let events = crate::service::audit::list(&ctx, filter).await?;
            if json_out {
                println!("{}", json!({ "events": events }));
            } else {
                for e in events {
                    println!(
                        "{}  {:<24} {:<22} user={} session={} client={} ip={}",
                        e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        e.kind,
                        e.reason.as_deref().unwrap_or("-"),
                        e.user_id.as_deref().unwrap_or("-"),
                        e.session_id.as_deref().unwrap_or("-"),
                        e.client_id.as_deref().unwrap_or("-"),
                        e.ip.as_deref().unwrap_or("-"),
                    );
                }
            }
            Ok(())
        }
    }
}

async fn user(cmd: UserCommand, ctx: Ctx, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            admin,
            password_stdin,
        } => {
            let (password, shown) = if password_stdin {
                (password_from_stdin()?, None)
            } else {
                let p = generated_password();
                (p.clone(), Some(p))
            };
            let user = users::create(&ctx, name, password, admin, None, cli_meta()).await?;
            if json_out {
                let mut out =
                    json!({ "id": user.id, "username": user.username, "is_admin": user.is_admin });
                if let Some(p) = shown {
                    out["password"] = json!(p);
                }
                println!("{out}");
            } else {
                println!(
                    "created user {} ({}){}",
                    user.username,
                    user.id,
                    if user.is_admin { ", admin" } else { "" }
                );
                if let Some(p) = shown {
                    println!("password: {p}");
                }
            }
        }
        UserCommand::SetPassword {
            name,
            password_stdin,
            keep_sessions,
        } => {
            let user = users::find_by_username(&ctx, name).await?;
            let (password, shown) = if password_stdin {
                (password_from_stdin()?, None)
            } else {
                let p = generated_password();
                (p.clone(), Some(p))
            };
            let counts = users::set_password(
                &ctx,
                user.id,
                password,
                keep_sessions,
                None,
                None,
                cli_meta(),
            )
            .await?;
            if json_out {
                let mut out = json!(counts);
                if let Some(p) = shown {
                    out["password"] = json!(p);
                }
                println!("{out}");
            } else {
                print_counts(
                    false,
                    &format!("password of {} changed", user.username),
                    &counts,
                );
                if let Some(p) = shown {
                    println!("password: {p}");
                }
            }
        }
        UserCommand::LogoutAll { name, kind } => {
            let user = users::find_by_username(&ctx, name).await?;
            let counts = users::logout_all(
                &ctx,
                user.id,
                None,
                kind,
                Reason::AdminLogoutAll,
                None,
                cli_meta(),
            )
            .await?;
            print_counts(
                json_out,
                &format!("{} logged out everywhere", user.username),
                &counts,
            );
        }
        UserCommand::Sessions { name } => {
            let user = users::find_by_username(&ctx, name).await?;
            let sessions = users::sessions(&ctx, user.id, None).await?;
            if json_out {
                println!("{}", json!({ "sessions": sessions }));
            } else if sessions.is_empty() {
                println!("{} has no live sessions", user.username);
            } else {
                println!(
                    "{:<38} {:<20} {:<14} {:<20} {:<25}",
                    "ID", "KIND", "CLIENT", "DEVICE", "LAST USED"
                );
                for s in sessions {
                    println!(
                        "{:<38} {:<20} {:<14} {:<20} {:<25}",
                        s.id,
                        s.kind,
                        s.client_id,
                        s.device_name.as_deref().unwrap_or("-"),
                        s.last_used_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
            }
        }
        UserCommand::Disable { name } => {
            let user = users::find_by_username(&ctx, name).await?;
            let counts = users::set_disabled(&ctx, user.id, true, None, cli_meta()).await?;
            print_counts(json_out, &format!("{} disabled", user.username), &counts);
        }
        UserCommand::List => {
            let list = users::list(&ctx).await?;
            if json_out {
                println!("{}", json!({ "users": list }));
            } else {
                for u in list {
                    let flags = [(u.is_admin, "admin"), (u.disabled, "disabled")]
                        .iter()
                        .filter(|(on, _)| *on)
                        .map(|(_, f)| *f)
                        .collect::<Vec<_>>()
                        .join(",");
                    println!("{}  {:<24} {}", u.id, u.username, flags);
                }
            }
        }
        UserCommand::Enable { name } => {
            let user = users::find_by_username(&ctx, name).await?;
            users::set_disabled(&ctx, user.id, false, None, cli_meta()).await?;
            if json_out {
                println!("{}", json!({ "enabled": true }));
            } else {
                println!("{} enabled", user.username);
            }
        }
    }
    Ok(())
}

async fn client(cmd: ClientCommand, ctx: Ctx, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create(args) => {
            let grants = match (args.grants.is_empty(), args.public) {
                (false, _) => args.grants,
                (true, false) => vec!["client_credentials".to_owned()],
                (true, true) => anyhow::bail!(
                    "a public client needs at least one --grant (a first-party app: --grant password --grant refresh_token)"
                ),
            };
            let new = NewClient {
                client_id: None,
                name: args.name,
                public: args.public,
                grant_types: grants,
                redirect_uris: args.redirect_uris,
                scopes: args.scopes,
                allowed_origins: args.origins,
                audiences: args.audiences,
                refresh_token_cookie: args.refresh_cookie,
            };
            let created = clients::register(&ctx, new, None, cli_meta()).await?;
            if json_out {
                let mut out = json!({ "client_id": created.client.client_id });
                if let Some(secret) = &created.client_secret {
                    out["client_secret"] = json!(secret);
                }
                println!("{out}");
            } else {
                println!("client_id:     {}", created.client.client_id);
                if let Some(secret) = &created.client_secret {
                    println!("client_secret: {secret}   (shown only this once)");
                }
            }
        }
        ClientCommand::List => {
            let list = clients::list(&ctx).await?;
            if json_out {
                println!("{}", json!({ "clients": list }));
            } else {
                println!("{:<38} {:<8} {:<45} NAME", "CLIENT ID", "TYPE", "GRANTS");
                for c in list {
                    println!(
                        "{:<38} {:<8} {:<45} {}",
                        c.client_id,
                        if c.public { "public" } else { "secret" },
                        c.grant_types
                            .iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        c.name
                    );
                }
            }
        }
        ClientCommand::Delete { id } => {
            let counts = ctx
                .pool
                .run(move |conn| clients::delete(conn, &id, None, &cli_meta()))
                .await?;
            print_counts(json_out, "client deleted", &counts);
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, ctx: Ctx, json_out: bool) -> anyhow::Result<()> {
    let alg = ctx.config.signing_alg;
    match cmd {
        KeysCommand::Rotate => {
            let kid = crate::service::keys::rotate(&ctx, None, cli_meta()).await?;
            if json_out {
                println!("{}", json!({ "kid": kid, "alg": alg.as_str() }));
            } else {
                println!(
                    "new signing key {kid} ({}) is active; running nodes pick it up within 10 s",
                    alg.as_str()
                );
            }
        }
        KeysCommand::List => {
            let rows = ctx
                .pool
                .run(|conn| store::keys::all(conn).map_err(crate::service::ServiceError::from))
                .await?;
            let list: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "kid": r.kid,
                        "alg": r.alg,
                        "created_at": r.created_at.and_utc(),
                        "retired_at": r.retired_at.map(|t| t.and_utc()),
                        "active": r.retired_at.is_none(),
                        "encrypted": r.private_key.starts_with("enc:"),
                    })
                })
                .collect();
            if json_out {
                println!("{}", json!({ "keys": list }));
            } else {
                for r in rows {
                    println!(
                        "{}  {:<6} created {}  {}",
                        r.kid,
                        r.alg,
                        r.created_at
                            .and_utc()
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        match r.retired_at {
                            None => "active".to_owned(),
                            Some(t) => format!(
                                "retired {}",
                                t.and_utc()
                                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            ),
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command, argument and option says what it is in `--help`.
    #[test]
    fn help_describes_every_command_argument_and_option() {
        fn walk(cmd: &clap::Command, path: &str, blank: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    blank.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                if sub.get_about().is_none() {
                    blank.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), blank);
            }
        }
        let cmd = super::Cli::command();
        let mut blank = Vec::new();
        walk(&cmd, "tokend", &mut blank);
        assert!(blank.is_empty(), "without help text: {blank:?}");
        let help = cmd.clone().render_long_help().to_string();
        assert!(help.contains("TOKEND_DATABASE_URL") && help.contains("tokend.toml"));
    }
}
