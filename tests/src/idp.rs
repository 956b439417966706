//! A stand-in identity provider: signing keys (RS256, ES256, EdDSA) and a
//! loopback HTTP server that publishes their JWKS, so the black-box tests
//! can configure realms without any network.
//!
//! One [`Idp`] serves any number of JWKS documents, one per path; tests use
//! a path (a realm) per scenario and may replace a document at any time (a
//! key rotation), make it fail (an outage that still answers, `503`) or
//! stop the server (an outage that refuses connections). It counts the
//! fetches of each path, failed ones included, so tests can check how often
//! the worker asked.
//!
//! For the console's sign-in it can also act as an OpenID Connect provider
//! ([`Idp::serve_oidc`]): discovery, an authorization endpoint that
//! approves at once (a 302 back with a code), and a token endpoint that
//! checks the code, the client, the redirect URI and the PKCE verifier
//! (RFC 7636, S256) before it answers with a signed access token.
extern crate alloc;

use alloc::sync::Arc;
use core::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};
use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    sync::Mutex,
    thread::{self, JoinHandle},
};

use jwt_compact::{
    alg::{Ed25519, Es256, Rsa, RsaPrivateKey, StrongAlg, StrongKey},
    jwk::JsonWebKey,
    Algorithm, AlgorithmExt as _, Claims, Header,
};
use rand_core::{OsRng, RngCore as _};
use serde_json::{json, Value};

/// Two 2048-bit RSA keys made for these tests only; generating RSA keys in
/// an unoptimized test build takes seconds, so they are fixed.
const RSA_TEST_KEYS: [&str; 2] = [
    r#"{"kty": "RSA", "n": "s2Z1UbRRi1eMgPgcl34-ujd2cX_GQ8QCv3ipM9mDR_tB6EpWYa5kMElaUjWBE3uQGrJi46Yt91Xq9dPWGkvTEZfOIXtwg3ygpolGVEOcvE3GYvCWbSJKYKY4hzNFK5mjYCUhOEJ6TO_SyKtH47Z32zqO_kJYmwBOYR6HZUjooSO5kuMCExtyJ60tcvG3RiiiuuOtlLB-i-DgftveRrmxZzNkEgO3Gn7QI40gsuy6FS42JVPKQT7DkJz7LlLSP1mzpXhK8FQa93XZgFqDbF-ERoPi0Qfdb5RdUNW_wgHjkBiJz1K5G0rsh2TyKRmVXVsXSEFw1aD0roL5FHqaFxXKmw", "e": "AQAB", "d": "RVKvvflEU2hqwkFd5wphGdspuTULO49oEm4BUChaivuj3auwEoHtdB08Oi0zqgAi0LYi8V37QCqipwiLINExCAjVnemRsjV77K56D0CrNbaGFSBruFM6U3uXt2LP9UeispnWauOBV-6KUIGjP3J4gS3xKH4huA-Xuf6uiixwvCcobKsFFHbFNOjGarwXLLUfmRYoU2NEP8ajL-8yfVNuBG3_7BrdWhmqFEdSqWmAh-x9CnQ4HQy_uvGEx0Q89LpL0DwwuTU62vKCFsEOKhB_cbZD0ptgIm2AMXIc5cJsTHQeZxyZOM_oL9NB4iou9-aTH9TQKg53JkfHsaNN8exXjQ", "p": "5Il-LGgEiiR14ZZF6BeqcIJ72fV5yN7DiVhwTKiM2KCF9mCzfocwEg_-zfhgVBfXYeQPuFAcVCmy9ILCWtgHZ_N5p2QvYmRALvW_3SkcTUKsoybkzttbxjQZb-wDnZN4u84WmTdHBNgwHWSVoBpyQDx4SZqepBGF4VD0b7pvgY8", "q": "yPVdJ44CDNZJpUJLcXHinmw0meumfw7aQkZTHxmo7wl8e7UYoM63fjRgB9NEj5U9GkTcq_JUKE9c_Gq_IaLMjQsRd4ZSPX-uS0Il3QvN2g650lgq9vJWaj__O85_2OTeklXbAtlarxU8JIlwZCI6NeClqph0D9vhlP9QAb4UiDU"}"#,
    r#"{"kty": "RSA", "n": "8-8dWioErms197HP6E-ZzVi6RK6ZZLW7BR559QWZO1RD9gydeW_0_F9NXosYNX0Wng2fjpjWEogu2jAvmvIFy2qg9emx24NB-Nbko1279VkDAv9cqeDVbWy_UIBc_QjV-oyZPidf1mzApAeRl6JfOU5_cQeHyEOsfzPyjO9eOKvMqoqm-HLUe2Uyhf86BOz12zDrH35YSqleXn5tBjRkBW-WOh_eC_pGqoIm-BitK1U84Jl4YmSXEjGEyqBxdzYy9FuQX6dPYlIgUkGBdr8o39gZo0ZI6NT5txZ8NuJNRVx_BEiT74_aAV0xDDubM8ElssFVfy8pcvfHpHtw1ydUWQ", "e": "AQAB", "d": "UCqLOPCKLVAqokabjztpzmSUgrHm04Qt_FaxueanHypoU1p9_kTe_HnNkX6g7CM55aOQhmqQH_MFgstHOeLEKL_YOjkdLIkMi10EMvRBKzafmMKXj3TGb3nHvgsRhE79E6RVUGncQznmbYHXRUAlj03O8DSLWTN0YzGNSuf3zSN0kCZrwK97kUFW9EoKAUgvAkhbQLsxLi-IniJKHW54CB-lNARzDD_4DinFUSWYUivJypsJb4BptbUxXxEE4FcjDTrfwmfeWbaz7tcUoMRonJoJWHY81wyzpL53RqNgPqNttKAos9LydwbMzsi-VHDeZweDHZrshxpYy-W_p6Y16Q", "p": "_cAoL2HQI4Ab25r9SnP1xk4xmN50dTrjMMnSZdkXj8PiNZ5jBZdyH8NsY3wDy9dUToScm5htAy-5zNGkC0vpW_GWggUJVGs_BB9XBRcvxyMgIs-IQ93L0uARKeF8c5tMYSp_7k4FKwzV8JdFsX4Seek_TpIiq90iK9Ni78Mq7Ic", "q": "9hiuQNQYVe0ho004rdhNi7WDJGipQU0MuT6tmBHKrf_-OxOTflPVVfgz77ae-kqcx8XVlznQ3NDFRg3so5RlTvWsG4g9aOQ8GOBR-K21u7nJdgBFpZt0qfj3P5aSoEdXjBSe9YFDe6fZSmwZV_lAbjgSfMYiN28Zeo6TSqXB0B8"}"#,
];

