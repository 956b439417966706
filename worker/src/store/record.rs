//! A stored credential as the Worker works with it ([`Record`]), and its D1
//! row parsed into it, once, here.
//!
//! D1's JavaScript API returns every integer column as a JavaScript number
//! (an IEEE 754 double). Integers up to 2^53 − 1 are exact in a double;
//! above that, D1 has already rounded the value, so a column holding one
//! cannot be trusted: the row is refused as corrupt (an opaque 500 with the
//! row and column in the log), never rounded or clamped. Every integer the
//! Worker stores is far below that bound (Unix milliseconds, counts and
//! versions, the latter bounded by [`Version::MAX`]).
use base64ct::{Base64, Encoding as _};
use coffer_core::{
    oauth::Grant, AuthType, CredentialId, IntegrationId, Status, TenantId, Timestamp, Version,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A stored credential.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) id: CredentialId,
    pub(crate) owner: TenantId,
    pub(crate) integration: IntegrationId,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) auth_type: AuthType,
    pub(crate) scopes: Vec<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    /// Compact JSON text as the client sent it (numbers keep their digits).
    pub(crate) metadata: Box<RawValue>,
    pub(crate) status: Status,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) created_at: Timestamp,
    pub(crate) created_by: Actor,
    pub(crate) updated_at: Timestamp,
    pub(crate) updated_by: Actor,
    pub(crate) tenant_name: Option<String>,
    pub(crate) last_accessed_at: Option<Timestamp>,
    pub(crate) access_count: u64,
    pub(crate) version: Version,
    pub(crate) secret_version: Version,
    pub(crate) kid: String,
    pub(crate) wrapped_dek: Vec<u8>,
    /// Makes this secret write's KV key unique (see migration 0004).
    pub(crate) blob_nonce: String,
    /// The version of the owner's tenant key that wraps `wrapped_dek`;
    /// `None`: a legacy data key under the master key `kid` (migration 0007).
    pub(crate) tk_version: Option<u32>,
    /// That tenant key, wrapped under a master key, as loaded with the row
    /// (`None` for a legacy row, or when the key is gone).
    pub(crate) tenant_key: Option<super::TenantKeyRef>,
    /// When and by whom the current secret version was written (`None` on
    /// rows from before migration 0007).
    pub(crate) secret_at: Option<Timestamp>,
    pub(crate) secret_by: Option<Actor>,
    /// Token refresh state (migration 0006).
    pub(crate) refresh: RefreshColumns,
}

/// A record's OAuth2 token refresh state (migration 0006).
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshColumns {
    /// The grant the record refreshes with, if any: decided from the auth
    /// type and the secret whenever the secret is written.
    pub(crate) grant: Option<Grant>,
    /// The refresh lease: who holds it and until when.
    pub(crate) lease_holder: Option<String>,
    pub(crate) lease_until: Option<Timestamp>,
    /// The last successful refresh.
    pub(crate) refreshed_at: Option<Timestamp>,
    /// JSON text `{"at", "code", "message"}` of the last failure (`at` in
    /// Unix milliseconds); never a token.
    pub(crate) error: Option<String>,
    /// Consecutive failures.
    pub(crate) failures: u64,
    /// No automatic attempt before this (the backoff).
    pub(crate) not_before: Option<Timestamp>,
    /// Automatic attempts stopped after `invalid_grant` / `invalid_client`.
    pub(crate) halted: bool,
}

/// Who created or last changed a record (`createdBy`, `updatedBy`).
///
/// Stored as JSON text in this member order, the order the Worker has
/// always written (`serde_json`'s sorted map).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Actor {
    pub(crate) email: Option<String>,
    pub(crate) id: String,
    pub(crate) name: Option<String>,
}

