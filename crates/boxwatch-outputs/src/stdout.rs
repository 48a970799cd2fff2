//! stdout: human lines or JSON lines (`--output human|json|auto`), everything, alerts
//! only or nothing (`--stdout all|alerts|none`). Human lines escape every untrusted
//! string (paths, argv, comm, rule output) with [`boxwatch_model::text`]; JSON lines
//! are the alerts.jsonl / events.jsonl lines, byte for byte.

use std::io::{BufWriter, IsTerminal, Write};

use boxwatch_model::text::{escaped, quoted_words};
use boxwatch_model::{ContainerRef, Detail, Event};
use boxwatch_rules::Priority;
use boxwatch_rules::time::rfc3339_ns;

use crate::{AlertOut, AlertSubscriber, ContainerOut, EventOut, Sink, SinkStat, StatKind};

/// Format of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human lines on a terminal, JSON lines otherwise.
    Auto,
    Human,
    Json,
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    All,
    Alerts,
    None,
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub format: Format,
    pub content: Content,
}

pub struct Stdout {
    /// (human, content); `None`: nothing on stdout.
    format: Option<(bool, Content)>,
    color: bool,
    out: BufWriter<std::io::Stdout>,
    broken: bool,
    write_errors: u64,
}

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stdout").field("format", &self.format).field("broken", &self.broken).finish()
    }
}

impl Stdout {
    pub fn open(cfg: &Config) -> Stdout {
        let tty = std::io::stdout().is_terminal();
        let human = match cfg.format {
            Format::Auto => tty,
            Format::Human => true,
            Format::Json => false,
        };
        Stdout {
            format: (cfg.content != Content::None).then_some((human, cfg.content)),
            color: human && tty,
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            broken: false,
            write_errors: 0,
        }
    }

    fn write(&mut self, line: &str) {
        if self.broken {
            return;
        }
        if self.out.write_all(line.as_bytes()).and_then(|_| self.out.write_all(b"\n")).is_err() {
            self.broken = true;
            self.write_errors += 1;
        }
    }
}

impl AlertSubscriber for Stdout {
    fn describe(&self) -> String {
        match self.format {
            Some((human, content)) => {
                format!("stdout ({}, {content:?})", if human { "human" } else { "json" }).to_lowercase()
            }
            None => "stdout off".into(),
        }
    }

    fn alert(&mut self, a: &AlertOut<'_>) {
        match self.format {
            Some((false, _)) => self.write(a.json()),
            Some((true, _)) => {
                let line = human_alert(a.alert, self.color);
                self.write(&line);
                // Alerts must be seen promptly even when events are batched.
                let _ = self.out.flush();
            }
            None => {}
        }
    }

    fn flush(&mut self) {
        if !self.broken && self.out.flush().is_err() {
            self.broken = true;
            self.write_errors += 1;
        }
    }

    fn close(&mut self, _deadline: std::time::Duration) {
        self.flush();
    }

    fn stats(&self) -> Vec<SinkStat> {
        vec![SinkStat::new("stdout", "write_errors", StatKind::WriteErrors, self.write_errors)]
    }
}

impl Sink for Stdout {
    fn wants_events(&self) -> bool {
        matches!(self.format, Some((_, Content::All)))
    }

    fn event(&mut self, e: &EventOut<'_>) {
        match self.format {
            Some((false, Content::All)) => self.write(e.json()),
            Some((true, Content::All)) => {
                let line = human_event(e.wall_ns, e.event, e.container);
                self.write(&line)
            }
            _ => {}
        }
    }

    fn container(&mut self, c: &ContainerOut<'_>) {
        match self.format {
            Some((false, Content::All)) => self.write(c.json()),
            Some((true, Content::All)) => {
                let line = human_container(c.wall_ns, c.action, c.container);
                self.write(&line)
            }
            _ => {}
        }
    }
}

