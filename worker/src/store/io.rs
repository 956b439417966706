//! The round-trip primitives: the only code in the Worker that calls D1 or
//! KV. Each call counts one round trip in [`Io`] (a D1 batch counts once)
//! before it goes out, for the request's log line and the performance
//! budget; the counters can only be moved from here, so no storage call
//! goes uncounted. Callers map the errors (a request's storage failure is
//! a 500, `/healthz`'s a 503).
use core::cell::Cell;

use serde::Serialize;
use std::collections::HashMap;
use wasm_bindgen::{JsCast as _, JsValue};

use wasm_bindgen::prelude::wasm_bindgen;
use worker::{
    js_sys::{self, futures::JsFuture, Array, ArrayBuffer, Promise, Reflect, Uint8Array},
    worker_sys::types::{D1Database as D1DatabaseSys, D1DatabaseSession as D1DatabaseSessionSys},
    Bucket, D1Database, D1DatabaseSession, D1PreparedStatement, Env, HttpMetadata, Include, Object,
    Objects,
};

use super::{
    row::{member, with_key, Column, Columns, FromRow},
    session::Db,
};

/// One statement's answer, as the runtime gives it (`D1Result`): its rows
/// and its change count.
pub(crate) struct Answer(JsValue);

impl Answer {
    /// Its rows, each read as `T` ([`FromRow`]); none when it has none.
    pub(crate) fn results<T: FromRow>(&self) -> worker::Result<Vec<T>> {
        let rows = self.rows()?;
        let mut read = Vec::with_capacity(rows.len());
        for row in rows {
            read.push(T::from_row(&Columns::new(row))?);
        }
        Ok(read)
    }

    /// Its rows as the runtime's objects: the part of [`Answer::results`]
    /// that is the same for every row type, compiled once.
    #[inline(never)]
    fn rows(&self) -> worker::Result<Vec<JsValue>> {
        let rows = with_key("results", |key| Reflect::get(&self.0, key))?;
        if rows.is_null() || rows.is_undefined() {
            return Ok(Vec::new());
        }
        Ok(rows.dyn_into::<Array>()?.to_vec())
    }

    /// Rows the statement changed (`meta.changes`); `None` when the answer
    /// does not say.
    pub(crate) fn changes(&self) -> Option<usize> {
        let changes = member(&member(&self.0, "meta"), "changes");
        usize::try_from(i64::read(changes)?).ok()
    }
}

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding, called through the runtime's own API
    /// (`get`, `put`, `delete`, `list`). workers-rs' `KvStore` converts
    /// options, metadata and list pages through `serde_wasm_bindgen`, whose
    /// deserializer and serializer were compiled in for nothing else: here
    /// options are built as objects, and metadata crosses as JSON text
    /// (serde_json, already in the Worker).
    pub(crate) type KvNamespace;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn kv_get(this: &KvNamespace, key: &str, kind: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = put)]
    fn kv_put(
        this: &KvNamespace,
        key: &str,
        value: &Uint8Array,
        options: &JsValue,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = delete)]
    fn kv_delete(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = list)]
    fn kv_list(this: &KvNamespace, options: &JsValue) -> Result<Promise, JsValue>;
}

/// One page of a KV list.
#[derive(Debug, Default)]
pub(crate) struct KvPage {
    pub(crate) keys: Vec<KvKey>,
    /// The last page.
    pub(crate) list_complete: bool,
    /// Where the next page starts, unless this is the last.
    pub(crate) cursor: Option<String>,
}

/// A key of a KV list page.
#[derive(Debug)]
pub(crate) struct KvKey {
    pub(crate) name: String,
    /// Its metadata, as JSON text; `None` when it has none.
    pub(crate) metadata: Option<String>,
}

