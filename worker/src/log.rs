//! The Worker's log lines, one console call each: JSON objects written by
//! `serde_json` straight to text (the request line, the sweeps, warnings),
//! and the JWKS warnings as plain sentences. Every line goes through here
//! (`tidy_tests.rs` checks it), so the console calls are compiled once and
//! no line is copied by `format!` on its way out.
use serde::Serialize;
use wasm_bindgen::JsValue;
use web_sys::console;

/// The console method a line is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Console {
    Log,
    Warn,
    Error,
}

/// Writes `fields` (a `json!` value, or a typed line such as the request
/// line) as one JSON line.
pub(crate) fn json(method: Console, fields: &impl Serialize) {
    // Serializing a `Value` or a struct of strings and numbers cannot fail.
    if let Ok(line) = serde_json::to_string(fields) {
        text(method, &line);
    }
}

/// Writes `line` as it is (not through `format!`, as workers-rs'
/// `console_log!` would copy it).
pub(crate) fn text(method: Console, line: &str) {
    let line = JsValue::from_str(line);
    match method {
        Console::Log => console::log_1(&line),
        Console::Warn => console::warn_1(&line),
        Console::Error => console::error_1(&line),
    }
}
