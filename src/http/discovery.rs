//! `GET /.well-known/oauth-authorization-server` (RFC 8414) and `GET /.well-known/jwks.json`.

use super::responses::{Jwks, ServerMetadata};
use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::service::grant_type::GrantType;
use crate::service::Ctx;

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "RFC 8414 metadata", body = ServerMetadata)))]
pub async fn metadata(ctx: web::Data<Ctx>) -> HttpResponse {
    let issuer = &ctx.config.issuer;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(ServerMetadata {
            issuer: issuer.clone(),
            authorization_endpoint: format!("{issuer}/oauth/authorize"),
            token_endpoint: format!("{issuer}/oauth/token"),
            revocation_endpoint: format!("{issuer}/oauth/revoke"),
            introspection_endpoint: format!("{issuer}/oauth/introspect"),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query"],
            authorization_response_iss_parameter_supported: true,
            token_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            revocation_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            introspection_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
            ],
            scopes_supported: vec!["account", "admin"],
            code_challenge_methods_supported: vec!["S256"],
            token_endpoint_auth_signing_alg_values_supported: vec![],
            access_token_signing_alg_values_supported: vec![ctx.config.signing_alg.as_str()],
            status_list_aggregation_endpoint: format!("{issuer}/oauth/statuslists"),
        })
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "RFC 7517 key set", body = Jwks)))]
pub async fn jwks(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(Jwks {
            keys: ctx.keys.current().jwks(),
        })
}
