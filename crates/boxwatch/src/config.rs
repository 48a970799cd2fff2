//! The configuration file (TOML, default `/etc/boxwatch/boxwatch.toml`).
//!
//! Every key mirrors a `boxwatch run` option and is optional; precedence is
//! command line > environment (`BOXWATCH_*`) > file > built-in default.
//! Unknown keys and bad values are errors that name the file, line and column.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use boxwatch_outputs::{OutputsConfig, history, logfile, nats, stdout, syslog, webhook};

use crate::cli::{OutputFormat, RunArgs, StdoutContent};
use crate::limits::de;

/// The default location; a missing file there is fine, a missing `--config` file is not.
pub const DEFAULT_PATH: &str = "/etc/boxwatch/boxwatch.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub output: Output,
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub kernel: Kernel,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub webhook: Webhook,
    #[serde(default)]
    pub syslog: Syslog,
    #[serde(default)]
    pub nats: Nats,
    #[serde(default)]
    pub aggregate: Aggregate,
    #[serde(default)]
    pub history: HistoryCfg,
}

/// `[history]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryCfg {
    /// SQLite database of every alert; unset: no history.
    pub path: Option<PathBuf>,
    pub max_alerts: Option<u64>,
    pub max_age_days: Option<u64>,
}

/// `[output]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// "auto" | "human" | "json"
    pub format: Option<OutputFormat>,
    /// "all" | "alerts" | "none"
    pub stdout: Option<StdoutContent>,
    pub log_dir: Option<PathBuf>,
    /// Write events.jsonl (alerts.jsonl is always written).
    pub event_log: Option<bool>,
    /// Rotate log files at this size in MiB (0: never).
    pub max_mb: Option<u64>,
    /// Rotate after this many hours of writing (0: never).
    pub max_age_hours: Option<u64>,
    /// Rotated files kept.
    #[serde(default, deserialize_with = "de::log_keep")]
    pub keep: Option<u32>,
}

/// `[filter]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub all_processes: Option<bool>,
    pub host_events: Option<Vec<String>>,
    pub host_lineage: Option<bool>,
}

/// `[kernel]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    #[serde(default, deserialize_with = "de::latency_ms")]
    pub latency_ms: Option<u64>,
    #[serde(default, deserialize_with = "de::ringbuf_mib")]
    pub ringbuf_mib: Option<u32>,
    #[serde(default, deserialize_with = "de::queue")]
    pub queue: Option<u64>,
    pub syscall_fallback: Option<bool>,
    pub btf: Option<PathBuf>,
}

/// `[rules]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub paths: Option<Vec<PathBuf>>,
    pub default_pack: Option<bool>,
}

/// `[runtime]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    pub containerd_sockets: Option<Vec<PathBuf>>,
    pub docker_socket: Option<PathBuf>,
    pub lookups: Option<bool>,
}

/// `[metrics]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub addr: Option<std::net::SocketAddr>,
    pub enabled: Option<bool>,
}

/// `[webhook]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: Option<String>,
    #[serde(default, deserialize_with = "de::output_queue")]
    pub queue: Option<usize>,
    /// PEM file of extra CA certificates for https:// receivers.
    pub ca_file: Option<PathBuf>,
}

/// `[syslog]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syslog {
    /// `udp://host:514`, `tcp://host:601` or `unix:///dev/log`.
    pub target: Option<String>,
    /// `local0` … `local7`, `daemon`, …, or 0-23.
    pub facility: Option<String>,
    #[serde(default, deserialize_with = "de::output_queue")]
    pub queue: Option<usize>,
}

/// `[nats]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nats {
    pub url: Option<String>,
    pub subject: Option<String>,
    pub jetstream: Option<bool>,
    #[serde(default, deserialize_with = "de::output_queue")]
    pub queue: Option<usize>,
}

/// `[aggregate]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    #[serde(default, deserialize_with = "de::aggregate_window")]
    pub window_secs: Option<u64>,
    #[serde(default, deserialize_with = "de::rate")]
    pub rate_per_rule: Option<f64>,
    #[serde(default, deserialize_with = "de::rate")]
    pub rate_per_container: Option<f64>,
}

