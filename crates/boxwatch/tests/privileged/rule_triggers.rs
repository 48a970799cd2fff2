//! Every rule of the default pack, triggered for real: the attack (or the
//! attempt, when the kernel refuses it: the attempt is what the rule sees)
//! runs inside a real containerd container while one daemon per test
//! watches, and exactly the expected alert must come out, naming the right
//! container, rule id, name and class. Rules that fire alongside by design
//! (an account-file write is also a write below /etc) are listed per case;
//! anything else is a failure.
//!
//! Each test collects every failing case and reports them all at the end,
//! with the container's alerts and syscall events, so one run shows the
//! state of the whole pack. This file holds the harness and the escape-class
//! rules; `rule_triggers_fs` and `rule_triggers_net` hold the others.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::probe::{PY_PROLOGUE, T, brief, wait_exited};
use crate::support::*;

/// Daemon flags for every trigger test: no runtime metadata lookups, so an
/// alert is printed as soon as its event is processed (never held after the
/// container's "exited" line).
pub const DAEMON_ARGS: &[&str] = &["--no-runtime-lookup"];

/// Rule id, alert name and class of every rule in the default pack
/// (the agreed plan, the extra rules the pack added, and the stateful
/// detections built into the engine). `pack_table_matches_the_rule_pack`
/// keeps it equal to `boxwatch rules list` and checks every rule has a case.
pub const PACK: &[(&str, &str, &str)] = &[
    ("read-sensitive-file", "Sensitive file read in a container", "privilege_escalation"),
    ("write-below-etc", "Write below /etc in a container", "filesystem"),
    ("shell-in-container", "Shell spawned in a container", "other"),
    ("container-drift-exec", "Drift: file written in a container then executed", "filesystem"),
    ("setuid-bit-then-exec", "Setuid or setgid bit set, then file executed", "privilege_escalation"),
    ("namespace-change-then-host-access", "Namespace change followed by host-sensitive access", "escape"),
    ("port-scan-from-container", "Port scan from a container", "network"),
    ("cgroup-release-agent-write", "Write to cgroup release_agent or notify_on_release", "escape"),
    ("kernel-param-write", "Write to a kernel parameter under /proc/sys", "escape"),
    ("sensitive-mount", "Mount of a host device or kernel filesystem in a container", "escape"),
    ("setns-from-container", "Namespace switch from a container", "escape"),
    ("runtime-socket-access", "Container runtime socket accessed from a container", "escape"),
    ("kernel-module-load", "Kernel module load attempt", "escape"),
    ("bpf-in-container", "bpf() called in a container", "escape"),
    ("ptrace-in-container", "Process tracing in a container", "privilege_escalation"),
    ("proc-mem-access", "Access to another process's memory via /proc", "privilege_escalation"),
    ("runtime-binary-overwrite", "Write to the runtime binary through /proc/self/exe", "escape"),
    ("privileged-container", "Privileged container started", "escape"),
    ("kexec-load", "Kernel image load attempt with kexec", "escape"),
    ("raw-device-open", "Raw disk or kernel memory device opened in a container", "escape"),
    ("setuid-root-from-nonroot", "setuid or setgid to root by a non-root process", "privilege_escalation"),
    ("capset-raise", "Capabilities raised with capset", "privilege_escalation"),
    ("suid-bit-set", "Setuid or setgid bit set on a file", "privilege_escalation"),
    ("sudo-su-in-container", "sudo, su or pkexec run in a container", "privilege_escalation"),
    ("write-account-files", "Account or sudoers file modified in a container", "filesystem"),
    ("read-cloud-credentials", "Cloud or Kubernetes credentials read in a container", "privilege_escalation"),
    ("write-below-binary-dir", "Write below a binary or library directory", "filesystem"),
    ("ld-preload-persistence", "Dynamic linker preload configured", "privilege_escalation"),
    ("log-tampering", "Log file cleared or removed", "filesystem"),
    ("shell-history-deletion", "Shell history deleted or truncated", "filesystem"),
    ("cron-persistence", "Scheduled task created or changed", "filesystem"),
    ("ssh-authorized-keys", "SSH authorized_keys modified in a container", "filesystem"),
    ("fileless-exec", "Fileless execution from memory", "filesystem"),
    ("crypto-miner-exec", "Cryptocurrency miner started in a container", "network"),
    ("packet-socket", "Packet or raw socket opened in a container", "network"),
    ("mining-pool-connect", "Connection to a cryptocurrency mining pool port", "network"),
    ("k8s-api-from-container", "Kubernetes API or kubelet contacted by an unexpected process", "network"),
    ("reverse-shell", "Reverse shell: shell with its stdio on a socket", "network"),
    ("netcat-remote-exec", "Netcat or socat used to run a program", "network"),
    ("shell-network-connect", "Shell opened a network connection", "network"),
    ("listen-unexpected", "Unexpected process listening on a port", "network"),
    ("cloud-metadata-access", "Cloud metadata service contacted from a container", "network"),
    ("dns-unusual-port", "DNS-like traffic to an unusual port", "network"),
    ("network-scanner-exec", "Network scanner run in a container", "network"),
    ("pipe-reverse-shell", "Reverse shell through a pipe and a network relay", "network"),
    ("server-spawned-shell", "Shell spawned by a server process", "network"),
    (
        "network-process-shell",
        "Interactive shell spawned by a process with an outbound connection",
        "network",
    ),
    ("dns-tunnelling", "DNS tunnelling: many or long DNS queries from one process", "network"),
    ("c2-beaconing", "Periodic beaconing from an unexpected process", "network"),
    ("kernel-interface-write", "Write to a kernel interface under /sys", "escape"),
    ("host-root-traversal", "Host file system reached through /proc/<pid>/root", "escape"),
    ("kernel-recon", "Kernel exploit reconnaissance in a container", "escape"),
    ("container-recon", "Container breakout reconnaissance", "escape"),
    ("privileged-mode-shell", "Shell started in privileged mode", "privilege_escalation"),
    ("odd-place-exec", "Program run from /dev or shared memory", "filesystem"),
    ("backdoor-account", "Root-equivalent account created or granted", "filesystem"),
    ("sudoers-modified", "sudo or doas policy modified in a container", "privilege_escalation"),
    ("shell-profile-persistence", "Shell profile or login hook modified", "filesystem"),
    ("sensitive-link", "Link created to a sensitive file or directory", "filesystem"),
    ("data-destruction", "Data destruction tool run in a container", "filesystem"),
    ("read-private-key", "Private key or stored secret read in a container", "privilege_escalation"),
    ("credential-hunting", "Credential hunting in a container", "privilege_escalation"),
    ("setuid-enumeration", "Setuid or world-writable file enumeration", "privilege_escalation"),
];