impl Actor {
    /// The JSON text of the `created_by` / `updated_by` columns.
    pub(crate) fn to_column(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

d1_row! {
    /// A credentials row as D1 returns it. Nullable columns are `Option`s (D1
    /// gives `null`); integer columns are `f64`, what a JavaScript number is.
    /// Native unit tests, which have no runtime row objects, read it from
    /// JSON instead.
    #[cfg_attr(test, derive(serde::Deserialize))]
    pub(super) struct Row {
        id: String,
        tenant_id: String,
        integration_id: String,
        name: String,
        description: Option<String>,
        auth_type: String,
        scopes: String,
        token_endpoint: Option<String>,
        authorization_endpoint: Option<String>,
        metadata: String,
        status: String,
        expires_at: Option<f64>,
        created_at: f64,
        created_by: String,
        updated_at: f64,
        updated_by: String,
        tenant_name: Option<String>,
        last_accessed_at: Option<f64>,
        access_count: f64,
        version: f64,
        secret_version: f64,
        kid: String,
        wrapped_dek: String,
        blob_nonce: String,
        tk_version: Option<f64>,
        secret_at: Option<f64>,
        secret_by: Option<String>,
        tenant_key: Option<String>,
        // Migration 0006; absent from rows of statements that predate it only
        // in tests, hence `Option` (absent: none, no failures, not halted).
        refresh_grant: Option<String>,
        refresh_lease_holder: Option<String>,
        refresh_lease_until: Option<f64>,
        refreshed_at: Option<f64>,
        refresh_error: Option<String>,
        refresh_failures: Option<f64>,
        refresh_not_before: Option<f64>,
        refresh_halted: Option<f64>,
        /// Only statements that ask (`EXISTS (...) AS shared`) have it.
        shared: Option<f64>,
    }
}

/// The largest integer a double holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// An integer column's value, if it is one that D1 returned exactly: a
/// whole number within ±(2^53 − 1).
pub(super) fn safe_integer(value: f64) -> Option<i64> {
    (value.fract() == 0.0 && value.abs() <= MAX_SAFE_INTEGER).then_some(value as i64)
}

/// A timestamp column (Unix milliseconds).
pub(super) fn timestamp(value: f64) -> Option<Timestamp> {
    Timestamp::from_unix_millis(safe_integer(value)?).ok()
}

/// A version column.
pub(super) fn version(value: f64) -> Option<Version> {
    Version::new(u64::try_from(safe_integer(value)?).ok()?).ok()
}

/// A count column.
fn count(value: f64) -> Option<u64> {
    u64::try_from(safe_integer(value)?).ok()
}

impl Row {
    /// The record, and whether it is shared with the tenant the statement
    /// asked about. A column that does not parse makes the row corrupt: a
    /// 500 whose logged reason names the row and the column.
    pub(super) fn into_record(self) -> Result<(Record, bool), ApiError> {
        let id = &self.id;
        let corrupt = |what: &str| ApiError::internal(format!("stored row {id} has a bad {what}"));
        let optional = |value: Option<f64>, what: &str| {
            value
                .map(|value| timestamp(value).ok_or_else(|| corrupt(what)))
                .transpose()
        };
        let record = Record {
            id: CredentialId::parse(id).map_err(|_| corrupt("id"))?,
            owner: TenantId::parse(&self.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            integration: IntegrationId::parse(&self.integration_id)
                .map_err(|_| corrupt("integration_id"))?,
            auth_type: AuthType::parse(&self.auth_type).map_err(|_| corrupt("auth_type"))?,
            scopes: serde_json::from_str(&self.scopes).map_err(|_| corrupt("scopes"))?,
            metadata: RawValue::from_string(self.metadata).map_err(|_| corrupt("metadata"))?,
            status: Status::parse(&self.status).map_err(|_| corrupt("status"))?,
            expires_at: optional(self.expires_at, "expires_at")?,
            created_at: timestamp(self.created_at).ok_or_else(|| corrupt("created_at"))?,
            created_by: serde_json::from_str(&self.created_by)
                .map_err(|_| corrupt("created_by"))?,
            updated_at: timestamp(self.updated_at).ok_or_else(|| corrupt("updated_at"))?,
            updated_by: serde_json::from_str(&self.updated_by)
                .map_err(|_| corrupt("updated_by"))?,
            last_accessed_at: optional(self.last_accessed_at, "last_accessed_at")?,
            access_count: count(self.access_count).ok_or_else(|| corrupt("access_count"))?,
            version: version(self.version).ok_or_else(|| corrupt("version"))?,
            secret_version: version(self.secret_version)
                .ok_or_else(|| corrupt("secret_version"))?,
            wrapped_dek: Base64::decode_vec(&self.wrapped_dek)
                .map_err(|_| corrupt("wrapped_dek"))?,
            name: self.name,
            description: self.description,
            token_endpoint: self.token_endpoint,
            authorization_endpoint: self.authorization_endpoint,
            tenant_name: self.tenant_name,
            tk_version: self
                .tk_version
                .map(|value| {
                    safe_integer(value)
                        .and_then(|value| u32::try_from(value).ok())
                        .ok_or_else(|| corrupt("tk_version"))
                })
                .transpose()?,
            tenant_key: self
                .tenant_key
                .as_deref()
                .map(super::TenantKeyRef::parse)
                .transpose()
                .map_err(|_| corrupt("tenant_key"))?,
            secret_at: optional(self.secret_at, "secret_at")?,
            secret_by: self
                .secret_by
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("secret_by"))?,
            kid: self.kid,
            blob_nonce: self.blob_nonce,
            refresh: RefreshColumns {
                grant: match self.refresh_grant.as_deref() {
                    None => None,
                    Some(text) => Some(Grant::parse(text).ok_or_else(|| corrupt("refresh_grant"))?),
                },
                lease_holder: self.refresh_lease_holder,
                lease_until: optional(self.refresh_lease_until, "refresh_lease_until")?,
                refreshed_at: optional(self.refreshed_at, "refreshed_at")?,
                error: self.refresh_error,
                failures: count(self.refresh_failures.unwrap_or(0.0))
                    .ok_or_else(|| corrupt("refresh_failures"))?,
                not_before: optional(self.refresh_not_before, "refresh_not_before")?,
                halted: self.refresh_halted.unwrap_or(0.0) != 0.0,
            },
        };
        Ok((record, self.shared == Some(1.0)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const ID: &str = "550e8400-e29b-41d4-a716-446655440001";
    const TENANT: &str = "9f0c1d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f";

    /// A row as D1 returns it for a freshly created record.
    fn row() -> Value {
        json!({
            "id": ID,
            "tenant_id": TENANT,
            "integration_id": "github",
            "name": "GitHub",
            "description": null,
            "auth_type": "api_key",
            "scopes": "[\"repo\",\"read:org\"]",
            "token_endpoint": null,
            "authorization_endpoint": "https://example.com/authorize",
            "metadata": "{\"n\":1.50}",
            "status": "active",
            "expires_at": null,
            "created_at": 1_752_153_300_000_i64,
            "created_by": "{\"email\":null,\"id\":\"user-1\",\"name\":\"Ada\"}",
            "updated_at": 1_752_153_300_001_i64,
            "updated_by": "{\"email\":\"a@example.com\",\"id\":\"user-2\",\"name\":null}",
            "tenant_name": null,
            "last_accessed_at": null,
            "access_count": 0,
            "version": 1,
            "secret_version": 1,
            "kid": "k1",
            "wrapped_dek": "AAEC",
            "blob_nonce": "00ff00ff00ff00ff",
        })
    }

    /// Parses `row` as a JSON text: the row's values as D1 gives them
    /// (numbers as numbers), read by serde here and by `d1_row!` in the
    /// Worker.
    fn parse(row: &Value) -> Result<(Record, bool), String> {
        let row: Row = serde_json::from_str(&row.to_string()).map_err(|e| e.to_string())?;
        row.into_record()
            .map_err(|error| format!("{:?}", error.log_reason()))
    }

    fn with(column: &str, value: Value) -> Value {
        let mut row = row();
        row[column] = value;
        row
    }

    #[test]
    fn a_row_parses_into_typed_fields() {
        let (record, shared) = parse(&row()).expect("parses");
        assert!(!shared);
        assert_eq!(record.id.to_string(), ID);
        assert_eq!(record.owner.to_string(), TENANT);
        assert_eq!(record.integration.as_str(), "github");
        assert_eq!(record.auth_type, AuthType::ApiKey);
        assert_eq!(record.scopes, ["repo", "read:org"]);
        assert_eq!(record.metadata.get(), "{\"n\":1.50}");
        assert_eq!(record.status, Status::Active);
        assert_eq!(record.description, None);
        assert_eq!(record.token_endpoint, None);
        assert_eq!(
            record.authorization_endpoint.as_deref(),
            Some("https://example.com/authorize")
        );
        assert_eq!(record.expires_at, None);
        assert_eq!(record.last_accessed_at, None);
        assert_eq!(record.created_at.as_unix_millis(), 1_752_153_300_000);
        assert_eq!(record.updated_at.as_unix_millis(), 1_752_153_300_001);
        assert_eq!(record.created_by.name.as_deref(), Some("Ada"));
        assert_eq!(record.created_by.email, None);
        assert_eq!(record.updated_by.id, "user-2");
        assert_eq!(record.access_count, 0);
        assert_eq!(record.version, Version::FIRST);
        assert_eq!(record.secret_version, Version::FIRST);
        assert_eq!(record.wrapped_dek, [0, 1, 2]);
        assert_eq!(record.blob_nonce, "00ff00ff00ff00ff");
        assert_eq!(record.created_by.to_column(), row()["created_by"]);
    }

    #[test]
    fn the_shared_flag_is_one_only() {
        assert!(parse(&with("shared", json!(1))).expect("parses").1);
        assert!(!parse(&with("shared", json!(0))).expect("parses").1);
        assert!(!parse(&with("shared", Value::Null)).expect("parses").1);
    }

    /// NULL in a nullable column is `None`; in any other column the row is
    /// refused, naming the column.
    #[test]
    fn nulls_are_none_where_allowed_and_refused_elsewhere() {
        let (record, _) = parse(
            &with("expires_at", json!(1_752_153_300_000_i64))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("last_accessed_at".into(), json!(5));
                    o.insert("tenant_name".into(), json!("Acme"));
                    Value::Object(o)
                })
                .expect("object"),
        )
        .expect("parses");
        assert_eq!(
            record.expires_at.map(Timestamp::as_unix_millis),
            Some(1_752_153_300_000)
        );
        assert_eq!(
            record.last_accessed_at.map(Timestamp::as_unix_millis),
            Some(5)
        );
        assert_eq!(record.tenant_name.as_deref(), Some("Acme"));
        for column in ["created_at", "version", "access_count", "name", "kid"] {
            assert!(parse(&with(column, Value::Null)).is_err(), "{column}");
        }
    }

    /// D1 returns integers as doubles: 2^53 − 1 is the last exact one.
    /// Anything above (already rounded by D1), fractions, and values the
    /// types refuse (version 0, a negative count, a timestamp past 9999)
    /// make the row corrupt, naming the column.
    #[test]
    fn integers_above_2_pow_53_and_out_of_range_values_are_refused() {
        let max = 9_007_199_254_740_991_i64;
        let (record, _) = parse(&with("version", json!(max))).expect("parses");
        assert_eq!(record.version, Version::MAX);
        let (record, _) = parse(&with("access_count", json!(max))).expect("parses");
        assert_eq!(record.access_count, 9_007_199_254_740_991);
        let refused = [
            ("version", json!(max + 1)),
            ("version", json!(max + 2)),
            ("version", json!(u64::MAX)),
            ("version", json!(0)),
            ("version", json!(-1)),
            ("version", json!(1.5)),
            ("secret_version", json!(max + 2)),
            ("access_count", json!(max + 2)),
            ("access_count", json!(-1)),
            ("created_at", json!(max + 2)),
            ("created_at", json!(253_402_300_800_000_i64)),
            ("updated_at", json!(0.5)),
            ("expires_at", json!(-max - 2)),
            ("last_accessed_at", json!(1e300)),
        ];
        for (column, value) in refused {
            let reason =
                parse(&with(column, value.clone())).expect_err(&format!("{column}: {value}"));
            assert!(
                reason.contains(&format!("has a bad {column}")),
                "{column}: {reason}"
            );
        }
    }

    #[test]
    fn malformed_text_columns_are_refused_by_name() {
        let cases = [
            ("id", json!("not-a-uuid")),
            ("tenant_id", json!("x")),
            ("integration_id", json!("Not A Slug")),
            ("auth_type", json!("password")),
            ("scopes", json!("[1]")),
            ("metadata", json!("{")),
            ("status", json!("deleted")),
            ("created_by", json!("{}")),
            ("updated_by", json!("null")),
            ("wrapped_dek", json!("***")),
        ];
        for (column, value) in cases {
            let reason = parse(&with(column, value)).expect_err(column);
            assert!(
                reason.contains(&format!("has a bad {column}")),
                "{column}: {reason}"
            );
        }
    }

    #[test]
    fn safe_integers_are_whole_numbers_within_2_pow_53() {
        assert_eq!(safe_integer(0.0), Some(0));
        assert_eq!(safe_integer(-0.0), Some(0));
        assert_eq!(safe_integer(MAX_SAFE_INTEGER), Some(9_007_199_254_740_991));
        assert_eq!(
            safe_integer(-MAX_SAFE_INTEGER),
            Some(-9_007_199_254_740_991)
        );
        assert_eq!(safe_integer(9_007_199_254_740_992.0), None);
        assert_eq!(safe_integer(-9_007_199_254_740_992.0), None);
        assert_eq!(safe_integer(0.1), None);
        assert_eq!(safe_integer(f64::NAN), None);
        assert_eq!(safe_integer(f64::INFINITY), None);
        assert_eq!(version(2.0), Version::new(2).ok());
        assert_eq!(count(3.0), Some(3));
        assert_eq!(timestamp(-1.0).map(Timestamp::as_unix_millis), Some(-1));
    }
}
