//! Test identities, keys and tokens. Every person is made up and every
//! address is at example.com.
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_compact::{
    alg::{Hs256, Hs256Key},
    AlgorithmExt as _, Claims, Header,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The test servers' `AUTH_HS256_SECRET`. The HMAC key is the UTF-8 bytes of
/// the variable's value, as with most JWT libraries.
pub const HS256_SECRET: &str = "coffer-test-hs256-secret-0123456789abcdef";

/// Master key id of the test servers' active key.
pub const KEY_ID: &str = "test-k1";

/// The test servers' `COFFER_KEYS`: one 32-byte key (base64 of 0x01..=0x20).
pub const COFFER_KEYS: &str = "test-k1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// The contract's roles, lowest first.
pub const ROLES: [&str; 4] = [
    "integration_viewer",
    "integration_user",
    "integration_editor",
    "integration_admin",
];

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(elapsed.as_secs()).expect("seconds fit in i64")
}

/// A fresh tenant, so tests never see each other's data.
pub fn tenant() -> Uuid {
    Uuid::new_v4()
}

/// Builds a token's claims; [`TokenBuilder::sign`] signs them with HS256.
#[derive(Clone, Debug)]
pub struct TokenBuilder {
    claims: Map<String, Value>,
}

impl TokenBuilder {
    /// A valid token for `tenant` with `role`, a made-up person, and ten
    /// minutes to live.
    pub fn new(tenant: Uuid, role: &str) -> Self {
        let now = now();
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(Uuid::new_v4().to_string()));
        claims.insert("tenant_id".into(), json!(tenant.to_string()));
        claims.insert("roles".into(), json!([role]));
        claims.insert("name".into(), json!("Ada Example"));
        claims.insert("email".into(), json!("ada@example.com"));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 600));
        Self { claims }
    }

    /// Sets (or replaces) a claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// The claims as JSON.
    pub fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// Signs with HS256 under `secret`.
    pub fn sign_with(&self, secret: &str) -> String {
        let key = Hs256Key::new(secret.as_bytes());
        Hs256
            .token(&Header::empty(), &Claims::new(self.claims()), &key)
            .expect("sign token")
    }

    /// Signs with HS256 under the test servers' secret.
    pub fn sign(&self) -> String {
        self.sign_with(HS256_SECRET)
    }
}

/// A valid HS256 token for `tenant` with `role`.
pub fn token(tenant: Uuid, role: &str) -> String {
    TokenBuilder::new(tenant, role).sign()
}

// Helpers for the credentials surface's tests (`tests/tests/api/credentials*.rs`).

/// A `POST /api/v1/credentials` body with the required fields only.
pub fn credential_body(integration: &str, name: &str, secret: Value) -> Value {
    json!({"integrationId": integration, "credentialName": name, "credentials": secret})
}

/// The fields of the seed's `data` object (`seeds/credential-details.txt`),
/// in the seed's order.
pub const SEED_DETAIL_FIELDS: [&str; 19] = [
    "id",
    "integrationId",
    "credentialName",
    "description",
    "authType",
    "scopes",
    "tokenEndpoint",
    "authorizationEndpoint",
    "metadata",
    "status",
    "expiresAt",
    "isExpired",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
    "lastAccessedAt",
    "accessCount",
    "tenant",
];