type Es256SigningKey = <Es256 as Algorithm>::SigningKey;
type Ed25519SigningKey = <Ed25519 as Algorithm>::SigningKey;

enum Secret {
    Rsa(Box<StrongKey<RsaPrivateKey>>),
    Es256(Box<Es256SigningKey>),
    EdDsa(Box<Ed25519SigningKey>),
}

/// A signing key of the stand-in IdP, with its `kid`.
pub struct Key {
    kid: String,
    secret: Secret,
}

impl Key {
    /// One of the two fixed RSA test keys (`index` 0 or 1), for RS256.
    pub fn rsa(kid: &str, index: usize) -> Key {
        let jwk: JsonWebKey<'_> = serde_json::from_str(RSA_TEST_KEYS[index]).expect("rsa jwk");
        let private = RsaPrivateKey::try_from(&jwk).expect("rsa key");
        let strong = StrongKey::try_from(private).expect("2048-bit key");
        Key {
            kid: kid.into(),
            secret: Secret::Rsa(Box::new(strong)),
        }
    }

    /// A fresh P-256 key, for ES256.
    pub fn es256(kid: &str) -> Key {
        let secret = loop {
            let mut scalar = [0_u8; 32];
            OsRng.fill_bytes(&mut scalar);
            // Almost every 32 random bytes are a valid scalar.
            if let Ok(key) = Es256SigningKey::from_slice(&scalar) {
                break key;
            }
        };
        Key {
            kid: kid.into(),
            secret: Secret::Es256(Box::new(secret)),
        }
    }

    /// A fresh Ed25519 key, for EdDSA.
    pub fn eddsa(kid: &str) -> Key {
        let (secret, _) = Ed25519::generate(&mut OsRng);
        Key {
            kid: kid.into(),
            secret: Secret::EdDsa(Box::new(secret)),
        }
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self.secret {
            Secret::Rsa(_) => "RS256",
            Secret::Es256(_) => "ES256",
            Secret::EdDsa(_) => "EdDSA",
        }
    }

