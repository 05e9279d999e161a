//! Builds the server: opens the database, bootstraps it, binds the listener (port 0 works, so
//! tests can run many servers at once), and starts the background key reload.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::config::Config;
use crate::service::bootstrap::{self, Bootstrapped};
use crate::service::Ctx;

pub struct Application {
    port: u16,
    /// The port of the separate metrics listener (`TOKEND_METRICS_BIND`), when there is one.
    metrics_port: Option<u16>,
    server: Server,
    ctx: Ctx,
    bootstrapped: Option<Bootstrapped>,
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        let listener =
            TcpListener::bind(&config.bind).with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        if config.issuer_from_bind {
            config.issuer = format!("http://{addr}");
        }
        let ctx =
            tokio::task::spawn_blocking(move || bootstrap::open(config, bootstrap::Purpose::Serve))
                .await??;
        let seed_ctx = ctx.clone();
        let bootstrapped =
            tokio::task::spawn_blocking(move || bootstrap::seed(&seed_ctx)).await??;
        ctx.origins.reload(&ctx.pool).await?;
        let data = web::Data::new(ctx.clone());
        let https = ctx.config.issuer.starts_with("https://");
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap_fn(crate::http::refuse_control_characters_in_path)
                .wrap(crate::http::cors(data.origins.clone()))
                .wrap(crate::http::security_headers(https))
                .wrap(crate::telemetry::RequestLog)
                .configure(crate::http::routes)
        })
        // Limits before work: a client has 5 s to send its request head and 5 s to finish
        // closing; idle keep-alive connections go after 30 s. Bodies are limited per endpoint.
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(5))
        .keep_alive(std::time::Duration::from_secs(30))
        .listen(listener)?
        .shutdown_timeout(30)
        .run();

        let metrics_port = match &ctx.config.metrics_bind {
            None => None,
            Some(bind) => {
                let listener = TcpListener::bind(bind)
                    .with_context(|| format!("binding the metrics listener {bind}"))?;
                let port = listener.local_addr()?.port();
                let data = web::Data::new(ctx.clone());
                let metrics = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::Data::new(crate::http::health::MetricsListener))
                        .route("/metrics", web::get().to(crate::http::health::metrics))
                })
                .workers(1)
                .listen(listener)?
                .shutdown_timeout(5)
                .run();
                tokio::spawn(metrics);
                Some(port)
            }
        };
        // The recorder's upkeep, so histogram samples never pile up between scrapes.
        tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                crate::metrics::handle().run_upkeep();
            }
        });
        let reload_ctx = ctx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(reload_ctx.config.key_reload_interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = reload_ctx.origins.reload(&reload_ctx.pool).await {
                    tracing::warn!(error = %err, "reloading the client origins failed; keeping the current set");
                }
                if let Err(err) = reload_ctx.keys.reload(&reload_ctx.pool).await {
                    tracing::warn!(error = %err, "reloading the signing keys failed; keeping the current set");
                }
            }
        });
        if !ctx.config.purge_interval.is_zero() {
            let purge_ctx = ctx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(purge_ctx.config.purge_interval);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match crate::service::purge::run(&purge_ctx, false, None, Default::default())
                        .await
                    {
                        Ok(report) => {
                            let d = report.deleted;
                            tracing::info!(
                                sessions = d.sessions,
                                personal_access_tokens = d.personal_access_tokens,
                                auth_codes = d.auth_codes,
                                ms = report.elapsed_ms,
                                "purge done"
                            )
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "purge failed; trying again at the next interval")
                        }
                    }
                }
            });
        }
        Ok(Application {
            port: addr.port(),
            metrics_port,
            server,
            ctx,
            bootstrapped,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// What the first start created (the generated admin password is in it, once).
    pub fn take_bootstrapped(&mut self) -> Option<Bootstrapped> {
        self.bootstrapped.take()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
