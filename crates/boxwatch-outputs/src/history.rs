//! Alert history: every alert also goes to an embedded SQLite database
//! (`boxwatch run --history PATH`) with bounded retention, so `boxwatch alerts`
//! can answer "what happened in this container in the last hour" without
//! grepping alerts.jsonl. The stored JSON is exactly the alerts.jsonl line.
//!
//! [`HistorySink`] is the output: the processor hands each alert's row to a bounded
//! [`Outbox`]; the history's own thread inserts them and commits whenever its queue
//! runs dry (one transaction per burst), so SQLite never runs on the processor
//! thread. [`query`], [`query_lines`], [`render_human`] and [`print`] are the read
//! side: `boxwatch alerts` and the web API call them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boxwatch_model::text::push_escaped;
use boxwatch_rules::Alert;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::{Ctx, Error, Result};
use crate::outbox::{DeliveryStats, Outbox};
use crate::{AlertOut, AlertSubscriber, Sink, SinkStat};

macro_rules! bail {
    ($($t:tt)*) => { return Err(Error::Invalid(format!($($t)*))) };
}

/// Retention runs at most this often unless asked with [`History::apply_retention`].
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    rule TEXT NOT NULL,
    rule_id TEXT,
    priority TEXT NOT NULL,
    container TEXT,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_time_ns ON alerts(time_ns);
CREATE INDEX IF NOT EXISTS alerts_container ON alerts(container);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule);
";

const INSERT: &str = "INSERT INTO alerts (time, time_ns, rule, rule_id, priority, container, json)
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The writer side, owned by the daemon's output thread.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
    /// A transaction is open: inserts since the last [`History::flush`].
    in_tx: bool,
    max_alerts: u64,
    max_age_secs: u64,
    last_retention: Option<Instant>,
}

/// Filters of [`History::query`]; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only alerts at or after this time (unix ns).
    pub since_ns: Option<u64>,
    /// Prefix of the container's full (64-hex) id.
    pub container: Option<String>,
    /// Rule name or rule id, exact.
    pub rule: Option<String>,
    /// Priorities accepted (as alerts spell them: "Warning"); empty: all.
    pub priorities: Vec<String>,
    /// Most rows returned (newest first); 0: no limit.
    pub limit: usize,
}

