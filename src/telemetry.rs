//! Logging: `tracing` to stderr as text or JSON, and one line per request with its id, method,
//! path (never the query string, which may carry what a client should not have sent), status and
//! latency.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: never escape codes in a file, a pipe or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Middleware: a span per request with a request id, and a log line when it ends.
pub struct RequestLog;

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestLogMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogMiddleware { service }))
    }
}

pub struct RequestLogMiddleware<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestLogMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let request_id = uuid::Uuid::new_v4();
        let method = req.method().to_string();
        let path: String = req.path().chars().take(200).collect();
        let span = tracing::info_span!("request", %request_id, %method, %path);
        let started = Instant::now();
        let fut = self.service.call(req);
        Box::pin(
            async move {
                let result = fut.await;
                let took = started.elapsed();
                let micros = took.as_micros() as u64;
                match &result {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let route = res.request().match_pattern();
                        crate::metrics::request(
                            route.as_deref().unwrap_or("unmatched"),
                            &method,
                            status,
                            took,
                        );
                        if status >= 500 {
                            tracing::warn!(status, micros, "request done");
                        } else {
                            tracing::info!(status, micros, "request done");
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, micros, "request failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}
