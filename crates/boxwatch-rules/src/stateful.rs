//! Detections that correlate several events of a container or process.
//!
//! - **drift**: a file created or written in a container (open with `O_CREAT` or write access,
//!   rename or link target), later executed in the same container.
//! - **setuid-exec**: a path given the setuid or setgid bit by chmod, later executed.
//! - **ns-host-access**: a container process that unshared a mount/user/cgroup namespace or
//!   called setns, then within a window opened or executed a host-sensitive path.
//! - **port-scan**: a container process connecting to many distinct destinations (ip, port)
//!   within a window; failed connects count.
//!
//! Reverse shells are a plain rule field (`proc.stdio_is_socket`), not state.
//!
//! Time is the event's own CLOCK_MONOTONIC `ktime_ns`; nothing reads a clock. Every table has
//! a cap; the oldest entry is evicted when full (counted in [`StatefulStats`]) and entries older
//! than their window are dropped as time passes. Paths are matched as the kernel reported them:
//! relative paths are ignored, and a write through `fchmod`/an fd is not seen.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use boxwatch_model::Detail;
use serde_json::{Value, json};

use crate::alert::{Alert, Priority};
use crate::detector::Detector;
use crate::engine::eval::{Meta, alert_tags, build_alert};
use crate::engine::extract::Ctx;
use crate::engine::matchers::PrefixSet;
use crate::engine::symbols::{
    CLONE_FLAGS, CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWUSER, O_ACCMODE, O_CREAT, render_flags,
};
use crate::engine::{Class, RuleInfo};
use crate::input::Input;

/// Tunables; [`StatefulConfig::default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulConfig {
    pub drift: bool,
    pub setuid_exec: bool,
    pub ns_host_access: bool,
    pub port_scan: bool,
    /// Most files remembered, per table (written files, setuid files). Default 16384.
    pub max_files: usize,
    /// A remembered file is forgotten after this long. Default 1 h.
    pub file_ttl_ns: u64,
    /// Most processes remembered, per table (namespace changes, connections). Default 8192.
    pub max_processes: usize,
    /// How long after unshare/setns a sensitive access counts. Default 10 s.
    pub ns_window_ns: u64,
    /// Host-sensitive paths: the path itself or anything below it.
    pub sensitive_prefixes: Vec<String>,
    /// Host-sensitive file names wherever they are (`/release_agent`).
    pub sensitive_suffixes: Vec<String>,
    /// Distinct destinations that make a scan. Default 20.
    pub scan_threshold: usize,
    /// Window for counting destinations. Default 5 s.
    pub scan_window_ns: u64,
}

impl Default for StatefulConfig {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        StatefulConfig {
            drift: true,
            setuid_exec: true,
            ns_host_access: true,
            port_scan: true,
            max_files: 16_384,
            file_ttl_ns: 3_600_000_000_000,
            max_processes: 8_192,
            ns_window_ns: 10_000_000_000,
            sensitive_prefixes: v(&[
                "/proc/1/root",
                "/proc/1/ns",
                "/proc/1/cwd",
                "/proc/sysrq-trigger",
                "/proc/sys/kernel/core_pattern",
                "/host",
                "/hostfs",
                "/rootfs",
                "/etc/shadow",
                "/etc/gshadow",
                "/etc/sudoers",
                "/etc/sudoers.d",
                "/root/.ssh",
                "/var/run/docker.sock",
                "/run/docker.sock",
                "/run/containerd/containerd.sock",
                "/var/run/crio/crio.sock",
                "/var/lib/kubelet",
            ]),
            sensitive_suffixes: v(&["/release_agent", "/notify_on_release"]),
            scan_threshold: 20,
            scan_window_ns: 5_000_000_000,
        }
    }
}

/// Table sizes and how many entries each table had to evict to stay under its cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatefulStats {
    pub written_files: usize,
    pub setuid_files: usize,
    pub ns_processes: usize,
    pub scan_processes: usize,
    pub written_evictions: u64,
    pub setuid_evictions: u64,
    pub ns_evictions: u64,
    pub scan_evictions: u64,
    pub alerts: u64,
}

