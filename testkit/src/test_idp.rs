//! Test OpenID provider: discovery document and JWKS over HTTP, RSA and EC keys generated at
//! start, and signed access tokens for any claims (plus a `/token` endpoint for the demo).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use super::Running;

/// One signing key with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// The public key as PEM (for key-confusion attack tests).
    pub public_pem: String,
}

/// The IdP's first RSA key, generated once and kept (PKCS#1 DER): the demo, built without
/// optimisation to start fast, would otherwise spend its first seconds generating one.
const RSA_1: &[u8] = include_bytes!("../../tests/fixtures/idp/rsa-1.der");

impl SigningKey {
    /// A freshly generated RSA key.
    pub fn rsa(kid: &str) -> Self {
        let mut rng = rsa::rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        Self::from_rsa(kid, private)
    }

    /// The kept key of `tests/fixtures/idp/rsa-1.der`.
    pub fn rsa_fixture(kid: &str) -> Self {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let private = rsa::RsaPrivateKey::from_pkcs1_der(RSA_1).expect("the fixture key");
        Self::from_rsa(kid, private)
    }

    fn from_rsa(kid: &str, private: rsa::RsaPrivateKey) -> Self {
        let public = private.to_public_key();
        let der = private.to_pkcs1_der().expect("PKCS#1 DER");
        let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
        use rsa::pkcs8::EncodePublicKey;
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(public.n().to_bytes_be()), "e": b64(public.e().to_bytes_be())}),
            public_pem: public
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap_or_default(),
        }
    }

    pub fn ec(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret.to_pkcs8_der().expect("PKCS#8 DER");
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
            public_pem: String::new(),
        }
    }
}

struct Inner {
    issuer: RwLock<String>,
    audience: String,
    keys: RwLock<Vec<Arc<SigningKey>>>,
    jwks_fetches: AtomicUsize,
    /// Authorization codes not yet redeemed: code → (user, redirect_uri).
    codes: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
}

/// The OAuth2 client registered for Office mobile (as onboarding with Microsoft would).
pub const MOBILE_CLIENT_ID: &str = "office-mobile";
pub const MOBILE_CLIENT_SECRET: &str = "office-mobile-client-secret";
pub const MOBILE_REDIRECT_URI: &str = "https://localhost";

#[derive(Clone)]
pub struct TestIdp {
    inner: Arc<Inner>,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestIdp {
    /// An IdP with one RSA (`rsa-1`) and one EC (`ec-1`) key.
    pub fn new(audience: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: RwLock::new(String::new()),
                audience: audience.into(),
                keys: RwLock::new(vec![
                    Arc::new(SigningKey::rsa_fixture("rsa-1")),
                    Arc::new(SigningKey::ec("ec-1")),
                ]),
                jwks_fetches: AtomicUsize::new(0),
                codes: Default::default(),
            }),
        }
    }

    /// Names another origin as the issuer (a proxy in front of this IdP).
    pub fn set_issuer(&self, issuer: &str) {
        *self.inner.issuer.write().unwrap() = issuer.to_owned();
    }

    pub fn issuer(&self) -> String {
        self.inner.issuer.read().unwrap().clone()
    }

    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    pub fn key(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.inner
            .keys
            .read()
            .unwrap()
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
    }

    pub fn add_key(&self, key: SigningKey) {
        self.inner.keys.write().unwrap().push(Arc::new(key));
    }

    pub fn remove_key(&self, kid: &str) {
        self.inner.keys.write().unwrap().retain(|k| k.kid != kid);
    }

    /// How often `/jwks` was fetched over HTTP.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": self.inner.keys.read().unwrap().iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/authorize", get(authorize))
            .with_state(self.clone())
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        let running = super::serve_http(self.router(), addr).await?;
        *self.inner.issuer.write().unwrap() = running.url();
        Ok(running)
    }

    /// Over HTTPS; the issuer becomes `https://127.0.0.1:<port>`.
    pub async fn serve_https(
        &self,
        addr: SocketAddr,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> std::io::Result<Running> {
        let running = super::serve_https(self.router(), addr, cert_pem, key_pem).await?;
        *self.inner.issuer.write().unwrap() = format!("https://{}", running.addr);
        Ok(running)
    }

    /// Standard claims for a user, valid for an hour.
    pub fn claims(&self, user: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(), "aud": self.audience(), "sub": format!("{user}-sub"),
            "preferred_username": user, "name": format!("{} Example", capitalise(user)),
            "email": format!("{user}@example.org"), "iat": now, "nbf": now, "exp": now + 3600,
        })
    }

    /// Signs `claims` with key `kid` in its own algorithm.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let key = self.key(kid).expect("known kid");
        let mut header = Header::new(key.alg);
        header.kid = Some(kid.into());
        let token = jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign");
        super::hygiene::register("OIDC token", &token);
        token
    }

    /// A valid RS256 access token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.sign("rsa-1", &self.claims(user))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

