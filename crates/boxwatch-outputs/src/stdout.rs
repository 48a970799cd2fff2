//! Outputs: stdout (human lines or JSON lines) and the log directory
//! (`alerts.jsonl`, `events.jsonl`). Alerts are Falco-shaped JSON; events
//! carry `"type": "event"`, container lifecycle records `"type": "container"`.
//!
//! A failing output never stops the daemon: failures are counted.

use std::fs::DirBuilder;
use std::io::{BufWriter, IsTerminal, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result};
use boxwatch_model::{ContainerRef, Detail, Event};
use boxwatch_rules::time::rfc3339_ns;
use boxwatch_rules::{Alert, Priority};
use boxwatch_runtime::Metadata;
use serde::Serialize;

use crate::cli::{OutputFormat, RunArgs, StdoutContent};
use crate::history::History;
use crate::logfile::{LogFile, Policy};
use crate::nats::Nats;
use crate::syslog::Syslog;
use crate::webhook::Webhook;

/// The shape of an event line (the event-log contract). [`EventLineWriter`]
/// writes exactly this, faster; the tests hold it to that.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Serialize)]
struct EventLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    time: String,
    container: Option<&'a ContainerRef>,
    /// Runtime metadata of the container (name, image, pod, labels), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    container_meta: Option<&'a Metadata>,
    /// Stable id of the process image (pid:start_ns:exec generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    exec_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_exec_id: Option<&'a str>,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
struct ContainerLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    time: String,
    action: &'a str,
    container: &'a ContainerRef,
}

/// Writes [`EventLine`]s, serialising each container's part once: every event of a
/// container repeats its `"container"` and `"container_meta"` verbatim, and labels of
/// Kubernetes pods make that the larger half of a line.
#[derive(Debug, Default)]
struct EventLineWriter {
    /// Container id → (metadata known?, `"container":{…}[,"container_meta":{…}]`).
    containers: std::collections::HashMap<String, (bool, String)>,
}

/// Containers whose serialised part is kept; past this the cache starts over.
const CONTAINER_JSON_CAP: usize = 4096;

