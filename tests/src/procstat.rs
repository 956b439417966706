//! CPU time of the `workerd` processes of one `wrangler dev`, from
//! `/proc`: what a request costs the runtime (the Worker and the local D1,
//! KV and R2 it simulates), far steadier on a shared machine than requests
//! per second. `wrangler dev` runs two: the one listening on the port and
//! the one it forwards to, siblings under the same wrangler process.

/// The workerd process serving `port` (its `--socket-addr=entry=...:<port>`).
pub fn workerd_pid(port: u16) -> Option<u32> {
    let needle = format!("entry=127.0.0.1:{port}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            (cmdline.contains("workerd") && cmdline.contains(&needle)).then_some(pid)
        })
}

/// CPU seconds (user + system, all threads) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) ends with ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 here.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|index| fields.get(*index)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// The workerd process serving `port` and its sibling workerd processes
/// (same parent: the `wrangler dev` that started them).
pub fn workerd_group(port: u16) -> Vec<u32> {
    let Some(serving) = workerd_pid(port) else {
        return Vec::new();
    };
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command name: state, then the parent's pid.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let Some(wrangler) = parent(serving) else {
        return vec![serving];
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![serving];
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (String::from_utf8_lossy(&cmdline).contains("workerd") && parent(pid) == Some(wrangler))
                .then_some(pid)
        })
        .collect()
}

/// CPU seconds the processes `pids` have used so far, together.
pub fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter().map(|pid| cpu_seconds(*pid)).sum()
}