impl History {
    /// Open or create the database at `path` (WAL, synchronous=NORMAL). `max_alerts`
    /// and `max_age_secs` bound what is kept; 0 turns that bound off.
    pub fn open(path: &Path, max_alerts: u64, max_age_secs: u64) -> Result<History> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .ctx(|| format!("create directory of alert history {}", dir.display()))?;
        }
        let ctx = || format!("open alert history {}", path.display());
        let conn = Connection::open(path).ctx(ctx)?;
        // Never stall the history thread for long on a locked database (a reader's checkpoint).
        conn.busy_timeout(Duration::from_millis(200)).ctx(ctx)?;
        // The first statement that reads the file: a non-database file fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .ctx(|| format!("{} is not a usable SQLite database", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("alert history {}: cannot enable WAL mode (journal_mode={mode})", path.display());
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .and_then(|()| conn.execute_batch(SCHEMA))
            .ctx(|| format!("create schema of alert history {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Alerts name files and commands of every container: not world-readable.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640));
        }
        Ok(History {
            conn,
            path: path.to_path_buf(),
            in_tx: false,
            max_alerts,
            max_age_secs,
            last_retention: None,
        })
    }

    /// Add one alert. Inserts go into a transaction that [`History::flush`] commits,
    /// so a burst costs one fsync-free page write per flush, not one per alert.
    pub fn insert(&mut self, alert: &Alert) -> Result<()> {
        let json = serde_json::to_string(alert).ctx(|| self.err("serialise alert"))?;
        self.insert_row(&Row::new(alert, json))
    }

    /// Add one prepared row (see [`History::insert`]).
    pub fn insert_row(&mut self, r: &Row) -> Result<()> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN").ctx(|| self.err("begin transaction"))?;
            self.in_tx = true;
        }
        let mut st = self.conn.prepare_cached(INSERT).ctx(|| self.err("prepare insert"))?;
        st.execute(params![r.time, to_i64(r.time_ns), r.rule, r.rule_id, r.priority, r.container, r.json])
            .ctx(|| self.err("insert alert"))?;
        Ok(())
    }

    /// Commit pending inserts; apply retention when it last ran a minute ago or more.
    pub fn flush(&mut self) -> Result<()> {
        self.commit()?;
        if self.last_retention.is_none_or(|t| t.elapsed() >= RETENTION_INTERVAL) {
            self.apply_retention()?;
        }
        Ok(())
    }

    /// Commit pending inserts and delete alerts beyond `max_alerts` (oldest first)
    /// and older than `max_age_secs`, now. Returns how many were deleted.
    pub fn apply_retention(&mut self) -> Result<u64> {
        self.retain_at(now_unix_ns())
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e).ctx(|| self.err("commit"));
            }
        }
        Ok(())
    }

    fn retain_at(&mut self, now_ns: u64) -> Result<u64> {
        self.commit()?;
        self.last_retention = Some(Instant::now());
        let mut deleted = 0u64;
        if self.max_age_secs > 0 {
            let cutoff = now_ns.saturating_sub(self.max_age_secs.saturating_mul(1_000_000_000));
            deleted += self
                .conn
                .execute("DELETE FROM alerts WHERE time_ns < ?1", [to_i64(cutoff)])
                .ctx(|| self.err("delete old alerts"))? as u64;
        }
        if self.max_alerts > 0 {
            // The newest `max_alerts` (by insertion order) stay.
            let keep_from: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM alerts ORDER BY id DESC LIMIT 1 OFFSET ?1",
                    [to_i64(self.max_alerts - 1)],
                    |r| r.get(0),
                )
                .optional()
                .ctx(|| self.err("count alerts"))?;
            if let Some(id) = keep_from {
                deleted += self
                    .conn
                    .execute("DELETE FROM alerts WHERE id < ?1", [id])
                    .ctx(|| self.err("delete alerts beyond the limit"))? as u64;
            }
        }
        Ok(deleted)
    }

    fn err(&self, what: &str) -> String {
        format!("alert history {}: {what}", self.path.display())
    }

    /// Matching alerts, newest first, as parsed JSON (the alerts.jsonl shape).
    pub fn query(path: &Path, q: &Query) -> Result<Vec<serde_json::Value>> {
        query(path, q)
    }

    /// Matching alerts, newest first, each exactly the alerts.jsonl line.
    pub fn query_lines(path: &Path, q: &Query) -> Result<Vec<String>> {
        query_lines(path, q)
    }
}

/// Matching alerts of the history at `path`, newest first, as parsed JSON (the
/// alerts.jsonl shape). Opens the database read-only; never creates it.
pub fn query(path: &Path, q: &Query) -> Result<Vec<serde_json::Value>> {
    query_lines(path, q)?
        .iter()
        .map(|j| serde_json::from_str(j).ctx(|| format!("alert history {}: bad row", path.display())))
        .collect()
}

