//! CPU time of the `workerd` process serving a port, from `/proc`: what a
//! request costs the runtime (the Worker and the local D1, KV and R2 it
//! simulates), far steadier on a shared machine than requests per second.

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
