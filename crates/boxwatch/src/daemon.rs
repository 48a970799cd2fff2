//! `boxwatch run`: the data path from ring buffer to outputs.
//!
//! Two threads. The reader polls the ring buffer, decodes each record and
//! `try_send`s it into a bounded queue: it never blocks, and a full queue or
//! an undecodable record is counted, never fatal. The processor (this
//! thread) classifies cgroups, keeps the container table and the in-kernel
//! filter in step, runs detections and writes outputs. On SIGINT/SIGTERM the
//! reader drains the ring buffer once more and closes the queue; the
//! processor finishes everything queued before exiting, so nothing accepted
//! is lost on a clean shutdown.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use boxwatch_abi::{cgroup_class, drop_cause, flags, kind};
use boxwatch_bpf::{Monitor, MonitorConfig};
use boxwatch_model::process::{Entry, ProcessTree};
use boxwatch_model::{ContainerRef, ContainerTable, Detail, Event, Learned, decode};
use boxwatch_outputs::{AlertContext, Outputs, Raised, SinkStat, StatKind};
use boxwatch_rules::aggregate::{AggregateConfig, Aggregator};
use boxwatch_rules::engine::{Detectors, Input, Stateful, StatefulConfig};
use boxwatch_rules::{Alert, Ancestor, Lineage, Priority};
use boxwatch_runtime::EnricherConfig;
use boxwatch_web::{DataPath, PublishPolicy};
use tracing::{error, info};

use crate::cgroups;
use crate::cli::RunArgs;
use crate::clock::{WallClock, hostname, monotonic_ns};
use crate::config;
use crate::enrich::Enrichment;
use crate::metrics::{DaemonCollector, KernelCounters, Metrics};
use crate::procfacts::ProcFacts;
use crate::procfs::{self, CgroupIds, StartClock};
use crate::rules::RuleSources;
use crate::web::{HistoryStore, Parts, Publisher};

/// How often the container table is checked against the cgroup tree on disk.
const RECONCILE_EVERY: Duration = Duration::from_secs(15);
/// How often the kernel filter is compared with what boxwatch wrote to it.
const FILTER_AUDIT_EVERY: Duration = Duration::from_secs(1);
/// The alert raised when the kernel filter was changed by someone else.
pub const FILTER_TAMPER_RULE: &str = "boxwatch kernel filter tampered with";
/// How often the monotonic → wall clock offset is re-sampled (an NTP step or a suspend moves it).
const CLOCK_RESYNC_EVERY: Duration = Duration::from_secs(10);
/// A reader or processor heartbeat older than this fails `/healthz`.
const STALL_AFTER: Duration = Duration::from_secs(5);

/// Parse `--host-events` names into a kind mask.
pub fn kind_mask(names: &[String]) -> Result<u64> {
    let mut mask = 0;
    for n in names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if n == "none" {
            continue;
        }
        let name = if n == "setuid" { "setid" } else { n };
        let Some(k) = kind::NAMES.iter().skip(1).position(|&k| k == name).map(|i| i as u32 + 1) else {
            bail!("--host-events: unknown event kind {n:?} (known: {}, none)", kind::NAMES[1..].join(", "));
        };
        mask |= kind::bit(k);
    }
    Ok(mask)
}

/// cgroup ids searched for on disk and not found, so each is searched once. Pruned when the
/// cgroup is removed (rmdir event, or gone at the periodic reconcile) and bounded.
#[derive(Debug, Default)]
struct Unresolved(HashSet<u64>);

impl Unresolved {
    const MAX: usize = 65_536;

    fn contains(&self, id: &u64) -> bool {
        self.0.contains(id)
    }
    fn insert(&mut self, id: u64) {
        if self.0.len() >= Self::MAX {
            self.0.clear(); // at worst each is searched for once more
        }
        self.0.insert(id);
    }
    fn remove(&mut self, id: &u64) {
        self.0.remove(id);
    }
    /// Keep only ids still present in the cgroup tree.
    fn retain_present(&mut self, present: &HashSet<u64>) {
        self.0.retain(|id| present.contains(id));
    }
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The processor's state.
struct Processor<'m> {
    monitor: &'m Monitor,
    metrics: &'m Metrics,
    cgroup_root: PathBuf,
    table: ContainerTable,
    /// Every process we know of: container processes and, for lineage, the
    /// host-side ones that start them (exec/fork/exit pass the kernel filter).
    tree: ProcessTree,
    /// Reads parents that started before us from /proc.
    cgroup_ids: CgroupIds,
    start_clock: StartClock,
    /// Parent pids already looked up in /proc (bounded; cleared when large).
    parent_lookups: HashSet<u32>,
    last_evict_ns: u64,
    /// Alerts were written to the (buffered) sinks since the last flush.
    alerts_unflushed: bool,
    /// cgroup ids searched for and not found (avoid rescanning for each event).
    unresolved: Unresolved,
    /// Sinks and other alert subscribers: everything after the alert.
    outputs: Outputs,
    enrich: Enrichment,
    /// The rule set (`rules`), the stateful detections, and whatever else raises alerts.
    detectors: Detectors,
    rule_sources: RuleSources,
    reload_cfg: Reload,
    aggregate: Aggregator,
    clock: WallClock,
    /// Events given to the detectors (Falco's `evt.num`).
    evt_num: u64,
    /// tty, loginuid, cwd and user/group names for Falco's fields, from /proc (cached).
    facts: ProcFacts,
    hostname: String,
    all_processes: bool,
    host_mask: u64,
    data_path: Arc<DataPath>,
    /// Events taken off the queue (published to `data_path` at each heartbeat).
    processed: u64,
    processed_at_beat: u64,
    /// Snapshots for the HTTP API (`None`: no HTTP endpoint).
    web: Option<Publisher>,
}

