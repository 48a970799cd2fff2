//! Command-line interface (clap derive). Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::limits;

/// boxwatch: eBPF runtime-security monitor for containers.
///
/// Watches exec, file, network, privilege and namespace syscalls of every
/// container on this host from kernel tracepoints, attributes each event to
/// its container (64-hex id from the cgroup path) and raises alerts.
#[derive(Debug, Parser)]
#[command(name = "boxwatch", version, propagate_version = true, args_override_self = true)]
pub struct Cli {
    /// Print libbpf's own messages (verifier logs) to stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Configuration file (TOML). Default: /etc/boxwatch/boxwatch.toml if it exists.
    /// Precedence: command line > environment (BOXWATCH_*) > file > defaults.
    #[arg(long, global = true, env = "BOXWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Diagnostics on stderr: a level (error, warn, info, debug, trace) or `tracing` directives
    /// such as `boxwatch=debug`. Default: RUST_LOG, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Format of the diagnostics on stderr: `boxwatch: <message>` lines, or JSON objects.
    #[arg(long, global = true, value_enum, default_value_t = crate::log::LogFormat::Text)]
    pub log_format: crate::log::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the monitor: events and alerts to stdout and to the log directory.
    Run(RunArgs),
    /// Preflight: kernel, BTF, tracefs, privileges, and which hooks load here.
    /// Exit status 0 when the monitor can run, 1 otherwise.
    Check(CheckArgs),
    /// Validate, test and list detection rules.
    Rules(RulesArgs),
    /// Validate the configuration file and print the effective `run` settings.
    Config(ConfigArgs),
    /// The live process tree of every container, with the runtime processes
    /// (containerd-shim, runc, conmon) above each container's processes.
    Ps(PsArgs),
    /// Query the alert history kept by `boxwatch run --history`: newest first,
    /// filtered by time, container and rule.
    Alerts(AlertsArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Kernel BTF file to use instead of /sys/kernel/btf/vmlinux (as `run --btf`).
    #[arg(long, value_name = "PATH")]
    pub btf: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Human-readable lines when stdout is a terminal, JSON lines otherwise.
    Auto,
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdoutContent {
    /// Events and alerts.
    All,
    /// Alerts only.
    Alerts,
    /// Nothing on stdout (log directory only).
    None,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Format of stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Auto, env = "BOXWATCH_OUTPUT")]
    pub output: OutputFormat,
    /// What goes to stdout.
    #[arg(long, value_enum, default_value_t = StdoutContent::All)]
    pub stdout: StdoutContent,
    /// Directory for alerts.jsonl and events.jsonl (created if missing, mode 0750).
    #[arg(long, default_value = "/var/log/boxwatch", env = "BOXWATCH_LOG_DIR")]
    pub log_dir: PathBuf,
    /// Do not write events.jsonl (alerts.jsonl is always written).
    #[arg(long)]
    pub no_event_log: bool,
    /// Rotate alerts.jsonl / events.jsonl when they reach this many MiB (0: never).
    #[arg(long, default_value_t = 100)]
    pub log_max_mb: u64,
    /// Also rotate them after this many hours of writing (0: never).
    #[arg(long, default_value_t = 24)]
    pub log_max_age_hours: u64,
    /// Rotated log files kept (`alerts.jsonl.1` … `.N`).
    #[arg(long, default_value_t = 5, value_parser = limits::parser(limits::log_keep))]
    pub log_keep: u32,
    /// Trace host processes too (no in-kernel cgroup filter).
    #[arg(long)]
    pub all_processes: bool,
    /// Event kinds that still pass for host processes (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "module")]
    pub host_events: Vec<String>,
    /// Upper bound on event delivery latency (ring-buffer poll interval), ms.
    #[arg(long, default_value_t = 10, value_parser = limits::parser(limits::latency_ms))]
    pub latency_ms: u64,
    /// Capacity of the queue between the ring-buffer reader and processing.
    #[arg(long, default_value_t = 8192, value_parser = limits::parser(limits::queue))]
    pub queue: u64,
    /// Kernel ring-buffer size in MiB (a power of two). Larger absorbs longer
    /// bursts without drops; it is mapped into the daemon and counts twice in its RSS.
    #[arg(long, default_value_t = 2, value_parser = limits::parser(limits::ringbuf_mib))]
    pub ringbuf_mib: u32,
    /// Do not enable the raw_tp/sys_enter fallback for missing module tracepoints
    /// (saves ~100 ns on every syscall here, `scripts/bench.sh` measured; loses module-load
    /// attempts on such kernels).
    #[arg(long)]
    pub no_syscall_fallback: bool,
    /// Kernel BTF file to relocate the BPF programs against, for kernels without
    /// /sys/kernel/btf/vmlinux (e.g. a file from BTFHub for this exact kernel build).
    #[arg(long, value_name = "PATH")]
    pub btf: Option<PathBuf>,
    /// Do not let host exec/fork/exit through the kernel filter: cheaper on
    /// busy hosts, but alerts lose the runtime-side ancestry (containerd-shim, runc).
    #[arg(long)]
    pub no_host_lineage: bool,
    /// POST every alert (Falco JSON) to this http:// or https:// URL, e.g. falcosidekick's
    /// `http://falcosidekick:2801/`. Retries with backoff; a full queue is counted.
    #[arg(long, env = "BOXWATCH_WEBHOOK")]
    pub webhook: Option<String>,
    /// PEM file of CA certificates that an https:// webhook receiver's certificate may
    /// chain to, besides the bundled Mozilla roots (a private CA).
    #[arg(long)]
    pub webhook_ca: Option<PathBuf>,
    /// Alerts the webhook output may queue while the receiver is slow or down.
    #[arg(long, default_value_t = 10_000, value_parser = limits::parser(limits::output_queue))]
    pub webhook_queue: usize,
    /// Send every alert to syslog as RFC 5424 with the Falco JSON as message:
    /// `udp://host:514`, `tcp://host:601` (octet-counted framing) or `unix:///dev/log`.
    #[arg(long, env = "BOXWATCH_SYSLOG")]
    pub syslog: Option<String>,
    /// Syslog facility of alerts: local0 … local7, daemon, auth, …, or 0-23.
    #[arg(long, default_value = "local0", value_parser = boxwatch_outputs::syslog::parse_facility)]
    pub syslog_facility: u8,
    /// Alerts the syslog output may queue while the collector is slow or down.
    #[arg(long, default_value_t = 10_000, value_parser = limits::parser(limits::output_queue))]
    pub syslog_queue: usize,
    /// Publish every alert (Falco JSON) to this NATS server: `nats://[user:pass@]host:4222`.
    #[arg(long, env = "BOXWATCH_NATS")]
    pub nats: Option<String>,
    /// The NATS subject alerts are published to.
    #[arg(long, default_value = "boxwatch.alerts")]
    pub nats_subject: String,
    /// Publish through JetStream: an alert counts as sent once a stream stored it.
    #[arg(long)]
    pub nats_jetstream: bool,
    /// Alerts the NATS output may queue while the server is slow or down.
    #[arg(long, default_value_t = 10_000, value_parser = limits::parser(limits::output_queue))]
    pub nats_queue: usize,
    /// Also keep every alert in this SQLite database (WAL), queried with `boxwatch alerts --db`.
    #[arg(long, env = "BOXWATCH_HISTORY")]
    pub history: Option<PathBuf>,
    /// Most alerts the history keeps (oldest deleted first); 0: unlimited.
    #[arg(long, default_value_t = 100_000)]
    pub history_max_alerts: u64,
    /// Days the history keeps alerts; 0: forever.
    #[arg(long, default_value_t = 30)]
    pub history_max_age_days: u64,
    /// Extra rules files or directories (every *.yaml inside), loaded after the
    /// default pack; they may add rules or override default ones. SIGHUP reloads.
    #[arg(long = "rules", env = "BOXWATCH_RULES", value_delimiter = ':')]
    pub rules: Vec<PathBuf>,
    /// Do not load the embedded default rule pack.
    #[arg(long)]
    pub no_default_rules: bool,
    /// Fold identical alerts (same rule, container, executable, file or peer) seen
    /// within this many seconds into one summary with a count; 0 turns folding off.
    #[arg(long, default_value_t = 10, value_parser = limits::parser(limits::aggregate_window))]
    pub aggregate_window: u64,
    /// Most alerts per second per rule and container, for Warning and below (bursts of 2 s);
    /// 0: unlimited. Error and above are never rate-limited. Suppressed alerts are counted.
    #[arg(long, default_value_t = 50.0, value_parser = limits::parser(limits::rate))]
    pub rate_per_rule: f64,
    /// Most alerts per second per container and priority band (Warning; Notice and below),
    /// bursts of 2 s; 0: unlimited.
    #[arg(long, default_value_t = 100.0, value_parser = limits::parser(limits::rate))]
    pub rate_per_container: f64,
    /// containerd socket(s) to ask for container names, images, pods and labels
    /// (repeatable; default: the usual containerd, k3s, microk8s and docker paths).
    #[arg(long)]
    pub containerd_socket: Vec<PathBuf>,
    /// Docker Engine socket to ask for container metadata.
    #[arg(long, default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Do not ask container runtimes for metadata (alerts then say it is unavailable).
    #[arg(long)]
    pub no_runtime_lookup: bool,
    /// Address of the Prometheus /metrics and /healthz endpoint.
    #[arg(long, default_value = "127.0.0.1:9464", env = "BOXWATCH_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Do not serve /metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// Stop after this many seconds (0: run until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0, value_parser = limits::parser(limits::duration_secs))]
    pub duration: u64,
    /// Print a stats line to stderr every N seconds (0: only at exit).
    #[arg(long, default_value_t = 0, value_parser = limits::parser(limits::stats_interval))]
    pub stats_interval: u64,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse the file (unknown keys and bad values are errors with file:line:column) and
    /// print the settings `boxwatch run` would use with it.
    Check,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Compile the default pack plus FILEs/directories; report every error as file:line:column.
    Check {
        files: Vec<PathBuf>,
        /// Check only FILEs, without the embedded default pack.
        #[arg(long)]
        no_default_rules: bool,
    },
    /// Run every rule's embedded examples (exit 1 on any failure).
    Test {
        files: Vec<PathBuf>,
        #[arg(long)]
        no_default_rules: bool,
    },
    /// List the rules: id, severity, class, enabled, name, why, MITRE ids.
    List {
        files: Vec<PathBuf>,
        #[arg(long)]
        no_default_rules: bool,
    },
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The history database (`boxwatch run --history`).
    #[arg(long, default_value = "/var/lib/boxwatch/alerts.db", env = "BOXWATCH_HISTORY")]
    pub db: PathBuf,
    /// Only alerts since: a duration back from now (90s, 10m, 2h, 3d) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only the container whose full id starts with this.
    #[arg(long)]
    pub container: Option<String>,
    /// Only this rule (name or id, exact).
    #[arg(long)]
    pub rule: Option<String>,
    /// Print JSON lines, exactly as in alerts.jsonl.
    #[arg(long)]
    pub json: bool,
    /// Most alerts printed (the newest); 0: all.
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only the container whose id starts with this.
    pub container: Option<String>,
}