/// `ALERT <priority> [<rule>] <output>`, colored by priority on a terminal.
pub fn human_alert(a: &boxwatch_rules::Alert, color: bool) -> String {
    let (on, off) = match (color, a.priority) {
        (false, _) => ("", ""),
        (true, p) if p <= Priority::Error => ("\x1b[1;31m", "\x1b[0m"),
        (true, Priority::Warning) => ("\x1b[1;33m", "\x1b[0m"),
        (true, _) => ("\x1b[1;36m", "\x1b[0m"),
    };
    format!("{on}ALERT {:?} [{}]{off} {}", a.priority, escaped(&a.rule), escaped(&a.output))
}

/// `HH:MM:SS.mmm CONTAINER <action> <id> runtime=… cgroup=…`.
pub fn human_container(wall_ns: u64, action: &str, c: &ContainerRef) -> String {
    format!(
        "{} CONTAINER {} {} runtime={} cgroup={}",
        &rfc3339_ns(wall_ns)[11..23],
        escaped(action),
        escaped(c.short_id()),
        c.runtime,
        escaped(&c.cgroup_root)
    )
}

/// `HH:MM:SS.mmm <container> <kind> pid=… ppid=… uid=… comm=… <what>[ ret=…]`.
pub fn human_event(wall_ns: u64, ev: &Event, c: Option<&ContainerRef>) -> String {
    let p = &ev.process;
    let what = match &ev.detail {
        Detail::Exec { filename, argv, .. } => format!("{} argv={}", escaped(filename), quoted_words(argv)),
        Detail::Open { path, flags, .. } => format!("{} flags={flags:#o}", escaped(path)),
        Detail::Connect { addr, .. } | Detail::Bind { addr, .. } | Detail::Sendto { addr, .. } => {
            addr.as_ref().map_or_else(|| "-".into(), |a| escaped(&a.to_string()).into_owned())
        }
        Detail::Exit { code, signal } => format!("code={code} signal={signal}"),
        Detail::Fork { child_pid, .. } => format!("child={child_pid}"),
        // JSON escapes C0 controls but not DEL, C1 or bidi characters.
        d => escaped(&serde_json::to_string(d).unwrap_or_default()).into_owned(),
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
        escaped(&p.comm)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxwatch_rules::Alert;
    use std::collections::BTreeMap;

    #[test]
    fn human_lines_escape_untrusted_strings() {
        let ev: Event = serde_json::from_str(
            r#"{"cgroup_id": 1, "dirfd": -100, "flags": 0, "kind": "open", "ktime_ns": 1, "mode": 0, "ns": {"mnt": 1, "net": 1, "pid": 1}, "path": "/etc/x\u001b[31my\nz", "process": {"cap_effective": 0, "comm": "evil\u001b]0;t\u0007", "egid": 0, "euid": 0, "gid": 0, "pid": 2, "ppid": 1, "start_ns": 1, "tid": 2, "uid": 0, "vpid": 1}, "record_flags": 0, "ret": 3, "syscall": "openat"}"#,
        )
        .unwrap();
        let line = human_event(1_764_032_000_123_456_789, &ev, None);
        assert!(!line.contains('\x1b') && !line.contains('\n') && !line.contains('\x07'), "{line:?}");
        assert!(
            line.contains("comm=evil\\u{1b}]0;t\\u{7} /etc/x\\u{1b}[31my\\u{a}z flags=0o0 ret=3"),
            "{line}"
        );
        let a = Alert {
            time: "t".into(),
            rule: "r\u{202e}".into(),
            priority: Priority::Error,
            output: "File below /etc modified (file=/etc/x\x1b[31my\nz)".into(),
            output_fields: BTreeMap::new(),
            tags: vec![],
            source: "syscall",
            hostname: "h".into(),
        };
        assert_eq!(
            human_alert(&a, false),
            "ALERT Error [r\\u{202e}] File below /etc modified (file=/etc/x\\u{1b}[31my\\u{a}z)"
        );
        // Color codes are ours; the rule's text still cannot add any.
        assert_eq!(human_alert(&a, true).matches('\x1b').count(), 2);
    }
}
