//! Several engram runs into one database (`--shard I/N`, or one run per OpenAI project),
//! coordinated through PostgreSQL itself: advisory locks and engram's own `engram_runs` rows.
//!
//! - A run is *live* while its session holds the advisory lock `(RUN_NS, lock_key)`: PostgreSQL
//!   releases it the moment the process dies or its connection drops, so nothing has to time
//!   out. Its `engram_runs` row says who it is (shard, host, pid) and whether it is loading.
//! - Schema creation and engram's migrations run under `SCHEMA`, once: a run re-reads the
//!   catalog after taking it.
//! - The HNSW index decision (drop, join a live drop, rebuild) is taken under `INDEX`, held
//!   for the whole rebuild; the last live loader to finish rebuilds, the others say it is left
//!   to it.
//! - Every batch transaction takes `WRITES` first (released at commit): batches of different
//!   runs never interleave, so the read-modify-write of a scope's skills registry and of the
//!   ledger never loses an update, and upserts of shared keys cannot deadlock.

use sqlx::{PgConnection, Row};

type Sql = sqlx::Error;

/// The first key of engram's advisory locks ("engr" in ASCII), the second names the lock.
const NS: i32 = 0x656e_6772;
/// The first key of a run's liveness lock; the second is the run's `lock_key`.
const RUN_NS: i32 = NS + 1;
pub const SCHEMA: i32 = 1;
pub const INDEX: i32 = 2;
pub const WRITES: i32 = 3;

/// Who this run is, for `engram_runs` and `engram status`.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub shard: Option<String>,
    pub host: String,
    pub pid: u32,
    /// Threads the run was given.
    pub threads_listed: Option<u64>,
}

impl Identity {
    pub fn of_this_process(shard: Option<String>, threads_listed: Option<u64>) -> Identity {
        Identity { shard, host: crate::sink::host_name(), pid: std::process::id(), threads_listed }
    }
}

/// A positive 31-bit key for a run id (FNV-1a), so pg_locks shows it as it is stored.
pub fn lock_key(run_id: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in run_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff) as i32
}

pub async fn lock(conn: &mut PgConnection, which: i32) -> Result<(), Sql> {
    sqlx::query("SELECT pg_advisory_lock($1, $2)").bind(NS).bind(which).execute(conn).await.map(|_| ())
}

pub async fn unlock(conn: &mut PgConnection, which: i32) -> Result<(), Sql> {
    sqlx::query("SELECT pg_advisory_unlock($1, $2)").bind(NS).bind(which).execute(conn).await.map(|_| ())
}

/// Inside a transaction: waits for every other run's batch to commit, holds until this commits.
pub async fn lock_writes(conn: &mut PgConnection) -> Result<(), Sql> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)").bind(NS).bind(WRITES).execute(conn).await.map(|_| ())
}

/// SQL true when the run of row `r` (a `engram_runs` alias) is alive: some session of this
/// database holds its liveness lock. Rows of releases before 0004 have no key: never live.
const LIVE: &str = "(r.lock_key IS NOT NULL AND EXISTS (SELECT 1 FROM pg_locks l \
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
       AND l.classid = 1701734259::bigint::oid AND l.objid = r.lock_key::bigint::oid))";

/// The runs, other than $1, that stopped unfinished (killed, interrupted or failed; not running
/// now and not completed by a later run) and whose work a run of shard $2 covers: its own
/// shard's, or every shard's for a run without one ($2 NULL).
fn stopped_of_shard() -> String {
    format!("r.finished_at IS NULL AND r.completed_by IS NULL AND r.run_id <> $1 AND ($2::text IS NULL OR r.shard = $2) AND NOT {LIVE}")
}

/// Records the run (if its row is new) and takes its liveness lock for the whole session.
pub async fn register(conn: &mut PgConnection, run_id: &str, who: &Identity) -> Result<(), Sql> {
    sqlx::query(
        "INSERT INTO engram_runs (run_id, engram_version, shard, host, pid, lock_key, threads_listed, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, now()) \
         ON CONFLICT (run_id) DO UPDATE SET shard = EXCLUDED.shard, host = EXCLUDED.host, pid = EXCLUDED.pid, \
           lock_key = EXCLUDED.lock_key, threads_listed = EXCLUDED.threads_listed, heartbeat_at = now()",
    )
    .bind(run_id)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(&who.shard)
    .bind(&who.host)
    .bind(who.pid as i32)
    .bind(lock_key(run_id))
    .bind(who.threads_listed.map(|n| n as i64))
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_advisory_lock($1, $2)").bind(RUN_NS).bind(lock_key(run_id)).execute(conn).await.map(|_| ())
}

pub async fn set_loading(conn: &mut PgConnection, run_id: &str, loading: bool) -> Result<(), Sql> {
    sqlx::query("UPDATE engram_runs SET loading = $2, heartbeat_at = now() WHERE run_id = $1")
        .bind(run_id)
        .bind(loading)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Other live runs that are loading into the unindexed table (ids, with their shard).
pub async fn live_loaders(conn: &mut PgConnection, run_id: &str) -> Result<Vec<(String, Option<String>)>, Sql> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT r.run_id, r.shard FROM engram_runs r WHERE r.loading AND r.run_id <> $1 AND {LIVE} ORDER BY r.started_at"
    )))
    .bind(run_id)
    .fetch_all(conn)
    .await
}

