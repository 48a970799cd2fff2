//! The daemon's side of `boxwatch-web`: the snapshots the processor publishes (built from its
//! container table, process tree, enrichment state and counters), the coverage report in the
//! web crate's terms, and the alert history as an [`AlertStore`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boxwatch_bpf::{Coverage, HookStatus};
use boxwatch_model::{ContainerTable, ProcessTree};
use boxwatch_web::{
    AlertQuery, AlertStore, ContainerInfo, Counters, CoverageInfo, DataPath, HookInfo, PublishPolicy,
    Snapshot, SnapshotCell,
};

use crate::enrich::Enrichment;
use crate::metrics::{KernelCounters, Metrics};
use boxwatch_outputs::history::{History, Query};

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// `boxwatch run --history PATH`, read by `/api/v1/alerts` (a read-only connection per query).
#[derive(Debug)]
pub struct HistoryStore {
    pub path: PathBuf,
}

impl AlertStore for HistoryStore {
    fn query(&self, q: &AlertQuery) -> Result<Vec<serde_json::Value>, String> {
        let q = Query {
            since_ns: q.since_unix_ns,
            container: q.container.clone(),
            rule: q.rule.clone(),
            priorities: q.priorities.iter().flatten().map(|p| p.to_string()).collect(),
            limit: q.limit,
        };
        History::query(&self.path, &q).map_err(|e| format!("{e:#}"))
    }
}

pub fn coverage_info(c: &Coverage) -> CoverageInfo {
    let hooks: Vec<HookInfo> = c
        .hooks
        .iter()
        .map(|h| {
            let (status, reason) = match &h.status {
                HookStatus::Attached => ("attached", None),
                HookStatus::Degraded(r) => ("degraded", Some(r.clone())),
                HookStatus::NotNeeded(r) => ("not_needed", Some(r.clone())),
            };
            HookInfo { program: h.program.clone(), status: status.into(), reason }
        })
        .collect();
    CoverageInfo {
        attached: c.attached(),
        degraded: hooks.iter().filter(|h| h.status == "degraded").cloned().collect(),
        hooks,
        inflight_store: format!("{:?}", c.inflight_store),
    }
}

/// What the processor keeps to publish snapshots.
#[derive(Debug)]
pub struct Publisher {
    pub cell: Arc<SnapshotCell>,
    pub data_path: Arc<DataPath>,
    policy: PublishPolicy,
    coverage: Arc<CoverageInfo>,
    seq: u64,
    last: Option<Instant>,
    last_received: u64,
    trees: Arc<HashMap<Arc<str>, Vec<boxwatch_model::TreeNode>>>,
    trees_at: Option<Instant>,
    trees_unix_ns: u64,
    trees_cost: Duration,
    /// Something the API shows changed since the last publish.
    pub changed: bool,
    /// Alerts delivered per container (pruned when the container goes).
    pub alerts_by_container: HashMap<String, u64>,
}

/// The parts of the processor a snapshot is built from.
pub struct Parts<'a> {
    pub table: &'a ContainerTable,
    pub tree: &'a ProcessTree,
    pub enrich: &'a Enrichment,
    pub metrics: &'a Metrics,
    pub kernel: KernelCounters,
}

impl Publisher {
    pub fn new(data_path: Arc<DataPath>, coverage: &Coverage, policy: PublishPolicy) -> Publisher {
        Publisher {
            cell: Arc::new(SnapshotCell::default()),
            data_path,
            policy,
            coverage: Arc::new(coverage_info(coverage)),
            seq: 0,
            last: None,
            last_received: 0,
            trees: Arc::default(),
            trees_at: None,
            trees_unix_ns: 0,
            trees_cost: Duration::ZERO,
            changed: true,
            alerts_by_container: HashMap::new(),
        }
    }

    /// Whether a snapshot is due now: the usual policy, or trees asked for and due.
    pub fn due(&self, now: Instant) -> bool {
        self.last.is_none_or(|t| self.policy.due(self.changed, now.duration_since(t))) || self.trees_due(now)
    }

    fn trees_due(&self, now: Instant) -> bool {
        self.cell.trees_wanted_within(self.policy.tree_interest)
            && self.policy.trees_due(self.trees_at.map(|t| now.duration_since(t)), self.trees_cost)
    }

    pub fn container_gone(&mut self, id: &str) {
        self.alerts_by_container.remove(id);
        self.changed = true;
    }

