//! Built-in detections of the kernel-to-alert slice: a shell started in a
//! container, a sensitive credential file read in a container, and a write
//! below /etc in a container. Host processes never match these.

use std::collections::BTreeMap;

use boxwatch_model::{ContainerRef, Detail, Event};
use serde_json::{Value, json};

use crate::alert::{Alert, Priority};
use crate::time::rfc3339_ns;

/// Everything a detection may look at besides the event.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub container: Option<&'a ContainerRef>,
    /// Executable of the process, if known (from its exec).
    pub exe: Option<&'a str>,
    /// Command line of the process, if known (from its exec).
    pub cmdline: Option<&'a str>,
    /// Wall-clock time of the event, Unix ns.
    pub wall_ns: u64,
    pub hostname: &'a str,
}

const SHELLS: [&str; 9] = ["sh", "bash", "dash", "zsh", "ash", "ksh", "csh", "tcsh", "fish"];
const SENSITIVE_READS: [&str; 4] = ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/master.passwd"];
const O_ACCMODE: u64 = 0o3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn below_etc(p: &str) -> bool {
    p.starts_with("/etc/")
}

/// A path an event writes, for "write below /etc".
fn written_path(d: &Detail) -> Option<&str> {
    match d {
        Detail::Open { path, flags, .. } if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0 => {
            Some(path)
        }
        Detail::Unlink { path, .. } => Some(path),
        Detail::Rename { to, from, .. } => Some(if below_etc(to) { to } else { from }),
        Detail::Link { to, .. } => Some(to),
        Detail::Symlink { link, .. } => Some(link),
        Detail::Chmod { path: Some(p), .. } | Detail::Chown { path: Some(p), .. } => Some(p),
        _ => None,
    }
}

/// Run the built-in detections on one event.
pub fn detect(ev: &Event, ctx: &Context<'_>) -> Vec<Alert> {
    let Some(c) = ctx.container else { return Vec::new() };
    let mut out = Vec::new();
    if !ev.succeeded() {
        return out;
    }
    match &ev.detail {
        Detail::Exec { filename, .. } if SHELLS.contains(&basename(filename)) => out.push(alert(
            "Shell spawned in a container",
            Priority::Notice,
            &["container", "shell", "process", "mitre_execution", "T1059"],
            format!("Shell spawned in a container (shell={})", basename(filename)),
            ev,
            c,
            ctx,
            None,
        )),
        Detail::Open { path, flags, .. }
            if flags & O_ACCMODE == 0 && SENSITIVE_READS.contains(&path.as_str()) =>
        {
            out.push(alert(
                "Sensitive file read in a container",
                Priority::Warning,
                &["container", "filesystem", "mitre_credential_access", "T1003.008"],
                format!("Sensitive file opened for reading (file={path})"),
                ev,
                c,
                ctx,
                Some(path),
            ))
        }
        d => {
            if let Some(p) = written_path(d).filter(|p| below_etc(p)) {
                out.push(alert(
                    "Write below /etc in a container",
                    Priority::Error,
                    &["container", "filesystem", "mitre_persistence", "T1565"],
                    format!("File below /etc modified (file={p} syscall={})", ev.name()),
                    ev,
                    c,
                    ctx,
                    Some(p),
                ))
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn alert(
    rule: &str,
    priority: Priority,
    tags: &[&str],
    what: String,
    ev: &Event,
    c: &ContainerRef,
    ctx: &Context<'_>,
    file: Option<&str>,
) -> Alert {
    let p = &ev.process;
    let exe = match &ev.detail {
        Detail::Exec { filename, .. } => Some(filename.as_str()),
        _ => ctx.exe,
    };
    let cmdline = match &ev.detail {
        Detail::Exec { argv, .. } => argv.join(" "),
        _ => ctx.cmdline.map_or_else(|| p.comm.clone(), str::to_string),
    };
    let mut f: BTreeMap<&'static str, Value> = BTreeMap::new();
    f.insert("container.id", json!(c.short_id()));
    f.insert("container.runtime", json!(c.runtime.as_str()));
    f.insert("evt.type", json!(ev.name()));
    f.insert("proc.pid", json!(p.pid));
    f.insert("proc.ppid", json!(p.ppid));
    f.insert("proc.vpid", json!(p.vpid));
    f.insert("proc.name", json!(p.comm));
    f.insert("proc.exepath", json!(exe));
    f.insert("proc.cmdline", json!(cmdline));
    f.insert("user.uid", json!(p.uid));
    f.insert("fd.name", json!(file));
    f.insert("k8s.pod.uid", json!(c.pod_uid));
    f.insert("boxwatch.container.full_id", json!(c.id));
    f.insert("boxwatch.cgroup_id", json!(ev.cgroup_id));
    f.insert("boxwatch.proc.start_ns", json!(p.start_ns));
    let output = format!(
        "{what} container={} pid={} comm={} cmdline={cmdline} uid={}",
        c.short_id(),
        p.pid,
        p.comm,
        p.uid
    );
    Alert {
        time: rfc3339_ns(ctx.wall_ns),
        rule: rule.to_string(),
        priority,
        output,
        output_fields: f,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        source: "syscall",
        hostname: ctx.hostname.to_string(),
    }
}
