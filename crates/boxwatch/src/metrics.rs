//! Counters and gauges of the daemon, and the `prometheus-client` collector that exposes them
//! (with the kernel-side counters of the monitor) in the one registry `boxwatch-web` serves at
//! `/metrics`. Hot-path counters stay plain relaxed atomics; the collector reads them at
//! scrape time, so a scrape never touches the event path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use boxwatch_abi::{drop_cause, kind};
use boxwatch_bpf::Monitor;
use boxwatch_outputs::{SinkStat, StatKind};
use boxwatch_rules::engine::StatefulStats;
use boxwatch_runtime::EnricherStats;
use boxwatch_web::DataPath;
use boxwatch_web::prometheus_client::collector::Collector;
use boxwatch_web::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use boxwatch_web::prometheus_client::metrics::MetricType;
use boxwatch_web::prometheus_client::metrics::counter::ConstCounter;
use boxwatch_web::prometheus_client::metrics::gauge::ConstGauge;

/// Everything the daemon counts. Updated with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records read from the ring buffer.
    pub received: AtomicU64,
    pub decode_errors: AtomicU64,
    pub queue_full: AtomicU64,
    /// Events written to outputs, by kind.
    pub events: [AtomicU64; kind::MAX as usize],
    /// Alerts by (rule, priority).
    pub alerts: Mutex<BTreeMap<(String, String), u64>>,
    pub output_write_errors: AtomicU64,
    pub filter_map_errors: AtomicU64,
    /// Foreign writes to the kernel filter found (and undone) by the periodic audit.
    pub filter_tampers: AtomicU64,
    /// cgroups found gone by the periodic check (their rmdir record was lost).
    pub cgroups_reconciled: AtomicU64,
    pub containers: AtomicU64,
    pub cgroups: AtomicU64,
    pub processes_live: AtomicU64,
    pub processes_exited: AtomicU64,
    pub processes_evicted: AtomicU64,
    /// Alerts folded into an aggregation window, and summaries emitted.
    pub alerts_folded: AtomicU64,
    pub alert_summaries: AtomicU64,
    /// Alerts suppressed by rate limits, by rule and by container.
    pub suppressed: Mutex<BTreeMap<String, u64>>,
    pub suppressed_containers: Mutex<BTreeMap<String, u64>>,
    /// The stateful detections' tables (sizes, evictions), copied by the processor.
    pub stateful: Mutex<StatefulStats>,
    /// Container-metadata lookups (`None`: lookups are off).
    pub enricher: Mutex<Option<EnricherStats>>,
    /// Every output's counters, as the outputs report them (copied by the processor).
    pub outputs: Mutex<Vec<SinkStat>>,
}

impl Metrics {
    pub fn alert(&self, rule: &str, priority: &str) {
        if let Ok(mut m) = self.alerts.lock() {
            *m.entry((rule.to_string(), priority.to_string())).or_default() += 1;
        }
    }

    pub fn events_total(&self) -> u64 {
        self.events.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn alerts_total(&self) -> u64 {
        self.alerts.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    /// Userspace event drops by cause, in the order `/metrics` and the stats line list them.
    /// Alerts an output could not deliver are not events: they are in
    /// `boxwatch_alert_delivery_failures_total` (and in alerts.jsonl).
    pub fn userspace_drops(&self) -> [(&'static str, u64); 3] {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("userspace_queue_full", l(&self.queue_full)),
            ("decode_errors", l(&self.decode_errors)),
            ("output_write_errors", l(&self.output_write_errors)),
        ]
    }
}

/// The monitor's kernel-side counters, read at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Records emitted, by kind id.
    pub emitted: Vec<u64>,
    /// Drops by [`drop_cause`].
    pub drops: [u64; drop_cause::MAX as usize],
    /// Ring buffer: (bytes queued at the last submit, high-water mark, size).
    pub ring: (u64, u64, u64),
}

impl KernelCounters {
    pub fn read(m: &Monitor) -> KernelCounters {
        KernelCounters { emitted: m.kernel_emitted(), drops: m.kernel_drops(), ring: m.ringbuf_fill() }
    }
}

/// (cpu seconds, rss bytes) of this process.
fn self_usage() -> (f64, u64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / hz, rss_kib * 1024)
}

