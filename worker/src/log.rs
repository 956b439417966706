//! The Worker's log lines: one JSON object per line, written by
//! `serde_json` straight to text and handed to the console in one call.
//! Every line goes through here (the request line, the sweeps, warnings),
//! so the console calls are compiled once and no line goes through
//! `Value`'s `Display` (a second copy of the serializer).
use serde_json::Value;
use wasm_bindgen::JsValue;
use web_sys::console;

/// The console method a line is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Console {
    Log,
    Warn,
    Error,
}

/// Writes `fields` as one JSON line.
pub(crate) fn json(console: Console, fields: &Value) {
    // Serializing a `Value` cannot fail (its keys are strings).
    if let Ok(line) = serde_json::to_string(fields) {
        text(console, &line);
    }
}

/// Writes `line` as it is (not through `format!`, as workers-rs'
/// `console_log!` would copy it).
pub(crate) fn text(console: Console, line: &str) {
    let line = JsValue::from_str(line);
    match console {
        Console::Log => console::log_1(&line),
        Console::Warn => console::warn_1(&line),
        Console::Error => console::error_1(&line),
    }
}
