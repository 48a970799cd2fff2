//! Counters and gauges of the daemon, and the Prometheus `/metrics` +
//! `/healthz` endpoint that serves them (plain HTTP/1.1 on a loopback
//! address by default; one short-lived connection at a time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use boxwatch_abi::{drop_cause, kind};
use boxwatch_bpf::Monitor;
use boxwatch_outputs::{SinkStat, StatKind};

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
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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

/// The Prometheus text exposition of `m` and the kernel-side counters of `monitor`.
pub fn render(m: &Metrics, monitor: &Monitor) -> String {
    let mut s = String::new();
    let g = |s: &mut String, name: &str, help: &str, ty: &str| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {ty}");
    };
    g(&mut s, "boxwatch_events_total", "Events written to outputs, by kind.", "counter");
    for (k, c) in m.events.iter().enumerate().skip(1) {
        let _ =
            writeln!(s, "boxwatch_events_total{{kind=\"{}\"}} {}", kind::NAMES[k], c.load(Ordering::Relaxed));
    }
    g(&mut s, "boxwatch_kernel_events_total", "Records the kernel emitted, by kind.", "counter");
    for (k, n) in monitor.kernel_emitted().iter().enumerate().skip(1) {
        let _ = writeln!(s, "boxwatch_kernel_events_total{{kind=\"{}\"}} {n}", kind::NAMES[k]);
    }
    g(&mut s, "boxwatch_alerts_total", "Alerts raised, by rule and priority.", "counter");
    if let Ok(a) = m.alerts.lock() {
        for ((rule, prio), n) in a.iter() {
            let _ = writeln!(
                s,
                "boxwatch_alerts_total{{rule=\"{}\",priority=\"{}\"}} {n}",
                label(rule),
                label(prio)
            );
        }
    }
    g(&mut s, "boxwatch_drops_total", "Events lost, by cause.", "counter");
    for (i, n) in monitor.kernel_drops().iter().enumerate() {
        let _ = writeln!(s, "boxwatch_drops_total{{cause=\"{}\"}} {n}", drop_cause::NAMES[i]);
    }
    for (cause, c) in [
        ("userspace_queue_full", &m.queue_full),
        ("decode_errors", &m.decode_errors),
        ("output_write_errors", &m.output_write_errors),
    ] {
        let _ = writeln!(s, "boxwatch_drops_total{{cause=\"{cause}\"}} {}", c.load(Ordering::Relaxed));
    }
    render_outputs(&mut s, &m.outputs.lock().map(|o| o.clone()).unwrap_or_default());
    g(
        &mut s,
        "boxwatch_filter_map_errors_total",
        "Failed updates of the in-kernel cgroup filter.",
        "counter",
    );
    let _ = writeln!(s, "boxwatch_filter_map_errors_total {}", m.filter_map_errors.load(Ordering::Relaxed));
    g(
        &mut s,
        "boxwatch_cgroups_reconciled_total",
        "cgroups found removed by the periodic check (rmdir record lost).",
        "counter",
    );
    let _ = writeln!(s, "boxwatch_cgroups_reconciled_total {}", m.cgroups_reconciled.load(Ordering::Relaxed));
    g(&mut s, "boxwatch_received_total", "Records read from the ring buffer.", "counter");
    let _ = writeln!(s, "boxwatch_received_total {}", m.received.load(Ordering::Relaxed));
    let (queued, queued_max, size) = monitor.ringbuf_fill();
    g(
        &mut s,
        "boxwatch_ringbuf_bytes",
        "Ring buffer: bytes queued at the last submit, high-water mark, size.",
        "gauge",
    );
    let _ = writeln!(s, "boxwatch_ringbuf_bytes{{what=\"queued\"}} {queued}");
    let _ = writeln!(s, "boxwatch_ringbuf_bytes{{what=\"queued_max\"}} {queued_max}");
    let _ = writeln!(s, "boxwatch_ringbuf_bytes{{what=\"size\"}} {size}");
    for (name, help, v) in [
        ("boxwatch_containers", "Containers tracked.", &m.containers),
        ("boxwatch_cgroups", "cgroups classified (container or host).", &m.cgroups),
        ("boxwatch_processes_live", "Live processes in the process tree.", &m.processes_live),
        ("boxwatch_processes_exited", "Exited processes kept for their grace period.", &m.processes_exited),
    ] {
        g(&mut s, name, help, "gauge");
        let _ = writeln!(s, "{name} {}", v.load(Ordering::Relaxed));
    }
    g(
        &mut s,
        "boxwatch_processes_evicted_total",
        "Processes evicted from the tree (grace period or cap).",
        "counter",
    );
    let _ = writeln!(s, "boxwatch_processes_evicted_total {}", m.processes_evicted.load(Ordering::Relaxed));
    let (cpu, rss) = self_usage();
    g(&mut s, "process_cpu_seconds_total", "CPU time of the daemon.", "counter");
    let _ = writeln!(s, "process_cpu_seconds_total {cpu}");
    g(
        &mut s,
        "process_resident_memory_bytes",
        "RSS of the daemon (includes the mapped ring buffer).",
        "gauge",
    );
    let _ = writeln!(s, "process_resident_memory_bytes {rss}");
    s
}

/// Every output's counters, by what they measure (see [`StatKind`]).
fn render_outputs(s: &mut String, stats: &[SinkStat]) {
    let families: [(StatKind, &str, &str, &str); 5] = [
        (StatKind::Delivered, "boxwatch_alerts_delivered_total", "Alerts an output delivered.", ""),
        (
            StatKind::DeliveryFailure,
            "boxwatch_alert_delivery_failures_total",
            "Alerts an output lost, by cause (queue_full, failed); they are in alerts.jsonl.",
            "cause",
        ),
        (StatKind::Retries, "boxwatch_output_retries_total", "Deliveries an output attempted again.", ""),
        (StatKind::Reconnects, "boxwatch_output_reconnects_total", "Connections an output opened again.", ""),
        (
            StatKind::WriteErrors,
            "boxwatch_output_write_errors_total",
            "Lines an output could not write (summed in boxwatch_drops_total{cause=\"output_write_errors\"}).",
            "",
        ),
    ];
    for (kind, name, help, extra) in families {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for st in stats.iter().filter(|st| st.kind == kind) {
            let _ = if extra.is_empty() {
                writeln!(s, "{name}{{output=\"{}\"}} {}", label(st.output), st.value)
            } else {
                writeln!(
                    s,
                    "{name}{{output=\"{}\",{extra}=\"{}\"}} {}",
                    label(st.output),
                    label(st.name),
                    st.value
                )
            };
        }
    }
}

fn respond(mut conn: TcpStream, m: &Metrics, monitor: &Monitor) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 2048];
    let n = conn.read(&mut buf)?;
    let req = String::from_utf8_lossy(&buf[..n]);
    let path = req.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", render(m, monitor)),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        _ => ("404 Not Found", "text/plain", "not found: try /metrics or /healthz\n".to_string()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Bind the endpoint (fails early, before the daemon reports ready).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let l = TcpListener::bind(addr).with_context(|| format!("bind metrics endpoint {addr}"))?;
    l.set_nonblocking(true).context("metrics listener non-blocking")?;
    Ok(l)
}

/// Serve until `stop` is set. Errors on one connection are ignored.
pub fn serve(listener: TcpListener, m: &Metrics, monitor: &Monitor, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = respond(conn, m, monitor);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