/// Helpers for trigger workloads, after [`PY_PROLOGUE`]: `nb_connect` (a
/// non-blocking TCP connect with a short timeout, returning 0 or -errno),
/// `udp_send` (sendto, returning bytes or -errno), `named(name, target)` (a
/// symlink `/tmp/bwbin/<name>` to `target`, so the exec'd process is called
/// `name` without writing a file the drift rule would track) and `run` (a
/// child with no stdin, output captured, 10 s timeout; returns its status).
pub const TRIGGER_PROLOGUE: &str = r#"
import errno, select, shutil, time
def nb_connect(host, port, fam=socket.AF_INET, timeout=0.2):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    r = s.connect_ex((host, port))
    if r == errno.EINPROGRESS:
        select.select([], [s], [], timeout)
        r = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or -errno.ETIMEDOUT
    s.close()
    return -abs(r) if r else 0
def udp_send(host, port, data=b"bw"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        return s.sendto(data, (host, port))
    except OSError as e:
        return -e.errno
    finally:
        s.close()
def named(name, target="/usr/bin/true"):
    os.makedirs("/tmp/bwbin", exist_ok=True)
    p = "/tmp/bwbin/" + name
    if not os.path.lexists(p):
        os.symlink(target, p)
    return p
def run(*argv):
    return subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=10).returncode
"#;

/// One trigger: a container running `args` (with extra `ctr run` flags)
/// must raise `rule`, and nothing but `rule` and `also`.
pub struct Case {
    pub rule: &'static str,
    pub also: &'static [&'static str],
    pub flags: Vec<String>,
    pub args: Vec<String>,
}

