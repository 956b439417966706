//! Sealed blobs in KV: their keys, reads, writes and deletes, and the
//! isolate's guesses of which blob a decrypted read will need
//! (`guesses.rs`). KV is never consulted to decide anything.
use serde::Deserialize;

use super::{guesses, kv_error, Lookup, Record, Remembered, Store};
use crate::error::ApiError;

/// The KV key of a secret write's sealed blob. Immutable: every write of a
/// secret gets a new key (its version and a random nonce), so a reader never
/// sees a half-replaced blob and racing writers never share one.
pub(super) fn blob_key(record: &Record) -> String {
    blob_key_of(
        &record.owner.to_string(),
        &record.id.to_string(),
        record.secret_version.get(),
        &record.blob_nonce,
    )
}

/// The KV key of secret write `<version>.<nonce>` of a record.
pub(super) fn blob_key_of(
    owner: &str,
    id: &str,
    version: impl core::fmt::Display,
    nonce: &str,
) -> String {
    if nonce.is_empty() {
        format!("{BLOB_PREFIX}{owner}/{id}/{version}")
    } else {
        format!("{BLOB_PREFIX}{owner}/{id}/{version}.{nonce}")
    }
}

/// A sealed blob in KV, parsed from its key.
pub(crate) struct Blob {
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) secret_version: i64,
    pub(crate) blob_nonce: String,
    /// When the Worker wrote it (Unix ms), from its KV metadata; `None`
    /// when the metadata is missing or unreadable (blobs written before
    /// the Worker recorded write times).
    pub(crate) written_at: Option<i64>,
}

/// Where sealed blobs live in KV.
pub(super) const BLOB_PREFIX: &str = "secret/v1/";

/// The KV metadata of a sealed blob.
#[derive(serde::Serialize, Deserialize)]
pub(crate) struct BlobMetadata {
    /// When the Worker wrote the blob (Unix ms).
    pub(crate) written_at: i64,
}

impl Store {
    /// The sealed blob of the record's current secret version.
    pub(crate) async fn blob(&self, record: &Record) -> Result<Option<Vec<u8>>, ApiError> {
        self.io
            .get_bytes(&self.secrets, &blob_key(record))
            .await
            .map_err(kv_error)
    }

    /// The blob last served for `lookup` in this isolate, from its memory
    /// (no round trip). Only a guess: [`Store::current_blob`] uses it
    /// when D1 names the same (immutable) key, and nothing is decided from
    /// it.
    pub(crate) fn guessed_blob(lookup: &Lookup) -> Option<(String, Vec<u8>)> {
        let remembered = guesses::get(lookup)?;
        Some((remembered.key, remembered.blob.bytes().to_vec()))
    }

    /// The record's current blob: the guessed one when its key is the
    /// record's, otherwise fetched now. Remembers the key and the blob for
    /// `lookup`.
    pub(crate) async fn current_blob(
        &self,
        record: &Record,
        lookup: &Lookup,
        guessed: Option<(String, Vec<u8>)>,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let key = blob_key(record);
        let blob = match guessed {
            Some((guessed_key, blob)) if guessed_key == key => Some(blob),
            _ => self.blob(record).await?,
        };
        if let Some(blob) = &blob {
            guesses::remember(lookup, Remembered::of(record, blob));
        }
        Ok(blob)
    }

    /// What this isolate last served `lookup` from, if anything.
    pub(crate) fn remembered(lookup: &Lookup) -> Option<Remembered> {
        guesses::get(lookup)
    }

    /// Drops what this isolate remembers of `lookup` (it no longer holds).
    pub(crate) fn forget(lookup: &Lookup) {
        guesses::forget(lookup);
    }

    /// Writes a secret write's blob with its write time (`record.updated_at`,
    /// the request's clock) as KV metadata: the orphan sweep spares a blob
    /// younger than the retention window, whose D1 commit may still be in
    /// flight, and keeps any blob whose age it cannot tell.
    pub(super) async fn put_blob(&self, record: &Record, blob: &[u8]) -> Result<(), ApiError> {
        let metadata = BlobMetadata {
            written_at: record.updated_at.as_unix_millis(),
        };
        self.io
            .put_bytes(&self.secrets, &blob_key(record), blob, metadata)
            .await
            .map_err(kv_error)
    }

    /// Best effort: a blob that survives a failed delete is an orphan for
    /// the sweep, never readable (no row points at it).
    pub(crate) async fn delete_blob(&self, record: &Record) {
        if let Err(error) = self.io.delete(&self.secrets, &blob_key(record)).await {
            crate::log::json(
                crate::log::Console::Warn,
                &serde_json::json!({"event": "blob_delete_failed", "error": error.to_string()}),
            );
        }
    }

    /// One page of sealed blobs in KV, and the cursor of the next page.
    pub(crate) async fn list_blobs(
        &self,
        cursor: Option<String>,
        limit: u64,
    ) -> Result<(Vec<Blob>, Option<String>), ApiError> {
        let page = self
            .io
            .list(&self.secrets, BLOB_PREFIX, limit, cursor)
            .await
            .map_err(kv_error)?;
        let blobs = page
            .keys
            .into_iter()
            .filter_map(|key| {
                // secret/v1/<tenant>/<credential>/<version>
                // secret/v1/<tenant>/<credential>/<version>[.<nonce>]
                let mut parts = key.name.strip_prefix(BLOB_PREFIX)?.split('/');
                let (_tenant, id, last) = (parts.next()?, parts.next()?, parts.next()?);
                let (version, nonce) = last.split_once('.').unwrap_or((last, ""));
                let written_at = key
                    .metadata
                    .as_deref()
                    .and_then(|m| serde_json::from_str::<BlobMetadata>(m).ok())
                    .map(|m| m.written_at);
                Some(Blob {
                    id: id.to_string(),
                    secret_version: version.parse().ok()?,
                    blob_nonce: nonce.to_string(),
                    written_at,
                    key: key.name,
                })
            })
            .collect();
        let next = if page.list_complete {
            None
        } else {
            page.cursor
        };
        Ok((blobs, next))
    }

    /// Deletes a blob by key (the orphan sweep).
    pub(crate) async fn delete_blob_key(&self, key: &str) -> Result<(), ApiError> {
        self.io.delete(&self.secrets, key).await.map_err(kv_error)
    }
}