/// An options object with the given members.
fn options(members: &[(&'static str, JsValue)]) -> worker::Result<JsValue> {
    let object = js_sys::Object::new();
    for (name, value) in members {
        with_key(name, |key| Reflect::set(&object, key, value))?;
    }
    Ok(object.into())
}

impl KvPage {
    /// Reads the runtime's list answer (`{keys, list_complete, cursor}`).
    fn read(value: &JsValue) -> worker::Result<Self> {
        let keys: Array = member(value, "keys")
            .dyn_into()
            .map_err(|_| worker::Error::from("kv: a list answer without keys"))?;
        let keys = keys
            .iter()
            .map(|key| {
                let name = member(&key, "name")
                    .as_string()
                    .ok_or_else(|| worker::Error::from("kv: a listed key without a name"))?;
                let metadata = member(&key, "metadata");
                let metadata = if metadata.is_null() || metadata.is_undefined() {
                    None
                } else {
                    js_sys::JSON::stringify(&metadata)?.as_string()
                };
                Ok(KvKey { name, metadata })
            })
            .collect::<worker::Result<_>>()?;
        Ok(Self {
            keys,
            list_complete: member(value, "list_complete").as_bool().unwrap_or(false),
            cursor: member(value, "cursor").as_string(),
        })
    }
}

/// Awaits a D1 or KV promise; a rejection is the runtime's error, as text.
async fn settled(promise: Result<Promise, JsValue>) -> worker::Result<JsValue> {
    Ok(JsFuture::from(promise?).await?)
}

/// Storage round trips of one request, for its log line and the
/// performance budget (a decrypted read: at most 2 D1 round trips and 1 KV
/// read; metadata: 1 D1 round trip).
#[derive(Debug, Default)]
pub(crate) struct Io {
    d1: Cell<u32>,
    kv: Cell<u32>,
    statements: Cell<u32>,
}

impl Io {
    /// D1 round trips so far (a batch counts once).
    pub(crate) fn d1(&self) -> u32 {
        self.d1.get()
    }

    /// KV operations so far (R2 operations of the audit archive count here
    /// too).
    pub(crate) fn kv(&self) -> u32 {
        self.kv.get()
    }

    /// D1 statements so far (a batch counts each of its statements).
    pub(crate) fn statements(&self) -> u32 {
        self.statements.get()
    }

    fn count_d1(&self) {
        self.d1.set(self.d1.get() + 1);
        self.statements.set(self.statements.get() + 1);
    }

    fn count_kv(&self) {
        self.kv.set(self.kv.get() + 1);
    }

    /// The D1 binding `name`.
    pub(super) fn d1_binding(env: &Env, name: &str) -> worker::Result<D1Database> {
        env.d1(name)
    }

    /// The KV binding `name`: an object with KV's `get`.
    pub(super) fn kv_binding(env: &Env, name: &'static str) -> Result<KvNamespace, String> {
        let binding = member(env, name);
        if member(&binding, "get").is_function() {
            Ok(binding.unchecked_into())
        } else {
            Err(format!("no KV namespace bound as {name}"))
        }
    }

    /// The R2 bucket `name`.
    pub(super) fn r2_binding(env: &Env, name: &str) -> worker::Result<Bucket> {
        env.bucket(name)
    }

    /// One R2 list page under `prefix` (with custom metadata), after
    /// `start_after` or from `cursor`.
    pub(super) async fn r2_list(
        &self,
        bucket: &Bucket,
        prefix: String,
        start_after: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> worker::Result<Objects> {
        let mut request = bucket
            .list()
            .prefix(prefix)
            .include(vec![Include::CustomMetadata])
            .limit(limit);
        if let Some(start_after) = start_after {
            request = request.start_after(start_after);
        }
        if let Some(cursor) = cursor {
            request = request.cursor(cursor);
        }
        self.count_kv();
        request.execute().await
    }

    /// One R2 write of `bytes` with a content type and custom metadata.
    pub(super) async fn r2_put(
        &self,
        bucket: &Bucket,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        metadata: HashMap<String, String>,
    ) -> worker::Result<()> {
        self.count_kv();
        bucket
            .put(key, bytes)
            .http_metadata(HttpMetadata {
                content_type: Some(content_type.into()),
                ..Default::default()
            })
            .custom_metadata(metadata)
            .execute()
            .await?;
        Ok(())
    }

    /// One R2 delete of up to 1,000 keys.
    pub(super) async fn r2_delete(&self, bucket: &Bucket, keys: Vec<String>) -> worker::Result<()> {
        self.count_kv();
        bucket.delete_multiple(keys).await
    }

    /// One R2 read: the object (its body is read by the caller), `None`
    /// when absent.
    pub(super) async fn r2_get(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> worker::Result<Option<Object>> {
        self.count_kv();
        bucket.get(key).execute().await
    }

    /// A request's D1 session starting at `from` (a bookmark, or
    /// `first-primary` / `first-unconstrained`); no round trip.
    pub(super) fn session(db: &D1Database, from: &str) -> worker::Result<D1DatabaseSession> {
        db.with_session(Some(from))
    }

    /// A session's latest bookmark, if it has one (no round trip).
    pub(super) fn session_bookmark(session: &D1DatabaseSession) -> Option<String> {
        session.get_bookmark().ok().flatten()
    }

    /// A statement with its parameters bound (no round trip), on the
    /// database or in a request's session.
    pub(super) fn prepare(
        db: &Db,
        sql: &str,
        params: &[JsValue],
    ) -> worker::Result<D1PreparedStatement> {
        match db {
            Db::Database(db) => db.prepare(sql),
            Db::Session(session) => session.prepare(sql),
        }
        .bind(params)
    }

    /// One D1 round trip: all rows of a statement.
    pub(super) async fn all(&self, statement: D1PreparedStatement) -> worker::Result<Answer> {
        self.count_d1();
        Ok(Answer(settled(statement.inner().all()).await?))
    }

    /// One D1 round trip: run a statement.
    pub(super) async fn run(&self, statement: D1PreparedStatement) -> worker::Result<Answer> {
        self.count_d1();
        Ok(Answer(settled(statement.inner().run()).await?))
    }

    /// One D1 round trip: one column of the first row; `None` when there
    /// is no row (or the column is `NULL`).
    pub(super) async fn first<T: Column>(
        &self,
        statement: D1PreparedStatement,
        column: &'static str,
    ) -> worker::Result<Option<T>> {
        self.count_d1();
        let value = settled(statement.inner().first(Some(column))).await?;
        Option::<T>::read(value)
            .ok_or(super::row::BadColumn(column))
            .map_err(worker::Error::from)
    }

    /// One D1 round trip: statements in one transaction.
    pub(super) async fn batch(
        &self,
        db: &Db,
        statements: Vec<D1PreparedStatement>,
    ) -> worker::Result<Vec<Answer>> {
        self.count_d1();
        let extra = u32::try_from(statements.len().saturating_sub(1)).unwrap_or(u32::MAX);
        self.statements
            .set(self.statements.get().saturating_add(extra));
        let statements: Array = statements
            .iter()
            .map(|statement| AsRef::<JsValue>::as_ref(statement.inner()).clone())
            .collect();
        let promise = match db {
            Db::Database(db) => AsRef::<JsValue>::as_ref(db)
                .unchecked_ref::<D1DatabaseSys>()
                .batch(statements),
            Db::Session(session) => AsRef::<JsValue>::as_ref(session.as_ref())
                .unchecked_ref::<D1DatabaseSessionSys>()
                .session_batch(statements),
        };
        let answers: Array = settled(promise).await?.dyn_into()?;
        Ok(answers.iter().map(Answer).collect())
    }

    /// One KV read, as bytes.
    pub(super) async fn get_bytes(
        &self,
        kv: &KvNamespace,
        key: &str,
    ) -> worker::Result<Option<Vec<u8>>> {
        self.count_kv();
        let value = settled(kv.kv_get(key, "arrayBuffer")).await?;
        if value.is_null() || value.is_undefined() {
            return Ok(None);
        }
        // Never the value itself in the error: it may be key material.
        let buffer: ArrayBuffer = value
            .dyn_into()
            .map_err(|_| JsValue::from_str("kv: a value read as bytes is not an ArrayBuffer"))?;
        Ok(Some(Uint8Array::new(&buffer).to_vec()))
    }

    /// One KV read, as text.
    pub(super) async fn get_text(
        &self,
        kv: &KvNamespace,
        key: &str,
    ) -> worker::Result<Option<String>> {
        self.count_kv();
        Ok(settled(kv.kv_get(key, "text")).await?.as_string())
    }

    /// One KV write of bytes with metadata (JSON, at most 1 KB in KV).
    pub(super) async fn put_bytes(
        &self,
        kv: &KvNamespace,
        key: &str,
        value: &[u8],
        metadata: impl Serialize,
    ) -> worker::Result<()> {
        let metadata = serde_json::to_string(&metadata)?;
        let options = options(&[("metadata", js_sys::JSON::parse(&metadata)?)])?;
        self.count_kv();
        settled(kv.kv_put(key, &Uint8Array::from(value), &options)).await?;
        Ok(())
    }

    /// One KV write of bytes, without metadata.
    pub(super) async fn put_plain_bytes(
        &self,
        kv: &KvNamespace,
        key: &str,
        value: &[u8],
    ) -> worker::Result<()> {
        self.count_kv();
        settled(kv.kv_put(key, &Uint8Array::from(value), &JsValue::UNDEFINED)).await?;
        Ok(())
    }

    /// One KV write of text that expires after `ttl_seconds`. Written as
    /// its UTF-8 bytes (read back as text all the same).
    pub(super) async fn put_text(
        &self,
        kv: &KvNamespace,
        key: &str,
        value: String,
        ttl_seconds: u64,
    ) -> worker::Result<()> {
        #[allow(clippy::cast_precision_loss)] // a TTL is far below 2^53 s
        let options = options(&[("expirationTtl", JsValue::from_f64(ttl_seconds as f64))])?;
        self.count_kv();
        settled(kv.kv_put(key, &Uint8Array::from(value.as_bytes()), &options)).await?;
        Ok(())
    }

    /// One KV delete.
    pub(super) async fn delete(&self, kv: &KvNamespace, key: &str) -> worker::Result<()> {
        self.count_kv();
        settled(kv.kv_delete(key)).await?;
        Ok(())
    }

    /// One KV list page of the keys under `prefix`, with their metadata.
    pub(super) async fn list(
        &self,
        kv: &KvNamespace,
        prefix: &str,
        limit: u64,
        cursor: Option<String>,
    ) -> worker::Result<KvPage> {
        #[allow(clippy::cast_precision_loss)] // KV lists at most 1000
        let mut members = vec![
            ("prefix", JsValue::from_str(prefix)),
            ("limit", JsValue::from_f64(limit as f64)),
        ];
        if let Some(cursor) = cursor {
            members.push(("cursor", JsValue::from(cursor)));
        }
        let options = options(&members)?;
        self.count_kv();
        KvPage::read(&settled(kv.kv_list(&options)).await?)
    }
}
