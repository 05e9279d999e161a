//! `tokend`: reads the configuration, sets up logging, and runs the server or an admin command.

use clap::{CommandFactory as _, Parser as _};
use tokend::cli::{self, Cli, Command};
use tokend::config::Config;
use tokend::startup::Application;

fn main() -> std::process::ExitCode {
    let args = match Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return usage_error(err),
    };
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tokend: configuration error: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    tokend::telemetry::init(&config.log, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("tokend: cannot start the runtime: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async move {
        match args.command {
            Command::Serve => serve(config).await,
            command => cli::run(command, config, args.json).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tokend: error: {}", one_line(&err));
            std::process::ExitCode::from(1)
        }
    }
}

/// Bad usage: clap's message, then the usage of the command that was meant when clap left it out
/// (as it does for a value its parser refused), and exit code 2. Help and version exit 0.
fn usage_error(err: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return std::process::ExitCode::SUCCESS;
    }
    let _ = err.print();
    if !err.to_string().contains("Usage:") {
        let mut command = Cli::command();
        command.build();
        let mut meant = &command;
        for arg in std::env::args().skip(1) {
            if let Some(sub) = meant.find_subcommand(&arg) {
                meant = sub;
            }
        }
        eprintln!("\n{}", meant.clone().render_usage());
    }
    std::process::ExitCode::from(2)
}

/// The error and its causes on one line.
fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut app = Application::build(config).await?;
    let issuer = app.ctx().config.issuer.clone();
    if let Some(first) = app.take_bootstrapped() {
        let password_arg = match &first.generated_admin_password {
            Some(p) => format!("--data-urlencode 'password={p}'"),
            None => "--data-urlencode \"password=$TOKEND_BOOTSTRAP_ADMIN_PASSWORD\"".to_owned(),
        };
        println!("tokend: first start on an empty database: created the admin user `admin` and the public client `tokend-cli`.");
        if first.generated_admin_password.is_some() {
            println!("tokend: the generated admin password is in the command below; it is shown only this once.");
        }
        println!(
            "tokend: get a first token with:\n\n  curl -s {issuer}/oauth/token -d grant_type=password -d client_id=tokend-cli -d username=admin {password_arg}\n"
        );
        tracing::info!(
            "bootstrap done: get a first token with `curl -s {issuer}/oauth/token -d grant_type=password -d client_id=tokend-cli -d username=admin --data-urlencode password=<the admin password>`"
        );
    }
    tracing::info!(%issuer, port = app.port(), "tokend listening");
    app.run_until_stopped().await?;
    Ok(())
}
