//! `make capacity`: one D1 database under a workload, with and without the
//! audit archive (the model and its measured sizes: `src/capacity.rs`).
//!
//! ```sh
//! make capacity TENANTS=1000 RECORDS=50 READS=100 RETENTION=30
//! cargo run -q -p coffer-tests --bin capacity -- --tenants 1000 \
//!   --records-per-tenant 50 --reads-per-second 100 --retention-days 30 [--days 365] \
//!   [--archive-events-per-run 100000]
//! ```
use std::process::ExitCode;

use coffer_tests::capacity::{limits, Model, Workload};

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok((workload, days, events_per_run)) => {
            let mut model = Model::new(workload);
            if let Some(events) = events_per_run {
                model.sweep.events_per_run = events;
            }
            print!("{}", report(&model, days));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("capacity: {message}");
            eprintln!(
                "usage: capacity --tenants N --records-per-tenant N --reads-per-second N \
                 --retention-days N [--days N] [--archive-events-per-run N]"
            );
            ExitCode::from(2)
        }
    }
}

/// Options: the workload, days to show, and the sweep's events per run.
type Options = (Workload, u32, Option<f64>);

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut workload = Workload {
        tenants: 100.0,
        records_per_tenant: 20.0,
        reads_per_second: 10.0,
        retention_days: 30.0,
    };
    let mut days = 365;
    let mut events_per_run = None;
    let mut args = args;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or(format!("{flag} takes a non-negative number, not {value:?}"))
        };
        match flag.as_str() {
            "--tenants" => workload.tenants = number()?,
            "--records-per-tenant" => workload.records_per_tenant = number()?,
            "--reads-per-second" => workload.reads_per_second = number()?,
            "--retention-days" => workload.retention_days = number()?,
            "--days" => days = number()?.clamp(1.0, 3650.0) as u32,
            "--archive-events-per-run" => events_per_run = Some(number()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((workload, days, events_per_run))
}

fn gb(bytes: f64) -> String {
    format!("{:.2} GB", bytes / 1e9)
}

fn day(day: Option<f64>) -> String {
    match day {
        Some(d) => format!("day {d:.1}"),
        None => "never".into(),
    }
}

fn report(model: &Model, days: u32) -> String {
    let w = &model.workload;
    let s = &model.sizes;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "workload: {} tenants x {} records = {} records; {} decrypted reads/s = {:.0} audit events/day; retention {} days",
        w.tenants, w.records_per_tenant, w.records(), w.reads_per_second, w.events_per_day(), w.retention_days
    ));
    line(format!(
        "measured: D1 {:.0} B/record, {:.0} B/audit event, base {:.0} B; KV {:.0} B/blob; R2 {:.0} B/archived event",
        s.d1_per_record, s.d1_per_event, s.d1_base, s.kv_per_blob, s.r2_per_event
    ));
    line(format!(
        "archive sweep: at most {:.0} events per run, every {} min = {:.0} events/day ({})",
        model.sweep.events_per_run,
        model.sweep.interval_minutes,
        model.sweep.events_per_day(),
        if model.archive_keeps_up() {
            "keeps up"
        } else {
            "does NOT keep up: raise the per-run bound or run it more often"
        }
    ));
    line(String::new());
    line(format!(
        "{:>6}  {:>16}  {:>16}  {:>14}",
        "day", "D1, no archive", "D1, archive", "R2 archive"
    ));
    let mut marks: Vec<u32> = vec![
        0, 1, 2, 3, 7, 14, 30, 31, 45, 60, 90, 180, 365, 730, 1825, 3650,
    ];
    marks.retain(|d| *d <= days);
    if marks.last() != Some(&days) {
        marks.push(days);
    }
    for d in marks {
        let d = f64::from(d);
        let flag = |bytes: f64| {
            if bytes >= limits::D1_DATABASE_BYTES {
                format!("{} !", gb(bytes))
            } else {
                gb(bytes)
            }
        };
        line(format!(
            "{:>6}  {:>16}  {:>16}  {:>14}",
            d,
            flag(model.d1_bytes(d, false)),
            flag(model.d1_bytes(d, true)),
            gb(model.r2_bytes(d, true))
        ));
    }
    line("  (! = over D1's 10 GB per database)".into());
    line(String::new());
    line(format!(
        "D1 10 GB per database reached: without archive {}, with archive {}",
        day(model.day_d1_reaches(limits::D1_DATABASE_BYTES, false)),
        day(model.day_d1_reaches(limits::D1_DATABASE_BYTES, true)),
    ));
    match model.databases_needed(limits::D1_DATABASE_BYTES, 0.8) {
        Some(n) => line(format!(
            "D1 databases needed with the archive, each under 80% of 10 GB: {n} ({}; the account holds {:.0} full ones in 1 TB)",
            if n == 1 { "one is enough" } else { "a tenant directory over several, docs/capacity.md" },
            limits::D1_ACCOUNT_BYTES / limits::D1_DATABASE_BYTES
        )),
        None => line("D1 databases needed with the archive: no number, the archive does not keep up".into()),
    }
    match model.d1_steady_bytes() {
        Some(bytes) => line(format!(
            "with archive D1 levels off at {} ({:.0}% of 10 GB)",
            gb(bytes),
            bytes / limits::D1_DATABASE_BYTES * 100.0
        )),
        None => line("with archive D1 never levels off: the sweep's bounds are too low".into()),
    }
    match model.max_retention_days(limits::D1_DATABASE_BYTES) {
        Some(r) => line(format!(
            "longest retention that fits 10 GB at this rate: {r:.1} days"
        )),
        None => line("the records alone do not fit 10 GB".into()),
    }
    line(format!(
        "highest decrypted-read rate one database holds with {} days retention: {:.1} reads/s",
        w.retention_days,
        model.max_reads_per_second(limits::D1_DATABASE_BYTES)
    ));
    line(format!(
        "D1 single thread busy at {} ms/statement: {:.0}% (warm reads, 1 statement) to {:.0}% (cold, 2)",
        limits::D1_QUERY_MS,
        model.d1_busy(1.0, limits::D1_QUERY_MS) * 100.0,
        model.d1_busy(2.0, limits::D1_QUERY_MS) * 100.0
    ));
    line(format!("KV sealed blobs: {}", gb(model.kv_bytes())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> impl Iterator<Item = String> + '_ {
        text.split_whitespace().map(str::to_string)
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let (w, days, per_run) = parse(args(
            "--tenants 5 --records-per-tenant 7 --reads-per-second 2.5 --retention-days 3 --days 10 \
             --archive-events-per-run 500",
        ))
        .expect("parses");
        assert_eq!(
            (
                w.tenants,
                w.records_per_tenant,
                w.reads_per_second,
                w.retention_days,
                days
            ),
            (5.0, 7.0, 2.5, 3.0, 10)
        );
        assert_eq!(per_run, Some(500.0));
        assert!(parse(args("--tenants")).is_err());
        assert!(parse(args("--tenants -1")).is_err());
        assert!(parse(args("--tenants x")).is_err());
        assert!(parse(args("--nope 1")).is_err());
    }

    #[test]
    fn the_report_names_both_days() {
        let (w, _, _) = parse(args("--reads-per-second 100 --retention-days 30")).expect("parses");
        let text = report(&Model::new(w), 30);
        assert!(
            text.contains("D1 10 GB per database reached: without archive day"),
            "{text}"
        );
        assert!(text.contains("longest retention"), "{text}");
    }
}
