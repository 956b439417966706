//! The capacity model behind `make capacity` and `docs/capacity.md`: how
//! big one D1 database grows under a workload, with and without the audit
//! archive, and the day each platform limit is reached.
//!
//! Pure arithmetic, unit-tested below. The per-item sizes are measured on
//! this code through the real API under `wrangler dev`
//! (`make measure-storage`, `src/bin/measure-storage.rs`); the limits are
//! the platform's published ones, cited in `docs/capacity.md`.

/// Bytes, measured on this code (see `docs/capacity.md` for the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    /// D1 bytes of an empty, migrated database.
    pub d1_base: f64,
    /// D1 bytes per record (row and its three indexes), 1 KiB secret.
    pub d1_per_record: f64,
    /// D1 bytes per audit event (row, `id` uniqueness and two indexes).
    pub d1_per_event: f64,
    /// KV bytes per sealed blob of a 1 KiB secret (value, key, metadata).
    pub kv_per_blob: f64,
    /// R2 bytes per archived event (gzip NDJSON in the API's event shape).
    pub r2_per_event: f64,
}

/// The sizes measured by `make measure-storage` on this code (2026-12-05,
/// 1,000 records and 5,000 decrypted reads; see `docs/capacity.md`):
/// a record is 942 bytes when created and about 345 more once read (the
/// `last_read` column keeps the last reader's audit fields); an event is
/// its row (315) and its three indexes (95 + 94 + 49).
pub const MEASURED: Sizes = Sizes {
    d1_base: 90_112.0,
    d1_per_record: 1_287.0,
    d1_per_event: 553.0,
    kv_per_blob: 1_189.0,
    r2_per_event: 76.0,
};

/// The platform's published limits (Workers Paid), cited in `docs/capacity.md`.
pub mod limits {
    /// D1: maximum database size, 10 GB.
    pub const D1_DATABASE_BYTES: f64 = 10.0e9;
    /// D1: maximum storage per account, 1 TB.
    pub const D1_ACCOUNT_BYTES: f64 = 1.0e12;
    /// D1: a database runs one query at a time; at 1 ms per query that is
    /// about 1,000 queries per second.
    pub const D1_QUERY_MS: f64 = 1.0;
    /// D1: queries per Worker invocation.
    pub const D1_QUERIES_PER_INVOCATION: u32 = 1_000;
}

/// What the archive sweep moves per run (`worker/src/archive.rs`), and how
/// often it runs (the cron in `wrangler.toml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sweep {
    /// Events archived per run at most.
    pub events_per_run: f64,
    /// Minutes between runs.
    pub interval_minutes: f64,
}

/// The Worker's default bounds: 100 objects of at most 1,000 events per
/// run (`COFFER_AUDIT_ARCHIVE_OBJECTS_PER_RUN`), every 15 minutes.
pub const SWEEP: Sweep = Sweep {
    events_per_run: 100_000.0,
    interval_minutes: 15.0,
};

impl Sweep {
    /// Events the sweep can archive per day.
    pub fn events_per_day(&self) -> f64 {
        if self.interval_minutes <= 0.0 {
            return f64::INFINITY;
        }
        self.events_per_run * (24.0 * 60.0 / self.interval_minutes)
    }

    /// The longest an archivable event waits for a run, in days.
    pub fn lag_days(&self) -> f64 {
        self.interval_minutes.max(0.0) / (24.0 * 60.0)
    }
}

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Tenants.
    pub tenants: f64,
    /// Records per tenant.
    pub records_per_tenant: f64,
    /// Decrypted reads per second (each writes one audit event).
    pub reads_per_second: f64,
    /// Audit retention in D1, days (`COFFER_AUDIT_RETENTION_DAYS`).
    pub retention_days: f64,
}

impl Workload {
    /// Records in all.
    pub fn records(&self) -> f64 {
        self.tenants * self.records_per_tenant
    }