/// The latest earlier run of this shard (any, for a run without one) that stopped unfinished
/// and is not running now: what this run resumes.
pub async fn unfinished_run(
    conn: &mut PgConnection,
    run_id: &str,
    shard: Option<&str>,
) -> Result<Option<(String, i64, i64, Option<String>)>, Sql> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT r.run_id, r.batches, r.records, r.last_thread FROM engram_runs r WHERE {} \
         ORDER BY r.started_at DESC LIMIT 1",
        stopped_of_shard()
    )))
    .bind(run_id)
    .bind(shard)
    .fetch_optional(conn)
    .await
}

/// Marks the earlier stopped runs this run's work covers (its shard's, or all for a run
/// without one) as completed by it; runs still going are left alone.
pub async fn complete_earlier_runs(conn: &mut PgConnection, run_id: &str, shard: Option<&str>) -> Result<(), Sql> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE engram_runs r SET completed_by = $1 WHERE {}",
        stopped_of_shard()
    )))
    .bind(run_id)
    .bind(shard)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records that the run failed (it stays unfinished, so its rerun resumes it).
pub async fn mark_failed(conn: &mut PgConnection, run_id: &str, error: &str) -> Result<(), Sql> {
    sqlx::query("UPDATE engram_runs SET failed_at = now(), error = $2, loading = false WHERE run_id = $1")
        .bind(run_id)
        .bind(error)
        .execute(conn)
        .await
        .map(|_| ())
}

/// One `engram_runs` row as `engram status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub shard: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i32>,
    pub started_at: String,
    pub heartbeat_at: Option<String>,
    pub finished_at: Option<String>,
    pub failed_at: Option<String>,
    pub error: Option<String>,
    pub completed_by: Option<String>,
    pub batches: i64,
    pub records: i64,
    pub threads_listed: Option<i64>,
    pub live: bool,
    /// `state()`, for JSON output.
    pub state: &'static str,
}

impl RunRow {
    /// A row for tests: `shard`, and which of live / finished / completed / failed it is.
    #[cfg(test)]
    pub(crate) fn example(shard: Option<&str>, live: bool, finished: bool, completed: bool, failed: bool) -> RunRow {
        let at = |b: bool| b.then(|| "2026-12-07T00:00:00Z".to_string());
        RunRow {
            run_id: format!("r-{}", shard.unwrap_or("all")),
            shard: shard.map(str::to_string),
            host: None,
            pid: None,
            started_at: String::new(),
            heartbeat_at: None,
            finished_at: at(finished),
            failed_at: at(failed),
            error: None,
            completed_by: completed.then(|| "r2".to_string()),
            batches: 0,
            records: 0,
            threads_listed: None,
            live,
            state: "",
        }
    }

    /// running, done, failed, stopped (killed or interrupted), or completed (by a later run).
    pub fn state(&self) -> &'static str {
        match (self.live, &self.finished_at, &self.completed_by, &self.failed_at) {
            (true, _, _, _) => "running",
            (_, Some(_), _, _) => "done",
            (_, _, Some(_), _) => "completed",
            (_, _, _, Some(_)) => "failed",
            _ => "stopped",
        }
    }
}

/// Every run, oldest first (`engram status`). Needs the 0004 columns.
pub async fn runs(conn: &mut PgConnection) -> Result<Vec<RunRow>, Sql> {
    let ts = |c: &str| format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT r.run_id, r.shard, r.host, r.pid, {} AS started_at, {} AS heartbeat_at, {} AS finished_at, {} AS failed_at, \
           r.error, r.completed_by, r.batches, r.records, r.threads_listed, {LIVE} AS live \
         FROM engram_runs r ORDER BY r.started_at, r.run_id",
        ts("r.started_at"),
        ts("r.heartbeat_at"),
        ts("r.finished_at"),
        ts("r.failed_at"),
    )))
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(RunRow {
                run_id: r.try_get(0)?,
                shard: r.try_get(1)?,
                host: r.try_get(2)?,
                pid: r.try_get(3)?,
                started_at: r.try_get(4)?,
                heartbeat_at: r.try_get(5)?,
                finished_at: r.try_get(6)?,
                failed_at: r.try_get(7)?,
                error: r.try_get(8)?,
                completed_by: r.try_get(9)?,
                batches: r.try_get(10)?,
                records: r.try_get(11)?,
                threads_listed: r.try_get(12)?,
                live: r.try_get(13)?,
                state: "",
            })
            .map(|mut row: RunRow| {
                row.state = row.state();
                row
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lock_namespace_is_the_constant_the_liveness_sql_names() {
        assert_eq!(RUN_NS, 1_701_734_259, "LIVE names classid {RUN_NS} literally");
        assert!(LIVE.contains(&format!("{RUN_NS}::bigint::oid")));
    }

    #[test]
    fn lock_keys_are_positive_and_differ_between_runs() {
        let a = lock_key("engram-1765000000-001-4242");
        let b = lock_key("engram-1765000000-001-4243");
        assert!(a >= 0 && b >= 0);
        assert_ne!(a, b);
        assert_eq!(a, lock_key("engram-1765000000-001-4242"));
    }

    #[test]
    fn states() {
        assert_eq!(RunRow::example(None, true, false, false, false).state(), "running");
        assert_eq!(RunRow::example(None, false, true, false, false).state(), "done");
        assert_eq!(RunRow::example(None, false, false, true, true).state(), "completed");
        assert_eq!(RunRow::example(None, false, false, false, true).state(), "failed");
        assert_eq!(RunRow::example(None, false, false, false, false).state(), "stopped");
    }
}