impl Case {
    /// `python3 -c <prologues + body>` in a default (unprivileged) container.
    pub fn py(rule: &'static str, also: &'static [&'static str], body: &str) -> Case {
        let script = format!("{PY_PROLOGUE}{TRIGGER_PROLOGUE}\n{body}\nprint(json.dumps(out), flush=True)\n");
        Case { rule, also, flags: Vec::new(), args: vec!["python3".into(), "-c".into(), script] }
    }

    /// Any command line.
    pub fn cmd(rule: &'static str, also: &'static [&'static str], args: &[&str]) -> Case {
        Case { rule, also, flags: Vec::new(), args: args.iter().map(|s| s.to_string()).collect() }
    }

    /// Extra `ctr run` flags (`--privileged`, `--mount ...`).
    pub fn with_flags(mut self, flags: &[&str]) -> Case {
        self.flags.extend(flags.iter().map(|s| s.to_string()));
        self
    }
}

/// What one trigger test saw: per-rule results, failures, one alert per class.
pub struct Triggers<'a> {
    ctrd: &'a Containerd,
    d: &'a Daemon,
    failures: Vec<String>,
    results: Vec<(&'static str, bool)>,
    by_class: Vec<Value>,
}

impl<'a> Triggers<'a> {
    pub fn new(ctrd: &'a Containerd, d: &'a Daemon) -> Triggers<'a> {
        Triggers { ctrd, d, failures: Vec::new(), results: Vec::new(), by_class: Vec::new() }
    }

    /// Run `case` in a new docker-style container, wait for its exit line,
    /// and check its alerts. Returns the container id and its alerts.
    pub fn run(&mut self, case: Case) -> (String, Vec<Value>) {
        let id = random_container_id();
        let flags: Vec<&str> = case.flags.iter().map(String::as_str).collect();
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = self.ctrd.run_with(&id, &docker_cgroup(&id), &flags, &args, T);
        wait_exited(self.d, &id);
        let alerts = self.d.container_alerts(&id);
        let mut problems = Vec::new();
        if !out.success() {
            problems.push(format!("the workload failed: {out}"));
        }
        problems.extend(self.check(&case, &id, &alerts));
        self.results.push((case.rule, problems.is_empty()));
        if !problems.is_empty() {
            let events: Vec<String> = self
                .d
                .container_events(&id)
                .iter()
                .filter(|v| !matches!(v["kind"].as_str(), Some("fork" | "exit")))
                .filter(|v| !v["process"]["comm"].as_str().is_some_and(|c| c.starts_with("runc")))
                .map(brief)
                .collect();
            let events = &events[events.len().saturating_sub(40)..];
            let alerts: Vec<String> = alerts.iter().map(alert_brief).collect();
            self.failures.push(format!(
                "[{}] container {id}:\n  - {}\n  alerts:\n    {}\n  events (last 40, no fork/exit, no runc):\n    {}\n  stdout: {}",
                case.rule,
                problems.join("\n  - "),
                alerts.join("\n    "),
                events.join("\n    "),
                out.stdout.trim()
            ));
        }
        (id, alerts)
    }

    fn check(&mut self, case: &Case, id: &str, alerts: &[Value]) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(&(_, name, class)) = PACK.iter().find(|r| r.0 == case.rule) else {
            return vec![format!("{} is not in the pack table", case.rule)];
        };
        let hits: Vec<&Value> = alerts.iter().filter(|a| rule_id(a) == case.rule).collect();
        if hits.is_empty() {
            problems.push(format!("no {} alert", case.rule));
        }
        for a in &hits {
            let f = &a["output_fields"];
            if a["rule"] != name {
                problems.push(format!("alert name {} (expected {name:?})", a["rule"]));
            }
            if f["boxwatch.rule.class"] != class {
                problems.push(format!("class {} (expected {class:?})", f["boxwatch.rule.class"]));
            }
            if f["boxwatch.container.full_id"] != id || f["container.id"] != id[..12] {
                problems
                    .push(format!("container {} / {}", f["boxwatch.container.full_id"], f["container.id"]));
            }
        }
        for a in alerts {
            let c = &a["output_fields"]["boxwatch.rule.class"];
            if !self.by_class.iter().any(|b| &b["output_fields"]["boxwatch.rule.class"] == c) {
                self.by_class.push(a.clone());
            }
        }
        let allowed: BTreeSet<&str> = std::iter::once(case.rule).chain(case.also.iter().copied()).collect();
        let unexpected: BTreeSet<&str> =
            alerts.iter().map(rule_id).filter(|r| !allowed.contains(r)).collect();
        if !unexpected.is_empty() {
            problems.push(format!("unexpected alerts: {unexpected:?}"));
        }
        problems
    }

