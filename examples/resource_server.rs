//! A reference resource server: it verifies tokend's access tokens itself, with the JWKS and the
//! Token Status List, and never calls introspection. A revoked session's tokens are refused as
//! soon as its cached copy of the list expires (`Cache-Control: max-age`, at most the list's
//! `ttl`), while every other request costs no round trip to tokend at all.
//!
//!   TOKEND_ISSUER=http://127.0.0.1:8080 cargo run --example resource_server -- 127.0.0.1:8081
//!   curl -s http://127.0.0.1:8081/hello -H "Authorization: Bearer $AT"

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
use serde_json::{json, Value};

struct Verifier {
    issuer: String,
    http: reqwest::Client,
    /// The JWKS and when it goes stale.
    jwks: Mutex<Option<(Instant, JwkSet)>>,
    /// Each status list's bits, by uri, and when they go stale.
    lists: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

type Refusal = &'static str;

/// How long a response may be cached: its `Cache-Control: max-age`, else `fallback`.
fn max_age(response: &reqwest::Response, fallback: Duration) -> Duration {
    let header = response.headers().get("cache-control");
    let age = header.and_then(|v| v.to_str().ok()).and_then(|v| {
        v.split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|s| s.parse().ok())
    });
    age.map(Duration::from_secs).unwrap_or(fallback)
}

impl Verifier {
    /// The key `kid` names, from the cached JWKS, fetched again when stale or when the key is new
    /// to it (after a rotation).
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        let cached = self.jwks.lock().map_err(|_| "poisoned")?.clone();
        let fresh = cached
            .as_ref()
            .is_some_and(|(until, _)| Instant::now() < *until);
        let jwks = match cached {
            Some((_, set)) if fresh && set.find(kid).is_some() => set,
            _ => {
                let url = format!("{}/.well-known/jwks.json", self.issuer);
                let response = self.http.get(url).send().await.map_err(|_| "no JWKS")?;
                let until = Instant::now() + max_age(&response, Duration::from_secs(60));
                let set: JwkSet = response.json().await.map_err(|_| "bad JWKS")?;
                *self.jwks.lock().map_err(|_| "poisoned")? = Some((until, set.clone()));
                set
            }
        };
        let jwk = jwks.find(kid).ok_or("unknown key")?;
        DecodingKey::from_jwk(jwk).map_err(|_| "unusable key")
    }

    /// Verifies a JWT of type `typ` with the JWKS; `aud`: the audience it must name, if any.
    async fn verify(&self, jwt: &str, typ: &str, aud: Option<&str>) -> Result<Value, Refusal> {
        let header = decode_header(jwt).map_err(|_| "not a JWT")?;
        if header.typ.as_deref() != Some(typ) {
            return Err("wrong token type");
        }
        let key = self.key(header.kid.as_deref().ok_or("no kid")?).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        match aud {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let claims = decode::<Value>(jwt, &key, &validation).map_err(|_| "invalid JWT")?;
        Ok(claims.claims)
    }

    /// The bits of the status list at `uri`: the cached copy until its `max-age` (or its `ttl`
    /// counted from its `iat`) runs out, then a fresh one.
    async fn list(&self, uri: &str) -> Result<Vec<u8>, Refusal> {
        if let Some((until, bits)) = self.lists.lock().map_err(|_| "poisoned")?.get(uri) {
            if Instant::now() < *until {
                return Ok(bits.clone());
            }
        }
        let request = self
            .http
            .get(uri)
            .header("accept", "application/statuslist+jwt");
        let response = request.send().await.map_err(|_| "no status list")?;
        if !response.status().is_success() {
            return Err("no status list");
        }
        let by_header = max_age(&response, Duration::ZERO);
        let jwt = response.text().await.map_err(|_| "no status list")?;
        let claims = self.verify(&jwt, "statuslist+jwt", None).await?;
        if claims["sub"] != uri {
            return Err("status list for another uri");
        }
        let lst = claims["status_list"]["lst"].as_str().ok_or("no lst")?;
        let packed = URL_SAFE_NO_PAD.decode(lst).map_err(|_| "bad lst")?;
        let mut bits = Vec::new();
        let mut zlib = flate2::read::ZlibDecoder::new(&packed[..]);
        zlib.read_to_end(&mut bits).map_err(|_| "bad lst")?;
        // Never longer than the list's ttl from when it was built.
        let built = claims["iat"].as_u64().unwrap_or(0);
        let ttl = claims["ttl"].as_u64().unwrap_or(0);
        let now = jsonwebtoken::get_current_timestamp();
        let by_ttl = Duration::from_secs((built + ttl).saturating_sub(now));
        let until = Instant::now() + by_header.min(by_ttl);
        let mut lists = self.lists.lock().map_err(|_| "poisoned")?;
        lists.insert(uri.to_owned(), (until, bits.clone()));
        Ok(bits)
    }

    /// An access token's claims, if it verifies and its session's entry is VALID.
    async fn check(&self, token: &str) -> Result<Value, Refusal> {
        let claims = self.verify(token, "at+jwt", Some(&self.issuer)).await?;
        if claims["iss"] != self.issuer.as_str() {
            return Err("another issuer");
        }
        let status = &claims["status"]["status_list"];
        let uri = status["uri"].as_str().ok_or("no status")?;
        let idx = status["idx"].as_u64().ok_or("no status")? as usize;
        // Only the issuer's own lists: a token must not make us fetch an arbitrary URL.
        if !uri.starts_with(&format!("{}/", self.issuer)) {
            return Err("status list of another server");
        }
        let bits = self.list(uri).await?;
        let byte = bits.get(idx / 8).ok_or("no such entry")?;
        match (byte >> (idx % 8)) & 1 {
            0 => Ok(claims),
            _ => Err("revoked"),
        }
    }
}

async fn hello(verifier: web::Data<Verifier>, req: HttpRequest) -> HttpResponse {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|v| v.strip_prefix("Bearer ")) else {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_token"}));
    };
    match verifier.check(token).await {
        Ok(claims) => {
            HttpResponse::Ok().json(json!({"sub": claims["sub"], "scope": claims["scope"]}))
        }
        Err(why) => {
            let body = json!({"error": "invalid_token", "error_description": why});
            HttpResponse::Unauthorized().json(body)
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = std::env::var("TOKEND_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let verifier = web::Data::new(Verifier {
        issuer: issuer.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        jwks: Mutex::new(None),
        lists: Mutex::new(HashMap::new()),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/hello", web::get().to(hello))
    })
    .workers(1)
    .bind(bind)?;
    for address in server.addrs() {
        println!("resource server listening on http://{address}");
    }
    server.run().await
}