/// A map with a cap, evicting in insertion order (updates re-insert).
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    cap: usize,
    seq: u64,
    evictions: u64,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Bounded { map: HashMap::new(), order: VecDeque::new(), cap: cap.max(1), seq: 0, evictions: 0 }
    }

    fn insert(&mut self, k: K, v: V) {
        self.seq += 1;
        self.map.insert(k.clone(), (v, self.seq));
        self.order.push_back((k, self.seq));
        while self.map.len() > self.cap {
            if self.pop_front().is_none() {
                break;
            }
            self.evictions += 1;
        }
        if self.order.len() > 2 * self.cap + 64 {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|e| e.1 == *s));
        }
    }

    /// Remove the oldest live entry.
    fn pop_front(&mut self) -> Option<V> {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|e| e.1 == s) {
                return self.map.remove(&k).map(|e| e.0);
            }
        }
        None
    }

    /// Drop entries from the oldest while `expired` says so.
    fn expire(&mut self, expired: impl Fn(&V) -> bool) {
        while let Some((k, s)) = self.order.front() {
            match self.map.get(k) {
                Some((v, seq)) if seq == s && !expired(v) => return,
                Some((_, seq)) if seq == s => {
                    let k = k.clone();
                    self.map.remove(&k);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|e| &e.0)
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|e| &mut e.0)
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|e| e.0)
    }
}

#[derive(Debug)]
struct FileEntry {
    container: Box<str>,
    path: Box<str>,
    at: u64,
    mode: u32,
}

#[derive(Debug)]
struct NsEntry {
    at: u64,
    what: String,
}

#[derive(Debug, Default)]
struct Scan {
    /// (ip, port, last seen, last attempt failed), at most `scan_threshold`.
    dests: Vec<(IpAddr, u16, u64, bool)>,
    last_seen: u64,
    alerted_at: Option<u64>,
}

type ProcKey = (u32, u64);

fn file_key(container: &str, path: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (container, path).hash(&mut h);
    h.finish()
}

struct Def {
    id: &'static str,
    name: &'static str,
    class: Class,
    severity: Priority,
    mitre: &'static [&'static str],
    tags: &'static [&'static str],
    why: &'static str,
    description: &'static str,
}

const DRIFT: Def = Def {
    id: "container-drift-exec",
    name: "Drift: file written in a container then executed",
    class: Class::Filesystem,
    severity: Priority::Critical,
    mitre: &["T1105", "T1059"],
    tags: &["container", "drift", "process"],
    why: "Images are immutable; running a binary that appeared at run time means something was dropped in.",
    description: "An executable created or modified inside a running container was executed there.",
};
const SETUID: Def = Def {
    id: "setuid-bit-then-exec",
    name: "Setuid or setgid bit set, then file executed",
    class: Class::PrivilegeEscalation,
    severity: Priority::Error,
    mitre: &["T1548.001"],
    tags: &["container", "filesystem", "privilege"],
    why: "Marking a file setuid and running it is a classic way to keep or gain root.",
    description: "chmod gave a file the setuid/setgid bit and the file was executed afterwards.",
};
const NS_ACCESS: Def = Def {
    id: "namespace-change-then-host-access",
    name: "Namespace change followed by host-sensitive access",
    class: Class::Escape,
    severity: Priority::Critical,
    mitre: &["T1611"],
    tags: &["container", "escape", "namespace"],
    why: "Unsharing or joining namespaces and then touching host paths is how container escapes look.",
    description: "A container process called unshare/setns, then opened or executed a host-sensitive path.",
};
const SCAN: Def = Def {
    id: "port-scan-from-container",
    name: "Port scan from a container",
    class: Class::Network,
    severity: Priority::Warning,
    mitre: &["T1046"],
    tags: &["container", "network", "discovery"],
    why: "Connecting to many hosts or ports in seconds is network discovery, rarely normal workload traffic.",
    description: "One container process connected to many distinct destinations within a short window.",
};

/// The correlating detections and their bounded state.
#[derive(Debug)]
pub struct Stateful {
    cfg: StatefulConfig,
    sensitive: PrefixSet,
    written: Bounded<u64, FileEntry>,
    setuid: Bounded<u64, FileEntry>,
    ns: Bounded<ProcKey, NsEntry>,
    scans: Bounded<ProcKey, Scan>,
    alerts: u64,
}