    /// Audit events written per day.
    pub fn events_per_day(&self) -> f64 {
        self.reads_per_second * 86_400.0
    }
}

/// The model: sizes, sweep bounds, workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub sizes: Sizes,
    pub sweep: Sweep,
    pub workload: Workload,
}

impl Model {
    /// The measured sizes and the Worker's sweep bounds under `workload`.
    pub fn new(workload: Workload) -> Self {
        Self {
            sizes: MEASURED,
            sweep: SWEEP,
            workload,
        }
    }

    /// D1 bytes that do not grow with time: the schema and the records.
    pub fn d1_fixed_bytes(&self) -> f64 {
        self.sizes.d1_base + self.workload.records() * self.sizes.d1_per_record
    }

    /// The day after which the archive starts removing events: retention
    /// plus the longest wait for a sweep run.
    fn archive_starts(&self) -> f64 {
        self.workload.retention_days.max(0.0) + self.sweep.lag_days()
    }

    /// Events the archive removes per day once it runs: all that age out,
    /// or what its per-run bound allows, whichever is less.
    pub fn archived_per_day(&self) -> f64 {
        self.workload
            .events_per_day()
            .min(self.sweep.events_per_day())
    }

    /// Whether the sweep's bounds keep up with the events that age out.
    pub fn archive_keeps_up(&self) -> bool {
        self.sweep.events_per_day() >= self.workload.events_per_day()
    }

    /// Audit events held in D1 on `day` (from an empty log on day 0).
    pub fn events_in_d1(&self, day: f64, archive: bool) -> f64 {
        let day = day.max(0.0);
        let written = self.workload.events_per_day() * day;
        if !archive {
            return written;
        }
        let archiving_days = (day - self.archive_starts()).max(0.0);
        written - self.archived_per_day() * archiving_days
    }

    /// D1 bytes on `day`.
    pub fn d1_bytes(&self, day: f64, archive: bool) -> f64 {
        self.d1_fixed_bytes() + self.events_in_d1(day, archive) * self.sizes.d1_per_event
    }

    /// R2 bytes of the archive on `day` (zero without the archive).
    pub fn r2_bytes(&self, day: f64, archive: bool) -> f64 {
        if !archive {
            return 0.0;
        }
        let archived = self.workload.events_per_day() * day.max(0.0) - self.events_in_d1(day, true);
        archived * self.sizes.r2_per_event
    }

    /// KV bytes of the sealed blobs (one current secret version per record).
    pub fn kv_bytes(&self) -> f64 {
        self.workload.records() * self.sizes.kv_per_blob
    }

    /// The first day D1 holds `limit` bytes, `None` when it never does.
    /// The size grows linearly until the archive starts, then with the
    /// events the archive cannot keep up with.
    pub fn day_d1_reaches(&self, limit: f64, archive: bool) -> Option<f64> {
        let fixed = self.d1_fixed_bytes();
        if fixed >= limit {
            return Some(0.0);
        }
        let growth = self.workload.events_per_day() * self.sizes.d1_per_event;
        if growth <= 0.0 {
            return None;
        }
        let unarchived = (limit - fixed) / growth;
        let starts = self.archive_starts();
        if !archive || unarchived <= starts {
            return Some(unarchived);
        }
        let residual =
            (self.workload.events_per_day() - self.archived_per_day()) * self.sizes.d1_per_event;
        if residual <= 0.0 {
            return None;
        }
        Some(starts + (limit - fixed - growth * starts) / residual)
    }

    /// D1 bytes once the archive holds the log steady (retention's worth of
    /// events plus one sweep interval), `None` when it cannot keep up.
    pub fn d1_steady_bytes(&self) -> Option<f64> {
        self.archive_keeps_up().then(|| {
            self.d1_fixed_bytes()
                + self.workload.events_per_day() * self.archive_starts() * self.sizes.d1_per_event
        })
    }

