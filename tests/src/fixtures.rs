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