impl EventLineWriter {
    fn line(
        &mut self,
        wall_ns: u64,
        ev: &Event,
        container: Option<&ContainerRef>,
        meta: Option<&Metadata>,
        exec_id: Option<&str>,
        parent_exec_id: Option<&str>,
    ) -> String {
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        buf.extend_from_slice(b"{\"type\":\"event\",\"time\":\"");
        buf.extend_from_slice(rfc3339_ns(wall_ns).as_bytes());
        buf.extend_from_slice(b"\",");
        match container {
            None => buf.extend_from_slice(b"\"container\":null"),
            Some(c) => {
                let fresh =
                    self.containers.get(&c.id).is_none_or(|(had_meta, _)| *had_meta != meta.is_some());
                if fresh {
                    if self.containers.len() >= CONTAINER_JSON_CAP {
                        self.containers.clear();
                    }
                    let mut part = String::from("\"container\":");
                    part.push_str(&serde_json::to_string(c).unwrap_or_else(|_| "null".into()));
                    if let Some(m) = meta {
                        part.push_str(",\"container_meta\":");
                        part.push_str(&serde_json::to_string(m).unwrap_or_else(|_| "null".into()));
                    }
                    self.containers.insert(c.id.clone(), (meta.is_some(), part));
                }
                if let Some((_, part)) = self.containers.get(&c.id) {
                    buf.extend_from_slice(part.as_bytes());
                }
            }
        }
        for (key, v) in [(&b",\"exec_id\":"[..], exec_id), (&b",\"parent_exec_id\":"[..], parent_exec_id)] {
            if let Some(v) = v {
                buf.extend_from_slice(key);
                let _ = serde_json::to_writer(&mut buf, v);
            }
        }
        // The event's own fields follow: its object's `{` becomes the separating `,`.
        let start = buf.len();
        if serde_json::to_writer(&mut buf, ev).is_ok()
            && buf.get(start) == Some(&b'{')
            && buf.len() > start + 2
        {
            buf[start] = b',';
        } else {
            buf.truncate(start);
            buf.push(b'}');
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    fn forget(&mut self, container_id: &str) {
        self.containers.remove(container_id);
    }
}

/// Output failure counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct OutputStats {
    pub write_errors: u64,
}

pub struct Sinks {
    format: Option<(bool, StdoutContent)>, // (human, content)
    color: bool,
    stdout: BufWriter<std::io::Stdout>,
    stdout_broken: bool,
    events: Option<LogFile>,
    alerts: LogFile,
    pub webhook: Option<Webhook>,
    pub syslog: Option<Syslog>,
    pub nats: Option<Nats>,
    history: Option<History>,
    event_lines: EventLineWriter,
    pub stats: OutputStats,
}

fn open_log(dir: &Path, name: &str, policy: Policy) -> Result<LogFile> {
    let path = dir.join(name);
    LogFile::open(&path, policy).with_context(|| format!("open log file {}", path.display()))
}

impl Sinks {
    pub fn open(args: &RunArgs) -> Result<Sinks> {
        let policy = Policy {
            max_bytes: args.log_max_mb.saturating_mul(1024 * 1024),
            max_age: (args.log_max_age_hours > 0)
                .then(|| std::time::Duration::from_secs(args.log_max_age_hours.saturating_mul(3600))),
            keep: args.log_keep,
            // Alerts: fsync at most once a second (and at rotation and shutdown).
            sync_every: Some(std::time::Duration::from_secs(1)),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&args.log_dir)
            .with_context(|| format!("create log directory {}", args.log_dir.display()))?;
        let tty = std::io::stdout().is_terminal();
        let human = match args.output {
            OutputFormat::Auto => tty,
            OutputFormat::Human => true,
            OutputFormat::Json => false,
        };
        Ok(Sinks {
            format: (args.stdout != StdoutContent::None).then_some((human, args.stdout)),
            color: human && tty,
            stdout: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            stdout_broken: false,
            events: if args.no_event_log {
                None
            } else {
                // Events are bulk data: fsync only at shutdown.
                Some(open_log(&args.log_dir, "events.jsonl", Policy { sync_every: None, ..policy })?)
            },
            alerts: open_log(&args.log_dir, "alerts.jsonl", policy)?,
            webhook: match &args.webhook {
                Some(url) => Some(Webhook::start(url, args.webhook_queue)?),
                None => None,
            },
            syslog: match &args.syslog {
                Some(t) => Some(Syslog::start(t, args.syslog_queue, Some(args.syslog_facility))?),
                None => None,
            },
            nats: match &args.nats {
                Some(url) => {
                    Some(Nats::start(url, &args.nats_subject, args.nats_jetstream, args.nats_queue)?)
                }
                None => None,
            },
            history: match &args.history {
                Some(p) => Some(History::open(
                    p,
                    args.history_max_alerts,
                    args.history_max_age_days.saturating_mul(86_400),
                )?),
                None => None,
            },
            event_lines: EventLineWriter::default(),
            stats: OutputStats::default(),
        })
    }

    fn write_stdout(&mut self, line: &str) {
        if self.stdout_broken {
            return;
        }
        if self.stdout.write_all(line.as_bytes()).and_then(|_| self.stdout.write_all(b"\n")).is_err() {
            self.stdout_broken = true;
            self.stats.write_errors += 1;
        }
    }

    pub fn event(
        &mut self,
        wall_ns: u64,
        ev: &Event,
        container: Option<&ContainerRef>,
        container_meta: Option<&Metadata>,
        exec_id: Option<&str>,
        parent_exec_id: Option<&str>,
    ) {
        let need_json = self.events.is_some() || matches!(self.format, Some((false, StdoutContent::All)));
        let json = need_json
            .then(|| self.event_lines.line(wall_ns, ev, container, container_meta, exec_id, parent_exec_id));
        if let (Some(w), Some(j)) = (self.events.as_mut(), json.as_ref())
            && w.write_line(j).is_err()
        {
            self.stats.write_errors += 1;
        }
        match self.format {
            Some((false, StdoutContent::All)) => {
                if let Some(j) = json {
                    self.write_stdout(&j)
                }
            }
            Some((true, StdoutContent::All)) => {
                let line = human_event(wall_ns, ev, container);
                self.write_stdout(&line)
            }
            _ => {}
        }
    }