impl Stateful {
    pub fn new(cfg: StatefulConfig) -> Stateful {
        Stateful {
            sensitive: PrefixSet::new(cfg.sensitive_prefixes.iter().cloned()),
            written: Bounded::new(cfg.max_files),
            setuid: Bounded::new(cfg.max_files),
            ns: Bounded::new(cfg.max_processes),
            scans: Bounded::new(cfg.max_processes),
            alerts: 0,
            cfg,
        }
    }

    /// The detections, as `boxwatch rules list` shows them.
    pub fn rules(&self) -> Vec<RuleInfo> {
        let on = [self.cfg.drift, self.cfg.setuid_exec, self.cfg.ns_host_access, self.cfg.port_scan];
        [&DRIFT, &SETUID, &NS_ACCESS, &SCAN]
            .into_iter()
            .zip(on)
            .map(|(d, enabled)| RuleInfo {
                id: d.id.into(),
                name: d.name.into(),
                description: d.description.into(),
                why: d.why.into(),
                class: d.class,
                severity: d.severity,
                mitre: d.mitre.iter().map(|s| s.to_string()).collect(),
                tags: d.tags.iter().map(|s| s.to_string()).collect(),
                enabled,
                origin: "builtin:stateful".into(),
                inert: None,
            })
            .collect()
    }

    pub fn stats(&self) -> StatefulStats {
        StatefulStats {
            written_files: self.written.map.len(),
            setuid_files: self.setuid.map.len(),
            ns_processes: self.ns.map.len(),
            scan_processes: self.scans.map.len(),
            written_evictions: self.written.evictions,
            setuid_evictions: self.setuid.evictions,
            ns_evictions: self.ns.evictions,
            scan_evictions: self.scans.evictions,
            alerts: self.alerts,
        }
    }

    /// Feed one event (in kernel time order); push any alerts.
    pub fn observe(&mut self, input: &Input<'_>, out: &mut Vec<Alert>) {
        let ev = input.event;
        let now = ev.ktime_ns;
        let before = out.len();
        self.expire(now);
        let cx = Ctx::new(input);
        let cid = input.container.map(|c| c.id.as_str());
        let key = (ev.process.pid, ev.process.start_ns);
        let ok = ev.succeeded();
        match &ev.detail {
            Detail::Open { path, flags, .. } if ok => {
                if flags & O_ACCMODE != 0 || flags & O_CREAT != 0 {
                    self.remember_write(cid, path, now);
                }
                self.ns_access(key, path, &cx, out);
            }
            Detail::Rename { from, to, .. } | Detail::Link { from, to, .. } if ok => {
                self.remember_write(cid, to, now);
                if matches!(ev.detail, Detail::Rename { .. }) {
                    self.forget(cid, from);
                }
            }
            Detail::Unlink { path, .. } if ok => self.forget(cid, path),
            Detail::Chmod { path: Some(path), mode, .. }
                if ok && self.cfg.setuid_exec && path.starts_with('/') =>
            {
                let k = file_key(cid.unwrap_or(""), path);
                if mode & 0o6000 != 0 {
                    let e = FileEntry {
                        container: cid.unwrap_or("").into(),
                        path: path.as_str().into(),
                        at: now,
                        mode: *mode,
                    };
                    self.setuid.insert(k, e);
                } else {
                    self.setuid.remove(&k);
                }
                self.ns_access(key, path, &cx, out);
            }
            Detail::Exec { filename, .. } => {
                self.exec(cid, filename, &cx, out);
                self.ns_access(key, filename, &cx, out);
            }
            Detail::Unshare { flags }
                if ok && flags & (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWCGROUP) != 0 =>
            {
                self.remember_ns(cid, key, now, format!("unshare({})", render_flags(CLONE_FLAGS, *flags)));
            }
            Detail::Setns { nstype, .. } if ok => {
                let what = if *nstype == 0 {
                    "setns".to_string()
                } else {
                    format!("setns({})", render_flags(CLONE_FLAGS, *nstype))
                };
                self.remember_ns(cid, key, now, what);
            }
            Detail::Connect { addr: Some(a), .. } if cid.is_some() && self.cfg.port_scan => {
                if let (Some(ip), Some(port)) = (a.ip(), a.port()) {
                    self.connect(key, ip, port, now, !ok, &cx, out);
                }
            }
            Detail::Exit { .. } => {
                self.ns.remove(&key);
                self.scans.remove(&key);
            }
            _ => {}
        }
        self.alerts += (out.len() - before) as u64;
    }

