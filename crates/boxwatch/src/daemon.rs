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
use boxwatch_rules::aggregate::{AggregateConfig, Aggregator};
use boxwatch_rules::engine::{Detectors, Input, Stateful, StatefulConfig};
use boxwatch_rules::{Alert, Ancestor, Lineage};
use boxwatch_runtime::EnricherConfig;

use crate::cgroups;
use crate::cli::RunArgs;
use crate::clock::{WallClock, hostname, monotonic_ns};
use crate::config;
use crate::enrich::Enrichment;
use crate::metrics::{self, Metrics};
use crate::output::Sinks;
use crate::procfacts::ProcFacts;
use crate::procfs::{self, CgroupIds, StartClock};
use crate::rules::RuleSources;

/// How often the container table is checked against the cgroup tree on disk.
const RECONCILE_EVERY: Duration = Duration::from_secs(15);

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
    unresolved: HashSet<u64>,
    sinks: Sinks,
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
            self.sinks.container(wall_ns, action, c);
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

    fn handle(&mut self, ev: Event) {
        let wall_ns = self.clock.wall_ns(ev.ktime_ns);
        match &ev.detail {
            Detail::CgroupMkdir { id, path, .. } => {
                self.unresolved.remove(id);
                self.learn(*id, path, wall_ns, "started");
                return;
            }
            Detail::CgroupRmdir { id, .. } => {
                self.monitor.forget_cgroup(*id);
                if let Some(c) = self.table.forget(*id) {
                    self.sinks.container(wall_ns, "exited", &c);
                    self.enrich.container_gone(&c.id);
                    self.facts.container_gone(&c.id);
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
        if !alerts.is_empty() {
            let lineage = self.lineage(p.pid, p.start_ns);
            for a in &mut alerts {
                a.add_lineage(&lineage);
            }
        }
        let (exec_id, parent_exec_id) = ids.unzip();
        let meta = container.as_ref().and_then(|c| self.enrich.metadata(&c.id));
        self.sinks.event(
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
        for a in alerts {
            self.enrich.complete_or_hold(a, container.as_ref().map(|c| c.id.as_str()), &mut ready);
        }
        self.emit(ready);
    }

    /// Alerts that are complete go through folding and rate limits to the outputs.
    fn emit(&mut self, alerts: Vec<Alert>) {
        let now = monotonic_ns();
        let mut out = Vec::new();
        for a in alerts {
            self.aggregate.offer(a, now, &mut out);
        }
        self.write_alerts(out);
    }

    fn write_alerts(&mut self, alerts: Vec<Alert>) {
        self.alerts_unflushed |= !alerts.is_empty();
        for a in &alerts {
            self.sinks.alert(a);
            self.metrics.alert(&a.rule, &format!("{:?}", a.priority));
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
        self.write_alerts(closed);
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

    /// Compare the table with the cgroup tree on disk: a cgroup_rmdir record can be
    /// lost (ring buffer full), and without this its container would never exit.
    fn reconcile_cgroups(&mut self, wall_ns: u64) {
        let Ok(present) = cgroups::scan(&self.cgroup_root) else { return };
        let present: HashSet<u64> = present.into_iter().map(|(id, _)| id).collect();
        let gone: Vec<u64> = self.table.cgroup_ids().filter(|id| !present.contains(id)).collect();
        for id in gone {
            self.monitor.forget_cgroup(id);
            if let Some(c) = self.table.forget(id) {
                self.sinks.container(wall_ns, "exited", &c);
                self.enrich.container_gone(&c.id);
            }
            self.metrics.cgroups_reconciled.fetch_add(1, Ordering::Relaxed);
        }
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
                    eprintln!(
                        "boxwatch: config {} re-read ([rules] applied; other settings take effect at restart)",
                        path.display()
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("boxwatch: config reload failed; keeping the settings in force: {e:#}");
                    return;
                }
            }
        }
        match self.rule_sources.load() {
            Ok(set) => {
                eprintln!("boxwatch: rules reloaded: {} rules", set.len());
                self.detectors.replace(Box::new(set));
            }
            Err(e) => eprintln!(
                "boxwatch: rules reload failed; keeping the {} rules in force: {e:#}",
                self.rule_count()
            ),
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
        m.output_write_errors.store(self.sinks.stats.write_errors, Ordering::Relaxed);
        let agg = self.aggregate.stats();
        m.alerts_folded.store(agg.folded, Ordering::Relaxed);
        m.alert_summaries.store(agg.summaries, Ordering::Relaxed);
        if let Ok(mut by) = m.suppressed.lock() {
            by.clone_from(&agg.suppressed_by_rule);
        }
        if let Ok(mut by) = m.suppressed_containers.lock() {
            by.clone_from(&agg.suppressed_by_container);
        }
        if let Some(w) = &self.sinks.webhook {
            m.webhook_sent.store(w.stats.sent.load(Ordering::Relaxed), Ordering::Relaxed);
            m.webhook_queue_full.store(w.stats.dropped_queue_full.load(Ordering::Relaxed), Ordering::Relaxed);
            m.webhook_failed.store(w.stats.dropped_failed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if let Some(w) = &self.sinks.syslog {
            m.syslog_sent.store(w.stats.sent.load(Ordering::Relaxed), Ordering::Relaxed);
            m.syslog_queue_full.store(w.stats.dropped_queue_full.load(Ordering::Relaxed), Ordering::Relaxed);
            m.syslog_failed.store(w.stats.dropped_failed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if let Some(w) = &self.sinks.nats {
            m.nats_sent.store(w.stats.sent.load(Ordering::Relaxed), Ordering::Relaxed);
            m.nats_queue_full.store(w.stats.dropped_queue_full.load(Ordering::Relaxed), Ordering::Relaxed);
            m.nats_failed.store(w.stats.dropped_failed.load(Ordering::Relaxed), Ordering::Relaxed);
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

fn entry_name(e: Entry) -> String {
    match e {
        Entry::ContainerInit => "container_init".to_string(),
        Entry::ExecInto { via } => format!("exec_into:{via}"),
    }
}

fn stats_line(monitor: &Monitor, m: &Metrics) -> String {
    let kd = monitor.kernel_drops();
    let emitted: u64 = monitor.kernel_emitted().iter().sum();
    let mut s = format!(
        "boxwatch: stats kernel_emitted={emitted} received={} events_out={} alerts={} containers={} cgroups={} \
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
        " userspace_queue_full={} decode_errors={} output_write_errors={} filter_map_errors={} \
         webhook_queue_full={} webhook_failed={} webhook_sent={} syslog_queue_full={} syslog_failed={} \
         syslog_sent={} nats_queue_full={} nats_failed={} nats_sent={} alerts_folded={} alerts_rate_limited={}",
        m.queue_full.load(Ordering::Relaxed),
        m.decode_errors.load(Ordering::Relaxed),
        m.output_write_errors.load(Ordering::Relaxed),
        m.filter_map_errors.load(Ordering::Relaxed),
        m.webhook_queue_full.load(Ordering::Relaxed),
        m.webhook_failed.load(Ordering::Relaxed),
        m.webhook_sent.load(Ordering::Relaxed),
        m.syslog_queue_full.load(Ordering::Relaxed),
        m.syslog_failed.load(Ordering::Relaxed),
        m.syslog_sent.load(Ordering::Relaxed),
        m.nats_queue_full.load(Ordering::Relaxed),
        m.nats_failed.load(Ordering::Relaxed),
        m.nats_sent.load(Ordering::Relaxed),
        m.alerts_folded.load(Ordering::Relaxed),
        m.suppressed.lock().map(|s| s.values().sum::<u64>()).unwrap_or(0),
    ));
    s
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
        ..MonitorConfig::default()
    };
    let cgroup_root = cgroups::cgroup2_root()?;
    let sinks = Sinks::open(&args)?;
    let t0 = Instant::now();
    eprintln!("boxwatch: loading and attaching the BPF programs…");
    let monitor = Monitor::load(&cfg).context("load the BPF monitor (try `boxwatch check`)")?;
    let load_ms = t0.elapsed().as_millis();
    // Loading parsed the kernel's BTF (several MB) for CO-RE; libbpf has freed it,
    // hand the pages back to the system instead of keeping them in the heap.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };

    let metrics = Metrics::default();
    let listener = match args.metrics_addr {
        Some(addr) if !args.no_metrics => Some(metrics::bind(addr)?),
        _ => None,
    };
    let rule_sources = RuleSources { default_pack: !args.no_default_rules, paths: args.rules.clone() };
    let t_rules = Instant::now();
    eprintln!("boxwatch: compiling rules…");
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
        unresolved: HashSet::new(),
        sinks,
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
        clock: WallClock::new(),
        evt_num: 0,
        facts: ProcFacts::default(),
        hostname: hostname(),
        all_processes: args.all_processes,
        host_mask,
    };
    // Seed from the cgroup tree: containers that exist before start are
    // classified before the first event is read.
    let now = p.clock.wall_ns(monotonic_ns());
    eprintln!("boxwatch: scanning cgroups and /proc for running containers and processes…");
    for (id, path) in cgroups::scan(&cgroup_root)? {
        p.learn(id, &path, now, "first_seen");
    }
    // Seed the process tree from /proc: processes that started before us
    // resolve with their full chain.
    let table = &p.table;
    let seeds = procfs::scan(&cgroup_root, &|cg| table.lookup(cg).flatten().map(|c| c.id.clone()));
    let seeded = seeds.len();
    p.tree.seed(seeds);
    p.sinks.flush();

    let cov = monitor.coverage();
    let degraded: Vec<&str> = cov.degraded().map(|h| h.program.as_str()).collect();
    let fallback = if cov.is_attached("fallback_sys_enter") {
        "; module/kexec syscalls observed through the raw_tp/sys_enter fallback"
    } else {
        ""
    };
    eprintln!(
        "boxwatch: ready: {} hooks attached, {} degraded{}{fallback}; {} rules (compiled in {rules_ms} ms); \
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
        p.sinks.describe(),
        listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "off".to_string(), |a| format!("on http://{a}/metrics")),
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

    let done = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        let reader_stop = Arc::clone(&stop);
        let counters = &metrics;
        let monitor = &monitor;
        if let Some(l) = listener {
            let (m, done) = (&metrics, &done);
            s.spawn(move || metrics::serve(l, m, monitor, done));
        }
        let reader = s.spawn(move || -> Result<()> {
            let rb = monitor.reader(|data| {
                counters.received.fetch_add(1, Ordering::Relaxed);
                match decode(data) {
                    Ok(ev) => {
                        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(ev) {
                            counters.queue_full.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
            while !reader_stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                rb.poll(latency)?;
            }
            rb.poll(Duration::ZERO)?; // final drain; dropping rb closes the queue
            Ok(())
        });

        let mut last_flush = Instant::now();
        let mut last_stats = Instant::now();
        let mut last_reconcile = Instant::now();
        loop {
            // An alert goes out as soon as the queue runs dry (events alone wait for the
            // `latency` timer: one write per event would cost more than it buys).
            let next = if p.alerts_unflushed {
                match rx.try_recv() {
                    Ok(ev) => Ok(ev),
                    Err(TryRecvError::Empty) => {
                        p.sinks.flush();
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
                        p.sinks.flush();
                        last_flush = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    p.poll_enrichment();
                    p.sinks.flush();
                    last_flush = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if reload.load(Ordering::Relaxed) && reload.swap(false, Ordering::Relaxed) {
                p.reload_rules();
            }
            if last_reconcile.elapsed() >= RECONCILE_EVERY {
                p.reconcile_cgroups(p.clock.wall_ns(monotonic_ns()));
                last_reconcile = Instant::now();
            }
            if let Some(every) = stats_every
                && last_stats.elapsed() >= every
            {
                p.publish_gauges();
                eprintln!("{}", stats_line(monitor, counters));
                p.clock.resync();
                last_stats = Instant::now();
            }
        }
        let mut held = Vec::new();
        p.enrich.drain(&mut held);
        p.emit(held);
        let mut closed = Vec::new();
        p.aggregate.flush(&mut closed);
        p.write_alerts(closed);
        p.sinks.sync();
        p.sinks.flush();
        if let Some(w) = p.sinks.webhook.as_mut() {
            w.finish(Duration::from_secs(10));
        }
        if let Some(s) = p.sinks.syslog.as_mut() {
            s.finish(Duration::from_secs(10));
        }
        if let Some(n) = p.sinks.nats.as_mut() {
            n.finish(Duration::from_secs(10));
        }
        p.publish_gauges();
        done.store(true, Ordering::Relaxed);
        reader.join().map_err(|_| anyhow::anyhow!("ring-buffer reader thread panicked"))??;
        Ok(())
    })?;
    eprintln!("{}", stats_line(&monitor, &metrics));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::kind_mask;

    #[test]
    fn host_event_names() {
        assert_eq!(kind_mask(&["module".into()]).unwrap(), 1 << 25);
        assert_eq!(kind_mask(&["none".into()]).unwrap(), 0);
        assert_eq!(kind_mask(&["setuid".into(), "exec".into()]).unwrap(), (1 << 18) | (1 << 1));
        let err = kind_mask(&["bogus".into()]).unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("known:"), "{err}");
    }
}
