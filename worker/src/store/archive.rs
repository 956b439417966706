//! The audit archive's storage: which D1 events are due, the R2 object
//! layout (`audit/v1/<tenant>/<yyyy-mm-dd>/<first-seq>-<last-seq>.ndjson.gz`,
//! sequence numbers zero-padded so R2's lexicographic order is their
//! numeric order), and the one batch that removes archived events.
use std::collections::HashMap;

use alloc::rc::Rc;
use coffer_core::TenantId;
use worker::{Bucket, Env};

use super::{
    audit::{AuditEntry, AuditRow},
    int, sql, Io, Store,
};
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

/// An event due for the archive: its sequence, time (Unix ms) and the
/// event as the audit log reads it.
#[derive(Debug, Clone)]
pub(crate) struct DueEvent {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) entry: AuditEntry,
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

/// Whether `day` is `yyyy-mm-dd` of a real date (years 1970 to 9999).
pub(crate) fn valid_day(day: &str) -> bool {
    let bytes = day.as_bytes();
    let digits = |range: core::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1970 && (1..=days_in_month).contains(&day)
}

/// The proleptic Gregorian `(year, month, day)` of a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// <https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
        let bucket = Io::r2_binding(env, env::AUDIT)
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
        let page = self
            .io
            .r2_list(
                &self.bucket,
                first_prefix(tenant, day, first),
                None,
                None,
                10,
            )
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
        let metadata: HashMap<String, String> = [
            (META_EVENTS.to_string(), events.to_string()),
            (META_SHA256.to_string(), sha256.to_string()),
        ]
        .into();
        // The gzip file itself, not NDJSON with a content encoding: a
        // reader must get the stored bytes, never a transparently decoded
        // body.
        self.io
            .r2_put(&self.bucket, key, gzip, "application/gzip", metadata)
            .await
            .map_err(r2_error)
    }

    /// Reads an object back: metadata and compressed bytes; `None` when absent.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<ArchiveBody>, ApiError> {
        let Some(object) = self.io.r2_get(&self.bucket, key).await.map_err(r2_error)? else {
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
        let page = self
            .io
            .r2_list(&self.bucket, prefix, start_after, None, limit)
            .await
            .map_err(r2_error)?;
        let objects = page
            .objects()
            .iter()
            .filter_map(|object| listed(tenant, object))
            .collect();
        Ok((objects, page.truncated()))
    }

    /// Deletes up to `limit` (at most 1,000) of `tenant`'s archive objects,
    /// the shred sweep's step for a deleted tenant: one R2 list and one R2
    /// delete. Returns how many it deleted and whether any are left.
    pub(crate) async fn delete_objects(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> Result<(usize, bool), ApiError> {
        let page = self
            .io
            .r2_list(
                &self.bucket,
                tenant_prefix(tenant),
                None,
                None,
                limit.min(1000),
            )
            .await
            .map_err(r2_error)?;
        let keys: Vec<String> = page.objects().iter().map(|object| object.key()).collect();
        if keys.is_empty() {
            return Ok((0, false));
        }
        let deleted = keys.len();
        self.io
            .r2_delete(&self.bucket, keys)
            .await
            .map_err(r2_error)?;
        Ok((deleted, page.truncated()))
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
            let page = self
                .io
                .r2_list(&self.bucket, prefix.clone(), None, cursor.take(), 1000)
                .await
                .map_err(r2_error)?;
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

d1_row! {
    struct OldestRow {
        seq: i64,
        tenant_id: String,
        at: i64,
    }
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
        rows.into_iter()
            .map(|row| {
                let (seq, entry) = row.into_entry()?;
                Ok(DueEvent {
                    seq,
                    at: entry.at.as_unix_millis(),
                    entry,
                })
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::{civil_from_days, valid_day};

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
    }

    #[test]
    fn only_real_dates_are_days() {
        for good in [
            "2026-01-01",
            "2024-02-29",
            "2000-02-29",
            "1970-01-01",
            "2026-12-31",
        ] {
            assert!(valid_day(good), "{good}");
        }
        for bad in [
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-01T",
            "yesterday",
            "",
            "1969-12-31",
            "2026-01-00",
        ] {
            assert!(!valid_day(bad), "{bad}");
        }
    }
}