/// Parse a config text; errors carry `path:line:column`.
pub fn parse(path: &Path, text: &str) -> Result<File> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, str::len) + 1)
            })
            .unwrap_or((0, 0));
        anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), e.message())
    })
}

/// Load the file at `path`; `None` when the default path does not exist.
pub fn load(path: Option<&Path>) -> Result<Option<(PathBuf, File)>> {
    let (p, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    match std::fs::read_to_string(&p) {
        Ok(text) => Ok(Some((p.clone(), parse(&p, &text)?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read config file {}", p.display())),
    }
}

/// Fill every `run` option the command line and environment left at its default
/// from the file.
pub fn apply(args: &mut RunArgs, m: &ArgMatches, path: &Path, f: File) -> Result<()> {
    let default = |id: &str| matches!(m.value_source(id), None | Some(ValueSource::DefaultValue));
    macro_rules! set {
        ($id:literal, $field:expr, $value:expr) => {
            if let Some(v) = $value {
                if default($id) {
                    $field = v;
                }
            }
        };
    }
    set!("output", args.output, f.output.format);
    set!("stdout", args.stdout, f.output.stdout);
    set!("log_dir", args.log_dir, f.output.log_dir);
    set!("no_event_log", args.no_event_log, f.output.event_log.map(|b| !b));
    set!("log_max_mb", args.log_max_mb, f.output.max_mb);
    set!("log_keep", args.log_keep, f.output.keep);
    set!("log_max_age_hours", args.log_max_age_hours, f.output.max_age_hours);
    set!("all_processes", args.all_processes, f.filter.all_processes);
    set!("host_events", args.host_events, f.filter.host_events);
    set!("no_host_lineage", args.no_host_lineage, f.filter.host_lineage.map(|b| !b));
    set!("latency_ms", args.latency_ms, f.kernel.latency_ms);
    set!("ringbuf_mib", args.ringbuf_mib, f.kernel.ringbuf_mib);
    set!("queue", args.queue, f.kernel.queue);
    set!("no_syscall_fallback", args.no_syscall_fallback, f.kernel.syscall_fallback.map(|b| !b));
    set!("btf", args.btf, f.kernel.btf.map(Some));
    set!("rules", args.rules, f.rules.paths);
    set!("no_default_rules", args.no_default_rules, f.rules.default_pack.map(|b| !b));
    set!("containerd_socket", args.containerd_socket, f.runtime.containerd_sockets);
    set!("docker_socket", args.docker_socket, f.runtime.docker_socket);
    set!("no_runtime_lookup", args.no_runtime_lookup, f.runtime.lookups.map(|b| !b));
    set!("metrics_addr", args.metrics_addr, f.metrics.addr.map(Some));
    set!("no_metrics", args.no_metrics, f.metrics.enabled.map(|b| !b));
    set!("webhook", args.webhook, f.webhook.url.map(Some));
    set!("webhook_queue", args.webhook_queue, f.webhook.queue);
    set!("webhook_ca", args.webhook_ca, f.webhook.ca_file.map(Some));
    let facility = f.syslog.facility.map(|s| boxwatch_outputs::syslog::parse_facility(&s)).transpose();
    set!("syslog", args.syslog, f.syslog.target.map(Some));
    set!(
        "syslog_facility",
        args.syslog_facility,
        facility.with_context(|| format!("{}: syslog.facility", path.display()))?
    );
    set!("syslog_queue", args.syslog_queue, f.syslog.queue);
    set!("nats", args.nats, f.nats.url.map(Some));
    set!("nats_subject", args.nats_subject, f.nats.subject);
    set!("nats_jetstream", args.nats_jetstream, f.nats.jetstream);
    set!("nats_queue", args.nats_queue, f.nats.queue);
    set!("aggregate_window", args.aggregate_window, f.aggregate.window_secs);
    set!("history", args.history, f.history.path.map(Some));
    set!("history_max_alerts", args.history_max_alerts, f.history.max_alerts);
    set!("history_max_age_days", args.history_max_age_days, f.history.max_age_days);
    set!("rate_per_rule", args.rate_per_rule, f.aggregate.rate_per_rule);
    set!("rate_per_container", args.rate_per_container, f.aggregate.rate_per_container);
    Ok(())
}

/// Alerts the history thread may have queued before new ones are counted as lost.
const HISTORY_QUEUE: usize = 10_000;

/// The outputs' settings from the `run` options.
pub fn outputs(args: &RunArgs) -> OutputsConfig {
    OutputsConfig {
        stdout: stdout::Config {
            format: match args.output {
                OutputFormat::Auto => stdout::Format::Auto,
                OutputFormat::Human => stdout::Format::Human,
                OutputFormat::Json => stdout::Format::Json,
            },
            content: match args.stdout {
                StdoutContent::All => stdout::Content::All,
                StdoutContent::Alerts => stdout::Content::Alerts,
                StdoutContent::None => stdout::Content::None,
            },
        },
        log_dir: args.log_dir.clone(),
        logs: logfile::Config {
            events: !args.no_event_log,
            max_bytes: args.log_max_mb.saturating_mul(1024 * 1024),
            max_age: (args.log_max_age_hours > 0)
                .then(|| std::time::Duration::from_secs(args.log_max_age_hours.saturating_mul(3600))),
            keep: args.log_keep,
        },
        history: args.history.as_ref().map(|p| history::Config {
            path: p.clone(),
            max_alerts: args.history_max_alerts,
            max_age_secs: args.history_max_age_days.saturating_mul(86_400),
            queue: HISTORY_QUEUE,
        }),
        webhook: args.webhook.as_ref().map(|url| webhook::Config {
            url: url.clone(),
            queue: args.webhook_queue,
            ca_file: args.webhook_ca.clone(),
        }),
        syslog: args.syslog.as_ref().map(|t| syslog::Config {
            target: t.clone(),
            queue: args.syslog_queue,
            facility: Some(args.syslog_facility),
        }),
        nats: args.nats.as_ref().map(|url| nats::Config {
            url: url.clone(),
            subject: args.nats_subject.clone(),
            jetstream: args.nats_jetstream,
            queue: args.nats_queue,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let f =
            parse(Path::new("deploy/boxwatch.toml"), include_str!("../../../deploy/boxwatch.toml")).unwrap();
        assert_eq!(f.kernel.ringbuf_mib, Some(2));
        assert_eq!(f.output.format, Some(OutputFormat::Auto));
    }

    #[test]
    fn unknown_keys_and_bad_types_name_file_line_column() {
        let p = Path::new("/etc/boxwatch/boxwatch.toml");
        let e = parse(p, "[output]\nformat = \"json\"\nlogdir = \"/x\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/boxwatch/boxwatch.toml:3:1: unknown field `logdir`"), "{e}");
        let e = parse(p, "[kernel]\nlatency_ms = \"fast\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/boxwatch/boxwatch.toml:2:14:"), "{e}");
        let e = parse(p, "[nope]\n").unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("nope"), "{e}");
        let e = parse(p, "[output]\nformat = \"xml\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/boxwatch/boxwatch.toml:2:10:") && e.contains("xml"), "{e}");
        let f = parse(p, "[webhook]\nurl = \"http://h:2801/\"\n[aggregate]\nwindow_secs = 0\n").unwrap();
        assert_eq!(f.webhook.url.as_deref(), Some("http://h:2801/"));
        assert_eq!(f.aggregate.window_secs, Some(0));
    }

    /// Defect #14.6: the file skipped the command line's range checks.
    #[test]
    fn the_file_is_range_checked_like_the_command_line() {
        let p = Path::new("/etc/boxwatch/boxwatch.toml");
        for (text, at, what) in [
            ("[kernel]\nlatency_ms = 0\n", "2:14:", "latency_ms"),
            ("[kernel]\nqueue = 0\n", "2:9:", "queue"),
            ("[kernel]\nringbuf_mib = 3\n", "2:15:", "power of two"),
            ("[aggregate]\nrate_per_rule = nan\n", "2:17:", "not a rate"),
            ("[aggregate]\nrate_per_container = -2.0\n", "2:22:", "not a rate"),
            ("[webhook]\nqueue = 0\n", "2:9:", "queue"),
            ("[output]\nkeep = 0\n", "2:8:", "log_keep"),
        ] {
            let e = parse(p, text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("/etc/boxwatch/boxwatch.toml:{at}")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
        assert_eq!(
            parse(p, "[aggregate]\nrate_per_rule = 0.2\n").unwrap().aggregate.rate_per_rule,
            Some(0.2)
        );
    }
}