    /// Record a check that is not a container case.
    pub fn note(&mut self, what: &'static str, ok: bool, problem: impl FnOnce() -> String) {
        self.results.push((what, ok));
        if !ok {
            self.failures.push(format!("[{what}] {}", problem()));
        }
    }

    /// Check the Falco shape of one alert per class seen, then fail with
    /// every problem found (after printing the per-rule results).
    pub fn finish(mut self) {
        for a in std::mem::take(&mut self.by_class) {
            if let Err(e) = check_falco_shape(&a) {
                self.failures.push(format!("Falco shape of {}: {e}\n  {a}", rule_id(&a)));
            }
        }
        for (rule, ok) in &self.results {
            eprintln!("rule-trigger {rule}: {}", if *ok { "pass" } else { "FAIL" });
        }
        assert!(
            self.failures.is_empty(),
            "{} problem(s):\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
    }
}

/// A host directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", random_hex(6)));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp dir")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `output_fields."boxwatch.rule.id"` of an alert.
pub fn rule_id(a: &Value) -> &str {
    a["output_fields"]["boxwatch.rule.id"].as_str().unwrap_or("<no rule id>")
}

/// An alert in one line: rule id, priority, output.
pub fn alert_brief(a: &Value) -> String {
    format!(
        "{} [{}] {}",
        rule_id(a),
        a["priority"].as_str().unwrap_or("?"),
        a["output"].as_str().unwrap_or("")
    )
}

/// Falco's JSON alert shape: time (RFC 3339, UTC), rule, priority (a Falco
/// priority name), output, output_fields, source "syscall", hostname and
/// tags that carry the class and at least one MITRE ATT&CK technique id.
pub fn check_falco_shape(a: &Value) -> Result<(), String> {
    let keys: BTreeSet<&str> = a.as_object().ok_or("not an object")?.keys().map(String::as_str).collect();
    for k in ["time", "rule", "priority", "output", "output_fields", "source", "tags", "hostname"] {
        if !keys.contains(k) {
            return Err(format!("no {k:?}"));
        }
    }
    let time = a["time"].as_str().ok_or("time is not a string")?;
    if !(time.len() >= 20 && time.ends_with('Z') && &time[4..5] == "-" && &time[10..11] == "T") {
        return Err(format!("time {time:?} is not RFC 3339 UTC"));
    }
    let prio = a["priority"].as_str().unwrap_or("");
    if !["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"]
        .contains(&prio)
    {
        return Err(format!("priority {prio:?}"));
    }
    if a["source"] != "syscall" || a["output"].as_str().is_none_or(str::is_empty) || !a["rule"].is_string() {
        return Err("source/output/rule".into());
    }
    let f = a["output_fields"].as_object().ok_or("output_fields is not an object")?;
    for k in
        ["boxwatch.rule.id", "boxwatch.rule.class", "boxwatch.container.full_id", "container.id", "proc.name"]
    {
        if !f.contains_key(k) {
            return Err(format!("output_fields has no {k:?}"));
        }
    }
    let tags: Vec<&str> =
        a["tags"].as_array().ok_or("tags is not an array")?.iter().filter_map(Value::as_str).collect();
    let class = f["boxwatch.rule.class"].as_str().unwrap_or("");
    if !tags.contains(&class) {
        return Err(format!("tags {tags:?} lack the class {class:?}"));
    }
    if !tags.iter().any(|t| is_mitre_id(t)) {
        return Err(format!("tags {tags:?} carry no MITRE technique id"));
    }
    Ok(())
}

/// `T1234` or `T1234.001`.
fn is_mitre_id(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..]),
        _ => false,
    }
}

