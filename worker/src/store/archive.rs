//! The audit archive's storage: which D1 events are due, the R2 object
//! layout (`audit/v1/<tenant>/<yyyy-mm-dd>/<first-seq>-<last-seq>.ndjson.gz`,
//! sequence numbers zero-padded so R2's lexicographic order is their
//! numeric order), and the one batch that removes archived events.
use std::collections::HashMap;

use alloc::rc::Rc;
use coffer_core::TenantId;
use serde::Deserialize;
use serde_json::Value;
use worker::{Bucket, Env, Include};

use super::{audit::AuditRow, int, sql, Io, Store};
use crate::{env, error::ApiError};

/// Where archive objects live in the bucket.
const ARCHIVE_PREFIX: &str = "audit/v1/";
/// Digits of a sequence number in an object key.
const SEQ_WIDTH: usize = 16;
/// Custom metadata: the number of events (NDJSON lines) in the object.
pub(crate) const META_EVENTS: &str = "events";
/// Custom metadata: hex SHA-256 of the uncompressed NDJSON.
pub(crate) const META_SHA256: &str = "sha256";

/// The oldest event in D1, across tenants.
#[derive(Debug, Clone)]
pub(crate) struct Oldest {
    pub(crate) seq: i64,
    pub(crate) tenant: TenantId,
    pub(crate) at: i64,
}

/// An event due for the archive: its sequence, time and API shape.
#[derive(Debug, Clone)]
pub(crate) struct DueEvent {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) json: Value,
}

/// One archive object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchiveObject {
    pub(crate) key: String,
    pub(crate) day: String,
    pub(crate) first_seq: i64,
    pub(crate) last_seq: i64,
    /// Events it holds, from its custom metadata (`None`: missing).
    pub(crate) events: Option<i64>,
    /// Compressed size.
    pub(crate) bytes: u64,
    pub(crate) sha256: Option<String>,
}

/// An object read back: its metadata and compressed bytes.
pub(crate) struct ArchiveBody {
    pub(crate) events: Option<i64>,
    pub(crate) sha256: Option<String>,
    pub(crate) gzip: Vec<u8>,
}

/// The `AUDIT` bucket, counting its calls with the store's.
pub(crate) struct ArchiveBucket {
    bucket: Bucket,
    io: Rc<Io>,
}

/// `audit/v1/<tenant>/`.
fn tenant_prefix(tenant: TenantId) -> String {
    format!("{ARCHIVE_PREFIX}{tenant}/")
}

/// The object key of `tenant`'s events `first..=last` of `day`.
pub(crate) fn object_key(tenant: TenantId, day: &str, first: i64, last: i64) -> String {
    format!(
        "{}{day}/{first:0w$}-{last:0w$}.ndjson.gz",
        tenant_prefix(tenant),
        w = SEQ_WIDTH
    )
}

/// The key prefix of every object of `tenant` and `day` that starts at `first`.
fn first_prefix(tenant: TenantId, day: &str, first: i64) -> String {
    format!("{}{day}/{first:0w$}-", tenant_prefix(tenant), w = SEQ_WIDTH)
}

/// Whether `day` is `yyyy-mm-dd` of a real date.
pub(crate) fn valid_day(day: &str) -> bool {
    day.len() == 10 && chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok()
}

/// Parses `audit/v1/<tenant>/<day>/<first>-<last>.ndjson.gz` of `tenant`.
fn parse_key(tenant: TenantId, key: &str) -> Option<(String, i64, i64)> {
    let rest = key.strip_prefix(&tenant_prefix(tenant))?;
    let (day, name) = rest.split_once('/')?;
    let (first, last) = name.strip_suffix(".ndjson.gz")?.split_once('-')?;
    if !valid_day(day) {
        return None;
    }
    Some((day.to_string(), first.parse().ok()?, last.parse().ok()?))
}

fn r2_error(error: impl core::fmt::Display) -> ApiError {
    ApiError::internal(format!("r2: {error}"))
}