    /// The public JWK, as an IdP publishes it (`kid`, `use`, `alg` set).
    pub fn public_jwk(&self) -> Value {
        let jwk = match &self.secret {
            Secret::Rsa(key) => {
                serde_json::to_value(JsonWebKey::from(key.to_public_key().as_ref()))
            }
            Secret::Es256(key) => serde_json::to_value(JsonWebKey::from(key.verifying_key())),
            Secret::EdDsa(key) => serde_json::to_value(JsonWebKey::from(&key.public_key())),
        };
        let mut jwk = jwk.expect("serialize jwk");
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.algorithm());
        jwk
    }

    /// Signs `claims` with a header naming this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs `claims` with a header naming `kid` (which may be a lie).
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        self.sign_with_header(&Header::empty().with_key_id(kid), claims)
    }

    /// Signs `claims` with a header that names no `kid`.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        self.sign_with_header(&Header::empty(), claims)
    }

    fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        let claims = Claims::new(claims.clone());
        match &self.secret {
            Secret::Rsa(key) => StrongAlg(Rsa::rs256()).token(header, &claims, key),
            Secret::Es256(key) => Es256.token(header, &claims, key),
            Secret::EdDsa(key) => Ed25519.token(header, &claims, key),
        }
        .expect("sign token")
    }
}

/// One `AUTH_REALMS` entry with every field the Worker requires: the
/// issuer its tokens carry in `iss`, where its JWKS is, the audience its
/// tokens name in `aud`, and the tenants it may speak for (a list of UUID
/// strings, or `"*"`).
pub fn realm_entry(issuer: &str, jwks_url: &str, audience: &str, tenants: Value) -> Value {
    json!({"issuer": issuer, "jwks_url": jwks_url, "audience": audience, "tenants": tenants})
}

/// A JWKS document built from keys.
pub fn jwks(keys: &[&Key]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() })
}

#[derive(Default)]
struct Published {
    documents: HashMap<String, (Value, Option<String>)>,
    /// Paths answered `302 Found` with a `location` header.
    redirects: HashMap<String, String>,
    fetches: HashMap<String, usize>,
    /// Answer every request with `503 Service Unavailable`.
    down: bool,
    /// The OpenID Connect provider, when serving one.
    oidc: Option<Oidc>,
}

/// An OpenID Connect provider under a path prefix (its issuer).
struct Oidc {
    prefix: String,
    issuer: String,
    client_id: String,
    key: Arc<Key>,
    claims: Value,
    /// Codes issued and not yet exchanged: code → (challenge, redirect URI).
    codes: HashMap<String, (String, String)>,
    /// Access tokens issued.
    exchanges: usize,
}

