//! Starts `wrangler dev` on a free port with its own state directory, waits
//! until `/healthz` answers, and stops it on every exit path.
//!
//! Each server runs in a process group of its own (wrangler starts node,
//! which starts workerd); stopping it signals the whole group. Three things
//! make sure no process outlives the tests: `Drop`, an `atexit` hook for the
//! per-binary shared server (statics are never dropped), and a watchdog
//! shell that kills the group once the test process is gone, whatever way
//! it went (a panic during start, SIGKILL, an abort).
use core::time::Duration;
use std::{
    fs,
    io::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    thread,
    time::Instant,
};

use crate::fixtures;

/// A running `wrangler dev`.
pub struct Server {
    base: String,
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Set by [`Server::restart_with_config`]: the altered config may make
    /// `/healthz` fail on purpose, so any answer from the Worker itself
    /// (it sets `x-request-id` on every response) means ready.
    any_answer_is_ready: bool,
    /// Runs the test-only build with fault switches ([`Server::start_with_faults`]).
    faults: bool,
    /// Served with `--test-scheduled` (`GET /__scheduled` runs the cron);
    /// every server but a benchmark's ([`Server::start_without_test_scheduled`]).
    test_scheduled: bool,
    /// The `x-request-id` of the last response [`crate::client::Api`] read
    /// from this server: [`Server::log_through_last_request`] waits for it.
    last_request_id: Mutex<Option<String>>,
}

/// Process groups to stop when the test process exits.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static SHARED: OnceLock<Server> = OnceLock::new();