fn listed(tenant: TenantId, object: &worker::Object) -> Option<ArchiveObject> {
    let key = object.key();
    let (day, first_seq, last_seq) = parse_key(tenant, &key)?;
    let metadata = object.custom_metadata().unwrap_or_default();
    Some(ArchiveObject {
        day,
        first_seq,
        last_seq,
        events: metadata.get(META_EVENTS).and_then(|v| v.parse().ok()),
        sha256: metadata.get(META_SHA256).cloned(),
        bytes: object.size(),
        key,
    })
}

impl ArchiveBucket {
    /// Binds the `AUDIT` bucket; missing: 503.
    pub(crate) fn open(env: &Env, store: &Store) -> Result<Self, ApiError> {
        let bucket = env
            .bucket(env::AUDIT)
            .map_err(|error| ApiError::Unavailable(format!("r2 binding: {error}")))?;
        Ok(Self {
            bucket,
            io: store.io.clone(),
        })
    }

    /// The object of `tenant` and `day` starting at `first`, if one was
    /// written (a run that stopped before its delete).
    pub(crate) async fn find_started(
        &self,
        tenant: TenantId,
        day: &str,
        first: i64,
    ) -> Result<Option<ArchiveObject>, ApiError> {
        self.io.count_kv();
        let page = self
            .bucket
            .list()
            .prefix(first_prefix(tenant, day, first))
            .include(vec![Include::CustomMetadata])
            .limit(10)
            .execute()
            .await
            .map_err(r2_error)?;
        Ok(page
            .objects()
            .iter()
            .filter_map(|object| listed(tenant, object))
            .find(|object| object.first_seq == first))
    }

    /// Writes an object with its count and hash as custom metadata.
    pub(crate) async fn put(
        &self,
        key: &str,
        gzip: Vec<u8>,
        events: usize,
        sha256: &str,
    ) -> Result<(), ApiError> {
        self.io.count_kv();
        let metadata: HashMap<String, String> = [
            (META_EVENTS.to_string(), events.to_string()),
            (META_SHA256.to_string(), sha256.to_string()),
        ]
        .into();
        self.bucket
            .put(key, gzip)
            .http_metadata(worker::HttpMetadata {
                content_type: Some("application/x-ndjson".into()),
                content_encoding: Some("gzip".into()),
                ..Default::default()
            })
            .custom_metadata(metadata)
            .execute()
            .await
            .map_err(r2_error)?;
        Ok(())
    }

    /// Reads an object back: metadata and compressed bytes; `None` when absent.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<ArchiveBody>, ApiError> {
        self.io.count_kv();
        let Some(object) = self.bucket.get(key).execute().await.map_err(r2_error)? else {
            return Ok(None);
        };
        let metadata = object.custom_metadata().unwrap_or_default();
        let gzip = match object.body() {
            Some(body) => body.bytes().await.map_err(r2_error)?,
            None => Vec::new(),
        };
        Ok(Some(ArchiveBody {
            events: metadata.get(META_EVENTS).and_then(|v| v.parse().ok()),
            sha256: metadata.get(META_SHA256).cloned(),
            gzip,
        }))
    }

    /// Up to `limit` of `tenant`'s objects in key order (day, then first
    /// sequence), after `after` (an object's day and first sequence) or
    /// from `from` (a day); and whether the listing has more.
    pub(crate) async fn list(
        &self,
        tenant: TenantId,
        from: Option<&str>,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<(Vec<ArchiveObject>, bool), ApiError> {
        let prefix = tenant_prefix(tenant);
        let start_after = match (after, from) {
            // `~` sorts after every digit and `.`: past every key of that object.
            (Some((day, first)), _) => Some(format!("{prefix}{day}/{first:0w$}-~", w = SEQ_WIDTH)),
            // `/` sorts before every digit: the day's first object is after it.
            (None, Some(day)) => Some(format!("{prefix}{day}/")),
            (None, None) => None,
        };
        let mut request = self
            .bucket
            .list()
            .prefix(prefix)
            .include(vec![Include::CustomMetadata])
            .limit(limit);
        if let Some(start_after) = start_after {
            request = request.start_after(start_after);
        }
        self.io.count_kv();
        let page = request.execute().await.map_err(r2_error)?;
        let objects = page
            .objects()
            .iter()
            .filter_map(|object| listed(tenant, object))
            .collect();
        Ok((objects, page.truncated()))
    }

    /// Every object of `tenant` and `day`, by first sequence.
    pub(crate) async fn day(
        &self,
        tenant: TenantId,
        day: &str,
    ) -> Result<Vec<ArchiveObject>, ApiError> {
        let prefix = format!("{}{day}/", tenant_prefix(tenant));
        let mut objects = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = self.bucket.list().prefix(prefix.clone()).limit(1000);
            if let Some(cursor) = cursor.take() {
                request = request.cursor(cursor);
            }
            self.io.count_kv();
            let page = request.execute().await.map_err(r2_error)?;
            objects.extend(page.objects().iter().filter_map(|o| listed(tenant, o)));
            match page.cursor().filter(|_| page.truncated()) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        objects.sort_by_key(|object| object.first_seq);
        Ok(objects)
    }
}