    fn expire(&mut self, now: u64) {
        let (ttl, ns, scan) = (self.cfg.file_ttl_ns, self.cfg.ns_window_ns, self.cfg.scan_window_ns);
        self.written.expire(|e| now.saturating_sub(e.at) > ttl);
        self.setuid.expire(|e| now.saturating_sub(e.at) > ttl);
        self.ns.expire(|e| now.saturating_sub(e.at) > ns);
        self.scans.expire(|s| now.saturating_sub(s.last_seen) > scan);
    }

    fn remember_write(&mut self, cid: Option<&str>, path: &str, now: u64) {
        let Some(c) = cid.filter(|_| self.cfg.drift && path.starts_with('/')) else { return };
        self.written.insert(
            file_key(c, path),
            FileEntry { container: c.into(), path: path.into(), at: now, mode: 0 },
        );
    }

    fn forget(&mut self, cid: Option<&str>, path: &str) {
        let k = file_key(cid.unwrap_or(""), path);
        if cid.is_some() {
            self.written.remove(&k);
        }
        self.setuid.remove(&k);
    }

    fn remember_ns(&mut self, cid: Option<&str>, key: ProcKey, now: u64, what: String) {
        if cid.is_some() && self.cfg.ns_host_access {
            self.ns.insert(key, NsEntry { at: now, what });
        }
    }

    fn sensitive(&self, path: &str) -> bool {
        path.starts_with('/')
            && (self.sensitive.matches(path)
                || self.cfg.sensitive_suffixes.iter().any(|s| path.ends_with(s.as_str())))
    }

    fn ns_access(&mut self, key: ProcKey, path: &str, cx: &Ctx<'_, '_>, out: &mut Vec<Alert>) {
        let Some(e) = self.ns.get(&key) else { return };
        if !self.sensitive(path) {
            return;
        }
        let ago_ms = cx.input.event.ktime_ns.saturating_sub(e.at) / 1_000_000;
        let output =
            format!("{} (file={path} after={} {ago_ms} ms earlier){}", NS_ACCESS.name, e.what, suffix(cx));
        let extra = vec![("fd.name", json!(path)), ("boxwatch.ns.change", json!(e.what))];
        out.push(alert(&NS_ACCESS, cx, output, extra));
        self.ns.remove(&key);
    }