/// Matching alerts, newest first, each exactly the JSON line written to alerts.jsonl
/// (what `boxwatch alerts --json` prints).
pub fn query_lines(path: &Path, q: &Query) -> Result<Vec<String>> {
    if !path.exists() {
        bail!("alert history {} does not exist (start the daemon with --history)", path.display());
    }
    let ctx = || format!("{} is not a readable alert history (SQLite database)", path.display());
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .ctx(ctx)?;
    conn.busy_timeout(Duration::from_secs(2)).ctx(ctx)?;
    let mut st = conn
        .prepare(
            "SELECT json FROM alerts
                 WHERE (?1 IS NULL OR time_ns >= ?1)
                   AND (?2 IS NULL OR substr(container, 1, length(?2)) = ?2)
                   AND (?3 IS NULL OR rule = ?3 OR rule_id = ?3)
                   AND (?5 IS NULL OR priority IN (SELECT value FROM json_each(?5)))
                 ORDER BY time_ns DESC, id DESC
                 LIMIT ?4",
        )
        .ctx(ctx)?;
    let limit: i64 = if q.limit == 0 { -1 } else { i64::try_from(q.limit).unwrap_or(i64::MAX) };
    let container = q.container.as_deref().map(str::to_ascii_lowercase);
    let priorities = (!q.priorities.is_empty()).then(|| serde_json::json!(q.priorities).to_string());
    let rows = st
        .query_map(params![q.since_ns.map(to_i64), container, q.rule, limit, priorities], |r| {
            r.get::<_, String>(0)
        })
        .ctx(ctx)?;
    rows.collect::<rusqlite::Result<Vec<String>>>().ctx(ctx)
}

/// One alert as stored: the columns queries filter on, and the alerts.jsonl line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub time: String,
    pub time_ns: u64,
    pub rule: String,
    pub rule_id: Option<String>,
    pub priority: String,
    pub container: Option<String>,
    pub json: String,
}

impl Row {
    /// The row of `alert`, whose JSON line is `json`.
    pub fn new(alert: &Alert, json: String) -> Row {
        let f = &alert.output_fields;
        let text = |k: &str| f.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Row {
            time: alert.time.clone(),
            time_ns: parse_rfc3339_ns(&alert.time).unwrap_or_else(|_| now_unix_ns()),
            rule: alert.rule.clone(),
            rule_id: text("boxwatch.rule.id"),
            priority: format!("{:?}", alert.priority),
            container: text("boxwatch.container.full_id"),
            json,
        }
    }
}

/// Settings of the history output (`--history`, `[history]`).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// Most alerts kept (oldest deleted first); 0: unlimited.
    pub max_alerts: u64,
    /// Oldest alert kept, in seconds; 0: forever.
    pub max_age_secs: u64,
    /// Alerts queued for the history thread; beyond that they are counted, not stored.
    pub queue: usize,
}

/// The alert history as an output: rows go through a bounded queue to the history's
/// own thread, which inserts and commits them (see the module doc).
pub struct HistorySink {
    outbox: Outbox<Row>,
    path: PathBuf,
    pub stats: Arc<DeliveryStats>,
}

impl std::fmt::Debug for HistorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySink").field("path", &self.path).field("stats", &self.stats).finish()
    }
}

/// Rows inserted per transaction at most (a long burst still commits regularly).
const BATCH: usize = 1000;

fn run(mut h: History, rx: Receiver<Row>, stats: Arc<DeliveryStats>) {
    let mut pending = 0u64;
    let mut reported = false;
    loop {
        // Wake at least once per retention interval so retention runs without alerts.
        let first = match rx.recv_timeout(RETENTION_INTERVAL) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = h.commit();
                return;
            }
        };
        let rows = first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok()).take(BATCH - 1));
        for r in rows {
            match h.insert_row(&r) {
                Ok(()) => pending += 1,
                Err(e) => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut reported, true) {
                        eprintln!("boxwatch: history: {}; alert not stored", crate::error::chain(&e));
                    }
                }
            }
        }
        // The queue ran dry (or a batch is full): commit what was inserted.
        match h.flush() {
            Ok(()) => {
                stats.sent.fetch_add(pending, Ordering::Relaxed);
            }
            Err(e) => {
                stats.dropped_failed.fetch_add(pending, Ordering::Relaxed);
                if !std::mem::replace(&mut reported, true) {
                    eprintln!(
                        "boxwatch: history: {}; {pending} alert(s) not stored",
                        crate::error::chain(&e)
                    );
                }
            }
        }
        pending = 0;
    }
}