/// A loopback HTTP server publishing JWKS documents.
pub struct Idp {
    port: u16,
    published: Arc<Mutex<Published>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Idp {
    /// Listens on a free loopback port.
    pub fn start() -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind idp");
        let port = listener.local_addr().expect("idp address").port();
        let published = Arc::new(Mutex::new(Published::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let published = Arc::clone(&published);
            let stopping = Arc::clone(&stopping);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &published);
                    }
                }
            })
        };
        Idp {
            port,
            published,
            stopping,
            thread: Some(thread),
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Publishes (or replaces) the JWKS at `path`, with an optional
    /// `Cache-Control` header.
    pub fn publish(&self, path: &str, keys: &[&Key], cache_control: Option<&str>) {
        self.published
            .lock()
            .expect("idp lock")
            .documents
            .insert(path.into(), (jwks(keys), cache_control.map(str::to_owned)));
    }

    /// Answers `path` with `302 Found` to `location` (an absolute URL).
    pub fn redirect(&self, path: &str, location: &str) {
        self.published
            .lock()
            .expect("idp lock")
            .redirects
            .insert(path.into(), location.into());
    }

    /// While `down`, every request is still counted but answered `503
    /// Service Unavailable`: an identity provider in an outage, whose
    /// failed fetches tests can count (a stopped server cannot count them).
    pub fn set_down(&self, down: bool) {
        self.published.lock().expect("idp lock").down = down;
    }

    /// Serves an OpenID Connect provider whose issuer is `url(prefix)`:
    /// discovery at `<prefix>/.well-known/openid-configuration`, the
    /// authorization endpoint `<prefix>/authorize` (approves at once), the
    /// token endpoint `<prefix>/token` (signs `claims` with `key`, adding
    /// `iss`, `iat` and `exp`), and the key set at `<prefix>/jwks`.
    pub fn serve_oidc(&self, prefix: &str, client_id: &str, key: Key, claims: Value) {
        self.publish(&format!("{prefix}/jwks"), &[&key], None);
        self.published.lock().expect("idp lock").oidc = Some(Oidc {
            prefix: prefix.into(),
            issuer: self.url(prefix),
            client_id: client_id.into(),
            key: Arc::new(key),
            claims,
            codes: HashMap::new(),
            exchanges: 0,
        });
    }

    /// How many access tokens the token endpoint has issued.
    pub fn token_exchanges(&self) -> usize {
        let published = self.published.lock().expect("idp lock");
        published.oidc.as_ref().map_or(0, |oidc| oidc.exchanges)
    }

    /// How many times `path` was fetched, answered or not.
    pub fn fetches(&self, path: &str) -> usize {
        let published = self.published.lock().expect("idp lock");
        published.fetches.get(path).copied().unwrap_or(0)
    }

    /// Stops listening: later fetches fail with "connection refused".
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag and drops the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = thread.join();
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(stream: TcpStream, published: &Mutex<Published>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The headers: only the body's length matters here.
    let mut content_length = 0_usize;
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        line.clear();
    }
    let mut body = vec![0_u8; content_length.min(64 * 1024)];
    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
        return;
    }
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let response = {
        let mut published = published.lock().expect("idp lock");
        *published.fetches.entry(path.clone()).or_default() += 1;
        if published.down {
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .into()
        } else if let Some(answer) = published
            .oidc
            .as_mut()
            .and_then(|oidc| oidc.answer(&method, &target, &body))
        {
            answer
        } else if let Some(location) = published.redirects.get(&path) {
            format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
        } else if let Some((document, cache_control)) = published.documents.get(&path) {
            let body = document.to_string();
            let cache = cache_control
                .as_ref()
                .map(|value| format!("cache-control: {value}\r\n"))
                .unwrap_or_default();
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{cache}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
        }
    };
    let mut stream = &stream;
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// A JSON response a browser page of another origin may read (CORS).
fn json_answer(status: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\naccess-control-allow-origin: *\r\n\
         cache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The query or form pairs of `text`.
fn pairs(text: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://idp.invalid/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

impl Oidc {
    /// The answer to a request for one of the provider's endpoints; `None`
    /// for any other path.
    fn answer(&mut self, method: &str, target: &str, body: &[u8]) -> Option<String> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let endpoint = path.strip_prefix(self.prefix.as_str())?;
        match (method, endpoint) {
            ("OPTIONS", _) => Some(
                "HTTP/1.1 204 No Content\r\naccess-control-allow-origin: *\r\n\
                 access-control-allow-methods: GET, POST\r\naccess-control-allow-headers: content-type\r\n\
                 content-length: 0\r\nconnection: close\r\n\r\n"
                    .into(),
            ),
            ("GET", "/.well-known/openid-configuration") => Some(json_answer(
                "200 OK",
                &json!({
                    "issuer": self.issuer,
                    "authorization_endpoint": format!("{}/authorize", self.issuer),
                    "token_endpoint": format!("{}/token", self.issuer),
                    "jwks_uri": format!("{}/jwks", self.issuer),
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "grant_types_supported": ["authorization_code"],
                    "token_endpoint_auth_methods_supported": ["none"],
                }),
            )),
            ("GET", "/authorize") => Some(self.authorize(&pairs(query))),
            ("POST", "/token") => Some(self.token(&pairs(&String::from_utf8_lossy(body)))),
            _ => None,
        }
    }

    /// Approves at once: a 302 to the redirect URI with a fresh code.
    fn authorize(&mut self, query: &HashMap<String, String>) -> String {
        let get = |name: &str| query.get(name).cloned().unwrap_or_default();
        let redirect = get("redirect_uri");
        let refused = get("client_id") != self.client_id
            || get("response_type") != "code"
            || get("code_challenge_method") != "S256"
            || get("code_challenge").is_empty()
            || !redirect.starts_with("http://127.0.0.1:");
        if refused {
            return json_answer("400 Bad Request", &json!({"error": "invalid_request"}));
        }
        let mut bytes = [0_u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let code: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.codes
            .insert(code.clone(), (get("code_challenge"), redirect.clone()));
        let mut location = reqwest::Url::parse(&redirect).expect("redirect_uri is a URL");
        location
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &get("state"));
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    }

    /// Exchanges a code: checks client, redirect URI and PKCE verifier.
    fn token(&mut self, form: &HashMap<String, String>) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let get = |name: &str| form.get(name).cloned().unwrap_or_default();
        let Some((challenge, redirect)) = self.codes.remove(&get("code")) else {
            return json_answer("400 Bad Request", &json!({"error": "invalid_grant"}));
        };
        let verified = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
        if get("grant_type") != "authorization_code"
            || get("client_id") != self.client_id
            || get("redirect_uri") != redirect
            || verified != challenge
        {
            return json_answer("400 Bad Request", &json!({"error": "invalid_grant"}));
        }
        let now = crate::fixtures::now();
        let mut claims = self.claims.clone();
        claims["iss"] = json!(self.issuer);
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 600);
        let access_token = self.key.sign(&claims);
        self.exchanges += 1;
        json_answer(
            "200 OK",
            &json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 600}),
        )
    }
}