    fn exec(&mut self, cid: Option<&str>, filename: &str, cx: &Ctx<'_, '_>, out: &mut Vec<Alert>) {
        let now = cx.input.event.ktime_ns;
        let same = |e: &FileEntry, c: &str| &*e.path == filename && &*e.container == c;
        if let Some(c) = cid.filter(|_| self.cfg.drift) {
            let k = file_key(c, filename);
            if let Some(e) = self.written.get(&k).filter(|e| same(e, c)) {
                let ago = now.saturating_sub(e.at) / 1_000_000_000;
                let output = format!("{} (file={filename} written={ago}s ago){}", DRIFT.name, suffix(cx));
                out.push(alert(&DRIFT, cx, output, vec![("fd.name", json!(filename))]));
                self.written.remove(&k);
            }
        }
        if self.cfg.setuid_exec {
            let c = cid.unwrap_or("");
            let k = file_key(c, filename);
            if let Some(e) = self.setuid.get(&k).filter(|e| same(e, c)) {
                let output = format!("{} (file={filename} mode={:#o}){}", SETUID.name, e.mode, suffix(cx));
                let extra = vec![("fd.name", json!(filename)), ("evt.arg.mode", json!(e.mode))];
                out.push(alert(&SETUID, cx, output, extra));
                self.setuid.remove(&k);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn connect(
        &mut self,
        key: ProcKey,
        ip: IpAddr,
        port: u16,
        now: u64,
        failed: bool,
        cx: &Ctx<'_, '_>,
        out: &mut Vec<Alert>,
    ) {
        let (threshold, window) = (self.cfg.scan_threshold.max(1), self.cfg.scan_window_ns);
        if self.scans.get(&key).is_none() {
            self.scans.insert(key, Scan::default());
        }
        let Some(s) = self.scans.get_mut(&key) else { return };
        s.last_seen = now;
        s.dests.retain(|d| now.saturating_sub(d.2) <= window);
        match s.dests.iter_mut().find(|d| d.0 == ip && d.1 == port) {
            Some(d) => {
                d.2 = now;
                d.3 = failed;
            }
            None => {
                s.dests.push((ip, port, now, failed));
                if s.dests.len() > threshold {
                    s.dests.remove(0);
                }
            }
        }
        let quiet = s.alerted_at.is_none_or(|t| now.saturating_sub(t) > window);
        if s.dests.len() >= threshold && quiet {
            s.alerted_at = Some(now);
            let n = s.dests.len();
            let failed_n = s.dests.iter().filter(|d| d.3).count();
            let secs = window as f64 / 1e9;
            let output = format!(
                "{} ({n} distinct destinations in {secs}s, {failed_n} failed, last={ip}:{port}){}",
                SCAN.name,
                suffix(cx)
            );
            let extra = vec![
                ("fd.sip", json!(ip.to_string())),
                ("fd.sport", json!(port)),
                ("boxwatch.scan.destinations", json!(n)),
                ("boxwatch.scan.failed", json!(failed_n)),
                ("boxwatch.scan.window_ms", json!(window / 1_000_000)),
            ];
            out.push(alert(&SCAN, cx, output, extra));
        }
    }
}

/// The same trailer the built-in detections print.
fn suffix(cx: &Ctx<'_, '_>) -> String {
    let p = &cx.input.event.process;
    let cid = cx.input.container.map_or("host", |c| c.short_id());
    format!(" container={cid} pid={} comm={} cmdline={} uid={}", p.pid, p.comm, cx.cmdline(), p.uid)
}

fn alert(d: &Def, cx: &Ctx<'_, '_>, output: String, extra: Vec<(&'static str, Value)>) -> Alert {
    let mitre: Vec<String> = d.mitre.iter().map(|s| s.to_string()).collect();
    let tags: Vec<String> = d.tags.iter().map(|s| s.to_string()).collect();
    let tags = alert_tags(d.class, &mitre, &tags);
    let meta = Meta { id: d.id, name: d.name, class: d.class, priority: d.severity, why: d.why, tags: &tags };
    build_alert(&meta, cx, output, std::iter::empty(), extra)
}

impl Detector for Stateful {
    fn name(&self) -> &str {
        "stateful"
    }

    fn observe(&mut self, input: &Input<'_>, out: &mut Vec<Alert>) {
        Stateful::observe(self, input, out);
    }

    fn rules(&self) -> Vec<RuleInfo> {
        Stateful::rules(self)
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = Stateful::stats(self);
        vec![
            ("stateful_written_files", s.written_files as u64),
            ("stateful_setuid_files", s.setuid_files as u64),
            ("stateful_ns_processes", s.ns_processes as u64),
            ("stateful_scan_processes", s.scan_processes as u64),
            ("stateful_written_evictions", s.written_evictions),
            ("stateful_setuid_evictions", s.setuid_evictions),
            ("stateful_ns_evictions", s.ns_evictions),
            ("stateful_scan_evictions", s.scan_evictions),
            ("stateful_alerts", s.alerts),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_evicts_oldest_and_expires() {
        let mut b: Bounded<u32, u64> = Bounded::new(3);
        for i in 0..5 {
            b.insert(i, u64::from(i) * 10);
        }
        assert_eq!(b.map.len(), 3);
        assert_eq!(b.evictions, 2);
        assert!(b.get(&0).is_none() && b.get(&4).is_some());
        b.insert(2, 100); // update re-inserts at the back
        b.insert(9, 90);
        assert!(b.get(&3).is_none() && b.get(&2).is_some());
        b.expire(|v| *v < 95); // from the oldest, up to the first live one
        assert_eq!(b.map.len(), 2);
        assert!(b.get(&4).is_none() && b.get(&2).is_some() && b.get(&9).is_some());
        for i in 0..10_000 {
            b.insert(7, i);
        }
        assert!(b.order.len() <= 2 * 3 + 64 + 1);
    }
}
