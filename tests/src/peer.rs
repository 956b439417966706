//! Another Worker, served beside Coffer for `make bench PEER=<dir>`: any
//! wrangler project with a D1 binding `DB`, migrations, and HS256 bearer
//! tokens under `AUTH_HS256_SECRET` (as `shared/peers/ts-worker`).
//!
//! The project is copied (without `node_modules` and local state) into a
//! scratch directory under `target/`, installed with `npm ci` at its own
//! pinned versions, given the test servers' `AUTH_HS256_SECRET` and
//! `COFFER_KEYS`, migrated into a fresh local state, and served by its own
//! `wrangler dev --local --log-level warn`, stopped with its process group.
use core::time::Duration;
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Instant,
};

use crate::{
    fixtures,
    harness::{self, Group},
};

/// A running peer Worker.
pub struct Peer {
    base: String,
    dir: PathBuf,
    group: Option<Group>,
}

impl Peer {
    /// Copies, installs, migrates and serves the project at `project`.
    ///
    /// # Panics
    /// When any step fails: a benchmark with no peer has nothing to compare.
    pub fn start(project: &Path) -> Peer {
        Peer::start_patched(project, |_| {})
    }

    /// As [`Peer::start`], with `patch` run on the copy before anything is
    /// installed (the bench's ideal variant of the peer changes its source).
    ///
    /// # Panics
    /// As [`Peer::start`].
    pub fn start_patched(project: &Path, patch: impl FnOnce(&Path)) -> Peer {
        let dir = harness::root()
            .join("target")
            .join("peer-bench")
            .join(uuid::Uuid::new_v4().simple().to_string());
        copy_project(project, &dir);
        patch(&dir);
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir));
        fs::write(
            dir.join(".dev.vars"),
            format!(
                "AUTH_HS256_SECRET={}\nCOFFER_KEYS={}\n",
                fixtures::HS256_SECRET,
                fixtures::COFFER_KEYS
            ),
        )
        .expect("write the peer's .dev.vars");
        let wrangler = dir.join("node_modules/.bin/wrangler");
        run(wrangler_env(Command::new(&wrangler))
            .args([
                "d1",
                "migrations",
                "apply",
                "DB",
                "--local",
                "--persist-to",
                "state",
            ])
            .current_dir(&dir));
        let port = harness::unused_port();
        let log = fs::File::create(dir.join("wrangler.log")).expect("peer log");
        let mut command = wrangler_env(Command::new(&wrangler));
        command
            .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(harness::unused_port().to_string())
            .args(["--persist-to", "state", "--log-level", "warn"])
            .arg("--show-interactive-dev-session=false")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        let mut group = Group::spawn(&mut command);
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                !group.exited() && Instant::now() < deadline,
                "the peer did not become ready:\n{}",
                fs::read_to_string(dir.join("wrangler.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(200));
        }
        Peer {
            base,
            dir,
            group: Some(group),
        }
    }

    /// An absolute URL on the peer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Stop the server, then remove its copy, packages and state.
        self.group.take();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn wrangler_env(mut command: Command) -> Command {
    command
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .env_remove("CLOUDFLARE_API_TOKEN");
    command
}

fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run a peer setup step");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Copies the project's files, leaving out what `npm ci` and `wrangler`
/// make (`node_modules`, `.wrangler`) and any local secrets (`.dev.vars`).
fn copy_project(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the peer's directory");
    for entry in fs::read_dir(from).expect("read the peer project") {
        let entry = entry.expect("peer project entry");
        let name = entry.file_name();
        if [".wrangler", "node_modules", ".dev.vars", "state"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_project(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a peer file");
        }
    }
}