type KernelSource = Box<dyn Fn() -> KernelCounters + Send + Sync>;

/// Everything `/metrics` shows, read at scrape time. Register it with
/// `Registry::register_collector`. Counter names are given without `_total`: the encoder
/// appends it (`boxwatch_events` → `boxwatch_events_total`).
pub struct DaemonCollector {
    pub metrics: Arc<Metrics>,
    pub data_path: Arc<DataPath>,
    kernel: KernelSource,
}

impl std::fmt::Debug for DaemonCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonCollector").finish_non_exhaustive()
    }
}

impl DaemonCollector {
    /// `kernel` reads the monitor's counters (`KernelCounters::read` of the running monitor).
    pub fn new(
        metrics: Arc<Metrics>,
        data_path: Arc<DataPath>,
        kernel: impl Fn() -> KernelCounters + Send + Sync + 'static,
    ) -> Self {
        DaemonCollector { metrics, data_path, kernel: Box::new(kernel) }
    }
}

type Fmt = Result<(), std::fmt::Error>;

fn counter<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: N) -> Fmt
where
    ConstCounter<N>: EncodeMetric,
{
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: N) -> Fmt
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One family with one label: `(label value, value)` rows.
fn family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, u64)>,
) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (value, n) in rows {
        let labels = [(label, value)];
        let e = m.encode_family(&labels)?;
        match ty {
            MetricType::Gauge => ConstGauge::new(n).encode(e)?,
            _ => ConstCounter::new(n).encode(e)?,
        }
    }
    Ok(())
}

/// Every output's counters, by what they measure (see [`StatKind`]): the outputs report
/// them, nothing here names an output.
fn encode_outputs(enc: &mut DescriptorEncoder, stats: &[SinkStat]) -> Fmt {
    let families: [(StatKind, &str, &str, Option<&str>); 5] = [
        (StatKind::Delivered, "boxwatch_alerts_delivered", "Alerts an output delivered.", None),
        (
            StatKind::DeliveryFailure,
            "boxwatch_alert_delivery_failures",
            "Alerts an output lost, by cause (queue_full, failed); they are in alerts.jsonl.",
            Some("cause"),
        ),
        (StatKind::Retries, "boxwatch_output_retries", "Deliveries an output attempted again.", None),
        (StatKind::Reconnects, "boxwatch_output_reconnects", "Connections an output opened again.", None),
        (
            StatKind::WriteErrors,
            "boxwatch_output_write_errors",
            "Lines an output could not write (summed in boxwatch_drops_total{cause=\"output_write_errors\"}).",
            None,
        ),
    ];
    for (kind, name, help, extra) in families {
        let mut f = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        for st in stats.iter().filter(|st| st.kind == kind) {
            match extra {
                None => ConstCounter::new(st.value).encode(f.encode_family(&[("output", st.output)])?)?,
                Some(label) => ConstCounter::new(st.value)
                    .encode(f.encode_family(&[("output", st.output), (label, st.name)])?)?,
            }
        }
    }
    Ok(())
}