    /// Build and publish a snapshot of `p`.
    pub fn publish(&mut self, p: Parts<'_>, now: Instant) {
        let m = p.metrics;
        let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        if self.trees_due(now) {
            let t0 = Instant::now();
            self.trees = Arc::new(p.tree.container_trees());
            self.trees_cost = t0.elapsed();
            self.trees_at = Some(now);
            self.trees_unix_ns = unix_ns();
        } else if !self.cell.trees_wanted_within(self.policy.tree_interest) && self.trees_at.is_some() {
            // Nobody asks any more: free them.
            self.trees = Arc::default();
            self.trees_at = None;
            self.trees_unix_ns = 0;
        }
        let mut containers: Vec<ContainerInfo> = p
            .table
            .containers()
            .map(|c| {
                let meta = p.enrich.metadata(&c.id);
                ContainerInfo {
                    id: c.id.clone(),
                    short_id: c.short_id().to_string(),
                    runtime: c.runtime.to_string(),
                    pod_uid: c.pod_uid.clone(),
                    namespace: c.namespace.clone(),
                    nested: c.nested,
                    cgroup_root: c.cgroup_root.clone(),
                    name: meta.and_then(|m| m.name.clone()),
                    image: meta.and_then(|m| m.image.clone()),
                    pod_name: meta.and_then(|m| m.pod_name.clone()),
                    pod_namespace: meta.and_then(|m| m.pod_namespace.clone()),
                    metadata: p.enrich.status(&c.id),
                    processes: p.tree.live_in(&c.id),
                    alerts: self.alerts_by_container.get(&c.id).copied().unwrap_or(0),
                }
            })
            .collect();
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        let received = l(&m.received);
        let elapsed = self.last.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0);
        let events_per_sec =
            if elapsed > 0.0 { received.saturating_sub(self.last_received) as f64 / elapsed } else { 0.0 };
        let k = &p.kernel;
        let drops = k
            .drops
            .iter()
            .enumerate()
            .map(|(i, n)| (boxwatch_abi::drop_cause::NAMES[i].to_string(), *n))
            .chain(m.userspace_drops().into_iter().map(|(c, n)| (c.to_string(), n)))
            .collect();
        let stats = p.tree.stats();
        let counters = Counters {
            received,
            processed: l(&self.data_path.processed),
            events_out: m.events_total(),
            alerts: m.alerts_total(),
            kernel_emitted: k.emitted.iter().sum(),
            events_per_sec,
            drops,
            ring_queued_bytes: k.ring.0,
            ring_queued_max_bytes: k.ring.1,
            ring_size_bytes: k.ring.2,
            containers: containers.len(),
            cgroups: p.table.cgroup_count(),
            processes_live: stats.live,
            processes_exited: stats.exited,
        };
        self.seq += 1;
        self.cell.publish(Snapshot {
            seq: self.seq,
            taken_unix_ns: unix_ns(),
            containers,
            trees: Arc::clone(&self.trees),
            trees_taken_unix_ns: self.trees_unix_ns,
            coverage: Arc::clone(&self.coverage),
            counters,
        });
        self.last = Some(now);
        self.last_received = received;
        self.changed = false;
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use boxwatch_rules::{Alert, Priority};
    use boxwatch_web::prometheus_client::registry::Registry;
    use boxwatch_web::{Web, router};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    fn alert(secs: u64, prio: Priority, container: &str) -> Alert {
        let mut f = std::collections::BTreeMap::new();
        f.insert("boxwatch.container.full_id", json!(container));
        Alert {
            time: format!("2026-01-01T00:00:{secs:02}.000000000Z"),
            rule: "Write below /etc in a container".into(),
            priority: prio,
            output: "x".into(),
            output_fields: f,
            tags: vec![],
            source: "syscall",
            hostname: "h".into(),
        }
    }

    /// `/api/v1/alerts` over a real SQLite history, through the router.
    #[tokio::test]
    async fn alerts_api_reads_the_history() {
        let dir = std::env::temp_dir().join(format!("bw-web-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("alerts.db");
        let mut h = History::open(&db, 0, 0).unwrap();
        for i in 0..10 {
            let prio = if i % 2 == 0 { Priority::Error } else { Priority::Notice };
            h.insert(&alert(i, prio, if i < 5 { "aaaa1111" } else { "bbbb2222" })).unwrap();
        }
        h.flush().unwrap();
        drop(h);
        let web = Web {
            registry: Registry::default(),
            snapshots: Arc::new(SnapshotCell::default()),
            data_path: Arc::new(DataPath::default()),
            alerts: Some(Arc::new(HistoryStore { path: db.clone() })),
            stall_after: Duration::from_secs(5),
        };
        let app = router(web);
        let get = |uri: String| {
            let app = app.clone();
            async move {
                let r = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
                let st = r.status();
                let b = r.into_body().collect().await.unwrap().to_bytes();
                (st, serde_json::from_slice::<Value>(&b).unwrap())
            }
        };
        let (st, v) = get("/api/v1/alerts".into()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["count"], 10);
        assert_eq!(v["alerts"][0]["time"], "2026-01-01T00:00:09.000000000Z", "newest first");
        let (_, v) = get("/api/v1/alerts?priority=warning&container=bbbb&limit=2".into()).await;
        let times: Vec<&str> =
            v["alerts"].as_array().unwrap().iter().map(|a| a["time"].as_str().unwrap()).collect();
        assert_eq!(times, ["2026-01-01T00:00:08.000000000Z", "2026-01-01T00:00:06.000000000Z"]);
        let (_, v) =
            get("/api/v1/alerts?since=2026-01-01T00:00:07Z&rule=Write%20below%20%2Fetc%20in%20a%20container"
                .into())
            .await;
        assert_eq!(v["count"], 3);
        let (_, v) = get("/api/v1/alerts?rule=nope".into()).await;
        assert_eq!(v["count"], 0);
        std::fs::remove_dir_all(&dir).unwrap();
        let (st, v) = get("/api/v1/alerts".into()).await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "database gone: {v}");
        assert!(v["error"].as_str().unwrap().contains("does not exist"), "{v}");
    }
}