/// Appends one line per `wrangler dev` launch (start or restart) to
/// `target/wrangler-tests/launches.log`: the test binary and the port. A
/// run's number of launches is the file's line count (`make e2e` prints it).
fn record_launch(port: u16) {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    // The count is a report, not a check: a failed write loses one line.
    if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(
        root()
            .join("target")
            .join("wrangler-tests")
            .join("launches.log"),
    ) {
        let _ = writeln!(file, "{binary} {port}");
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The default server of this test binary, started on first use.
pub fn shared() -> &'static Server {
    SHARED.get_or_init(|| Server::start(&[]))
}

/// The variables every test server gets; `Server::start` overrides them.
pub fn default_vars() -> Vec<(String, String)> {
    vec![
        ("AUTH_HS256_SECRET".into(), fixtures::HS256_SECRET.into()),
        ("COFFER_KEYS".into(), fixtures::COFFER_KEYS.into()),
        ("AUTH_REALMS".into(), "{}".into()),
        ("AUTH_DEFAULT_REALM".into(), String::new()),
        // Tests read the request lines (round trips, reasons, leaks).
        ("COFFER_REQUEST_LOG".into(), "all".into()),
    ]
}

impl Server {
    /// Builds the worker (unless `COFFER_SKIP_BUILD` is set), then starts a
    /// fresh server whose variables are the defaults overridden by `vars`.
    /// A value of `None`-like empty string is passed through as empty.
    pub fn start(vars: &[(&str, &str)]) -> Server {
        Self::start_build(vars, false)
    }

    /// As [`Server::start`], on the test-only build whose fault switches
    /// (request headers such as `x-coffer-fault-commit-delay-ms`, see
    /// `worker/src/faults.rs`) widen race windows on purpose. The release
    /// build has none of them.
    pub fn start_with_faults(vars: &[(&str, &str)]) -> Server {
        Self::start_build(vars, true)
    }

    fn start_build(vars: &[(&str, &str)], faults: bool) -> Server {
        Self::start_build_on(vars, faults, None, true)
    }

    /// As [`Server::start`], without `wrangler dev --test-scheduled`, as the
    /// peer of `make bench PEER=<dir>` is served: that switch wraps the
    /// Worker in a middleware of wrangler's that parses every request's URL
    /// (to catch `/__scheduled`), which a deployed Worker does not have.
    /// For benchmarks, which never trigger the cron.
    pub fn start_without_test_scheduled(vars: &[(&str, &str)]) -> Server {
        Self::start_build_on(vars, false, None, false)
    }

    /// As [`Server::start`], on a copy of the local state directory `state`
    /// (D1 and KV as an earlier server, or an earlier build, left them);
    /// the migrations it lacks are applied before the server starts.
    pub fn start_on_state(vars: &[(&str, &str)], state: &Path) -> Server {
        Self::start_build_on(vars, false, Some(state), true)
    }

    fn start_build_on(
        vars: &[(&str, &str)],
        faults: bool,
        state: Option<&Path>,
        test_scheduled: bool,
    ) -> Server {
        build_once(faults);
        let dir = root()
            .join("target")
            .join("wrangler-tests")
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir_all(dir.join("state")).expect("create state dir");
        if let Some(state) = state {
            copy_dir(state, &dir.join("state"));
        }

        let config = write_config(&dir, &merge_vars(vars), faults);
        let status = wrangler(&dir)
            .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
            .arg(dir.join("state"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run wrangler d1 migrations apply");
        assert!(status.success(), "wrangler d1 migrations apply failed");

        let mut server = Server {
            base: String::new(),
            dir,
            config,
            port: 0,
            child: None,
            any_answer_is_ready: false,
            faults,
            test_scheduled,
            last_request_id: Mutex::new(None),
        };
        server.spawn();
        server
    }

    /// Starts wrangler on fresh ports. A port is picked free and released
    /// before wrangler binds it, so a server starting at the same moment can
    /// take it first ("Address already in use"): then it tries new ports.
    fn spawn(&mut self) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let log_start = self.log().len();
            self.launch();
            match self.wait_ready() {
                Ok(()) => return,
                Err(tail) => {
                    let log = self.log();
                    let this_try = log.get(log_start..).unwrap_or(&log);
                    if attempt < ATTEMPTS && this_try.contains("Address already in use") {
                        continue;
                    }
                    panic!("wrangler dev did not become ready; last log lines:\n{tail}");
                }
            }
        }
    }

    fn launch(&mut self) {
        let port = free_port();
        let inspector = free_port();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let mut command = wrangler(&self.dir);
        command
            .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(inspector.to_string())
            .arg("--persist-to")
            .arg(self.dir.join("state"))
            .arg("--config")
            .arg(&self.config)
            .arg("--show-interactive-dev-session=false")
            .args(self.test_scheduled.then_some("--test-scheduled"))
            .args(log_level_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = spawn_in_own_group(&mut command);
        let pgid = i32::try_from(child.id()).expect("pid fits in i32");
        GROUPS.lock().expect("groups lock").push(pgid);
        register_atexit();
        start_watchdog(pgid);
        self.child = Some(child);
        self.port = port;
        self.base = format!("http://127.0.0.1:{port}");
        record_launch(port);
    }

    /// Waits for the server; on failure stops it and returns the log's tail.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = reqwest::blocking::Client::new();
        loop {
            if let Ok(response) = client.get(self.url("/healthz")).send() {
                let from_worker = response.headers().contains_key("x-request-id");
                if response.status().is_success() || (self.any_answer_is_ready && from_worker) {
                    return Ok(());
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = self.log();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                self.stop();
                return Err(tail);
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where wrangler's output (and so the Worker's logs) goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("wrangler.log")
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The Worker's JSON log lines so far, parsed (wrangler's own lines are
    /// skipped). Lines arrive asynchronously: poll for one just logged.
    pub fn log_entries(&self) -> Vec<serde_json::Value> {
        json_lines(&self.log()).collect()
    }

    /// Remembers `request_id` as the last request answered (the client calls
    /// this for every response it reads).
    pub fn note_request(&self, request_id: &str) {
        *self
            .last_request_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(request_id.to_string());
    }

    /// The whole log once it holds the request line (the one with `status`)
    /// of `request_id`, waiting up to 30 s: workerd's log lines reach
    /// wrangler's output asynchronously, so a scan that does not wait can
    /// miss the very lines it is meant to check.
    ///
    /// # Panics
    ///
    /// When the line does not arrive: requests are not being logged (a log
    /// level that hides them, a broken log line), and a scan of the log
    /// would prove nothing.
    pub fn log_through(&self, request_id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log_has_request_line(&log, request_id) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the server log has no request line for {request_id} after 30 s \
                 ({} request lines in all): requests are not being logged, so \
                 scanning the log proves nothing",
                count_request_lines(&log)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Server::log_through`] the last request made through
    /// [`crate::client::Api`].
    ///
    /// # Panics
    ///
    /// When no request was made yet, or its line does not arrive.
    pub fn log_through_last_request(&self) -> String {
        let last = self
            .last_request_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .expect("no request was made to this server yet: nothing to wait for in its log");
        self.log_through(&last)
    }

    /// The local D1 and KV state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The local D1 database's directory inside [`Server::state_dir`]
    /// (miniflare keeps each D1 database as a SQLite file there).
    pub fn d1_dir(&self) -> PathBuf {
        self.state_dir().join("v3").join("d1")
    }

    /// Copies the stopped server's local state (D1 and KV) to `to`, as a
    /// backup would. Panics if the server is running: SQLite files copied
    /// under a live writer may be torn.
    pub fn copy_state(&self, to: &Path) {
        assert!(
            self.child.is_none(),
            "stop the server before copying its state"
        );
        copy_dir(&self.state_dir(), to);
    }

    /// Replaces the stopped server's D1 database with the one in `backup`
    /// (a state directory from [`Server::copy_state`]), leaving KV as it
    /// is now: a D1 restored from backup beside the current KV.
    pub fn restore_d1(&self, backup: &Path) {
        assert!(self.child.is_none(), "stop the server before restoring D1");
        let _ = fs::remove_dir_all(self.d1_dir());
        copy_dir(&backup.join("v3").join("d1"), &self.d1_dir());
    }

    /// Starts the server again after [`Server::stop`], on the same state.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        self.spawn();
    }

    /// The names of the sealed blobs under `prefix` in the `SECRETS`
    /// namespace, read out of band through [`Server::wrangler_cli`] (only
    /// while no request is in flight): to find a blob to break on purpose,
    /// and to see blobs no API shows (orphans, replaced secrets).
    pub fn blob_keys(&self, prefix: &str) -> alloc::collections::BTreeSet<String> {
        let listed = self.wrangler_cli(&[
            "kv",
            "key",
            "list",
            "--binding",
            "SECRETS",
            "--prefix",
            prefix,
        ]);
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&listed).expect("kv key list output");
        listed
            .iter()
            .map(|key| key["name"].as_str().expect("key name").to_string())
            .collect()
    }

    /// Runs a wrangler CLI command (`d1 execute`, `kv key put`, ...) against
    /// this server's config and local state, returning its stdout.
    ///
    /// For fault injection (tampered or missing storage, which no API can
    /// make) and for what no API shows (blobs no record names). Tests never
    /// set up state with it: state is made through the API, so the test
    /// drives the real path.
    ///
    /// `--local --persist-to <state> --config <config>` are appended.
    pub fn wrangler_cli(&self, args: &[&str]) -> String {
        let output = wrangler(&self.dir)
            .args(args)
            .arg("--local")
            .arg("--persist-to")
            .arg(self.state_dir())
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .expect("run wrangler");
        assert!(
            output.status.success(),
            "wrangler {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs SQL against the local D1 database and returns the rows as JSON.
    pub fn d1(&self, sql: &str) -> serde_json::Value {
        let out = self.wrangler_cli(&["d1", "execute", "DB", "--json", "--command", sql]);
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("wrangler --json output");
        parsed[0]["results"].clone()
    }

    /// Stops the server, signalling its process group; `kill` skips the
    /// TERM grace (used by crash tests).
    pub fn stop_with(&mut self, kill: bool) {
        if let Some(child) = self.child.take() {
            stop_group(child, kill);
        }
    }

    /// Stops the server gracefully.
    pub fn stop(&mut self) {
        self.stop_with(false);
    }

    /// Replaces the overridden variables (defaults still apply) and
    /// restarts on the same state, as an operator changing secrets would.
    pub fn restart_with(&mut self, vars: &[(&str, &str)]) {
        self.stop();
        self.config = write_config(&self.dir, &merge_vars(vars), self.faults);
        self.any_answer_is_ready = false;
        self.spawn();
    }

    /// Starts the server again on the same state (and a new port).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops the server and starts it again on the same state with a config
    /// written as [`Server::restart_with`] does and then altered by `edit`
    /// (a `toml::Table`: bindings, vars, ...). Fault tests use it to break a
    /// binding on purpose, e.g. rename `d1_databases[0].binding`.
    ///
    /// Since such a server may answer `/healthz` with an error, any answer
    /// from the Worker itself counts as ready. [`Server::restart`] keeps the
    /// altered config; [`Server::restart_with`] writes an unaltered one.
    /// `d1` and `wrangler_cli` use the altered config too, so run them only
    /// while it still has the bindings they name. A variable the edit puts
    /// in `[vars]` (an object var, say) is taken out of `.dev.vars`, whose
    /// values would override it.
    pub fn restart_with_config(
        &mut self,
        vars: &[(&str, &str)],
        edit: impl FnOnce(&mut toml::Table),
    ) {
        self.stop();
        let config = write_config(&self.dir, &merge_vars(vars), self.faults);
        let text = fs::read_to_string(&config).expect("read generated config");
        let mut table: toml::Table = text.parse().expect("generated config parses");
        edit(&mut table);
        fs::write(
            &config,
            toml::to_string(&table).expect("serialize altered config"),
        )
        .expect("write altered config");
        if let Some(toml::Value::Table(in_toml)) = table.get("vars") {
            let dev_vars = self.dir.join(".dev.vars");
            let kept: String = fs::read_to_string(&dev_vars)
                .expect("read .dev.vars")
                .lines()
                .filter(|line| {
                    line.split_once('=')
                        .is_none_or(|(name, _)| !in_toml.contains_key(name))
                })
                .map(|line| format!("{line}\n"))
                .collect();
            fs::write(&dev_vars, kept).expect("write .dev.vars");
        }
        self.config = config;
        self.any_answer_is_ready = true;
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Copies the directory tree `from` into `to` (created as needed).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the target directory");
    for entry in fs::read_dir(from).expect("read the source directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// The Worker's JSON log lines in `log` (wrangler's own lines skipped).
fn json_lines(log: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    log.lines()
        .filter_map(|line| line.find('{').map(|at| &line[at..]))
        .filter_map(|json| serde_json::from_str(json).ok())
}

/// A per-request line: it has a `request_id` and a `status` (the Worker's
/// other lines, such as an auth refusal's, have no `status`).
fn is_request_line(entry: &serde_json::Value) -> bool {
    entry["request_id"].is_string() && entry.get("status").is_some()
}

fn log_has_request_line(log: &str, request_id: &str) -> bool {
    json_lines(log).any(|entry| is_request_line(&entry) && entry["request_id"] == request_id)
}

fn count_request_lines(log: &str) -> usize {
    json_lines(log).filter(is_request_line).count()
}

fn merge_vars(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = default_vars();
    for (key, value) in vars {
        all.retain(|(k, _)| k != key);
        all.push(((*key).into(), (*value).into()));
    }
    all
}

fn wrangler(dir: &Path) -> Command {
    let mut command = Command::new(root().join("node_modules/.bin/wrangler"));
    command
        .current_dir(dir)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .env_remove("CLOUDFLARE_API_TOKEN");
    command
}

/// Writes a copy of the root `wrangler.toml` without its `[build]` step (the
/// worker is built once, before any server starts, so servers never race to
/// rebuild it) and with absolute paths, plus the `.dev.vars` beside it.
/// With `faults`, `main` is the test-only build's (`worker/build-faults`).
fn write_config(dir: &Path, vars: &[(String, String)], faults: bool) -> PathBuf {
    let root = root();
    let text = fs::read_to_string(root.join("wrangler.toml")).expect("read wrangler.toml");
    let mut config: toml::Table = text.parse().expect("wrangler.toml parses");
    config.remove("build");
    // `make bench` measures the API Worker alone: under `wrangler dev`, a
    // Worker with static assets gets every request through a local router
    // worker first (on Cloudflare the asset check is part of the edge's own
    // routing), which would be measured as the Worker's cost.
    if std::env::var_os("COFFER_SERVE_WITHOUT_ASSETS").is_some() {
        config.remove("assets");
    }
    let main = config
        .get("main")
        .and_then(toml::Value::as_str)
        .expect("wrangler.toml has main");
    let main = if faults {
        root.join(main.replacen("worker/build/", "worker/build-faults/", 1))
    } else {
        match other_build() {
            Some(dir) => dir.join("index.js"),
            None => root.join(main),
        }
    };
    let main = main.display().to_string();
    config.insert("main".into(), main.into());
    if let Some(toml::Value::Table(assets)) = config.get_mut("assets") {
        if let Some(dir) = assets.get("directory").and_then(toml::Value::as_str) {
            let dir = root.join(dir).display().to_string();
            assets.insert("directory".into(), dir.into());
        }
    }
    if let Some(toml::Value::Array(databases)) = config.get_mut("d1_databases") {
        for database in databases {
            if let Some(table) = database.as_table_mut() {
                let dir = table
                    .get("migrations_dir")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("migrations");
                // `COFFER_MIGRATIONS_DIR`: an earlier build's migrations,
                // to write state as that build did (see key_hierarchy.rs).
                let dir = match std::env::var_os("COFFER_MIGRATIONS_DIR") {
                    Some(other) if !other.is_empty() => PathBuf::from(other).display().to_string(),
                    _ => root.join(dir).display().to_string(),
                };
                table.insert("migrations_dir".into(), dir.into());
            }
        }
    }
    let path = dir.join("wrangler.toml");
    fs::write(&path, toml::to_string(&config).expect("serialize config")).expect("write config");

    let mut dev_vars = fs::File::create(dir.join(".dev.vars")).expect("create .dev.vars");
    for (key, value) in vars {
        // The .dev.vars format is dotenv: single quotes keep a value literal
        // (JSON included); double-quoted values keep `\"` escapes as they are.
        let quoted = if value.contains('\'') || value.contains('\n') {
            serde_json::to_string(value).expect("quote value")
        } else {
            format!("'{value}'")
        };
        writeln!(dev_vars, "{key}={quoted}").expect("write .dev.vars");
    }
    path
}

/// `COFFER_WORKER_BUILD`: a built Worker's directory (as `worker/build`, e.g.
/// a copy of an older build) that servers started from now on run instead
/// of `worker/build`, so `bench-realms` can alternate two builds in one run.
fn other_build() -> Option<PathBuf> {
    std::env::var_os("COFFER_WORKER_BUILD")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// The directory of the built Worker (`worker/build`), or of its test-only
/// fault build (`worker/build-faults`), building it first if needed.
pub fn built_worker(faults: bool) -> PathBuf {
    build_once(faults);
    root()
        .join("worker")
        .join(if faults { "build-faults" } else { "build" })
}

/// Builds the worker (or its test-only fault build) once per test binary
/// (`make build` serializes concurrent builds), unless the caller (the
/// Makefile) already built both.
fn build_once(faults: bool) {
    static BUILT: OnceLock<()> = OnceLock::new();
    static BUILT_FAULTS: OnceLock<()> = OnceLock::new();
    let (once, target) = if faults {
        (&BUILT_FAULTS, "build-faults")
    } else {
        (&BUILT, "build")
    };
    once.get_or_init(|| {
        if std::env::var_os("COFFER_SKIP_BUILD").is_some() {
            return;
        }
        // `make build` and `make build-faults` serialize with `flock` themselves.
        let status = Command::new("make")
            .args(["-s", target])
            .current_dir(root())
            .status()
            .expect("run make");
        assert!(status.success(), "make {target} failed");
    });
}

/// `COFFER_WRANGLER_LOG_LEVEL=warn` quiets wrangler for benchmarks: at the
/// default level every request sends a log line to Node.
fn log_level_args() -> Vec<String> {
    match std::env::var("COFFER_WRANGLER_LOG_LEVEL") {
        Ok(level) if !level.is_empty() => vec!["--log-level".into(), level],
        _ => Vec::new(),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free port")
}

fn spawn_in_own_group(command: &mut Command) -> Child {
    use std::os::unix::process::CommandExt as _;
    command
        .process_group(0)
        .spawn()
        .expect("start wrangler dev")
}

/// A shell that outlives this process just long enough to stop the group.
fn start_watchdog(pgid: i32) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         kill -TERM -- -{pgid} 2>/dev/null; sleep 3; kill -KILL -- -{pgid} 2>/dev/null; exit 0"
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    use std::os::unix::process::CommandExt as _;
    let _ = command.process_group(0).spawn();
}

fn signal_group(pgid: i32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

extern "C" fn stop_all_groups() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for &pgid in &groups {
        signal_group(pgid, "-TERM");
    }
    if !groups.is_empty() {
        thread::sleep(Duration::from_millis(500));
    }
    for &pgid in &groups {
        signal_group(pgid, "-KILL");
    }
    if let Some(server) = SHARED.get() {
        let _ = fs::remove_dir_all(&server.dir);
    }
}

fn register_atexit() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        #[allow(unsafe_code)]
        // SAFETY: `atexit` with a plain `extern "C"` function that touches
        // only statics which outlive `main`.
        unsafe {
            libc::atexit(stop_all_groups);
        }
    });
}

/// A process started in a group of its own that is stopped with the test
/// process whatever way it ends (`Drop`, `atexit`, the watchdog), as
/// `wrangler dev` is. For servers other than Coffer's (`make bench PEER=`).
pub struct Group {
    child: Option<Child>,
}

impl Group {
    /// Starts `command` in a process group of its own, watched.
    pub fn spawn(command: &mut Command) -> Group {
        let child = spawn_in_own_group(command);
        let pgid = i32::try_from(child.id()).expect("pid fits in i32");
        GROUPS.lock().expect("groups lock").push(pgid);
        register_atexit();
        start_watchdog(pgid);
        Group { child: Some(child) }
    }

    /// Whether the group's leader has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_group(child, false);
        }
    }
}

/// Stops `child`'s process group: TERM with a 5 s grace (unless `kill`),
/// then KILL for whatever is left (workerd), and forgets the group.
fn stop_group(mut child: Child, kill: bool) {
    let pgid = i32::try_from(child.id()).expect("pid fits in i32");
    if !kill {
        signal_group(pgid, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
    }
    signal_group(pgid, "-KILL");
    let _ = child.wait();
    GROUPS.lock().expect("groups lock").retain(|g| *g != pgid);
}

/// A free TCP port on 127.0.0.1 (released before it is returned).
pub fn unused_port() -> u16 {
    free_port()
}