impl HistorySink {
    /// Open (or create) the database now, so a bad path fails at start-up, and start
    /// the history thread.
    pub fn open(cfg: &Config) -> Result<HistorySink> {
        let h = History::open(&cfg.path, cfg.max_alerts, cfg.max_age_secs)?;
        let stats = Arc::new(DeliveryStats::default());
        let s2 = Arc::clone(&stats);
        let outbox = Outbox::start("history", cfg.queue, move |rx| run(h, rx, s2))?;
        Ok(HistorySink { outbox, path: cfg.path.clone(), stats })
    }
}

impl AlertSubscriber for HistorySink {
    fn describe(&self) -> String {
        format!("history {}", self.path.display())
    }

    fn alert(&mut self, a: &AlertOut<'_>) {
        let row = Row::new(a.alert, a.json().to_string());
        crate::outbox::count_drop(self.outbox.send(row), &self.stats.dropped_queue_full);
    }

    fn close(&mut self, deadline: Duration) {
        self.outbox.finish(deadline);
    }

    fn stats(&self) -> Vec<SinkStat> {
        self.stats.sink_stats("history", false, false)
    }
}

impl Sink for HistorySink {}

impl Drop for History {
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

/// `boxwatch alerts`: print the matching alerts of the database at `db` to stdout,
/// newest first: human lines, or with `json` exactly the alerts.jsonl lines.
pub fn print(
    db: &Path,
    since: Option<&str>,
    container: Option<String>,
    rule: Option<String>,
    limit: usize,
    json: bool,
) -> Result<()> {
    use std::io::Write;
    let since_ns = since.map(|s| parse_since(s, now_unix_ns())).transpose()?;
    let q = Query { since_ns, container, rule, limit, ..Query::default() };
    let text = if json {
        let mut t = query_lines(db, &q)?.join("\n");
        if !t.is_empty() {
            t.push('\n');
        }
        t
    } else {
        render_human(&query(db, &q)?)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // `boxwatch alerts | head` is fine.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).ctx(|| "write to stdout".into()),
        _ => Ok(()),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn now_unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Parse `--since`: a duration back from `now_unix_ns` ("90s", "10m", "2h", "3d")
/// or an RFC 3339 time ("2024-05-01T12:00:00Z", "2024-05-01T14:00:00.5+02:00"). Unix ns.
pub fn parse_since(s: &str, now_unix_ns: u64) -> Result<u64> {
    let t = s.trim();
    let unit = |c: char| match c {
        's' => Some(1u64),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    if let Some(last) = t.chars().last()
        && let Some(mult) = unit(last)
        && t.len() > 1
        && t[..t.len() - 1].bytes().all(|b| b.is_ascii_digit())
    {
        let Ok(n) = t[..t.len() - 1].parse::<u64>() else { bail!("--since {s:?}: number too large") };
        let Some(back) = n.checked_mul(mult).and_then(|secs| secs.checked_mul(1_000_000_000)) else {
            bail!("--since {s:?}: duration too large")
        };
        return Ok(now_unix_ns.saturating_sub(back));
    }
    parse_rfc3339_ns(t).map_err(|e| {
        Error::Invalid(format!(
            "invalid --since {s:?}: expected a duration (90s, 10m, 2h, 3d) or an RFC 3339 time \
             (2024-05-01T12:00:00Z): {e}"
        ))
    })
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`) to unix ns. Times before 1970 are refused.
pub fn parse_rfc3339_ns(s: &str) -> Result<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64> {
        let Some(part) = b.get(from..from + len) else { bail!("too short") };
        if !part.iter().all(u8::is_ascii_digit) {
            bail!("expected digits at offset {from}");
        }
        Ok(part.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, ok: &[u8]| -> Result<()> {
        match b.get(at) {
            Some(c) if ok.contains(c) => Ok(()),
            _ => bail!("expected {:?} at offset {at}", ok.iter().map(|&c| c as char).collect::<String>()),
        }
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt ")?;
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    sep(13, b":")?;
    sep(16, b":")?;
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            bail!("empty fraction of a second");
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() => {
            sep(i + 3, b":")?;
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                bail!("bad UTC offset");
            }
            let o = oh * 3600 + om * 60;
            if c == b'+' { o } else { -o }
        }
        _ => bail!("expected Z or a UTC offset (+HH:MM) at offset {i}"),
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > mdays[(mo - 1) as usize] {
        bail!("no such date");
    }
    // 60: a leap second, counted as the next second.
    if h > 23 || mi > 59 || sec > 60 {
        bail!("no such time of day");
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    if secs < 0 {
        bail!("before 1970");
    }
    match (secs as u64)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos as u64))
        .filter(|&n| n <= i64::MAX as u64)
    {
        Some(n) => Ok(n),
        None => bail!("too far in the future"),
    }
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One line per alert: `TIME PRIORITY RULE container=<12 hex> proc=<name> output`, every
/// string escaped (control and bidi characters as `\u{…}`): rule output quotes file
/// names and command lines from containers.
pub fn render_human(rows: &[serde_json::Value]) -> String {
    let mut out = String::new();
    for v in rows {
        let s = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_string();
        let f = &v["output_fields"];
        let container = f["boxwatch.container.full_id"]
            .as_str()
            .or_else(|| f["container.id"].as_str())
            .map(|c| c.chars().take(12).collect::<String>())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "host".to_string());
        let proc = f["proc.name"].as_str().filter(|p| !p.is_empty()).unwrap_or("-");
        let line = format!(
            "{} {} {} container={container} proc={proc} {}",
            s(&v["time"]),
            s(&v["priority"]),
            s(&v["rule"]),
            s(&v["output"]),
        );
        push_escaped(&mut out, &line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use boxwatch_rules::Priority;
    use boxwatch_rules::time::rfc3339_ns;
    use serde_json::json;

    use super::*;

    const NS: u64 = 1_000_000_000;
    /// 2024-05-01T12:00:00Z
    const BASE: u64 = 1_714_564_800 * NS;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
            let p = std::env::temp_dir().join(format!(
                "boxwatch-history-test-{}-{nonce:x}-{:x}",
                std::process::id(),
                &nonce as *const u128 as usize
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn db(&self) -> PathBuf {
            self.0.join("alerts.db")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cid(n: u64) -> String {
        format!("{:04x}{:060x}", 0xa000 + n, 0xdead_beefu64)
    }

    fn alert(time_ns: u64, rule: &str, rule_id: &str, container: Option<&str>) -> Alert {
        let mut f: BTreeMap<&'static str, serde_json::Value> = BTreeMap::new();
        f.insert("boxwatch.rule.id", json!(rule_id));
        f.insert("proc.name", json!("cat"));
        if let Some(c) = container {
            f.insert("boxwatch.container.full_id", json!(c));
            f.insert("container.id", json!(&c[..12]));
        } else {
            f.insert("container.id", json!("host"));
        }
        Alert {
            time: rfc3339_ns(time_ns),
            rule: rule.to_string(),
            priority: Priority::Warning,
            output: format!("{rule} (file=/etc/shadow)"),
            output_fields: f,
            tags: vec!["container".into()],
            source: "syscall",
            hostname: "node1".into(),
        }
    }

    /// 1000 alerts, one per second from BASE: container i % 4, rule i % 2 (host for i % 10 == 9).
    fn fill(h: &mut History) -> Vec<Alert> {
        let mut v = Vec::new();
        for i in 0..1000u64 {
            let (rule, id) = if i % 2 == 0 {
                ("Sensitive file read", "sensitive_read")
            } else {
                ("Write below etc", "write_etc")
            };
            let c = cid(i % 4);
            let mut a = alert(BASE + i * NS, rule, id, (i % 10 != 9).then_some(c.as_str()));
            if i % 5 == 0 {
                a.priority = Priority::Error;
            }
            h.insert(&a).unwrap();
            if i % 100 == 99 {
                h.flush().unwrap();
            }
            v.push(a);
        }
        h.flush().unwrap();
        v
    }

    #[test]
    fn insert_and_query_filters() {
        let dir = TempDir::new();
        let mut h = History::open(&dir.db(), 0, 0).unwrap();
        let all = fill(&mut h);
        drop(h);

        let rows = History::query(&dir.db(), &Query::default()).unwrap();
        assert_eq!(rows.len(), 1000);
        // Newest first, and each row is exactly the alert as serialised for alerts.jsonl.
        assert_eq!(rows[0], serde_json::to_value(&all[999]).unwrap());
        assert_eq!(rows[999], serde_json::to_value(&all[0]).unwrap());
        let lines = History::query_lines(&dir.db(), &Query { limit: 1, ..Query::default() }).unwrap();
        assert_eq!(lines, vec![serde_json::to_string(&all[999]).unwrap()]);

        // Container prefix (case-insensitive hex), host alerts excluded.
        let c1 = cid(1);
        let q = Query { container: Some(c1[..12].to_ascii_uppercase()), ..Query::default() };
        let rows = History::query(&dir.db(), &q).unwrap();
        let want = all
            .iter()
            .filter(|a| a.output_fields.get("boxwatch.container.full_id") == Some(&json!(c1)))
            .count();
        assert_eq!(rows.len(), want);
        assert_eq!(want, 200);
        assert!(rows.iter().all(|r| r["output_fields"]["boxwatch.container.full_id"] == c1.as_str()));
        let q = Query { container: Some("ffff".into()), ..Query::default() };
        assert!(History::query(&dir.db(), &q).unwrap().is_empty());

        // Rule by name and by id.
        for r in ["Write below etc", "write_etc"] {
            let rows =
                History::query(&dir.db(), &Query { rule: Some(r.into()), ..Query::default() }).unwrap();
            assert_eq!(rows.len(), 500, "{r}");
            assert!(rows.iter().all(|v| v["rule"] == "Write below etc"));
        }
        assert!(
            History::query(&dir.db(), &Query { rule: Some("write".into()), ..Query::default() })
                .unwrap()
                .is_empty()
        );

        // Priorities (what `/api/v1/alerts?priority=` asks for).
        let by = |p: &[&str]| {
            let q = Query { priorities: p.iter().map(|s| s.to_string()).collect(), ..Query::default() };
            History::query(&dir.db(), &q).unwrap()
        };
        assert_eq!(by(&["Error"]).len(), 200);
        assert!(by(&["Error"]).iter().all(|r| r["priority"] == "Error"));
        assert_eq!(by(&["Warning"]).len(), 800);
        assert_eq!(by(&["Emergency", "Alert", "Critical", "Error", "Warning"]).len(), 1000);
        assert!(by(&["Critical"]).is_empty());

        // Since: the last 100 seconds (inclusive), combined with the other filters and a limit.
        let q = Query { since_ns: Some(BASE + 900 * NS), ..Query::default() };
        assert_eq!(History::query(&dir.db(), &q).unwrap().len(), 100);
        let q = Query {
            since_ns: Some(BASE + 900 * NS),
            container: Some(cid(0)),
            rule: Some("sensitive_read".into()),
            limit: 3,
            ..Query::default()
        };
        let rows = History::query(&dir.db(), &q).unwrap();
        let times: Vec<&str> = rows.iter().map(|r| r["time"].as_str().unwrap()).collect();
        assert_eq!(
            times,
            [rfc3339_ns(BASE + 996 * NS), rfc3339_ns(BASE + 992 * NS), rfc3339_ns(BASE + 988 * NS)]
        );

        let text = render_human(&rows[..1]);
        assert_eq!(
            text,
            format!(
                "{} Warning Sensitive file read container={} proc=cat Sensitive file read (file=/etc/shadow)\n",
                rfc3339_ns(BASE + 996 * NS),
                &cid(0)[..12]
            )
        );
        let host = History::query(
            &dir.db(),
            &Query { limit: 1, since_ns: Some(BASE + 999 * NS), ..Query::default() },
        )
        .unwrap();
        assert!(render_human(&host).contains(" container=host proc=cat "), "{}", render_human(&host));
    }

    #[test]
    fn the_sink_stores_off_the_caller_thread_and_counts() {
        let dir = TempDir::new();
        let cfg = Config { path: dir.db(), max_alerts: 0, max_age_secs: 0, queue: 1000 };
        let mut sink = HistorySink::open(&cfg).unwrap();
        let all: Vec<Alert> = (0..300).map(|i| alert(BASE + i * NS, "r", "r", Some(&cid(i % 3)))).collect();
        for a in &all {
            sink.alert(&AlertOut::new(a, None));
        }
        // Committed by the history thread once its queue runs dry, without a flush call.
        let t0 = Instant::now();
        while History::query(&dir.db(), &Query::default()).map_or(0, |r| r.len()) < 300 {
            assert!(t0.elapsed() < Duration::from_secs(10), "not committed by the history thread");
            std::thread::sleep(Duration::from_millis(20));
        }
        sink.close(Duration::from_secs(5));
        let lines = History::query_lines(&dir.db(), &Query::default()).unwrap();
        assert_eq!(lines.first(), Some(&serde_json::to_string(&all[299]).unwrap()));
        let st = sink.stats();
        let v = |n: &str| st.iter().find(|s| s.name == n).unwrap().value;
        assert_eq!((v("sent"), v("failed"), v("queue_full")), (300, 0, 0));
        assert!(st.iter().all(|s| s.output == "history"));
        assert_eq!(sink.describe(), format!("history {}", dir.db().display()));
        // A bad path fails at open, on the caller's thread.
        std::fs::write(dir.0.join("alerts.db-not-a-dir"), "x").unwrap();
        let bad = Config { path: dir.0.join("alerts.db-not-a-dir/h.db"), ..cfg };
        assert!(HistorySink::open(&bad).unwrap_err().to_string().contains("alerts.db-not-a-dir"));
    }

    #[test]
    fn uncommitted_inserts_are_committed_on_flush_and_drop() {
        let dir = TempDir::new();
        let mut h = History::open(&dir.db(), 0, 0).unwrap();
        h.insert(&alert(BASE, "r", "r", Some(&cid(0)))).unwrap();
        assert!(History::query(&dir.db(), &Query::default()).unwrap().is_empty(), "not yet committed");
        h.flush().unwrap();
        assert_eq!(History::query(&dir.db(), &Query::default()).unwrap().len(), 1);
        h.insert(&alert(BASE + NS, "r", "r", Some(&cid(0)))).unwrap();
        drop(h);
        assert_eq!(History::query(&dir.db(), &Query::default()).unwrap().len(), 2);
        // Reopening keeps what is there.
        let mut h = History::open(&dir.db(), 0, 0).unwrap();
        h.insert(&alert(BASE + 2 * NS, "r", "r", None)).unwrap();
        h.flush().unwrap();
        assert_eq!(History::query(&dir.db(), &Query::default()).unwrap().len(), 3);
    }

    #[test]
    fn retention_by_count_keeps_the_newest() {
        let dir = TempDir::new();
        let mut h = History::open(&dir.db(), 250, 0).unwrap();
        // The first flush applies retention at once; later ones wait a minute.
        let all = fill(&mut h);
        let n = History::query(&dir.db(), &Query::default()).unwrap().len();
        assert!(n > 250, "retention ran more than once within a minute: {n} left");
        let deleted = h.apply_retention().unwrap();
        assert_eq!(deleted as usize, n - 250);
        let rows = History::query(&dir.db(), &Query::default()).unwrap();
        assert_eq!(rows.len(), 250);
        assert_eq!(rows[0], serde_json::to_value(&all[999]).unwrap());
        assert_eq!(rows[249], serde_json::to_value(&all[750]).unwrap());
        assert_eq!(h.apply_retention().unwrap(), 0);
    }

    #[test]
    fn retention_by_age() {
        let dir = TempDir::new();
        let day = 86_400 * NS;
        let now = now_unix_ns();
        let mut h = History::open(&dir.db(), 0, 7 * 86_400).unwrap();
        for age_days in [30, 10, 8, 6, 1, 0] {
            h.insert(&alert(now - age_days * day, "r", "r", Some(&cid(age_days)))).unwrap();
        }
        h.flush().unwrap(); // the first flush applies retention
        let rows = History::query(&dir.db(), &Query::default()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2]["output_fields"]["boxwatch.container.full_id"], cid(6).as_str());
        // Explicit "now" in the future: everything is older than 7 days.
        assert_eq!(h.retain_at(now + 30 * day).unwrap(), 3);
        assert!(History::query(&dir.db(), &Query::default()).unwrap().is_empty());
    }

    #[test]
    fn parse_since_cases() {
        let now = BASE + 123;
        assert_eq!(parse_since("90s", now).unwrap(), now - 90 * NS);
        assert_eq!(parse_since("10m", now).unwrap(), now - 600 * NS);
        assert_eq!(parse_since(" 2h ", now).unwrap(), now - 7200 * NS);
        assert_eq!(parse_since("3d", now).unwrap(), now - 3 * 86_400 * NS);
        assert_eq!(parse_since("0s", now).unwrap(), now);
        assert_eq!(parse_since("100000d", now).unwrap(), 0, "saturates at the epoch");
        assert_eq!(parse_since("2024-05-01T12:00:00Z", now).unwrap(), BASE);
        assert_eq!(parse_since("2024-05-01T12:00:00.5Z", now).unwrap(), BASE + NS / 2);
        assert_eq!(parse_since("2024-05-01T14:30:00+02:30", now).unwrap(), BASE);
        assert_eq!(parse_since("2024-05-01T09:00:00.000000001-03:00", now).unwrap(), BASE + 1);
        assert_eq!(parse_since("2024-05-01 12:00:00z", now).unwrap(), BASE);
        assert_eq!(parse_since("1970-01-01T00:00:00Z", now).unwrap(), 0);
        // Round trip with the alerts' own time format.
        for t in [0, 1, BASE + 987_654_321, 951_782_400 * NS + 5] {
            assert_eq!(parse_rfc3339_ns(&rfc3339_ns(t)).unwrap(), t, "{}", rfc3339_ns(t));
        }
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "-5m",
            "1.5h",
            "m10",
            "99999999999999999999s",
            "999999999999999999d",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "yesterday",
        ] {
            let e = parse_since(bad, now).expect_err(bad);
            assert!(e.to_string().contains("--since"), "{bad}: {e}");
        }
        let e = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(e.contains("10m") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn not_a_database_is_a_clear_error_naming_the_path() {
        let dir = TempDir::new();
        let p = dir.0.join("alerts.jsonl");
        std::fs::write(&p, "{\"rule\":\"x\"}\n".repeat(500)).unwrap();
        let e = format!("{:#}", History::open(&p, 10, 10).unwrap_err());
        assert!(e.contains(&p.display().to_string()) && e.contains("not"), "{e}");
        let e = format!("{:#}", History::query(&p, &Query::default()).unwrap_err());
        assert!(e.contains(&p.display().to_string()) && e.contains("not"), "{e}");
        // The file is left alone.
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"rule\":\"x\"}\n".repeat(500));

        let missing = dir.0.join("nope.db");
        let e = format!("{:#}", History::query(&missing, &Query::default()).unwrap_err());
        assert!(e.contains(&missing.display().to_string()) && e.contains("does not exist"), "{e}");
        assert!(!missing.exists(), "query must not create the database");
    }
}