/// [`PACK`] is the pack: the same ids, names and classes as `boxwatch rules
/// list`, and every rule is the subject of a trigger case in these files.
#[test]
fn pack_table_matches_the_rule_pack() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_boxwatch"))
        .args(["rules", "list"])
        .output()
        .expect("run boxwatch rules list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rules list failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    // Rule lines: id, severity, class, enabled, name; indented lines are the why.
    let listed: BTreeSet<(String, String, String)> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (v[0].to_string(), v[4..].join(" "), v[2].to_string())
        })
        .collect();
    let table: BTreeSet<(String, String, String)> =
        PACK.iter().map(|(i, n, c)| (i.to_string(), n.to_string(), c.to_string())).collect();
    assert_eq!(
        listed.difference(&table).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "rules in the pack but not in PACK (add them, with a trigger case)"
    );
    assert_eq!(
        table.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "PACK entries that `boxwatch rules list` does not show (missing, renamed or reclassified)"
    );
    let sources = [
        include_str!("rule_triggers.rs"),
        include_str!("rule_triggers_fs.rs"),
        include_str!("rule_triggers_net.rs"),
    ];
    let squashed: String = sources.concat().chars().filter(|c| !c.is_whitespace()).collect();
    let untested: Vec<&str> = PACK
        .iter()
        .map(|r| r.0)
        .filter(|id| {
            !squashed.contains(&format!("Case::py(\"{id}\""))
                && !squashed.contains(&format!("Case::cmd(\"{id}\""))
        })
        .collect();
    assert!(untested.is_empty(), "rules without a trigger case: {untested:?}");
}

/// Escape-class rules (and fileless execution, class "filesystem").
#[test]
fn escape_rules_fire_in_containers() {
    let ctrd = Containerd::start();
    let d = Daemon::start(DAEMON_ARGS);
    let mut t = Triggers::new(&ctrd, &d);

    // The classic cgroup-v1 escape: mount a cgroup hierarchy, set
    // notify_on_release and point release_agent at a payload. Here the
    // hierarchy is a directory (no CAP_SYS_ADMIN); the writes are real.
    t.run(Case::py(
        "cgroup-release-agent-write",
        &[],
        r#"
os.makedirs("/tmp/cgrp/x", exist_ok=True)
for p in ["/tmp/cgrp/release_agent", "/tmp/cgrp/x/notify_on_release"]:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"1")
    os.close(fd)
out["sys"] = err(libc.open(b"/sys/fs/cgroup/memory/release_agent", 1))
"#,
    ));
    // /proc/sys is read-only in the container: the attempts fail (EROFS).
    t.run(Case::py(
        "kernel-param-write",
        &[],
        r#"
out["core_pattern"] = err(libc.open(b"/proc/sys/kernel/core_pattern", 1))
out["ip_forward"] = err(libc.open(b"/proc/sys/net/ipv4/ip_forward", 2))
"#,
    ));
    // Refused without CAP_SYS_ADMIN: the attempts are the alerts.
    t.run(Case::py(
        "sensitive-mount",
        &[],
        r#"
os.mkdir("/tmp/m")
out["proc"] = err(libc.mount(b"proc", b"/tmp/m", b"proc", ctypes.c_ulong(0), None))
out["dev"] = err(libc.mount(b"/dev/sda1", b"/tmp/m", b"ext4", ctypes.c_ulong(0), None))
"#,
    ));
    t.run(Case::py(
        "setns-from-container",
        &[],
        r#"
fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
out["setns"] = err(libc.setns(fd, 0x00020000))  # CLONE_NEWNS
"#,
    ));
    // A runtime socket at the usual paths (absent here: ENOENT), and one
    // that exists (bound in the container) at a path ending docker.sock.
    t.run(Case::py(
        "runtime-socket-access",
        &[],
        r#"
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
out["containerd"] = c.connect_ex("/run/containerd/containerd.sock")
out["open"] = err(libc.open(b"/var/run/docker.sock", 2))
os.makedirs("/tmp/rt", exist_ok=True)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("/tmp/rt/docker.sock")
srv.listen(1)
d = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
out["docker"] = d.connect_ex("/tmp/rt/docker.sock")
"#,
    ));
    // Module syscalls (ENOSYS or EPERM) and an exec named insmod.
    t.run(Case::py(
        "kernel-module-load",
        &[],
        r#"
out["init_module"] = sc(175, None, 0, b"")
out["finit_module"] = sc(313, -1, b"", 0)
out["delete_module"] = sc(176, b"bw_probe_mod", 0)
out["insmod"] = run(named("insmod"), "/tmp/bw-rootkit.ko")
"#,
    ));
    t.run(Case::py(
        "bpf-in-container",
        &[],
        r#"
attr = ctypes.create_string_buffer(struct.pack("5I", 2, 4, 8, 1, 0), 72)  # BPF_MAP_TYPE_ARRAY
out["bpf"] = sc(321, 0, attr, 72)  # BPF_MAP_CREATE
"#,
    ));
    t.run(Case::py(
        "ptrace-in-container",
        &[],
        r#"
child = subprocess.Popen(["sleep", "60"])
out["attach"] = sc(101, 16, child.pid, 0, 0)  # PTRACE_ATTACH
child.kill(); child.wait()
"#,
    ));
    t.run(Case::py(
        "proc-mem-access",
        &[],
        r#"
child = subprocess.Popen(["sleep", "60"])
out["mem"] = err(libc.open(("/proc/%d/mem" % child.pid).encode(), 0))
child.kill(); child.wait()
"#,
    ));
    // CVE-2019-5736: open the runtime binary through /proc/<pid>/exe for
    // writing (ETXTBSY while it runs).
    t.run(Case::py(
        "runtime-binary-overwrite",
        &[],
        r#"
out["self"] = err(libc.open(b"/proc/self/exe", 1))
out["pid"] = err(libc.open(("/proc/%d/exe" % os.getpid()).encode(), 2))
"#,
    ));
    t.run(Case::py(
        "kexec-load",
        &[],
        r#"
out["kexec_load"] = sc(246, 0, 0, None, 0)
out["kexec_file_load"] = sc(320, -1, -1, 0, None, 0)
"#,
    ));
    // A block device node made with the default CAP_MKNOD, then opened:
    // the device cgroup refuses (EPERM), which still counts.
    t.run(Case::py(
        "raw-device-open",
        &[],
        r#"
out["mknod"] = err(libc.mknod(b"/dev/sda", 0o60600, os.makedev(8, 0)))
out["open"] = err(libc.open(b"/dev/sda", 0))
"#,
    ));
    t.run(Case::cmd("privileged-container", &[], &["/usr/bin/true"]).with_flags(&["--privileged"]));
    // A new user namespace (allowed without capabilities), then a path
    // through the init's root, as escapes reach the host's.
    // The path through /proc/1/root is also host-root-traversal on its own.
    t.run(Case::py(
        "namespace-change-then-host-access",
        &["host-root-traversal"],
        r#"
out["unshare"] = err(libc.unshare(0x10000000))  # CLONE_NEWUSER
out["open"] = err(libc.open(b"/proc/1/root/etc/hostname", 0))
"#,
    ));
    // Execution of a binary that only exists in memory: a memfd run through
    // /proc/self/fd/N and /dev/fd/N.
    t.run(Case::py(
        "fileless-exec",
        &[],
        r#"
fd = os.memfd_create("bw-fileless", 0)
with open("/usr/bin/true", "rb") as f:
    os.write(fd, f.read())
for path in ["/proc/self/fd/%d" % fd, "/dev/fd/%d" % fd]:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, ["bw-fileless"])
        finally:
            os._exit(127)
    out[path] = os.waitpid(pid, 0)[1]
"#,
    ));
    t.finish();
    d.stop();
}