/// Shares `credential` (a bare UUID) with `tenant` through
/// `PUT /connection/{id}/shares/{tenant}` as an admin of `owner`, and fails
/// the test unless the grant answers 200 with the grant it made. A fixture
/// never writes storage itself: a broken or missing grant route is the
/// test's failure, not something to work around.
pub fn share(server: &crate::harness::Server, owner: Uuid, credential: &str, tenant: Uuid) {
    let api = crate::client::Api::new(server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let reply = api.put(&format!("/connection/{credential}/shares/{tenant}"));
    assert_eq!(
        reply.status, 200,
        "share PUT /connection/{credential}/shares/{tenant}: {}",
        reply.text
    );
    assert_eq!(
        reply.body["data"]["connection_id"], credential,
        "{}",
        reply.text
    );
    assert_eq!(
        reply.body["data"]["tenant_id"],
        tenant.to_string(),
        "{}",
        reply.text
    );
}

/// The bare UUID of a `cred-<uuid>` id as the credentials surface renders it.
pub fn bare_id(rendered: &Value) -> String {
    let text = rendered
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {rendered}"));
    text.strip_prefix("cred-")
        .unwrap_or_else(|| panic!("id {text:?} is not rendered cred-<uuid>"))
        .to_string()
}

/// An `Api` for `tenant` with `role`, sending `x-tenantid: tenant`.
pub fn api_for<'s>(
    server: &'s crate::harness::Server,
    tenant: Uuid,
    role: &str,
) -> crate::client::Api<'s> {
    crate::client::Api::new(server, token(tenant, role)).header("x-tenantid", tenant.to_string())
}

/// Creates a credential through the API as `api` and returns its bare UUID.
pub fn create_credential(api: &crate::client::Api<'_>, body: &Value) -> String {
    let reply = api.post("/api/v1/credentials", body);
    assert_eq!(reply.status, 201, "create: {}", reply.text);
    bare_id(&reply.body["data"]["id"])
}

// Helpers for the connection surface's tests (`tests/tests/api/connection*.rs`).

/// The connection surface's default (and only) API version.
pub const CONNECTION_API_VERSION: &str = "2024-03-27";

/// The contract's "Connection metadata" fields (`GET /connection/{id}` and
/// list items), in the contract's order, and `refresh` (issue 14).
pub const CONNECTION_METADATA_FIELDS: [&str; 22] = [
    "connection_id",
    "integration_id",
    "name",
    "description",
    "auth_type",
    "scopes",
    "token_endpoint",
    "authorization_endpoint",
    "metadata",
    "status",
    "expires_at",
    "is_expired",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "last_accessed_at",
    "access_count",
    "version",
    "owner_tenant_id",
    "shared",
    "refresh",
];

/// A second server of this test binary, for tests that read or write its
/// D1 or KV out of band (`Server::d1`, `Server::wrangler_cli`), held by one
/// test at a time.
///
/// Why not the shared server: the wrangler CLI opens the same SQLite files
/// as the running workerd, and while it does, the worker's own D1 calls
/// fail with `SQLITE_BUSY` (a 500 for whichever test's request was in
/// flight). Holding this lock keeps every request to the server in the
/// holder's own, sequential hands.
pub fn storage_server() -> std::sync::MutexGuard<'static, crate::harness::Server> {
    static SERVER: std::sync::OnceLock<std::sync::Mutex<crate::harness::Server>> =
        std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| std::sync::Mutex::new(crate::harness::Server::start(&[])))
        .lock()
        // A test that failed while holding the lock leaves a usable server.
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the scheduled sweeps once (`wrangler dev --test-scheduled`).
pub fn run_sweeps(server: &crate::harness::Server) {
    let reply = crate::client::Api::anonymous(server).get("/__scheduled?cron=*/15+*+*+*+*");
    assert_eq!(reply.status, 200, "scheduled trigger: {}", reply.text);
}

/// The summaries `sweep` has logged so far (every run since the server's
/// first start), waiting until there are at least `runs`: the Worker's log
/// lines reach wrangler's output asynchronously.
pub fn sweep_summaries(server: &crate::harness::Server, sweep: &str, runs: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(20);
    loop {
        let summaries: Vec<Value> = server
            .log_entries()
            .into_iter()
            .filter(|entry| entry["sweep"] == sweep && entry["summary"].is_object())
            .map(|entry| entry["summary"].clone())
            .collect();
        if summaries.len() >= runs || std::time::Instant::now() > deadline {
            assert!(
                summaries.len() >= runs,
                "{sweep}: {} summaries in the log, expected {runs}",
                summaries.len()
            );
            return summaries;
        }
        std::thread::sleep(core::time::Duration::from_millis(50));
    }
}
