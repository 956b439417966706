//! Tidy tests (as rust-analyzer keeps them): facts about the source text
//! itself, checked by reading `src/`.
//!
//! The Worker's modules import in one direction. Each top-level module has
//! a layer in [`LAYERS`]; a file may name `crate::<module>` only for its own
//! top-level module or one in a lower layer (further down the list). Two
//! modules of the same layer never name each other, so no circle can form.
//! `COFFER_TIDY_SRC=<dir>` checks another tree (for example an older
//! commit's `worker/src`) instead of this one.
use std::path::{Path, PathBuf};

/// The layers, top first: entry point → serve → route → handle → gate →
/// context → verify / keys → store → randomness → errors → names.
const LAYERS: &[&[&str]] = &[
    // The entry points, and tests of the whole crate.
    &["lib", "openapi_tests", "tidy_tests"],
    // Serving a request: request id, log line, error rendering, CORS.
    &["http"],
    // The route table and dispatch.
    &["router"],
    // Handlers: the HTTP routes, and the scheduled sweeps beside them.
    &["routes", "sweep"],
    // The audit archive's work (the sweep step, gzip and hashing by the
    // runtime), used by the sweep and the archive routes.
    &["archive"],
    // The one gate to a record: load, decide, audit a refusal; beside it
    // OAuth2 token refresh (lease, token endpoint, store), which handlers
    // call once the gate has allowed them and which serves nothing itself.
    &["access", "refresh"],
    // `Ctx`, `Caller`, `Reply`.
    &["context"],
    // Bearer tokens; the master keys; tenant keys (unwrap cache).
    &["auth", "keyring", "keys"],
    // The only code that knows SQL and KV keys.
    &["store"],
    // The one source of randomness.
    &["random"],
    // The only code that knows HTTP statuses and error bodies.
    &["error"],
    // Names of bindings and variables; test-only fault switches; the
    // build script's check of `wrangler.toml`; URLs and bounded outbound
    // fetches by the runtime.
    &["env", "faults", "plain_vars", "web_fetch", "web_url"],
    // Log lines to the console.
    &["log"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file under `src/` belongs to (`lib` for `lib.rs`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The source without comment lines (doc comments name paths in prose).
fn code(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifier at the start of `text` (after spaces).
fn ident(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first segments of the items of a `{ ... }` group that starts
/// `text`, and the rest after it.
fn group(text: &str) -> Vec<&str> {
    let mut depth = 0usize;
    let mut items = Vec::new();
    let mut start = 1;
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(&text[start..index]);
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items
        .into_iter()
        .map(ident)
        .filter(|name| !name.is_empty())
        .collect()
}

/// Every top-level module a file's code names through `crate::`.
fn named_modules(text: &str) -> Vec<String> {
    let code = code(text);
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let before = rest[..at].chars().last();
        // `$crate::` in a macro, or part of a longer identifier.
        if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '$') {
            if after.trim_start().starts_with('{') {
                names.extend(group(after.trim_start()).into_iter().map(str::to_string));
            } else {
                names.push(ident(after).to_string());
            }
        }
        rest = after;
    }
    names.retain(|name| name != "self");
    names
}

/// What breaks the import order, one line per finding.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let module = module_of(path);
        // This file's test cases name paths on purpose.
        if module == "tidy_tests" {
            continue;
        }
        let Some(own) = layer(&module) else {
            found.push(format!(
                "{}: module `{module}` has no layer in LAYERS",
                path.display()
            ));
            continue;
        };
        for named in named_modules(text) {
            if named == module {
                continue;
            }
            match layer(&named) {
                Some(other) if other > own => {}
                Some(other) => found.push(format!(
                    "{}: `{module}` (layer {own}) names `crate::{named}` (layer {other}), \
                     which is not below it",
                    path.display()
                )),
                // Not a module: an item of the crate root, the top layer.
                None => found.push(format!(
                    "{}: names `crate::{named}`, an item of lib.rs or a module with no \
                     layer in LAYERS",
                    path.display()
                )),
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`, with its path relative to `dir`.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                files.push((relative, text));
            }
        }
    }
    files.sort();
    files
}

fn source_dir() -> PathBuf {
    std::env::var_os("COFFER_TIDY_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn modules_import_in_one_direction() {
    let files = sources(&source_dir());
    assert!(files.len() > 10, "no sources found in {:?}", source_dir());
    let found = violations(&files);
    assert!(
        found.is_empty(),
        "imports against LAYERS:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_layer_module_exists() {
    if std::env::var_os("COFFER_TIDY_SRC").is_some() {
        return;
    }
    let files = sources(&source_dir());
    for module in LAYERS.iter().flat_map(|layer| layer.iter()) {
        assert!(
            files.iter().any(|(path, _)| module_of(path) == *module),
            "LAYERS names `{module}`, which has no file"
        );
    }
}

/// The store's record loaders, which only the access gate may call.
const RECORD_LOADERS: [&str; 2] = ["find_record(", "select_for_integration("];

/// Files outside `store/` and `access.rs` that load a record themselves.
fn loads_outside_the_gate(files: &[(PathBuf, String)]) -> Vec<String> {
    found_outside(files, &["store", "access"], "access.rs", |code| {
        RECORD_LOADERS
            .iter()
            .filter(|loader| code.contains(**loader))
            .map(|loader| format!("calls {loader}...)"))
            .collect()
    })
}

/// What `find` reports in the code of each file outside the top-level
/// modules `allowed` (and the tidy tests), as `path: what outside place`.
fn found_outside(
    files: &[(PathBuf, String)],
    allowed: &[&str],
    place: &str,
    find: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    files
        .iter()
        .filter(|(path, _)| {
            let module = module_of(path);
            module != "tidy_tests" && !allowed.contains(&module.as_str())
        })
        .flat_map(|(path, text)| {
            find(&code(text))
                .into_iter()
                .map(|what| format!("{}: {what} outside {place}", path.display()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn records_are_loaded_only_through_the_access_gate() {
    let files = sources(&source_dir());
    let found = loads_outside_the_gate(&files);
    assert!(found.is_empty(), "{}", found.join("\n"));
    let handler = (
        PathBuf::from("routes/credentials.rs"),
        "let found = store.find_record(id, caller.tenant).await?;".to_string(),
    );
    assert_eq!(loads_outside_the_gate(&[handler]).len(), 1);
}

/// Names that reach the console: workers-rs' macros (without the `!`, so
/// a renamed import is caught too), `web_sys::console`, and a binding of
/// one's own to the `console` namespace.
const CONSOLE_NAMES: [&str; 6] = [
    "console_log",
    "console_warn",
    "console_error",
    "console_debug",
    "web_sys::console",
    "js_namespace=console",
];

/// What in `code` reaches the console: a name of [`CONSOLE_NAMES`], or
/// `console` in a `web_sys::{...}` group.
fn console_calls(code: &str) -> Vec<String> {
    let unspaced: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found: Vec<String> = CONSOLE_NAMES
        .iter()
        .filter(|name| unspaced.contains(**name))
        .map(|name| name.to_string())
        .collect();
    let mut rest = unspaced.as_str();
    while let Some(at) = rest.find("web_sys::{") {
        let after = &rest[at + "web_sys::".len()..];
        if group(after).contains(&"console") {
            found.push("web_sys::{console}".to_string());
        }
        rest = after;
    }
    found
}

/// Files other than `log.rs` that write to the console themselves.
fn console_outside_log(files: &[(PathBuf, String)]) -> Vec<String> {
    found_outside(files, &["log"], "log.rs", console_calls)
}

#[test]
fn only_log_rs_writes_to_the_console() {
    let files = sources(&source_dir());
    let found = console_outside_log(&files);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The one place that does is seen, so the check is not blind.
    let (_, log) = files
        .iter()
        .find(|(path, _)| path.ends_with("log.rs"))
        .expect("src/log.rs");
    assert!(!console_calls(&code(log)).is_empty());
    for call in [
        "worker::console_log!(\"{}\", line);",
        "console_warn!(\"{line}\");",
        "use worker::console_error as say;",
        "worker::console_debug!(\"x\");",
        "web_sys::console::log_1(&line);",
        "use web_sys::{console, Headers};",
        "use worker::web_sys::{self, console::warn_1};",
        "#[wasm_bindgen(js_namespace = console)] extern \"C\" { fn log(s: &str); }",
    ] {
        let file = (PathBuf::from("sweep.rs"), call.to_string());
        assert_eq!(console_outside_log(&[file]).len(), 1, "{call}");
    }
    let quiet = "use web_sys::{Headers, Request};\nlet console_id = 3;";
    assert_eq!(
        console_outside_log(&[(PathBuf::from("http.rs"), quiet.to_string())]),
        Vec::<String>::new()
    );
}

/// What only `store/` may name: the bindings, their types, and SQL.
const STORAGE_OUTSIDE_STORE: [&str; 10] = [
    "env::DB",
    "env::SECRETS",
    "env::CACHE",
    "D1Database",
    "KvNamespace",
    "KvStore",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE FROM",
];

/// Calls that go to D1, KV or R2, which inside `store/` only `io.rs` (the
/// counted primitives) makes.
const STORAGE_CALLS: [&str; 20] = [
    "db.prepare(",
    "db.batch(",
    "db.exec(",
    "statement.all(",
    "statement.run(",
    "statement.first",
    "statement.raw(",
    "secrets.get(",
    "secrets.put",
    "secrets.delete(",
    "secrets.list(",
    "kv.get(",
    "session.prepare(",
    "session.batch(",
    "with_session(",
    "get_bookmark(",
    "bucket.put(",
    "bucket.get(",
    "bucket.list(",
    "bucket.delete(",
];

/// Files that touch storage where they may not.
fn storage_outside_its_place(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let module = module_of(path);
        let code = code(text);
        let (forbidden, place): (&[&str], _) = if module == "store" {
            if path.ends_with("io.rs") || path.ends_with("sql.rs") {
                continue;
            }
            (&STORAGE_CALLS, "outside store/io.rs")
        } else if matches!(module.as_str(), "tidy_tests" | "env") {
            continue;
        } else {
            (&STORAGE_OUTSIDE_STORE, "outside store/")
        };
        for needle in forbidden {
            if code.contains(needle) {
                found.push(format!("{}: {needle:?} {place}", path.display()));
            }
        }
    }
    found
}

#[test]
fn only_the_store_knows_storage_and_only_its_io_calls_it() {
    let files = sources(&source_dir());
    let found = storage_outside_its_place(&files);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // What today's tree is checked against, as the old healthz had it.
    let healthz = (
        PathBuf::from("routes/mod.rs"),
        "let db = ctx.env.d1(env::DB)?; db.prepare(\"SELECT value FROM coffer_meta\");".to_string(),
    );
    assert_eq!(storage_outside_its_place(&[healthz]).len(), 2);
    let uncounted = (
        PathBuf::from("store/blobs.rs"),
        "self.secrets.delete(&key).await".to_string(),
    );
    assert_eq!(storage_outside_its_place(&[uncounted]).len(), 1);
}

fn check(path: &str, text: &str, expected: &[&str]) {
    let found = violations(&[(PathBuf::from(path), text.to_string())]);
    assert_eq!(found.len(), expected.len(), "{path}: {found:#?}");
    for (finding, needle) in found.iter().zip(expected) {
        assert!(finding.contains(needle), "{finding} lacks {needle}");
    }
}

/// The checker itself: it reads grouped, nested and inline paths, ignores
/// comments and `$crate`, and refuses upward and sideways names.
#[test]
fn the_checker_finds_upward_and_sideways_imports() {
    check("store/audit.rs", "use crate::error::ApiError;", &[]);
    check(
        "store/audit.rs",
        "\"at\": crate::http::rfc3339(row.at),",
        &["crate::http"],
    );
    check(
        "routes/mod.rs",
        "use crate::{\n    context::{Caller, Ctx},\n    error::ApiError,\n    router::Op,\n};",
        &["crate::router"],
    );
    check("routes/x.rs", "use crate::{routes::body, store};", &[]);
    check(
        "auth/mod.rs",
        "use crate::keyring::keyring;",
        &["crate::keyring"],
    );
    check(
        "context.rs",
        "// crate::http::serve\n/// [`crate::lib`]",
        &[],
    );
    check("store/mod.rs", "$crate::http::x!()", &[]);
    check("cors.rs", "use crate::error::ApiError;", &["no layer"]);
    check(
        "http.rs",
        "use crate::{self as me, nowhere};",
        &["no layer"],
    );
    assert_eq!(
        named_modules("use crate::{a::{b, c}, d as e, f::*};"),
        ["a", "d", "f"]
    );
}