    pub fn container(&mut self, wall_ns: u64, action: &str, c: &ContainerRef) {
        if action == "exited" {
            self.event_lines.forget(&c.id);
        }
        let j = serde_json::to_string(&ContainerLine {
            ty: "container",
            time: rfc3339_ns(wall_ns),
            action,
            container: c,
        })
        .unwrap_or_default();
        if let Some(w) = self.events.as_mut()
            && w.write_line(&j).is_err()
        {
            self.stats.write_errors += 1;
        }
        match self.format {
            Some((false, StdoutContent::All)) => self.write_stdout(&j),
            Some((true, StdoutContent::All)) => {
                let line = format!(
                    "{} CONTAINER {action} {} runtime={} cgroup={}",
                    &rfc3339_ns(wall_ns)[11..23],
                    c.short_id(),
                    c.runtime,
                    c.cgroup_root
                );
                self.write_stdout(&line)
            }
            _ => {}
        }
    }

    pub fn alert(&mut self, a: &Alert) {
        let j = serde_json::to_string(a).unwrap_or_default();
        if self.alerts.write_line(&j).and_then(|_| self.alerts.flush()).is_err() {
            self.stats.write_errors += 1;
        }
        if let Some(h) = self.history.as_mut()
            && h.insert(a).is_err()
        {
            self.stats.write_errors += 1;
        }
        if let Some(w) = &self.webhook {
            w.send(&j);
        }
        if let Some(s) = &self.syslog {
            s.send(a);
        }
        if let Some(n) = &self.nats {
            n.send(&j);
        }
        match self.format {
            Some((false, _)) => self.write_stdout(&j),
            Some((true, _)) => {
                let (on, off) = match (self.color, a.priority) {
                    (false, _) => ("", ""),
                    (true, p) if p <= Priority::Error => ("\x1b[1;31m", "\x1b[0m"),
                    (true, Priority::Warning) => ("\x1b[1;33m", "\x1b[0m"),
                    (true, _) => ("\x1b[1;36m", "\x1b[0m"),
                };
                let line = format!("{on}ALERT {:?} [{}]{off} {}", a.priority, a.rule, a.output);
                self.write_stdout(&line);
                // Alerts must be seen promptly even when events are batched.
                let _ = self.stdout.flush();
            }
            None => {}
        }
    }

    pub fn flush(&mut self) {
        if !self.stdout_broken && self.stdout.flush().is_err() {
            self.stdout_broken = true;
            self.stats.write_errors += 1;
        }
        if let Some(w) = self.events.as_mut()
            && w.flush().is_err()
        {
            self.stats.write_errors += 1;
        }
        if self.alerts.flush().is_err() {
            self.stats.write_errors += 1;
        }
        if let Some(h) = self.history.as_mut()
            && h.flush().is_err()
        {
            self.stats.write_errors += 1;
        }
    }

    /// The active outputs, for the start-up summary.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        match self.format {
            Some((human, content)) => v.push(
                format!("stdout ({}, {content:?})", if human { "human" } else { "json" }).to_lowercase(),
            ),
            None => v.push("stdout off".into()),
        }
        v.push(if self.events.is_some() { "alerts.jsonl + events.jsonl" } else { "alerts.jsonl" }.into());
        if self.webhook.is_some() {
            v.push("webhook".into());
        }
        if self.syslog.is_some() {
            v.push("syslog".into());
        }
        if self.nats.is_some() {
            v.push("nats".into());
        }
        if self.history.is_some() {
            v.push("history".into());
        }
        v.join(", ")
    }

    /// Shutdown: flush and fsync the log files.
    pub fn sync(&mut self) {
        self.flush();
        for w in self.events.iter_mut().chain(std::iter::once(&mut self.alerts)) {
            if w.sync().is_err() {
                self.stats.write_errors += 1;
            }
        }
    }
}

