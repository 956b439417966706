//! Real browsers for the console's tests: headless Chromium through
//! `chromedriver` and headless Firefox through `geckodriver` (the drivers
//! `scripts/setup.sh` installs), driven over WebDriver by `fantoccini` on a
//! current-thread runtime behind a blocking API. Each driver runs in a
//! process group of its own ([`crate::harness::Group`]), so neither it nor
//! its browser outlives the test.
use core::time::Duration;
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::Instant,
};

use fantoccini::{elements::Element, wd::Capabilities, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::harness::{self, Group};

/// The two browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chromium,
    Firefox,
}

impl Kind {
    /// A short name for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chromium => "chromium",
            Kind::Firefox => "firefox",
        }
    }
}

/// One browser session.
pub struct Browser {
    kind: Kind,
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    _driver: Group,
}

fn which(program: &str) -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap_or_else(|error| panic!("look for {program}: {error}"));
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{program} is not installed (scripts/setup.sh test installs it)"
    );
    PathBuf::from(path)
}

fn capabilities(kind: Kind) -> Capabilities {
    let value = match kind {
        Kind::Chromium => json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": which("chromium"),
                // Root in a container: no sandbox; no GPU headless.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1440,1100",
                         "--no-first-run", "--disable-extensions"],
            },
        }),
        Kind::Firefox => json!({
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "args": ["-headless", "-width=1440", "-height=1100"],
                "prefs": {"browser.shell.checkDefaultBrowser": false},
            },
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => unreachable!("capabilities are an object"),
    }
}

impl Browser {
    /// Starts the driver on a free port and opens a session.
    pub fn start(kind: Kind) -> Browser {
        let port = harness::unused_port();
        let mut command = match kind {
            Kind::Chromium => {
                let mut command = Command::new(which("chromedriver"));
                command.arg(format!("--port={port}"));
                command
            }
            Kind::Firefox => {
                let mut command = Command::new(which("geckodriver"));
                command.args(["--port", &port.to_string(), "--log", "warn"]);
                command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = Group::spawn(&mut command);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = runtime.block_on(
                ClientBuilder::new(connector)
                    .capabilities(capabilities(kind))
                    .connect(&url),
            );
            match attempt {
                Ok(client) => break client,
                Err(error) if Instant::now() > deadline => {
                    panic!("{} session did not start: {error}", kind.name())
                }
                Err(_) => thread::sleep(Duration::from_millis(250)),
            }
        };
        let browser = Browser {
            kind,
            runtime,
            client: Some(client),
            _driver: driver,
        };
        browser.resize(1440, 1100);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    /// Which browser this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|error| panic!("goto {url}: {error}"));
    }

    /// Reloads the page.
    pub fn refresh(&self) {
        self.runtime
            .block_on(self.client().refresh())
            .expect("refresh");
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.runtime
            .block_on(self.client().current_url())
            .map(|url| url.to_string())
            .expect("current url")
    }

    /// Sets the window's size (CSS pixels of the window, not the viewport).
    pub fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .expect("set window size");
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.runtime
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Waits (up to 20 s) for an element matching `css`.
    pub fn find(&self, css: &str) -> Element {
        self.wait_until(&format!("an element {css}"), || self.try_find(css))
    }

    /// An element matching `css`, if there is one now.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        self.runtime
            .block_on(self.client().find(Locator::Css(css)))
            .ok()
    }

    /// Every element matching `css` now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .unwrap_or_default()
    }

    /// Waits (up to 20 s) for a button or link whose text is `text`.
    pub fn find_text(&self, text: &str) -> Element {
        let xpath = format!(
            "//*[self::button or self::a][normalize-space(.)={}]",
            xpath_literal(text)
        );
        self.wait_until(&format!("a button or link {text:?}"), || {
            self.runtime
                .block_on(self.client().find(Locator::XPath(&xpath)))
                .ok()
        })
    }

    /// Whether a button or link whose text is `text` exists now.
    pub fn has_text_control(&self, text: &str) -> bool {
        let xpath = format!(
            "//*[self::button or self::a][normalize-space(.)={}]",
            xpath_literal(text)
        );
        self.runtime
            .block_on(self.client().find_all(Locator::XPath(&xpath)))
            .map(|all| !all.is_empty())
            .unwrap_or(false)
    }

    /// Clicks the button or link whose text is `text`.
    pub fn click_text(&self, text: &str) {
        let element = self.find_text(text);
        self.click(&element);
    }

    /// Clicks an element.
    pub fn click(&self, element: &Element) {
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|error| panic!("click: {error}"));
    }

    /// Clears the control matching `css` and types `text` into it. The
    /// clearing sends an `input` event, as a user's deleting would (the
    /// WebDriver clear command sends only `change` in some browsers).
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        let as_json = serde_json::to_value(&element).expect("element reference");
        self.js(
            "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            vec![as_json],
        );
        if !text.is_empty() {
            self.runtime
                .block_on(element.send_keys(text))
                .unwrap_or_else(|error| panic!("type into {css}: {error}"));
        }
    }

    /// Types `keys` (WebDriver key codes allowed, e.g. `\u{E004}` for Tab)
    /// into an element, which gets the focus first.
    pub fn send_keys(&self, element: &Element, keys: &str) {
        self.runtime
            .block_on(element.send_keys(keys))
            .unwrap_or_else(|error| panic!("send keys: {error}"));
    }

    /// Picks the option with `value` in the select matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let element = self.find(css);
        self.runtime
            .block_on(element.select_by_value(value))
            .unwrap_or_else(|error| panic!("select {value} in {css}: {error}"));
    }

    /// The visible text of an element.
    pub fn text(&self, element: &Element) -> String {
        self.runtime.block_on(element.text()).unwrap_or_default()
    }

    /// An attribute of an element.
    pub fn attr(&self, element: &Element, name: &str) -> Option<String> {
        self.runtime.block_on(element.attr(name)).ok().flatten()
    }

    /// The text of the page's body.
    pub fn body_text(&self) -> String {
        self.js("return document.body.innerText;", vec![])
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (up to 20 s) until the body's text contains `text`.
    pub fn wait_for_text(&self, text: &str) {
        self.wait_until(&format!("the text {text:?}"), || {
            self.body_text().contains(text).then_some(())
        });
    }

    /// Polls `check` every 100 ms for up to 20 s; panics naming `what`.
    pub fn wait_until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() > deadline {
                let body = self.body_text();
                panic!(
                    "{}: waited 20 s for {what}; the page at {} reads:\n{body}",
                    self.kind.name(),
                    self.url()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the viewport as `target/console-screenshots/<browser>-<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .expect("screenshot");
        let dir = harness::root().join("target").join("console-screenshots");
        std::fs::create_dir_all(&dir).expect("create screenshot dir");
        let path = dir.join(format!("{}-{name}.png", self.kind.name()));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Whether a JavaScript dialog (`alert`) is open.
    pub fn alert_open(&self) -> bool {
        self.runtime
            .block_on(self.client().get_alert_text())
            .is_ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
    }
}

/// `text` as an XPath string literal.
fn xpath_literal(text: &str) -> String {
    if !text.contains('"') {
        format!("\"{text}\"")
    } else if !text.contains('\'') {
        format!("'{text}'")
    } else {
        let parts: Vec<String> = text.split('"').map(|p| format!("\"{p}\"")).collect();
        format!("concat({})", parts.join(", '\"', "))
    }
}