impl Collector for DaemonCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let m = &*self.metrics;
        let k = (self.kernel)();
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let kinds = |vals: Vec<u64>| {
            vals.into_iter()
                .enumerate()
                .skip(1)
                .map(|(i, n)| (kind::NAMES.get(i).copied().unwrap_or("unknown"), n))
        };
        let e = &mut enc;
        family(
            e,
            "boxwatch_events",
            "Events written to outputs, by kind.",
            MetricType::Counter,
            "kind",
            kinds(m.events.iter().map(l).collect()),
        )?;
        family(
            e,
            "boxwatch_kernel_events",
            "Records the kernel emitted, by kind.",
            MetricType::Counter,
            "kind",
            kinds(k.emitted.clone()),
        )?;
        {
            let alerts = m.alerts.lock().map(|a| a.clone()).unwrap_or_default();
            let mut f = e.encode_descriptor(
                "boxwatch_alerts",
                "Alerts raised, by rule and priority.",
                None,
                MetricType::Counter,
            )?;
            for ((rule, prio), n) in &alerts {
                let labels = [("rule", rule.as_str()), ("priority", prio.as_str())];
                ConstCounter::new(*n).encode(f.encode_family(&labels)?)?;
            }
        }
        let kernel_drops = k.drops.iter().enumerate().map(|(i, n)| (drop_cause::NAMES[i], *n));
        family(
            e,
            "boxwatch_drops",
            "Events lost, by cause.",
            MetricType::Counter,
            "cause",
            kernel_drops.chain(m.userspace_drops()),
        )?;
        encode_outputs(e, &m.outputs.lock().map(|o| o.clone()).unwrap_or_default())?;
        counter(
            e,
            "boxwatch_filter_map_errors",
            "Failed updates of the in-kernel cgroup filter.",
            l(&m.filter_map_errors),
        )?;
        counter(
            e,
            "boxwatch_filter_tampers",
            "Writes to the in-kernel cgroup filter not made by boxwatch, found and undone by its audit.",
            l(&m.filter_tampers),
        )?;
        counter(
            e,
            "boxwatch_cgroups_reconciled",
            "cgroups found removed by the periodic check (rmdir record lost).",
            l(&m.cgroups_reconciled),
        )?;
        counter(e, "boxwatch_received", "Records read from the ring buffer.", l(&m.received))?;
        let (queued, queued_max, size) = k.ring;
        family(
            e,
            "boxwatch_ringbuf_bytes",
            "Ring buffer: bytes queued at the last submit, high-water mark, size.",
            MetricType::Gauge,
            "what",
            [("queued", queued), ("queued_max", queued_max), ("size", size)],
        )?;
        gauge(e, "boxwatch_containers", "Containers tracked.", l(&m.containers))?;
        gauge(e, "boxwatch_cgroups", "cgroups classified (container or host).", l(&m.cgroups))?;
        gauge(e, "boxwatch_processes_live", "Live processes in the process tree.", l(&m.processes_live))?;
        gauge(
            e,
            "boxwatch_processes_exited",
            "Exited processes kept for their grace period.",
            l(&m.processes_exited),
        )?;
        counter(
            e,
            "boxwatch_processes_evicted",
            "Processes evicted from the tree (grace period or cap).",
            l(&m.processes_evicted),
        )?;
        // Counted before, exported since #11.
        counter(
            e,
            "boxwatch_alerts_folded",
            "Alerts folded into an aggregation window (not sent individually).",
            l(&m.alerts_folded),
        )?;
        counter(
            e,
            "boxwatch_alert_summaries",
            "Summary alerts sent when an aggregation window closed.",
            l(&m.alert_summaries),
        )?;
        let by_rule = m.suppressed.lock().map(|s| s.clone()).unwrap_or_default();
        family(
            e,
            "boxwatch_alerts_suppressed",
            "Alerts suppressed by rate limits, by rule.",
            MetricType::Counter,
            "rule",
            by_rule.iter().map(|(r, n)| (r.as_str(), *n)),
        )?;
        let by_container = m.suppressed_containers.lock().map(|s| s.clone()).unwrap_or_default();
        family(
            e,
            "boxwatch_alerts_suppressed_by_container",
            "Alerts suppressed by rate limits, by container (host: host processes); \
             a container's series goes when the container does.",
            MetricType::Counter,
            "container",
            by_container.iter().map(|(r, n)| (r.as_str(), *n)),
        )?;
        let st = m.stateful.lock().map(|s| *s).unwrap_or_default();
        family(
            e,
            "boxwatch_stateful_evictions",
            "Entries the stateful detections evicted to stay under their caps, by table.",
            MetricType::Counter,
            "table",
            [
                ("written_files", st.written_evictions),
                ("setuid_files", st.setuid_evictions),
                ("ns_processes", st.ns_evictions),
                ("scan_processes", st.scan_evictions),
            ],
        )?;
        family(
            e,
            "boxwatch_stateful_entries",
            "Entries in the stateful detections' tables.",
            MetricType::Gauge,
            "table",
            [
                ("written_files", st.written_files as u64),
                ("setuid_files", st.setuid_files as u64),
                ("ns_processes", st.ns_processes as u64),
                ("scan_processes", st.scan_processes as u64),
            ],
        )?;
        if let Some(en) = m.enricher.lock().ok().and_then(|s| *s) {
            counter(
                e,
                "boxwatch_runtime_lookup_requests",
                "Container-metadata lookups requested from the runtime.",
                en.requested,
            )?;
            family(
                e,
                "boxwatch_runtime_lookups",
                "Container-metadata lookups by result (coalesced: answered by a lookup already running).",
                MetricType::Counter,
                "result",
                [("succeeded", en.succeeded), ("failed", en.failed), ("coalesced", en.coalesced)],
            )?;
            counter(
                e,
                "boxwatch_runtime_lookup_retries",
                "Lookup attempts repeated after a retryable failure.",
                en.retries,
            )?;
            counter(
                e,
                "boxwatch_runtime_lookup_queue_full",
                "Lookups refused because the lookup queue was full.",
                en.dropped_queue_full,
            )?;
        }
        gauge(
            e,
            "boxwatch_queue_depth",
            "Events queued between the ring-buffer reader and the processor.",
            self.data_path.queue_depth(),
        )?;
        let (cpu, rss) = self_usage();
        counter(e, "process_cpu_seconds", "CPU time of the daemon.", cpu)?;
        gauge(
            e,
            "process_resident_memory_bytes",
            "RSS of the daemon (includes the mapped ring buffer).",
            rss,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use boxwatch_web::prometheus_client::encoding::prometheus_text;
    use boxwatch_web::prometheus_client::registry::Registry;

    use super::*;

    fn scrape(m: Arc<Metrics>) -> String {
        let mut r = Registry::default();
        let kernel = KernelCounters {
            emitted: (0..u64::from(kind::MAX)).collect(),
            drops: [7; drop_cause::MAX as usize],
            ring: (10, 20, 4096),
        };
        r.register_collector(Box::new(DaemonCollector::new(m, Arc::new(DataPath::default()), move || {
            kernel.clone()
        })));
        let mut s = String::new();
        prometheus_text::encode(&mut s, &r).unwrap();
        s
    }

    /// `name{label="value",…}` of every sample line.
    fn series(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, _)| k.into())
            .collect()
    }

    /// Every series the hand-written renderer of 21b90c0 produced (its full output with one
    /// alert, read off the code); none may go.
    #[test]
    fn every_existing_series_is_kept() {
        let m = Arc::new(Metrics::default());
        m.alert("Write below /etc in a container", "Error");
        *m.outputs.lock().unwrap() = ["webhook", "syslog", "nats"]
            .into_iter()
            .flat_map(|o| {
                [
                    SinkStat::new(o, "sent", StatKind::Delivered, 1),
                    SinkStat::new(o, "queue_full", StatKind::DeliveryFailure, 2),
                    SinkStat::new(o, "failed", StatKind::DeliveryFailure, 3),
                ]
            })
            .collect();
        let text = scrape(m);
        let got = series(&text);
        let mut want: Vec<String> = Vec::new();
        for k in &kind::NAMES[1..] {
            want.push(format!("boxwatch_events_total{{kind=\"{k}\"}}"));
            want.push(format!("boxwatch_kernel_events_total{{kind=\"{k}\"}}"));
        }
        want.push(r#"boxwatch_alerts_total{rule="Write below /etc in a container",priority="Error"}"#.into());
        for c in
            drop_cause::NAMES.iter().chain(&["userspace_queue_full", "decode_errors", "output_write_errors"])
        {
            want.push(format!("boxwatch_drops_total{{cause=\"{c}\"}}"));
        }
        // Alerts an output could not deliver were counted as event drops
        // (`cause="webhook_queue_full"` …) until #11; they are their own family now.
        for o in ["webhook", "syslog", "nats"] {
            for c in ["queue_full", "failed"] {
                want.push(format!("boxwatch_alert_delivery_failures_total{{output=\"{o}\",cause=\"{c}\"}}"));
            }
        }
        for w in ["queued", "queued_max", "size"] {
            want.push(format!("boxwatch_ringbuf_bytes{{what=\"{w}\"}}"));
        }
        for n in [
            "boxwatch_filter_map_errors_total",
            "boxwatch_filter_tampers_total",
            "boxwatch_cgroups_reconciled_total",
            "boxwatch_received_total",
            "boxwatch_containers",
            "boxwatch_cgroups",
            "boxwatch_processes_live",
            "boxwatch_processes_exited",
            "boxwatch_processes_evicted_total",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
        ] {
            want.push(n.into());
        }
        let missing: Vec<&String> = want.iter().filter(|w| !got.contains(*w)).collect();
        assert!(missing.is_empty(), "series lost: {missing:?}\n{text}");
        // The same types as before.
        for (name, ty) in [
            ("boxwatch_events_total", "counter"),
            ("boxwatch_drops_total", "counter"),
            ("boxwatch_ringbuf_bytes", "gauge"),
            ("boxwatch_processes_live", "gauge"),
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
        ] {
            assert!(text.contains(&format!("\n# TYPE {name} {ty}\n")), "{name} {ty}\n{text}");
        }
        assert!(text.contains("boxwatch_drops_total{cause=\"kernel_ringbuf_full\"} 7\n"), "{text}");
        assert!(text.contains("boxwatch_ringbuf_bytes{what=\"size\"} 4096\n"), "{text}");
        assert!(
            text.contains("boxwatch_alert_delivery_failures_total{output=\"nats\",cause=\"failed\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("boxwatch_alerts_delivered_total{output=\"webhook\"} 1\n"), "{text}");
    }

    #[test]
    fn counters_that_were_only_counted_are_exported() {
        let m = Arc::new(Metrics::default());
        m.alerts_folded.store(4, Ordering::Relaxed);
        m.alert_summaries.store(2, Ordering::Relaxed);
        m.suppressed.lock().unwrap().insert("Shell spawned in a container".into(), 9);
        m.suppressed_containers.lock().unwrap().insert("abc".into(), 9);
        m.stateful.lock().unwrap().scan_evictions = 3;
        *m.enricher.lock().unwrap() =
            Some(EnricherStats { requested: 5, succeeded: 4, retries: 1, ..Default::default() });
        let text = scrape(m);
        for line in [
            "boxwatch_alerts_folded_total 4",
            "boxwatch_alert_summaries_total 2",
            "boxwatch_alerts_suppressed_total{rule=\"Shell spawned in a container\"} 9",
            "boxwatch_alerts_suppressed_by_container_total{container=\"abc\"} 9",
            "boxwatch_stateful_evictions_total{table=\"scan_processes\"} 3",
            "boxwatch_runtime_lookup_requests_total 5",
            "boxwatch_runtime_lookups_total{result=\"succeeded\"} 4",
            "boxwatch_runtime_lookup_retries_total 1",
            "boxwatch_queue_depth 0",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn untrusted_label_values_are_escaped() {
        let m = Arc::new(Metrics::default());
        m.alert("a \"rule\"\nwith\\tricks", "Error");
        let text = scrape(m);
        assert!(
            text.contains(
                "boxwatch_alerts_total{rule=\"a \\\"rule\\\"\\nwith\\\\tricks\",priority=\"Error\"} 1\n"
            ),
            "{text}"
        );
    }
}
