//! Detections that correlate several events of a container or process.
//!
//! - **drift**: a file created or written in a container (open with `O_CREAT` or write access,
//!   rename or link target), later executed in the same container.
//! - **setuid-exec**: a path given the setuid or setgid bit by chmod, later executed.
//! - **ns-host-access**: a container process that unshared a mount/user/cgroup namespace or
//!   called setns, then within a window opened or executed a host-sensitive path.
//! - **port-scan**: a container process connecting to many distinct destinations (ip, port)
//!   within a window; failed connects count.
//! - **pipe-reverse-shell**: a shell and a network relay tool (nc, socat, telnet, openssl)
//!   started side by side by one parent with piped stdio: `cat f | sh -i | nc host port > f`,
//!   `telnet h p1 | sh | telnet h p2`.
//! - **server-spawned-shell**: a shell whose parent listened on or accepted a socket (web shells,
//!   command injection into a server).
//! - **network-process-shell**: an interactive shell (no command, no script) whose parent made an
//!   outbound connection (python/perl reverse shells with a pty).
//! - **dns-tunnelling**: one process sending many DNS queries, or many long ones, in a window.
//! - **c2-beaconing**: one unexpected process (shell, inline interpreter, program in a temporary
//!   or odd place) connecting to the same non-loopback destination at regular intervals.
//!
//! Reverse shells whose stdio *is* the socket are a plain rule field (`proc.stdio_is_socket`).
//!
//! Time is the event's own CLOCK_MONOTONIC `ktime_ns`; nothing reads a clock. Every table has
//! a cap; the oldest entry is evicted when full (counted in [`StatefulStats`]) and entries older
//! than their window are dropped as time passes. Paths are matched as the kernel reported them:
//! relative paths are ignored, and a write through `fchmod`/an fd is not seen. A file written by
//! a compiler, linker or package manager and then run is not drift (CI builds, package installs).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use boxwatch_model::{Detail, FdType};
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
    pub pipe_shell: bool,
    pub server_shell: bool,
    pub network_shell: bool,
    pub dns_tunnel: bool,
    pub beaconing: bool,
    /// Writers (comm) whose output is not drift when executed: compilers, linkers, package managers.
    pub drift_trusted_writers: Vec<String>,
    /// Programs that relay a network connection to their stdio (pipe reverse shells).
    pub relay_tools: Vec<String>,
    /// Shells (comm).
    pub shells: Vec<String>,
    /// Servers whose job is to start shells (sshd): not a server-spawned-shell.
    pub shell_servers: Vec<String>,
    /// How close in time the shell and the relay tool of a pipeline must start. Default 2 s.
    pub pipe_window_ns: u64,
    /// DNS servers and resolvers (comm): not DNS tunnelling.
    pub dns_resolvers: Vec<String>,
    /// DNS queries from one process in `dns_window_ns` that make tunnelling. Default 60.
    pub dns_volume: usize,
    /// Long DNS queries (at least `dns_long_bytes`) in the window that make tunnelling. Default 10.
    pub dns_long_count: usize,
    pub dns_long_bytes: i64,
    pub dns_window_ns: u64,
    /// Connections to one destination needed to judge regularity. Default 6.
    pub beacon_count: usize,
    /// Largest deviation of an interval from their mean, in percent. Default 20.
    pub beacon_jitter_pct: u64,
    /// Intervals shorter than this are not beaconing (a busy client). Default 200 ms.
    pub beacon_min_interval_ns: u64,
    /// Intervals longer than this are not tracked. Default 1 h.
    pub beacon_max_interval_ns: u64,
    /// Interpreters whose inline code (`-c`, `-e`, `-r`) makes a process "unexpected".
    pub inline_interpreters: Vec<String>,
    /// Executable locations that make a process "unexpected" (temporary and odd places).
    pub odd_exe_prefixes: Vec<String>,
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
            pipe_shell: true,
            server_shell: true,
            network_shell: true,
            dns_tunnel: true,
            beaconing: true,
            drift_trusted_writers: v(&[
                "ld", "ld.bfd", "ld.gold", "ld.lld", "mold", "collect2", "cc1", "cc1plus", "gcc", "cc",
                "g++", "c++", "clang", "clang++", "tcc", "rustc", "cargo", "go", "link", "compile", "javac",
                "zig", "dpkg", "apt", "apt-get", "rpm", "dnf", "yum", "microdnf", "apk", "pip", "pip3",
                "npm", "yarn", "pnpm", "gem", "bundle",
            ]),
            relay_tools: v(&[
                "nc",
                "ncat",
                "netcat",
                "nc.openbsd",
                "nc.traditional",
                "socat",
                "telnet",
                "inetutils-telne",
                "openssl",
                "pwncat",
                "rnc",
            ]),
            shells: v(&["sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "csh", "tcsh", "fish", "hush"]),
            shell_servers: v(&["sshd", "sshd-session", "dropbear", "tmate", "ttyd", "gotty"]),
            pipe_window_ns: 2_000_000_000,
            dns_resolvers: v(&[
                "coredns",
                "dnsmasq",
                "unbound",
                "named",
                "systemd-resolve",
                "stubby",
                "cloudflared",
                "dnscrypt-proxy",
                "knotd",
                "kresd",
                "pdns_recursor",
                "node-cache",
                "nscd",
            ]),
            dns_volume: 60,
            dns_long_count: 10,
            dns_long_bytes: 100,
            dns_window_ns: 10_000_000_000,
            beacon_count: 6,
            beacon_jitter_pct: 20,
            beacon_min_interval_ns: 200_000_000,
            beacon_max_interval_ns: 3_600_000_000_000,
            inline_interpreters: v(&[
                "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "pwsh",
            ]),
            odd_exe_prefixes: v(&[
                "/tmp/",
                "/var/tmp/",
                "/dev/",
                "/run/",
                "/home/",
                "/root/",
                "/memfd:",
                "/proc/",
            ]),
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
    /// Processes tracked by the pipeline, server/network-shell, DNS and beaconing detectors.
    pub behaviour_entries: usize,
    pub behaviour_evictions: u64,
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

const PIPE_SHELL: Def = Def {
    id: "pipe-reverse-shell",
    name: "Reverse shell through a pipe and a network relay",
    class: Class::Network,
    severity: Priority::Critical,
    mitre: &["T1059.004", "T1095"],
    tags: &["container", "network", "shell"],
    why: "A shell wired through pipes or a FIFO to nc, socat or telnet is remote control of the container without -e.",
    description: "A shell and a network relay tool (nc, socat, telnet, openssl) with piped stdio were started side by side by one parent.",
};
const SERVER_SHELL: Def = Def {
    id: "server-spawned-shell",
    name: "Shell spawned by a server process",
    class: Class::Network,
    severity: Priority::Warning,
    mitre: &["T1505.003", "T1190", "T1059.004"],
    tags: &["container", "network", "shell"],
    why: "A process serving network requests that starts a shell is the shape of a web shell or command injection.",
    description: "A shell started whose parent listened on or accepted a network socket (sshd-like servers excepted).",
};
const NET_SHELL: Def = Def {
    id: "network-process-shell",
    name: "Interactive shell spawned by a process with an outbound connection",
    class: Class::Network,
    severity: Priority::Critical,
    mitre: &["T1059.004", "T1095"],
    tags: &["container", "network", "shell"],
    why: "An interactive shell whose parent dialled out is a reverse shell even when a pseudo-terminal hides the socket.",
    description: "An interactive shell (no command, no script) started whose parent had connected out over TCP/UDP.",
};
const DNS_TUNNEL: Def = Def {
    id: "dns-tunnelling",
    name: "DNS tunnelling: many or long DNS queries from one process",
    class: Class::Network,
    severity: Priority::Warning,
    mitre: &["T1071.004", "T1572", "T1048"],
    tags: &["container", "network", "dns"],
    why: "Encoding data in DNS queries needs many of them or long ones, which ordinary clients do not send.",
    description: "One process (not a resolver) sent many DNS queries, or many long ones, within a short window.",
};
const BEACON: Def = Def {
    id: "c2-beaconing",
    name: "Periodic beaconing from an unexpected process",
    class: Class::Network,
    severity: Priority::Warning,
    mitre: &["T1071", "T1573", "T1029"],
    tags: &["container", "network", "c2"],
    why: "Implants call home at a fixed interval; a shell, inline script or program in a temporary place doing so is a C2 channel.",
    description: "A shell, an interpreter running inline code or a program run from a temporary or odd place connected to the same non-loopback destination at regular intervals.",
};

/// A pipeline member seen at exec: (time, pid, comm, cmdline).
type Member = (u64, u32, String, String);

#[derive(Debug, Default)]
struct Siblings {
    shell: Option<Member>,
    relay: Option<Member>,
    alerted: bool,
}

/// What a process did on the network (server or outbound client), for its children.
#[derive(Debug, Clone, Copy)]
struct NetRole {
    start_ns: u64,
    served: bool,
    dialled: bool,
    at: u64,
}

#[derive(Debug, Default)]
struct DnsCount {
    times: VecDeque<(u64, bool)>,
    alerted_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Beacon {
    times: VecDeque<u64>,
    alerted: bool,
}

/// The correlating detections and their bounded state.
#[derive(Debug)]
pub struct Stateful {
    cfg: StatefulConfig,
    sensitive: PrefixSet,
    written: Bounded<u64, FileEntry>,
    setuid: Bounded<u64, FileEntry>,
    ns: Bounded<ProcKey, NsEntry>,
    scans: Bounded<ProcKey, Scan>,
    /// Children of one parent pid: the shell and the relay of a pipeline.
    siblings: Bounded<u32, Siblings>,
    /// Processes (by pid) that served or dialled out.
    net_roles: Bounded<u32, NetRole>,
    dns: Bounded<ProcKey, DnsCount>,
    beacons: Bounded<(ProcKey, IpAddr, u16), Beacon>,
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
            siblings: Bounded::new(cfg.max_processes),
            net_roles: Bounded::new(cfg.max_processes),
            dns: Bounded::new(cfg.max_processes),
            beacons: Bounded::new(cfg.max_processes),
            alerts: 0,
            cfg,
        }
    }

    /// The detections, as `boxwatch rules list` shows them.
    pub fn rules(&self) -> Vec<RuleInfo> {
        let c = &self.cfg;
        let on = [
            c.drift,
            c.setuid_exec,
            c.ns_host_access,
            c.port_scan,
            c.pipe_shell,
            c.server_shell,
            c.network_shell,
            c.dns_tunnel,
            c.beaconing,
        ];
        [&DRIFT, &SETUID, &NS_ACCESS, &SCAN, &PIPE_SHELL, &SERVER_SHELL, &NET_SHELL, &DNS_TUNNEL, &BEACON]
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
            behaviour_entries: self.siblings.map.len()
                + self.net_roles.map.len()
                + self.dns.map.len()
                + self.beacons.map.len(),
            behaviour_evictions: self.siblings.evictions
                + self.net_roles.evictions
                + self.dns.evictions
                + self.beacons.evictions,
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
                    self.remember_write(cid, path, now, &ev.process.comm);
                }
                self.ns_access(key, path, &cx, out);
            }
            Detail::Rename { from, to, .. } | Detail::Link { from, to, .. } if ok => {
                self.remember_write(cid, to, now, &ev.process.comm);
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
            Detail::Exec { filename, argv, stdio, .. } => {
                self.exec(cid, filename, &cx, out);
                self.ns_access(key, filename, &cx, out);
                if cid.is_some() {
                    self.exec_behaviour(argv, stdio, &cx, out);
                }
            }
            Detail::Listen { .. } | Detail::Accept { .. } if ok && cid.is_some() => {
                self.net_role(ev.process.pid, ev.process.start_ns, now, true);
            }
            Detail::Sendto { addr: Some(a), .. } if cid.is_some() && a.port() == Some(53) => {
                let long = ev.ret.is_some_and(|r| r >= self.cfg.dns_long_bytes);
                self.dns_query(key, now, long, &cx, out);
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
            Detail::Connect { addr: Some(a), .. } if cid.is_some() => {
                if let (Some(ip), Some(port)) = (a.ip(), a.port()) {
                    if self.cfg.port_scan {
                        self.connect(key, ip, port, now, !ok, &cx, out);
                    }
                    if ok || ev.ret == Some(-115) {
                        self.net_role(ev.process.pid, ev.process.start_ns, now, false);
                    }
                    if port == 53 {
                        self.dns_query(key, now, false, &cx, out);
                    }
                    self.beacon(key, ip, port, now, &cx, out);
                }
            }
            Detail::Exit { .. } => {
                self.ns.remove(&key);
                self.scans.remove(&key);
                self.dns.remove(&key);
                if self.net_roles.get(&ev.process.pid).is_some_and(|r| r.start_ns == ev.process.start_ns) {
                    self.net_roles.remove(&ev.process.pid);
                }
                self.siblings.remove(&ev.process.pid);
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
        let (pipe, dns) = (self.cfg.pipe_window_ns, self.cfg.dns_window_ns);
        self.siblings.expire(|s| {
            let last = s.shell.iter().chain(s.relay.iter()).map(|m| m.0).max().unwrap_or(0);
            now.saturating_sub(last) > pipe
        });
        self.dns.expire(|d| d.times.back().is_none_or(|t| now.saturating_sub(t.0) > dns));
        let beacon_max = self.cfg.beacon_max_interval_ns;
        self.beacons.expire(|b| b.times.back().is_none_or(|t| now.saturating_sub(*t) > beacon_max));
    }

    fn remember_write(&mut self, cid: Option<&str>, path: &str, now: u64, writer: &str) {
        let Some(c) = cid.filter(|_| self.cfg.drift && path.starts_with('/')) else { return };
        if self.cfg.drift_trusted_writers.iter().any(|w| w == writer) {
            // A compiler's or package manager's output replaces any earlier untrusted write.
            self.written.remove(&file_key(c, path));
            return;
        }
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

/// Is `argv` a shell reading its commands from stdin or a terminal (no `-c`, no script)?
fn interactive_shell_args(argv: &[String]) -> bool {
    argv.iter()
        .skip(1)
        .all(|a| a.starts_with('-') && a != "--command" && (a.starts_with("--") || !a[1..].contains('c')))
}

fn piped(t: FdType) -> bool {
    matches!(t, FdType::Fifo | FdType::Socket)
}

impl Stateful {
    /// The program of an exec: comm, or the applet for `busybox <applet>`.
    fn program<'s>(comm: &'s str, argv: &'s [String]) -> &'s str {
        if comm == "busybox" { argv.get(1).map_or(comm, String::as_str) } else { comm }
    }

    fn is_shell(&self, comm: &str, argv: &[String]) -> bool {
        let p = Self::program(comm, argv);
        self.cfg.shells.iter().any(|s| s == p)
    }

    fn exec_behaviour(
        &mut self,
        argv: &[String],
        stdio: &[FdType; 3],
        cx: &Ctx<'_, '_>,
        out: &mut Vec<Alert>,
    ) {
        let ev = cx.input.event;
        let (now, comm, ppid) = (ev.ktime_ns, ev.process.comm.as_str(), ev.process.ppid);
        let shell = self.is_shell(comm, argv);
        let busybox_args = if comm == "busybox" { argv.get(1..).unwrap_or(&[]) } else { argv };
        // Shells started by servers or by processes that dialled out.
        if shell && let Some(role) = self.net_roles.get(&ppid).copied() {
            let parent = cx.input.ancestors.first().copied().unwrap_or("?");
            if role.served && self.cfg.server_shell && !self.cfg.shell_servers.iter().any(|s| s == parent) {
                let output = format!("{} (shell={comm} parent={parent}){}", SERVER_SHELL.name, suffix(cx));
                out.push(alert(&SERVER_SHELL, cx, output, vec![("proc.pname", json!(parent))]));
            } else if role.dialled && self.cfg.network_shell && interactive_shell_args(busybox_args) {
                let output = format!(
                    "{} (shell={comm} parent={parent} stdin={:?}){}",
                    NET_SHELL.name,
                    stdio[0],
                    suffix(cx)
                );
                out.push(alert(&NET_SHELL, cx, output, vec![("proc.pname", json!(parent))]));
            }
        }
        // Pipelines: a shell and a relay tool, both piped, siblings started close together.
        if !self.cfg.pipe_shell {
            return;
        }
        let relay = self.cfg.relay_tools.iter().any(|r| r == Self::program(comm, argv));
        let member = if shell && piped(stdio[0]) {
            Some(true)
        } else if relay && (piped(stdio[0]) || piped(stdio[1])) {
            Some(false)
        } else {
            None
        };
        let Some(is_shell) = member else { return };
        if self.siblings.get(&ppid).is_none() {
            self.siblings.insert(ppid, Siblings::default());
        }
        let window = self.cfg.pipe_window_ns;
        let Some(sib) = self.siblings.get_mut(&ppid) else { return };
        let m: Member = (now, ev.process.pid, comm.to_string(), cx.cmdline().to_string());
        if is_shell {
            sib.shell = Some(m);
        } else {
            sib.relay = Some(m);
        }
        if let (Some(sh), Some(rl), false) = (&sib.shell, &sib.relay, sib.alerted)
            && sh.0.abs_diff(rl.0) <= window
        {
            sib.alerted = true;
            let output = format!(
                "{} (shell={} pid={} relay={} pid={} relay_cmdline={} parent_pid={ppid}){}",
                PIPE_SHELL.name,
                sh.2,
                sh.1,
                rl.2,
                rl.1,
                rl.3,
                suffix(cx)
            );
            let extra = vec![
                ("boxwatch.pipe.shell_pid", json!(sh.1)),
                ("boxwatch.pipe.relay", json!(rl.3)),
                ("boxwatch.pipe.relay_pid", json!(rl.1)),
            ];
            out.push(alert(&PIPE_SHELL, cx, output, extra));
        }
    }

    fn net_role(&mut self, pid: u32, start_ns: u64, now: u64, served: bool) {
        if !(self.cfg.server_shell || self.cfg.network_shell) {
            return;
        }
        let mut r = match self.net_roles.get(&pid) {
            Some(r) if r.start_ns == start_ns => *r,
            _ => NetRole { start_ns, served: false, dialled: false, at: now },
        };
        if (served && r.served) || (!served && r.dialled) {
            return; // already known: no re-insert on every connection
        }
        r.served |= served;
        r.dialled |= !served;
        r.at = now;
        self.net_roles.insert(pid, r);
    }

    fn dns_query(&mut self, key: ProcKey, now: u64, long: bool, cx: &Ctx<'_, '_>, out: &mut Vec<Alert>) {
        let comm = cx.input.event.process.comm.as_str();
        if !self.cfg.dns_tunnel || self.cfg.dns_resolvers.iter().any(|r| r == comm) {
            return;
        }
        let window = self.cfg.dns_window_ns;
        let cap = self.cfg.dns_volume.max(self.cfg.dns_long_count).max(1);
        if self.dns.get(&key).is_none() {
            self.dns.insert(key, DnsCount::default());
        }
        let Some(d) = self.dns.get_mut(&key) else { return };
        d.times.push_back((now, long));
        while d.times.front().is_some_and(|t| now.saturating_sub(t.0) > window) || d.times.len() > cap {
            d.times.pop_front();
        }
        let n = d.times.len();
        let n_long = d.times.iter().filter(|t| t.1).count();
        let quiet = d.alerted_at.is_none_or(|t| now.saturating_sub(t) > window);
        if quiet && (n >= self.cfg.dns_volume || n_long >= self.cfg.dns_long_count) {
            d.alerted_at = Some(now);
            let secs = window / 1_000_000_000;
            let output = format!(
                "{} ({n} queries, {n_long} of at least {} bytes, in {secs}s){}",
                DNS_TUNNEL.name,
                self.cfg.dns_long_bytes,
                suffix(cx)
            );
            let extra =
                vec![("boxwatch.dns.queries", json!(n)), ("boxwatch.dns.long_queries", json!(n_long))];
            out.push(alert(&DNS_TUNNEL, cx, output, extra));
        }
    }

    /// A process the image's service would not be: a shell, inline interpreter code, or a
    /// program run from a temporary or odd place.
    fn unexpected_process(&self, cx: &Ctx<'_, '_>) -> bool {
        let input = cx.input;
        let comm = input.event.process.comm.as_str();
        if self.cfg.shells.iter().any(|s| s == comm) {
            return true;
        }
        let interp = self.cfg.inline_interpreters.iter().any(|i| comm.starts_with(i.as_str()));
        if interp && input.argv.iter().skip(1).any(|a| matches!(a.as_str(), "-c" | "-e" | "-E" | "-r")) {
            return true;
        }
        input.exe.is_some_and(|e| self.cfg.odd_exe_prefixes.iter().any(|p| e.starts_with(p.as_str())))
    }

    fn beacon(
        &mut self,
        key: ProcKey,
        ip: IpAddr,
        port: u16,
        now: u64,
        cx: &Ctx<'_, '_>,
        out: &mut Vec<Alert>,
    ) {
        if !self.cfg.beaconing || ip.is_loopback() || ip.is_unspecified() || !self.unexpected_process(cx) {
            return;
        }
        let need = self.cfg.beacon_count.max(3);
        let k = (key, ip, port);
        if self.beacons.get(&k).is_none() {
            self.beacons.insert(k, Beacon::default());
        }
        let (min, max, jitter) =
            (self.cfg.beacon_min_interval_ns, self.cfg.beacon_max_interval_ns, self.cfg.beacon_jitter_pct);
        let Some(b) = self.beacons.get_mut(&k) else { return };
        if b.times.back().is_some_and(|t| now.saturating_sub(*t) > max) {
            b.times.clear();
        }
        b.times.push_back(now);
        while b.times.len() > need {
            b.times.pop_front();
        }
        if b.alerted || b.times.len() < need {
            return;
        }
        let gaps: Vec<u64> =
            b.times.iter().zip(b.times.iter().skip(1)).map(|(a, c)| c.saturating_sub(*a)).collect();
        let mean = gaps.iter().sum::<u64>() / gaps.len() as u64;
        let regular = mean >= min && gaps.iter().all(|g| g.abs_diff(mean) * 100 <= mean * jitter);
        if regular {
            b.alerted = true;
            let output = format!(
                "{} (dest={ip}:{port} {} connections every {} ms){}",
                BEACON.name,
                b.times.len(),
                mean / 1_000_000,
                suffix(cx)
            );
            let extra = vec![
                ("fd.sip", json!(ip.to_string())),
                ("fd.sport", json!(port)),
                ("boxwatch.beacon.interval_ms", json!(mean / 1_000_000)),
            ];
            out.push(alert(&BEACON, cx, output, extra));
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