    /// D1 databases the workload needs, each kept under `fill` of `limit`,
    /// with tenants spread evenly and the archive on; `None` when the
    /// archive cannot keep up (then no number of databases holds it for
    /// long).
    pub fn databases_needed(&self, limit: f64, fill: f64) -> Option<u64> {
        let steady = self.d1_steady_bytes()?;
        let room = limit * fill - self.sizes.d1_base;
        if room <= 0.0 {
            return None;
        }
        Some(((steady - self.sizes.d1_base) / room).ceil().max(1.0) as u64)
    }

    /// The longest retention (days) that keeps D1 under `limit` at this
    /// read rate with the records it holds; `None` when the records alone
    /// do not fit.
    pub fn max_retention_days(&self, limit: f64) -> Option<f64> {
        let room = limit - self.d1_fixed_bytes();
        if room < 0.0 {
            return None;
        }
        let growth = self.workload.events_per_day() * self.sizes.d1_per_event;
        if growth <= 0.0 {
            return Some(f64::INFINITY);
        }
        Some((room / growth - self.sweep.lag_days()).max(0.0))
    }

    /// The highest sustained decrypted-read rate one database holds with
    /// this retention and these records, under `limit`.
    pub fn max_reads_per_second(&self, limit: f64) -> f64 {
        let room = (limit - self.d1_fixed_bytes()).max(0.0);
        let held_days = self.archive_starts();
        if held_days <= 0.0 {
            return f64::INFINITY;
        }
        room / (self.sizes.d1_per_event * held_days * 86_400.0)
    }