impl Processor<'_> {
    /// Tell the table and the in-kernel filter about a cgroup.
    fn learn(&mut self, id: u64, path: &str, wall_ns: u64, action: &str) -> Learned {
        let learned = self.table.learn(id, path);
        let class =
            if matches!(learned, Learned::Host) { cgroup_class::HOST } else { cgroup_class::CONTAINER };
        if self.monitor.set_cgroup_class(id, class).is_err() {
            self.metrics.filter_map_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Learned::NewContainer(c) = &learned {
            self.enrich.container_seen(c);
            self.outputs.container(wall_ns, action, c);
            if let Some(w) = &mut self.web {
                w.changed = true;
            }
        }
        learned
    }

    /// An event from a cgroup we have not classified: look for it on disk.
    fn resolve(&mut self, id: u64, wall_ns: u64) {
        if self.unresolved.contains(&id) {
            return;
        }
        if let Ok(all) = cgroups::scan(&self.cgroup_root) {
            for (cid, path) in all {
                if self.table.lookup(cid).is_none() {
                    self.learn(cid, &path, wall_ns, "first_seen");
                }
            }
        }
        if self.table.lookup(id).is_none() {
            self.unresolved.insert(id);
        }
    }

    /// A container exited: forget what was kept per container.
    fn container_gone(&mut self, id: &str) {
        self.enrich.container_gone(id);
        self.facts.container_gone(id);
        let mut out = Vec::new();
        self.aggregate.forget_container(id, monotonic_ns(), &mut out);
        self.write_alerts(out.into_iter().map(|alert| Raised { alert, context: None }).collect());
        if let Some(w) = &mut self.web {
            w.container_gone(id);
        }
    }

    fn handle(&mut self, ev: Event) {
        self.processed += 1;
        let wall_ns = self.clock.wall_ns(ev.ktime_ns);
        match &ev.detail {
            Detail::CgroupMkdir { id, path, .. } => {
                self.unresolved.remove(id);
                self.learn(*id, path, wall_ns, "started");
                return;
            }
            Detail::CgroupRmdir { id, .. } => {
                self.monitor.forget_cgroup(*id);
                self.unresolved.remove(id);
                if let Some(c) = self.table.forget(*id) {
                    self.outputs.container(wall_ns, "exited", &c);
                    self.container_gone(&c.id);
                }
                return;
            }
            _ => {}
        }
        if ev.flags & flags::CGROUP_UNKNOWN != 0 && self.table.lookup(ev.cgroup_id).is_none() {
            self.resolve(ev.cgroup_id, wall_ns);
        }
        let container: Option<Arc<ContainerRef>> = self.table.lookup(ev.cgroup_id).flatten().cloned();
        let p = &ev.process;
        if p.ppid > 1 && self.tree.get(p.ppid).is_none() {
            self.seed_from_proc(p.ppid);
        }
        self.tree.observe(&ev, container.as_ref().map(|c| c.id.as_str()), ev.ktime_ns);
        if ev.ktime_ns.saturating_sub(self.last_evict_ns) > 1_000_000_000 {
            self.tree.evict(ev.ktime_ns);
            self.last_evict_ns = ev.ktime_ns;
            self.publish_gauges();
        }
        let wanted =
            container.is_some() || self.all_processes || self.host_mask & kind::bit(ev.detail.kind()) != 0;
        if !wanted {
            return;
        }
        let node = self.tree.lookup(p.pid, p.start_ns);
        // One walk up the tree serves the exec ids, the parent's image and the rules' ancestor names.
        let chain = node.map_or_else(Vec::new, |n| self.tree.ancestors_of(n));
        let parent = chain.first().copied();
        let ids = node.map(|n| (n.exec_id().to_string(), parent.map(|p| p.exec_id().to_string())));
        let mut alerts = Vec::new();
        {
            let meta = container.as_ref().and_then(|c| self.enrich.metadata(&c.id));
            let ancestors: Vec<&str> = chain.iter().map(|a| &*a.comm).collect();
            let ancestor_exes: Vec<&str> = chain.iter().map(|a| a.exe.as_deref().unwrap_or("")).collect();
            self.evt_num += 1;
            // Falco's process fields not in the kernel records yet, from /proc (cached).
            let is_exec = matches!(ev.detail, Detail::Exec { .. });
            let facts = self.facts.of(p.pid, p.start_ns, is_exec);
            let key = container.as_ref().map_or("host", |c| c.id.as_str());
            let (user_name, group_name) = self.facts.names(key, p.pid, p.uid, p.gid, is_exec);
            let entry = node.and_then(|n| n.entry).map(entry_name);
            let input = Input {
                event: &ev,
                container: container.as_deref(),
                container_name: meta.and_then(|m| m.name.as_deref()),
                image: meta.and_then(|m| m.image.as_deref()),
                pod_name: meta.and_then(|m| m.pod_name.as_deref()),
                pod_namespace: meta.and_then(|m| m.pod_namespace.as_deref()),
                // CAP_SYS_ADMIN in a container process: what `--privileged` grants and what escapes need.
                privileged: container.is_some() && ev.process.cap_effective & (1 << 21) != 0,
                exe: node.and_then(|n| n.exe.as_deref()),
                argv: node.map_or(&[][..], |n| &n.argv[..]),
                ancestors: &ancestors,
                parent_exe: parent.and_then(|p| p.exe.as_deref()),
                entry: entry.as_deref(),
                // Exec events carry their stdio types; the engine reads them from the event.
                stdio_is_socket: false,
                wall_ns,
                evt_num: self.evt_num,
                parent_argv: parent.map_or(&[][..], |p| &p.argv[..]),
                ancestor_exes: &ancestor_exes,
                user_name: user_name.as_deref(),
                group_name: group_name.as_deref(),
                tty: facts.tty,
                loginuid: facts.loginuid,
                cwd: facts.cwd.as_deref(),
                hostname: &self.hostname,
            };
            self.detectors.observe(&input, &mut alerts);
        }
        let context = (!alerts.is_empty()).then(|| {
            let lineage = self.lineage(p.pid, p.start_ns);
            for a in &mut alerts {
                a.add_lineage(&lineage);
            }
            Arc::new(AlertContext { event: ev.clone(), container: container.clone(), lineage })
        });
        let (exec_id, parent_exec_id) = ids.unzip();
        let meta = container.as_ref().and_then(|c| self.enrich.metadata(&c.id));
        self.outputs.event(
            wall_ns,
            &ev,
            container.as_deref(),
            meta,
            exec_id.as_deref(),
            parent_exec_id.flatten().as_deref(),
        );
        let kind = ev.detail.kind() as usize % self.metrics.events.len();
        self.metrics.events[kind].fetch_add(1, Ordering::Relaxed);
        let mut ready = Vec::new();
        for alert in alerts {
            let r = Raised { alert, context: context.clone() };
            self.enrich.complete_or_hold(r, container.as_ref().map(|c| c.id.as_str()), &mut ready);
        }
        self.emit(ready);
    }

    /// Alerts that are complete go through folding and rate limits to the outputs.
    fn emit(&mut self, alerts: Vec<Raised>) {
        if alerts.is_empty() {
            return;
        }
        let out = fold(&mut self.aggregate, alerts, monotonic_ns());
        self.write_alerts(out);
    }

    fn write_alerts(&mut self, alerts: Vec<Raised>) {
        self.alerts_unflushed |= !alerts.is_empty();
        for r in &alerts {
            self.outputs.alert(&r.alert, r.context.as_deref());
            self.metrics.alert(&r.alert.rule, &format!("{:?}", r.alert.priority));
            if let Some(w) = &mut self.web
                && let Some(c) =
                    r.alert.output_fields.get("boxwatch.container.full_id").and_then(|v| v.as_str())
            {
                *w.alerts_by_container.entry(c.to_string()).or_default() += 1;
                w.changed = true;
            }
        }
    }

    /// Runtime lookups that finished, held alerts now complete (or out of time),
    /// and aggregation windows that closed.
    fn poll_enrichment(&mut self) {
        let mut ready = Vec::new();
        self.enrich.poll(&mut ready);
        self.emit(ready);
        let mut closed = Vec::new();
        self.aggregate.tick(monotonic_ns(), &mut closed);
        self.write_alerts(closed.into_iter().map(|alert| Raised { alert, context: None }).collect());
    }

    /// A parent we have never seen started before us: read it (and its
    /// unknown ancestors) from /proc so lineage reaches the runtime processes.
    fn seed_from_proc(&mut self, mut pid: u32) {
        if self.parent_lookups.len() > 65_536 {
            self.parent_lookups.clear();
        }
        let mut found = Vec::new();
        for _ in 0..8 {
            if pid <= 1 || !self.parent_lookups.insert(pid) || self.tree.get(pid).is_some() {
                break;
            }
            let table = &self.table;
            let container_of = |cg: u64| table.lookup(cg).flatten().map(|c| c.id.clone());
            let Some(sp) = procfs::read_process(pid, self.start_clock, &mut self.cgroup_ids, &container_of)
            else {
                break;
            };
            pid = sp.ppid;
            found.push(sp);
        }
        if !found.is_empty() {
            self.tree.seed(found);
        }
    }

    /// Compare the kernel filter with what boxwatch wrote to it: a write by anyone
    /// else (a privileged container can open the map by id and mark its own cgroup
    /// as HOST to switch its monitoring off) is undone by the audit and raised as
    /// a Critical alert naming the container whose filtering was changed.
    fn audit_filter(&mut self) {
        let found = match self.monitor.audit_filter() {
            Ok(f) => f,
            Err(e) => {
                self.metrics.filter_map_errors.fetch_add(1, Ordering::Relaxed);
                error!("auditing the kernel filter: {e}");
                return;
            }
        };
        if found.is_empty() {
            return;
        }
        self.metrics.filter_tampers.fetch_add(found.len() as u64, Ordering::Relaxed);
        let wall_ns = self.clock.wall_ns(monotonic_ns());
        let (map_id, gen_id) = self.monitor.filter_map_ids();
        let mut out = Vec::new();
        for t in found {
            let container = t.cgroup_id().and_then(|id| self.table.lookup(id).flatten().cloned());
            let mut f = std::collections::BTreeMap::new();
            f.insert("boxwatch.tamper", serde_json::json!(t.to_string()));
            f.insert("boxwatch.tamper.map_ids", serde_json::json!([map_id, gen_id]));
            f.insert("boxwatch.cgroup_id", serde_json::json!(t.cgroup_id()));
            f.insert("boxwatch.rule.class", serde_json::json!("escape"));
            let short = match &container {
                Some(c) => {
                    f.insert("container.id", serde_json::json!(c.id.chars().take(12).collect::<String>()));
                    f.insert("boxwatch.container.full_id", serde_json::json!(c.id));
                    c.id.chars().take(12).collect::<String>()
                }
                None => {
                    f.insert("container.id", serde_json::json!("host"));
                    "host".to_string()
                }
            };
            out.push(Raised {
                alert: Alert {
                    time: boxwatch_rules::time::rfc3339_ns(wall_ns),
                    rule: FILTER_TAMPER_RULE.to_string(),
                    priority: Priority::Critical,
                    output: format!(
                        "boxwatch's in-kernel filter was changed by another process and has been restored \
                         ({t} container={short} maps={map_id},{gen_id})"
                    ),
                    output_fields: f,
                    tags: vec!["boxwatch".into(), "tamper".into(), "escape".into(), "T1562.001".into()],
                    source: "syscall",
                    hostname: self.hostname.clone(),
                },
                context: None,
            });
        }
        self.write_alerts(out);
    }

    /// Compare the table with the cgroup tree on disk: a cgroup_rmdir record can be
    /// lost (ring buffer full), and without this its container would never exit.
    fn reconcile_cgroups(&mut self, wall_ns: u64) {
        let Ok(present) = cgroups::scan(&self.cgroup_root) else { return };
        let present: HashSet<u64> = present.into_iter().map(|(id, _)| id).collect();
        let gone: Vec<u64> = self.table.cgroup_ids().filter(|id| !present.contains(id)).collect();
        for id in gone {
            self.monitor.forget_cgroup(id);
            if let Some(c) = self.table.forget(id) {
                self.outputs.container(wall_ns, "exited", &c);
                self.container_gone(&c.id);
            }
            self.metrics.cgroups_reconciled.fetch_add(1, Ordering::Relaxed);
        }
        // Unknown cgroups that are gone will never be seen again.
        self.unresolved.retain_present(&present);
    }

    /// SIGHUP: read the config file again (its `[rules]` section applies when the
    /// command line did not set the rules), then compile the rules again; on any
    /// error keep what is in force.
    fn reload_rules(&mut self) {
        if let Some(path) = self.reload_cfg.config.clone() {
            match config::load(Some(&path)) {
                Ok(Some((_, file))) => {
                    if self.reload_cfg.rules_from_file {
                        self.rule_sources = RuleSources {
                            default_pack: file.rules.default_pack.unwrap_or(true),
                            paths: file.rules.paths.unwrap_or_default(),
                        };
                    }
                    info!(
                        "config {} re-read ([rules] applied; other settings take effect at restart)",
                        path.display()
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    error!("config reload failed; keeping the settings in force: {e:#}");
                    return;
                }
            }
        }
        match self.rule_sources.load() {
            Ok(set) => {
                info!("rules reloaded: {} rules", set.len());
                self.detectors.replace(Box::new(set));
            }
            Err(e) => error!("rules reload failed; keeping the {} rules in force: {e:#}", self.rule_count()),
        }
    }

    /// Rules of the YAML rule set in force.
    fn rule_count(&self) -> usize {
        self.detectors.get("rules").map_or(0, |d| d.rules().len())
    }

    /// Copy the table and tree sizes into the metrics.
    fn publish_gauges(&self) {
        let m = self.metrics;
        let t = self.tree.stats();
        m.containers.store(self.table.containers().count() as u64, Ordering::Relaxed);
        m.cgroups.store(self.table.cgroup_count() as u64, Ordering::Relaxed);
        m.processes_live.store(t.live as u64, Ordering::Relaxed);
        m.processes_exited.store(t.exited as u64, Ordering::Relaxed);
        m.processes_evicted.store(t.evicted_exited + t.evicted_over_cap, Ordering::Relaxed);
        let outputs = self.outputs.stats();
        let write_errors = outputs.iter().filter(|s| s.kind == StatKind::WriteErrors).map(|s| s.value).sum();
        m.output_write_errors.store(write_errors, Ordering::Relaxed);
        if let Ok(mut o) = m.outputs.lock() {
            *o = outputs;
        }
        let agg = self.aggregate.stats();
        m.alerts_folded.store(agg.folded, Ordering::Relaxed);
        m.alert_summaries.store(agg.summaries, Ordering::Relaxed);
        if let Ok(mut by) = m.suppressed.lock() {
            by.clone_from(&agg.suppressed_by_rule);
        }
        if let Ok(mut by) = m.suppressed_containers.lock() {
            by.clone_from(&agg.suppressed_by_container);
        }
        if let Ok(mut st) = m.stateful.lock()
            && let Some(d) = self.detectors.get("stateful")
        {
            // The stateful detections report through the Detector seam, by name.
            for (name, v) in d.stats() {
                match name {
                    "stateful_written_files" => st.written_files = v as usize,
                    "stateful_setuid_files" => st.setuid_files = v as usize,
                    "stateful_ns_processes" => st.ns_processes = v as usize,
                    "stateful_scan_processes" => st.scan_processes = v as usize,
                    "stateful_written_evictions" => st.written_evictions = v,
                    "stateful_setuid_evictions" => st.setuid_evictions = v,
                    "stateful_ns_evictions" => st.ns_evictions = v,
                    "stateful_scan_evictions" => st.scan_evictions = v,
                    _ => {}
                }
            }
        }
        if let Ok(mut en) = m.enricher.lock() {
            *en = self.enrich.stats();
        }
    }

    /// At each flush point: the wall-clock resync, the data-path heartbeat, and a snapshot for
    /// the HTTP API when due.
    fn tick(&mut self, now: Instant) {
        self.clock.maybe_resync(monotonic_ns());
        self.data_path.processed.store(self.processed, Ordering::Relaxed);
        self.data_path.processor_beat(self.processed != self.processed_at_beat);
        if self.processed != self.processed_at_beat
            && let Some(w) = &mut self.web
        {
            w.changed = true;
        }
        self.processed_at_beat = self.processed;
        if self.web.as_ref().is_some_and(|w| w.due(now)) {
            self.publish_gauges();
            let kernel = KernelCounters::read(self.monitor);
            if let Some(w) = &mut self.web {
                let parts = Parts {
                    table: &self.table,
                    tree: &self.tree,
                    enrich: &self.enrich,
                    metrics: self.metrics,
                    kernel,
                };
                w.publish(parts, now);
            }
        }
    }

    /// Ancestry of a process for alerts.
    fn lineage(&self, pid: u32, start_ns: u64) -> Lineage {
        let Some(n) = self.tree.lookup(pid, start_ns) else { return Lineage::default() };
        let parent = n.parent.and_then(|k| self.tree.lookup(k.pid, k.start_ns));
        Lineage {
            exec_id: n.exec_id().to_string(),
            parent_exec_id: parent.map(|p| p.exec_id().to_string()),
            entry: n.entry.map(entry_name),
            ancestors: self
                .tree
                .ancestors_of(n)
                .into_iter()
                .map(|a| Ancestor {
                    pid: a.key.pid,
                    comm: a.comm.to_string(),
                    exe: a.exe.as_deref().map(str::to_string),
                    in_container: a.container_id.is_some() && a.container_id == n.container_id,
                })
                .collect(),
        }
    }
}

/// Offer `alerts` to the aggregator at `now_ns`: what goes out, in order. An alert
/// that passes keeps its context (event, lineage, container) for the subscribers;
/// summaries of folded alerts carry none.
fn fold(aggregate: &mut Aggregator, alerts: Vec<Raised>, now_ns: u64) -> Vec<Raised> {
    let summary = |alert| Raised { alert, context: None };
    let mut closed = Vec::new();
    aggregate.tick(now_ns, &mut closed);
    let mut out: Vec<Raised> = closed.into_iter().map(summary).collect();
    for r in alerts {
        let counts = |a: &Aggregator| (a.stats().folded, a.stats().suppressed());
        let before = counts(aggregate);
        let mut passed = Vec::new();
        aggregate.offer(r.alert, now_ns, &mut passed);
        // Neither folded nor suppressed: the offered alert went out, after any window
        // it had to close to make room.
        let offered_out = before == counts(aggregate);
        let n = passed.len();
        for (i, alert) in passed.into_iter().enumerate() {
            out.push(if offered_out && i + 1 == n {
                Raised { alert, context: r.context.clone() }
            } else {
                summary(alert)
            });
        }
    }
    out
}

fn entry_name(e: Entry) -> String {
    boxwatch_model::process::entry_name(e)
}

fn stats_line(monitor: &Monitor, m: &Metrics) -> String {
    let kd = monitor.kernel_drops();
    let emitted: u64 = monitor.kernel_emitted().iter().sum();
    let mut s = format!(
        "stats kernel_emitted={emitted} received={} events_out={} alerts={} containers={} cgroups={} \
         processes={} drops:",
        m.received.load(Ordering::Relaxed),
        m.events_total(),
        m.alerts_total(),
        m.containers.load(Ordering::Relaxed),
        m.cgroups.load(Ordering::Relaxed),
        m.processes_live.load(Ordering::Relaxed),
    );
    for (i, n) in kd.iter().enumerate() {
        s.push_str(&format!(" {}={n}", drop_cause::NAMES[i]));
    }
    s.push_str(&format!(
        " userspace_queue_full={} decode_errors={} output_write_errors={} filter_map_errors={}",
        m.queue_full.load(Ordering::Relaxed),
        m.decode_errors.load(Ordering::Relaxed),
        m.output_write_errors.load(Ordering::Relaxed),
        m.filter_map_errors.load(Ordering::Relaxed),
    ));
    // Every output's counters, as it reports them (write errors are in output_write_errors).
    let outputs: Vec<SinkStat> = m.outputs.lock().map(|o| o.clone()).unwrap_or_default();
    for st in outputs.iter().filter(|s| s.kind != StatKind::WriteErrors) {
        s.push_str(&format!(" {}={}", st.key(), st.value));
    }
    s.push_str(&format!(
        " alerts_folded={} alerts_rate_limited={}",
        m.alerts_folded.load(Ordering::Relaxed),
        m.suppressed.lock().map(|s| s.values().sum::<u64>()).unwrap_or(0),
    ));
    s
}

/// `/healthz` allows a heartbeat gap of a few poll timeouts (`--latency-ms`) at least.
fn latency_bound(latency_ms: u64) -> Duration {
    Duration::from_millis(latency_ms.saturating_mul(4))
}

/// What SIGHUP reloads: the rules, and the config file's `[rules]` section when the
/// command line and environment did not set the rules (other settings need a restart).
#[derive(Debug, Clone)]
pub struct Reload {
    pub config: Option<PathBuf>,
    pub rules_from_file: bool,
}

pub fn run(args: RunArgs, reload_cfg: Reload, verbose: bool) -> Result<()> {
    let host_mask = kind_mask(&args.host_events)?;
    // Host exec/fork/exit pass the kernel filter (they are not printed): the
    // process tree needs the runtime processes (containerd-shim, runc) that
    // start containers and exec into them.
    let lineage_mask = if args.no_host_lineage {
        0
    } else {
        kind::bit(kind::EXEC) | kind::bit(kind::FORK) | kind::bit(kind::EXIT)
    };
    let cfg = MonitorConfig {
        filter_cgroups: !args.all_processes,
        host_kind_mask: host_mask | lineage_mask,
        syscall_fallback: !args.no_syscall_fallback,
        ringbuf_bytes: args.ringbuf_mib * 1024 * 1024,
        libbpf_verbose: verbose,
        btf_path: args.btf.clone(),
        ..MonitorConfig::default()
    };
    let cgroup_root = cgroups::cgroup2_root()?;
    let outputs = boxwatch_outputs::open(&config::outputs(&args))?;
    let t0 = Instant::now();
    info!("loading and attaching the BPF programs…");
    let monitor = Arc::new(Monitor::load(&cfg).context("load the BPF monitor (try `boxwatch check`)")?);
    let load_ms = t0.elapsed().as_millis();
    // Loading parsed the kernel's BTF (several MB) for CO-RE; libbpf has freed it,
    // hand the pages back to the system instead of keeping them in the heap.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };

    let metrics = Arc::new(Metrics::default());
    let data_path = Arc::new(DataPath::default());
    let listener = match args.metrics_addr {
        Some(addr) if !args.no_metrics => Some(boxwatch_web::server::bind(addr)?),
        _ => None,
    };
    let rule_sources = RuleSources { default_pack: !args.no_default_rules, paths: args.rules.clone() };
    let t_rules = Instant::now();
    info!("compiling rules…");
    let rules = rule_sources.load().context("load detection rules")?;
    let rules_ms = t_rules.elapsed().as_millis();
    let mut detectors = Detectors::new();
    detectors.push(Box::new(rules));
    detectors.push(Box::new(Stateful::new(StatefulConfig::default())));
    let mut p = Processor {
        monitor: &monitor,
        metrics: &metrics,
        cgroup_root: cgroup_root.clone(),
        table: ContainerTable::new(),
        tree: ProcessTree::default(),
        cgroup_ids: CgroupIds::new(&cgroup_root),
        start_clock: StartClock::new(),
        parent_lookups: HashSet::new(),
        last_evict_ns: 0,
        alerts_unflushed: false,
        unresolved: Unresolved::default(),
        outputs,
        detectors,
        rule_sources,
        reload_cfg,
        aggregate: Aggregator::new(AggregateConfig {
            window_ns: args.aggregate_window.saturating_mul(1_000_000_000),
            per_rule_per_sec: args.rate_per_rule,
            per_container_per_sec: args.rate_per_container,
            ..AggregateConfig::default()
        }),
        enrich: Enrichment::start((!args.no_runtime_lookup).then(|| EnricherConfig {
            containerd_sockets: if args.containerd_socket.is_empty() {
                EnricherConfig::default().containerd_sockets
            } else {
                args.containerd_socket.clone()
            },
            docker_socket: Some(args.docker_socket.clone()),
            ..EnricherConfig::default()
        })),
        clock: WallClock::new(CLOCK_RESYNC_EVERY),
        evt_num: 0,
        facts: ProcFacts::default(),
        hostname: hostname(),
        all_processes: args.all_processes,
        host_mask,
        data_path: Arc::clone(&data_path),
        processed: 0,
        processed_at_beat: 0,
        web: listener
            .is_some()
            .then(|| Publisher::new(Arc::clone(&data_path), monitor.coverage(), PublishPolicy::default())),
    };
    // Seed from the cgroup tree: containers that exist before start are
    // classified before the first event is read.
    let now = p.clock.wall_ns(monotonic_ns());
    info!("scanning cgroups and /proc for running containers and processes…");
    for (id, path) in cgroups::scan(&cgroup_root)? {
        p.learn(id, &path, now, "first_seen");
    }
    // Seed the process tree from /proc: processes that started before us
    // resolve with their full chain.
    let table = &p.table;
    let seeds = procfs::scan(&cgroup_root, &|cg| table.lookup(cg).flatten().map(|c| c.id.clone()));
    let seeded = seeds.len();
    p.tree.seed(seeds);
    p.outputs.flush();
    p.tick(Instant::now()); // the first snapshot, before the API can be asked
    let server = match listener {
        Some(l) => {
            let mut registry = boxwatch_web::prometheus_client::registry::Registry::default();
            let mon = Arc::clone(&monitor);
            registry.register_collector(Box::new(DaemonCollector::new(
                Arc::clone(&metrics),
                Arc::clone(&data_path),
                move || KernelCounters::read(&mon),
            )));
            let web = boxwatch_web::Web {
                registry,
                snapshots: p.web.as_ref().map(|w| Arc::clone(&w.cell)).unwrap_or_default(),
                data_path: Arc::clone(&data_path),
                alerts: args
                    .history
                    .clone()
                    .map(|path| Arc::new(HistoryStore { path }) as Arc<dyn boxwatch_web::AlertStore>),
                stall_after: STALL_AFTER.max(latency_bound(args.latency_ms)),
            };
            Some(boxwatch_web::server::Server::spawn(l, boxwatch_web::router(web))?)
        }
        None => None,
    };

    let cov = monitor.coverage();
    let degraded: Vec<&str> = cov.degraded().map(|h| h.program.as_str()).collect();
    let fallback = if cov.is_attached("fallback_sys_enter") {
        "; module/kexec syscalls observed through the raw_tp/sys_enter fallback"
    } else {
        ""
    };
    info!(
        "ready: {} hooks attached, {} degraded{}{fallback}; {} rules (compiled in {rules_ms} ms); \
         {} containers, {} cgroups, {seeded} processes; loaded in {load_ms} ms; logs in {}; outputs: {}; metrics {}",
        cov.attached(),
        degraded.len(),
        if degraded.is_empty() {
            String::new()
        } else {
            format!(" [{}] (reasons: boxwatch check)", degraded.join(", "))
        },
        p.rule_count(),
        p.table.containers().count(),
        p.table.cgroup_count(),
        args.log_dir.display(),
        p.outputs.describe(),
        server
            .as_ref()
            .map_or_else(|| "off".to_string(), |s| format!("on http://{}/metrics", s.local_addr())),
    );

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handler")?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("install SIGHUP handler")?;
    let (tx, rx) = sync_channel::<Event>(args.queue as usize);
    let latency = Duration::from_millis(args.latency_ms);
    let deadline = (args.duration > 0).then(|| Instant::now() + Duration::from_secs(args.duration));
    let stats_every = (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval));

    std::thread::scope(|s| -> Result<()> {
        let reader_stop = Arc::clone(&stop);
        let counters = &*metrics;
        let monitor = &*monitor;
        let dp = &*data_path;
        let reader = s.spawn(move || -> Result<()> {
            /// `reader_alive` is cleared however the reader ends (error, panic, stop).
            struct Alive<'a>(&'a DataPath);
            impl Drop for Alive<'_> {
                fn drop(&mut self) {
                    self.0.reader_alive.store(false, Ordering::Relaxed);
                }
            }
            dp.reader_alive.store(true, Ordering::Relaxed);
            let _alive = Alive(dp);
            let rb = monitor.reader(|data| {
                counters.received.fetch_add(1, Ordering::Relaxed);
                match decode(data) {
                    Ok(ev) => match tx.try_send(ev) {
                        Ok(()) => {
                            dp.enqueued.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                            counters.queue_full.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    Err(_) => {
                        counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
            while !reader_stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                rb.poll(latency)?;
                dp.reader_beat();
            }
            rb.poll(Duration::ZERO)?; // final drain; dropping rb closes the queue
            Ok(())
        });

        let mut last_flush = Instant::now();
        let mut last_stats = Instant::now();
        let mut last_reconcile = Instant::now();
        let mut last_audit = Instant::now();
        let mut last_published = Instant::now();
        loop {
            // An alert goes out as soon as the queue runs dry (events alone wait for the
            // `latency` timer: one write per event would cost more than it buys).
            let next = if p.alerts_unflushed {
                match rx.try_recv() {
                    Ok(ev) => Ok(ev),
                    Err(TryRecvError::Empty) => {
                        p.outputs.flush();
                        p.alerts_unflushed = false;
                        rx.recv_timeout(latency)
                    }
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                }
            } else {
                rx.recv_timeout(latency)
            };
            match next {
                Ok(ev) => {
                    p.handle(ev);
                    if last_flush.elapsed() >= latency {
                        p.poll_enrichment();
                        p.outputs.flush();
                        last_flush = Instant::now();
                        p.tick(last_flush);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    p.poll_enrichment();
                    p.outputs.flush();
                    last_flush = Instant::now();
                    p.tick(last_flush);
                    // Idle: output counters still move (deliveries finish in the background).
                    if last_published.elapsed() >= Duration::from_secs(1) {
                        p.publish_gauges();
                        last_published = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if reload.load(Ordering::Relaxed) && reload.swap(false, Ordering::Relaxed) {
                p.reload_rules();
            }
            if last_audit.elapsed() >= FILTER_AUDIT_EVERY {
                p.audit_filter();
                last_audit = Instant::now();
            }
            if last_reconcile.elapsed() >= RECONCILE_EVERY {
                p.reconcile_cgroups(p.clock.wall_ns(monotonic_ns()));
                last_reconcile = Instant::now();
            }
            if let Some(every) = stats_every
                && last_stats.elapsed() >= every
            {
                p.publish_gauges();
                info!("{}", stats_line(monitor, counters));
                last_stats = Instant::now();
            }
        }
        let mut held = Vec::new();
        p.enrich.drain(&mut held);
        p.emit(held);
        let mut closed = Vec::new();
        p.aggregate.flush(&mut closed);
        p.write_alerts(closed.into_iter().map(|alert| Raised { alert, context: None }).collect());
        // Log files flushed and fsync'd; queued deliveries get 10 s each.
        p.outputs.close(Duration::from_secs(10));
        p.publish_gauges();
        reader.join().map_err(|_| anyhow::anyhow!("ring-buffer reader thread panicked"))??;
        Ok(())
    })?;
    if let Some(s) = server {
        s.stop();
    }
    info!("{}", stats_line(&monitor, &metrics));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use boxwatch_rules::{Alert, Priority};

    #[test]
    fn unresolved_cgroups_are_pruned_and_bounded() {
        let mut u = Unresolved::default();
        for id in 0..10 {
            u.insert(id);
        }
        u.remove(&3); // its rmdir event
        assert!(!u.contains(&3) && u.contains(&4));
        let present: HashSet<u64> = [4, 5, 99].into();
        u.retain_present(&present); // the periodic reconcile
        assert_eq!(u.len(), 2);
        for id in 0..(Unresolved::MAX as u64 + 10) {
            u.insert(id);
        }
        assert!(u.len() <= Unresolved::MAX, "{}", u.len());
    }

    #[test]
    fn host_event_names() {
        assert_eq!(kind_mask(&["module".into()]).unwrap(), 1 << 25);
        assert_eq!(kind_mask(&["none".into()]).unwrap(), 0);
        assert_eq!(kind_mask(&["setuid".into(), "exec".into()]).unwrap(), (1 << 18) | (1 << 1));
        let err = kind_mask(&["bogus".into()]).unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("known:"), "{err}");
    }

    fn raised(rule: &str, file: &str, pid: u32) -> Raised {
        let mut f = std::collections::BTreeMap::new();
        f.insert("fd.name", serde_json::json!(file));
        let alert = Alert {
            time: format!("2026-01-01T00:00:00.{pid:09}Z"),
            rule: rule.into(),
            priority: Priority::Warning,
            output: rule.into(),
            output_fields: f,
            tags: vec![],
            source: "syscall",
            hostname: "h".into(),
        };
        let mut event: Event = serde_json::from_str(
            r#"{"cgroup_id": 1, "kind": "exit", "code": 0, "signal": 0, "ktime_ns": 1, "ns": {"mnt": 1, "net": 1, "pid": 1}, "process": {"cap_effective": 0, "comm": "x", "egid": 0, "euid": 0, "gid": 0, "pid": 1, "ppid": 0, "start_ns": 1, "tid": 1, "uid": 0, "vpid": 1}, "record_flags": 0}"#,
        )
        .expect("event");
        event.process.pid = pid;
        let context = AlertContext { event, container: None, lineage: Lineage::default() };
        Raised { alert, context: Some(Arc::new(context)) }
    }

    #[test]
    fn alerts_keep_their_context_through_folding_and_summaries_have_none() {
        const S: u64 = 1_000_000_000;
        let mut agg = Aggregator::new(AggregateConfig {
            window_ns: 10 * S,
            per_rule_per_sec: 0.0,
            per_container_per_sec: 0.0,
            ..AggregateConfig::default()
        });
        let pid = |r: &Raised| r.context.as_ref().map(|c| c.event.process.pid);
        // The first of a kind passes with its own context; repeats fold.
        let out = fold(&mut agg, vec![raised("a", "/x", 1), raised("a", "/x", 2), raised("b", "/y", 3)], S);
        assert_eq!(
            out.iter().map(|r| (r.alert.rule.as_str(), pid(r))).collect::<Vec<_>>(),
            [("a", Some(1)), ("b", Some(3))]
        );
        // The window closes: the summary of "a" (no context) comes before the new alert (its context).
        let out = fold(&mut agg, vec![raised("c", "/z", 4)], 12 * S);
        let got: Vec<_> = out.iter().map(|r| (r.alert.rule.as_str(), pid(r))).collect();
        assert_eq!(got, [("a", None), ("c", Some(4))]);
        assert!(out[0].alert.output_fields.contains_key("boxwatch.aggregate.count"));
        // Rate-limited alerts do not come out, and do not lend their context to others.
        let mut limited = Aggregator::new(AggregateConfig {
            window_ns: 0,
            per_rule_per_sec: 0.5,
            per_container_per_sec: 0.0,
            ..AggregateConfig::default()
        });
        let out = fold(&mut limited, (10..14).map(|p| raised("r", "/f", p)).collect(), S);
        assert_eq!(out.iter().map(pid).collect::<Vec<_>>(), [Some(10), None]);
        // The None is the in-band notice that the container's alerts are being suppressed.
        assert_eq!(out[1].alert.rule, boxwatch_rules::aggregate::SUPPRESSION_RULE);
    }
}