async fn discovery(State(s): State<TestIdp>) -> axum::Json<Value> {
    let iss = s.issuer();
    axum::Json(json!({
        "issuer": iss, "jwks_uri": format!("{iss}/jwks"), "token_endpoint": format!("{iss}/token"),
        "authorization_endpoint": format!("{iss}/authorize"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn jwks(State(s): State<TestIdp>) -> axum::Json<Value> {
    s.inner.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(s.jwks())
}

fn oauth_error(status: axum::http::StatusCode, error: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// `GET /authorize`: the login page, reduced to `login_hint=<user>` (the user "signs in" as
/// that name). Only the registered client and its exact redirect URI get a code.
async fn authorize(
    State(s): State<TestIdp>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    if q.get("client_id").map(String::as_str) != Some(MOBILE_CLIENT_ID) {
        return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    }
    let Some(redirect) = q
        .get("redirect_uri")
        .filter(|r| r.as_str() == MOBILE_REDIRECT_URI)
    else {
        // Never redirect to an unregistered URI (RFC 6749 §4.1.2.1).
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let mut location = url::Url::parse(redirect).expect("registered URI");
    if q.get("response_type").map(String::as_str) != Some("code") {
        location
            .query_pairs_mut()
            .append_pair("error", "unsupported_response_type");
    } else {
        let user = q
            .get("login_hint")
            .cloned()
            .unwrap_or_else(|| "alice".into());
        let code = uuid::Uuid::new_v4().simple().to_string();
        s.inner
            .codes
            .lock()
            .unwrap()
            .insert(code.clone(), (user, redirect.clone()));
        location.query_pairs_mut().append_pair("code", &code);
        if let Some(state) = q.get("state") {
            location.query_pairs_mut().append_pair("state", state);
        }
    }
    (StatusCode::FOUND, [("location", location.to_string())]).into_response()
}

/// `POST /token`: RFC 6749 §4.1.3 code exchange (client credentials in the body or HTTP
/// Basic). Demo shortcut: `?username=alice` with no body returns a token for that user.
async fn token(
    State(s): State<TestIdp>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    if form.is_empty() {
        let user = q.get("username").map(String::as_str).unwrap_or("alice");
        return axum::Json(
            json!({"access_token": s.token(user), "token_type": "Bearer", "expires_in": 3600}),
        )
        .into_response();
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|b| b.split_once(':').map(|(i, s)| (i.to_owned(), s.to_owned())));
    let (id, secret) = basic.unwrap_or_else(|| {
        (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        )
    });
    if id != MOBILE_CLIENT_ID || secret != MOBILE_CLIENT_SECRET {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some((user, redirect)) = s.inner.codes.lock().unwrap().remove(&code) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if form.get("redirect_uri") != Some(&redirect) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    axum::Json(json!({"access_token": s.token(&user), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}