#[derive(Deserialize)]
struct OldestRow {
    seq: i64,
    tenant_id: String,
    at: i64,
}

impl Store {
    /// The oldest audit event of all tenants, if any.
    pub(crate) async fn oldest_audit_event(&self) -> Result<Option<Oldest>, ApiError> {
        let rows: Vec<OldestRow> = self
            .all(self.prepare(sql::AUDIT_OLDEST, &[int(0)])?)
            .await?;
        rows.into_iter()
            .next()
            .map(|row| {
                Ok(Oldest {
                    seq: row.seq,
                    tenant: TenantId::parse(&row.tenant_id).map_err(|_| {
                        ApiError::internal(format!("audit event {} has a bad tenant", row.seq))
                    })?,
                    at: row.at,
                })
            })
            .transpose()
    }

    /// Up to `limit` of `tenant`'s events from `first` on, oldest first,
    /// or (with `last`) exactly those of `first..=last`.
    pub(crate) async fn audit_from(
        &self,
        tenant: TenantId,
        first: i64,
        last: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DueEvent>, ApiError> {
        let statement = match last {
            Some(last) => self.prepare(
                sql::AUDIT_RANGE,
                &[
                    tenant.to_string().into(),
                    int(first),
                    int(last),
                    int(i64::from(limit)),
                ],
            )?,
            None => self.prepare(
                sql::AUDIT_FROM,
                &[tenant.to_string().into(), int(first), int(i64::from(limit))],
            )?,
        };
        let rows: Vec<AuditRow> = self.all(statement).await?;
        Ok(rows
            .into_iter()
            .map(|row| DueEvent {
                seq: row.seq,
                at: row.at,
                json: row.into_json(),
            })
            .collect())
    }

    /// Removes `tenant`'s events `first..=last` once archived, only if D1
    /// still holds exactly `count` of them, and moves the tenant's mark to
    /// `archived_before`; one batch. Returns the events removed.
    pub(crate) async fn remove_archived(
        &self,
        tenant: TenantId,
        first: i64,
        last: i64,
        count: usize,
        archived_before: i64,
    ) -> Result<usize, ApiError> {
        let tenant = tenant.to_string();
        let delete = self.prepare(
            sql::AUDIT_DELETE_ARCHIVED,
            &[
                tenant.as_str().into(),
                int(first),
                int(last),
                int(count as i64),
            ],
        )?;
        let mark = self.prepare(
            sql::ARCHIVE_MARK_SET,
            &[tenant.as_str().into(), int(archived_before)],
        )?;
        let results = self.batch(vec![delete, mark]).await?;
        super::changes(results.first())
    }
}