    /// Share of one database's single thread the decrypted reads keep busy
    /// (each is one D1 statement once the isolate is warm, two cold), at
    /// `query_ms` per statement.
    pub fn d1_busy(&self, statements_per_read: f64, query_ms: f64) -> f64 {
        self.workload.reads_per_second * statements_per_read * query_ms / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(reads_per_second: f64, retention_days: f64) -> Model {
        Model {
            sizes: Sizes {
                d1_base: 1_000.0,
                d1_per_record: 1_000.0,
                d1_per_event: 500.0,
                kv_per_blob: 1_200.0,
                r2_per_event: 100.0,
            },
            sweep: Sweep {
                events_per_run: 1_000.0,
                // One run a day keeps the numbers round: lag one day.
                interval_minutes: 24.0 * 60.0,
            },
            workload: Workload {
                tenants: 10.0,
                records_per_tenant: 100.0,
                reads_per_second,
                retention_days,
            },
        }
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    #[test]
    fn fixed_bytes_are_schema_plus_records() {
        close(
            model(0.0, 30.0).d1_fixed_bytes(),
            1_000.0 + 1_000.0 * 1_000.0,
        );
        close(model(0.0, 30.0).kv_bytes(), 1_000.0 * 1_200.0);
    }

    #[test]
    fn without_the_archive_events_accumulate() {
        let m = model(1.0, 30.0);
        close(m.workload.events_per_day(), 86_400.0);
        close(m.events_in_d1(10.0, false), 864_000.0);
        close(m.d1_bytes(10.0, false), 1_001_000.0 + 864_000.0 * 500.0);
        close(m.r2_bytes(10.0, false), 0.0);
    }

    #[test]
    fn the_archive_holds_the_log_at_retention_plus_one_interval() {
        // 0.01 reads/s = 864 events a day, under the 1,000 a day the sweep moves.
        let m = model(0.01, 30.0);
        assert!(m.archive_keeps_up());
        // Until day 31 (30 days retention + a one-day wait) nothing moves.
        close(m.events_in_d1(31.0, true), 864.0 * 31.0);
        // Then it stays there.
        close(m.events_in_d1(100.0, true), 864.0 * 31.0);
        close(m.r2_bytes(100.0, true), 864.0 * 69.0 * 100.0);
        close(
            m.d1_steady_bytes().expect("keeps up"),
            1_001_000.0 + 864.0 * 31.0 * 500.0,
        );
    }

    #[test]
    fn an_archive_that_cannot_keep_up_only_slows_growth() {
        // 864 events a day per 0.01 reads/s: 0.02 is 1,728 a day, 1,000 archived.
        let m = model(0.02, 1.0);
        assert!(!m.archive_keeps_up());
        assert_eq!(m.d1_steady_bytes(), None);
        close(m.events_in_d1(2.0, true), 1_728.0 * 2.0);
        close(m.events_in_d1(12.0, true), 1_728.0 * 12.0 - 1_000.0 * 10.0);
    }

    #[test]
    fn the_day_a_limit_is_reached() {
        let m = model(1.0, 30.0);
        // 86,400 events a day at 500 bytes: 43.2 MB a day above 1,001,000.
        let limit = 1_001_000.0 + 43_200_000.0 * 5.0;
        close(m.day_d1_reaches(limit, false).expect("reached"), 5.0);
        // Retention 30 days: the archive starts after the limit is reached.
        close(m.day_d1_reaches(limit, true).expect("reached"), 5.0);
        // Retention 1 day (archive from day 2), the archive moves 1,000 of
        // 86,400 a day: after day 2 the log grows by 85,400 events a day.
        let short = model(1.0, 1.0);
        let expected = 2.0 + (limit - 1_001_000.0 - 43_200_000.0 * 2.0) / (85_400.0 * 500.0);
        close(
            short.day_d1_reaches(limit, true).expect("reached"),
            expected,
        );
        // An archive that keeps up below the limit never reaches it.
        let slow = model(0.01, 1.0);
        assert_eq!(slow.day_d1_reaches(limit, true), None);
        assert!(slow.day_d1_reaches(limit, false).is_some());
        // No reads: never, unless the records alone are over.
        assert_eq!(model(0.0, 1.0).day_d1_reaches(limit, false), None);
        assert_eq!(model(0.0, 1.0).day_d1_reaches(1.0, false), Some(0.0));
    }

    #[test]
    fn the_longest_retention_and_the_highest_rate_that_fit() {
        let m = model(1.0, 30.0);
        let limit = 1_001_000.0 + 43_200_000.0 * 5.0;
        // Five days of events fit; one day is the sweep's wait.
        close(m.max_retention_days(limit).expect("records fit"), 4.0);
        assert_eq!(m.max_retention_days(1.0), None);
        // Retention 30 days + 1 day wait: 31 days of events must fit.
        close(
            m.max_reads_per_second(limit),
            43_200_000.0 * 5.0 / (500.0 * 31.0 * 86_400.0),
        );
    }

    #[test]
    fn databases_needed_to_hold_the_steady_log() {
        let m = model(0.01, 30.0);
        // Steady: 1,001,000 + 864 * 31 * 500 = 14,393,000 bytes; less the
        // 1,000 base, over 80% of 5 MB less the base each.
        let steady: f64 = 1_001_000.0 + 864.0 * 31.0 * 500.0;
        let expected = ((steady - 1_000.0) / (4_000_000.0 - 1_000.0)).ceil() as u64;
        assert_eq!(m.databases_needed(5_000_000.0, 0.8), Some(expected));
        assert_eq!(expected, 4);
        assert_eq!(m.databases_needed(1e12, 0.8), Some(1));
        assert_eq!(model(0.02, 1.0).databases_needed(1e12, 0.8), None);
    }

    #[test]
    fn the_database_thread_is_busy_per_statement() {
        let m = model(100.0, 30.0);
        close(m.d1_busy(1.0, 1.0), 0.1);
        close(m.d1_busy(2.0, 2.0), 0.4);
    }

    #[test]
    fn the_workers_sweep_bounds() {
        close(SWEEP.events_per_day(), 100_000.0 * 96.0);
        close(SWEEP.lag_days(), 15.0 / 1440.0);
    }
}