/// Kernel interfaces under /sys, the host's root through /proc, and the
/// reconnaissance that precedes kernel exploits and breakouts.
#[test]
fn kernel_interface_and_recon_rules_fire_in_containers() {
    let ctrd = Containerd::start();
    let d = Daemon::start(DAEMON_ARGS);
    let mut t = Triggers::new(&ctrd, &d);
    // /sys is read-only in the container: the attempts fail (EROFS).
    t.run(Case::py(
        "kernel-interface-write",
        &[],
        r#"
out["uevent_helper"] = err(libc.open(b"/sys/kernel/uevent_helper", 1))
out["module_param"] = err(libc.open(b"/sys/module/kernel/parameters/panic", 1))
"#,
    ));
    t.run(Case::py(
        "host-root-traversal",
        &[],
        r#"
out["hostname"] = err(libc.open(b"/proc/1/root/etc/hostname", 0))
out["self"] = err(libc.open(b"/proc/self/root/etc/hostname", 0))  # not matched
"#,
    ));
    t.run(Case::py(
        "kernel-recon",
        &[],
        r#"
out["kallsyms"] = err(libc.open(b"/proc/kallsyms", 0))
out["bpf_disabled"] = err(libc.open(b"/proc/sys/kernel/unprivileged_bpf_disabled", 0))
out["dmesg"] = run("dmesg")
out["meminfo"] = err(libc.open(b"/proc/meminfo", 0))  # not matched
"#,
    ));
    t.run(Case::py(
        "container-recon",
        &[],
        r#"
out["capsh"] = run("capsh", "--print")
"#,
    ));
    t.finish();
    d.stop();
}