fn human_event(wall_ns: u64, ev: &Event, c: Option<&ContainerRef>) -> String {
    let p = &ev.process;
    let what = match &ev.detail {
        Detail::Exec { filename, argv, .. } => format!("{filename} argv={argv:?}"),
        Detail::Open { path, flags, .. } => format!("{path} flags={flags:#o}"),
        Detail::Connect { addr, .. } | Detail::Bind { addr, .. } | Detail::Sendto { addr, .. } => {
            addr.as_ref().map_or_else(|| "-".into(), ToString::to_string)
        }
        Detail::Exit { code, signal } => format!("code={code} signal={signal}"),
        Detail::Fork { child_pid, .. } => format!("child={child_pid}"),
        d => serde_json::to_string(d).unwrap_or_default(),
    };
    let ret = ev.ret.map(|r| format!(" ret={r}")).unwrap_or_default();
    format!(
        "{} {:<12} {:<10} pid={} ppid={} uid={} comm={} {what}{ret}",
        &rfc3339_ns(wall_ns)[11..23],
        c.map_or("host", |c| c.short_id()),
        ev.name(),
        p.pid,
        p.ppid,
        p.uid,
        p.comm
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An openat event as the daemon decoded it (fields of a real line).
    const EVENT: &str = r#"{"cgroup_id": 78191, "dirfd": -100, "flags": 524288, "kind": "open", "ktime_ns": 9812740507445, "mode": 0, "ns": {"mnt": 4026532177, "net": 4026532181, "pid": 4026532180}, "path": "/usr/local/lib/python3.11/dist-packages/_sandboxing_egress_ca.pth", "process": {"cap_effective": 2818844155, "comm": "python3", "egid": 0, "euid": 0, "gid": 0, "pid": 14894, "ppid": 14870, "start_ns": 9812698912882, "tid": 14894, "uid": 0, "vpid": 1}, "record_flags": 0, "ret": 3, "syscall": "openat"}"#;

    fn container() -> ContainerRef {
        serde_json::from_str(
            r#"{"id":"6ed032e4f2f1d33a5def5baecb515bb4d2625606a543d735ce2d74b6cf2963f0","runtime":"docker","pod_uid":null,"namespace":null,"nested":false,"cgroup_root":"/system.slice/docker-6ed032e4f2f1d33a5def5baecb515bb4d2625606a543d735ce2d74b6cf2963f0.scope"}"#,
        )
        .expect("container")
    }

    fn meta() -> Metadata {
        Metadata {
            name: Some("web \"1\"".into()),
            image: Some("docker.io/library/nginx:1.25".into()),
            runtime_namespace: Some("k8s.io".into()),
            pod_name: Some("web-0".into()),
            pod_namespace: Some("prod".into()),
            pod_uid: None,
            labels: [("app".to_string(), "web".to_string())].into_iter().collect(),
            source: "containerd",
        }
    }

    #[test]
    fn event_lines_are_exactly_the_serde_shape() {
        let ev: Event = serde_json::from_str(EVENT).expect("event");
        let (c, m) = (container(), meta());
        let mut w = EventLineWriter::default();
        type Case<'a> = (Option<&'a ContainerRef>, Option<&'a Metadata>, Option<&'a str>, Option<&'a str>);
        let cases: [Case; 5] = [
            (None, None, None, None),
            (None, None, Some("1:2:0"), Some("3:4:1")),
            (Some(&c), None, Some("1:2:0"), None),
            (Some(&c), Some(&m), Some("1:2:0"), Some("3:4:1")),
            // Cached part reused, then rebuilt once metadata disappears.
            (Some(&c), None, None, Some("3:4:1")),
        ];
        for _ in 0..2 {
            for (container, container_meta, exec_id, parent_exec_id) in cases {
                let want = serde_json::to_string(&EventLine {
                    ty: "event",
                    time: rfc3339_ns(1_764_032_000_123_456_789),
                    container,
                    container_meta,
                    exec_id,
                    parent_exec_id,
                    event: &ev,
                })
                .expect("serialise");
                let got = w.line(
                    1_764_032_000_123_456_789,
                    &ev,
                    container,
                    container_meta,
                    exec_id,
                    parent_exec_id,
                );
                assert_eq!(got, want);
            }
        }
        w.forget(&c.id);
        assert!(w.containers.is_empty());
    }
}
