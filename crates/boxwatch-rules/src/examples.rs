//! Rule examples: inline event specs built into real [`Event`]s, run by `boxwatch rules test`.
//! The `examples:` key of a rule is parsed here ([`parse`], called by the loader) and run
//! against the compiled rule ([`run`]); the rule language itself lives in [`crate::engine`].
//!
//! ```yaml
//! examples:
//!   - event: {type: openat, path: /etc/shadow, flags: O_RDONLY, ret: 3, comm: cat, container: true}
//!     expect: alert          # or no_alert
//! ```
//! Spec keys: `type` (required, an evt.type), `ret`; process: `pid ppid vpid uid gid euid egid
//! comm caps` (`proc.name`, `user.uid`, `proc.pid` also work); context: `container` (true or an
//! id), `runtime`, `container_name`, `image`, `pod`, `namespace`, `pod_uid`, `privileged`, `exe`
//! (`proc.exepath`), `argv` (list or string), `ancestors` (nearest first; `proc.pname` sets the
//! first), `parent_exe`, `entry`, `stdio_is_socket`; and per type: `path` (`fd.name`), `flags`,
//! `mode`, `fd`, `from`, `to`, `target`, `link`, `name`, `addr` (`1.2.3.4:80`, `[::1]:53`,
//! `unix:/p`), `domain`, `sock_type`, `protocol`, `backlog`, `ids`, `effective`, `permitted`,
//! `request`, `target_pid`, `source`, `fstype`, `nstype`, `cmd`, `attr_type`, `owner_uid`,
//! `owner_gid`, `code`, `signal`, `child_pid`, `filename`, `stdin`/`stdout`/`stderr` (fd types at
//! exec; `stdio_is_socket: true` makes stdin and stdout sockets). Flag values take symbolic names.

use std::fmt;

use boxwatch_model::{
    ContainerRef, Detail, Event, FdType, ProcessInfo, Runtime, SockAddr, event::Namespaces,
};

use crate::engine::extract::{Ctx, fd_type_name};
use crate::engine::fields;
use crate::engine::symbols::{self as sym, Table};
use crate::engine::yaml::{Mark, Node, Source};
use crate::engine::{Rule, RuleError};
use crate::input::Input;

/// An event spec built into owned values.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    event: Event,
    container: Option<ContainerRef>,
    strs: [Option<String>; 7],
    privileged: bool,
    stdio_is_socket: bool,
    argv: Vec<String>,
    ancestors: Vec<String>,
}

// Indexes into `Spec::strs`.
const NAME: usize = 0;
const IMAGE: usize = 1;
const POD: usize = 2;
const NS: usize = 3;
const EXE: usize = 4;
const PEXE: usize = 5;
const ENTRY: usize = 6;

impl Spec {
    fn input<'a>(&'a self, ancestors: &'a [&'a str]) -> Input<'a> {
        let s = |i: usize| self.strs[i].as_deref();
        Input {
            event: &self.event,
            container: self.container.as_ref(),
            container_name: s(NAME),
            image: s(IMAGE),
            pod_name: s(POD),
            pod_namespace: s(NS),
            privileged: self.privileged,
            exe: s(EXE),
            argv: &self.argv,
            ancestors,
            parent_exe: s(PEXE),
            entry: s(ENTRY),
            stdio_is_socket: self.stdio_is_socket,
            wall_ns: 1_700_000_000_000_000_000,
            hostname: "example",
            ..Input::new(&self.event)
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Example {
    spec: Spec,
    expect: bool,
    file: String,
    mark: Mark,
}

/// An example whose rule did not do what it expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule_id: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: rule '{}': {}", self.file, self.line, self.column, self.rule_id, self.message)
    }
}

impl fmt::Display for ExampleReport {
    /// One line per failure, then `examples: N passed, M failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.failures {
            writeln!(f, "{x}")?;
        }
        writeln!(f, "examples: {} passed, {} failed", self.passed, self.failures.len())
    }
}

/// Outcome of [`crate::RuleSet::run_examples`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExampleReport {
    pub passed: usize,
    pub failures: Vec<ExampleFailure>,
}

pub(crate) fn run<'r>(rules: impl Iterator<Item = (&'r Rule, &'r [Example])>) -> ExampleReport {
    let mut report = ExampleReport::default();
    for (rule, examples) in rules {
        for ex in examples {
            let anc: Vec<&str> = ex.spec.ancestors.iter().map(String::as_str).collect();
            let input = ex.spec.input(&anc);
            let cx = Ctx::new(&input);
            let fired = rule.matches(&cx);
            if fired {
                let _ = rule.alert(&cx);
            }
            if fired == ex.expect {
                report.passed += 1;
                continue;
            }
            let message = if ex.expect {
                "expected an alert, but the rule did not fire".to_string()
            } else {
                "expected no alert, but the rule fired".to_string()
            };
            report.failures.push(ExampleFailure {
                rule_id: rule.info.id.clone(),
                file: ex.file.clone(),
                line: ex.mark.line,
                column: ex.mark.col,
                message,
            });
        }
    }
    report
}

/// Parse a rule's `examples` list.
pub(crate) fn parse(src: &Source, node: &Node, errs: &mut Vec<RuleError>) -> Vec<Example> {
    let Node::Seq { items, .. } = node else {
        errs.push(src.error(node.mark(), "'examples' must be a list"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for it in items {
        let Node::Map { entries, mark } = it else {
            errs.push(src.error(it.mark(), "an example must be a mapping with 'event' and 'expect'"));
            continue;
        };
        let (mut event, mut expect, mut at) = (None, None, *mark);
        for (k, v) in entries {
            match (k.as_str(), v.as_str()) {
                (Some("event"), _) => {
                    event = Some(v);
                    at = k.mark();
                }
                (Some("expect"), Some("alert")) => expect = Some(true),
                (Some("expect"), Some("no_alert")) => expect = Some(false),
                (Some("expect"), _) => errs.push(src.error(v.mark(), "'expect' must be alert or no_alert")),
                _ => errs.push(src.error(k.mark(), "unknown key in example (expected event, expect)")),
            }
        }
        if event.is_none() || !entries.iter().any(|(k, _)| k.as_str() == Some("expect")) {
            errs.push(src.error(*mark, "an example needs 'event' and 'expect'"));
        }
        let spec = event.and_then(|ev| build(src, ev, errs));
        if let (Some(spec), Some(expect)) = (spec, expect) {
            out.push(Example { spec, expect, file: src.name.clone(), mark: at });
        }
    }
    out
}

struct B<'n> {
    src: &'n Source,
    /// (key, key position, value)
    entries: Vec<(&'n str, Mark, &'n Node)>,
    errs: Vec<RuleError>,
}

impl<'n> B<'n> {
    fn take(&mut self, keys: &[&str]) -> Option<&'n Node> {
        let i = self.entries.iter().position(|(k, _, _)| keys.contains(k))?;
        Some(self.entries.remove(i).2)
    }

    fn str(&mut self, keys: &[&str]) -> Option<String> {
        let n = self.take(keys)?;
        match n.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.errs.push(self.src.error(n.mark(), format!("'{}' must be a string", keys[0])));
                None
            }
        }
    }

    fn num(&mut self, keys: &[&str], table: Table) -> Option<i64> {
        let n = self.take(keys)?;
        let parsed = n.as_str().and_then(|s| match sym::parse_flags(table, s) {
            Ok(v) => Some(v as i64),
            Err(_) => sym::parse_int(s),
        });
        if parsed.is_none() {
            self.errs.push(
                self.src.error(n.mark(), format!("'{}' must be a number or a known constant", keys[0])),
            );
        }
        parsed
    }

    fn int<T: TryFrom<i64> + Default>(&mut self, keys: &[&str], table: Table, default: T) -> T {
        self.num(keys, table).and_then(|v| T::try_from(v).ok()).unwrap_or(default)
    }

    fn bool(&mut self, key: &str) -> bool {
        match self.take(&[key]).map(|n| (n.as_str(), n)) {
            None => false,
            Some((Some("true"), _)) => true,
            Some((Some("false"), _)) => false,
            Some((_, n)) => {
                self.errs.push(self.src.error(n.mark(), format!("'{key}' must be true or false")));
                false
            }
        }
    }

    fn list(&mut self, keys: &[&str]) -> Option<Vec<String>> {
        let n = self.take(keys)?;
        match n {
            Node::Scalar { value, .. } => Some(value.split_whitespace().map(str::to_string).collect()),
            Node::Seq { items, .. } => {
                Some(items.iter().filter_map(|i| i.as_str()).map(str::to_string).collect())
            }
            Node::Map { .. } => {
                self.errs.push(self.src.error(n.mark(), format!("'{}' must be a list", keys[0])));
                None
            }
        }
    }

    fn addr(&mut self) -> Option<SockAddr> {
        let n = self.take(&["addr"])?;
        let s = n.as_str().unwrap_or("");
        let parsed = if let Some(path) = s.strip_prefix("unix:") {
            let (path, abstract_ns) = match path.strip_prefix('@') {
                Some(p) => (p, true),
                None => (path, false),
            };
            Some(SockAddr::Unix { path: path.to_string(), abstract_ns })
        } else {
            s.parse::<std::net::SocketAddr>().ok().map(|a| match a {
                std::net::SocketAddr::V4(v4) => SockAddr::Inet { ip: (*v4.ip()).into(), port: v4.port() },
                std::net::SocketAddr::V6(v6) => SockAddr::Inet6 { ip: (*v6.ip()).into(), port: v6.port() },
            })
        };
        if parsed.is_none() {
            self.errs.push(
                self.src.error(n.mark(), format!("bad address '{s}' (1.2.3.4:80, [::1]:53 or unix:/path)")),
            );
        }
        parsed
    }
}

const NONE: Table = &[];

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn build(src: &Source, node: &Node, errs: &mut Vec<RuleError>) -> Option<Spec> {
    let Node::Map { entries, mark } = node else {
        errs.push(
            src.error(node.mark(), "'event' must be a mapping such as {type: openat, path: /etc/shadow}"),
        );
        return None;
    };
    let entries = entries.iter().filter_map(|(k, v)| k.as_str().map(|ks| (ks, k.mark(), v))).collect();
    let mut b = B { src, entries, errs: Vec::new() };
    let Some(tnode) = b.take(&["type", "evt.type"]) else {
        errs.push(src.error(*mark, "event spec needs a 'type'"));
        return None;
    };
    let tname = tnode.as_str().unwrap_or("");
    let Some(ty) = fields::type_id(tname).map(|i| fields::EVT_TYPES[usize::from(i)]) else {
        errs.push(src.error(tnode.mark(), format!("unknown event type '{tname}'")));
        return None;
    };
    let exe = b.str(&["exe", "proc.exepath"]);
    let mut argv = b.list(&["argv"]).unwrap_or_default();
    let path = |b: &mut B| b.str(&["path", "fd.name"]).unwrap_or_default();
    let s = |b: &mut B, k: &str| b.str(&[k]).unwrap_or_default();
    let detail = match ty {
        "execve" => {
            let filename = b.str(&["filename"]).or_else(|| exe.clone()).unwrap_or_else(|| "/bin/true".into());
            if argv.is_empty() {
                argv.push(basename(&filename).to_string());
            }
            let mut stdio = [FdType::Char; 3];
            let socket = b.bool("stdio_is_socket") || b.bool("proc.stdio_is_socket");
            if socket {
                stdio = [FdType::Socket, FdType::Socket, FdType::Char];
            }
            for (i, key) in ["stdin", "stdout", "stderr"].iter().enumerate() {
                if let Some(n) = b.take(&[key]) {
                    match FD_TYPES.iter().find(|t| Some(fd_type_name(**t)) == n.as_str()) {
                        Some(t) => stdio[i] = *t,
                        None => b.errs.push(
                            src.error(n.mark(), "unknown fd type (file, socket, fifo, char, closed, ...)"),
                        ),
                    }
                }
            }
            Detail::Exec { filename, argv: argv.clone(), truncated: false, stdio }
        }
        "fork" => Detail::Fork { child_pid: b.int(&["child_pid"], NONE, 0), child_start_ns: 0 },
        "exit" => Detail::Exit { code: b.int(&["code"], NONE, 0), signal: b.int(&["signal"], NONE, 0) },
        "open" | "creat" | "openat" | "openat2" => Detail::Open {
            path: path(&mut b),
            dirfd: b.int(&["dirfd"], NONE, -100),
            flags: b.int(&["flags"], sym::OPEN_FLAGS, 0),
            mode: b.int(&["mode"], sym::MODE_BITS, 0),
            syscall: ty,
        },
        "chmod" | "fchmod" | "fchmodat" => Detail::Chmod {
            fd: (ty == "fchmod").then(|| b.int(&["fd"], NONE, 3)),
            path: (ty != "fchmod").then(|| path(&mut b)),
            mode: b.int(&["mode"], sym::MODE_BITS, 0),
            syscall: ty,
        },
        "chown" | "lchown" | "fchown" | "fchownat" => Detail::Chown {
            fd: (ty == "fchown").then(|| b.int(&["fd"], NONE, 3)),
            path: (ty != "fchown").then(|| path(&mut b)),
            uid: b.int(&["owner_uid"], NONE, 0),
            gid: b.int(&["owner_gid"], NONE, 0),
            syscall: ty,
        },
        "unlink" | "unlinkat" => Detail::Unlink { path: path(&mut b), syscall: ty },
        "rename" | "renameat" | "renameat2" => {
            Detail::Rename { from: s(&mut b, "from"), to: s(&mut b, "to"), syscall: ty }
        }
        "link" | "linkat" => Detail::Link { from: s(&mut b, "from"), to: s(&mut b, "to"), syscall: ty },
        "symlink" | "symlinkat" => {
            Detail::Symlink { target: s(&mut b, "target"), link: s(&mut b, "link"), syscall: ty }
        }
        "memfd_create" => {
            Detail::Memfd { name: s(&mut b, "name"), flags: b.int(&["flags"], sym::MEMFD_FLAGS, 0) }
        }
        "connect" => Detail::Connect { fd: b.int(&["fd"], NONE, 3), addr: b.addr() },
        "bind" => Detail::Bind { fd: b.int(&["fd"], NONE, 3), addr: b.addr() },
        "sendto" => Detail::Sendto { fd: b.int(&["fd"], NONE, 3), addr: b.addr() },
        "accept" | "accept4" => Detail::Accept { fd: b.int(&["fd"], NONE, 3), peer: b.addr(), syscall: ty },
        "socket" => Detail::Socket {
            domain: b.int(&["domain"], sym::ADDRESS_FAMILIES, 2),
            sock_type: b.int(&["sock_type"], sym::SOCK_TYPES, 1),
            protocol: b.int(&["protocol"], NONE, 0),
        },
        "listen" => Detail::Listen { fd: b.int(&["fd"], NONE, 3), backlog: b.int(&["backlog"], NONE, 128) },
        "capset" => Detail::Capset {
            pid: 0,
            effective: b.int(&["effective"], sym::CAPS, 0),
            permitted: b.int(&["permitted"], sym::CAPS, 0),
            inheritable: 0,
        },
        "ptrace" => Detail::Ptrace {
            request: b.int(&["request"], sym::PTRACE_REQUESTS, 0),
            pid: b.int(&["target_pid"], NONE, 1),
        },
        "mount" => Detail::Mount {
            source: s(&mut b, "source"),
            target: s(&mut b, "target"),
            fstype: s(&mut b, "fstype"),
            flags: b.int(&["flags"], sym::MOUNT_FLAGS, 0),
        },
        "umount2" => {
            Detail::Umount { target: s(&mut b, "target"), flags: b.int(&["flags"], sym::UMOUNT_FLAGS, 0) }
        }
        "unshare" => Detail::Unshare { flags: b.int(&["flags"], sym::CLONE_FLAGS, 0) },
        "setns" => Detail::Setns {
            fd: b.int(&["fd"], NONE, 3),
            nstype: b.int(&["nstype"], sym::CLONE_FLAGS, 0),
            ns_inode: 0,
        },
        "bpf" => {
            Detail::Bpf { cmd: b.int(&["cmd"], sym::BPF_CMDS, 0), attr_type: b.int(&["attr_type"], NONE, 0) }
        }
        "cgroup_mkdir" => Detail::CgroupMkdir { id: 1, level: 1, path: path(&mut b) },
        "cgroup_rmdir" => Detail::CgroupRmdir { id: 1, level: 1, path: path(&mut b) },
        "init_module" | "finit_module" | "delete_module" | "kexec_load" | "kexec_file_load" => {
            Detail::Module { syscall: ty, name: s(&mut b, "name") }
        }
        set_id => {
            let ids = b.list(&["ids"]).unwrap_or_else(|| vec!["0".into()]);
            Detail::SetId { syscall: set_id, ids: ids.iter().filter_map(|i| sym::parse_int(i)).collect() }
        }
    };
    let not_syscall = matches!(ty, "execve" | "fork" | "exit" | "cgroup_mkdir" | "cgroup_rmdir");
    let ret = b.num(&["ret", "evt.rawres"], NONE).or((!not_syscall).then_some(0));
    let default_comm = match &detail {
        Detail::Exec { filename, .. } => basename(filename).chars().take(15).collect(),
        _ => exe.as_deref().map_or("proc".to_string(), |e| basename(e).chars().take(15).collect()),
    };
    let process = ProcessInfo {
        pid: b.int(&["pid", "proc.pid"], NONE, 4242),
        tid: 0,
        ppid: b.int(&["ppid", "proc.ppid"], NONE, 4200),
        vpid: b.int(&["vpid", "proc.vpid"], NONE, 42),
        uid: b.int(&["uid", "user.uid"], NONE, 0),
        gid: b.int(&["gid", "user.gid"], NONE, 0),
        euid: b.int(&["euid", "user.euid"], NONE, 0),
        egid: b.int(&["egid"], NONE, 0),
        comm: b.str(&["comm", "proc.name"]).unwrap_or(default_comm),
        start_ns: 1_000,
        cap_effective: b.int(&["caps", "proc.cap_effective"], sym::CAPS, 0),
    };
    let runtime = match b.take(&["runtime", "container.runtime"]) {
        None => Runtime::Docker,
        Some(n) => {
            RUNTIMES.iter().copied().find(|r| Some(r.as_str()) == n.as_str()).unwrap_or_else(|| {
                b.errs.push(src.error(
                    n.mark(),
                    "unknown runtime (docker, containerd, cri-containerd, crio, podman, ...)",
                ));
                Runtime::Docker
            })
        }
    };
    let pod_uid = b.str(&["pod_uid", "k8s.pod.uid"]);
    let container = match b.take(&["container"]) {
        None => None,
        Some(n) => match n.as_str() {
            Some("false") => None,
            Some(v) => {
                let id = if v == "true" { "0123456789ab".repeat(5) + "cdef" } else { v.to_string() };
                Some(ContainerRef {
                    id,
                    runtime,
                    pod_uid,
                    namespace: None,
                    nested: false,
                    cgroup_root: String::new(),
                })
            }
            None => {
                b.errs.push(src.error(n.mark(), "'container' must be true, false or an id"));
                None
            }
        },
    };
    let mut strs: [Option<String>; 7] = Default::default();
    strs[NAME] = b.str(&["container_name", "container.name"]);
    strs[IMAGE] = b.str(&["image", "container.image"]);
    strs[POD] = b.str(&["pod", "k8s.pod.name"]);
    strs[NS] = b.str(&["namespace", "k8s.ns.name"]);
    strs[EXE] = exe;
    strs[PEXE] = b.str(&["parent_exe", "proc.pexepath"]);
    strs[ENTRY] = b.str(&["entry", "proc.entry"]);
    let mut ancestors = b.list(&["ancestors", "proc.aname"]).unwrap_or_default();
    if let Some(p) = b.str(&["proc.pname", "pname"]) {
        if ancestors.is_empty() {
            ancestors.push(p);
        } else {
            ancestors[0] = p;
        }
    }
    let spec = Spec {
        event: Event {
            ktime_ns: 1_000_000,
            process,
            ns: Namespaces { mnt: 1, pid: 1, net: 1 },
            cgroup_id: 1,
            ret,
            flags: 0,
            detail,
        },
        container,
        strs,
        privileged: b.bool("privileged"),
        stdio_is_socket: b.bool("stdio_is_socket") || b.bool("proc.stdio_is_socket"),
        argv,
        ancestors,
    };
    for (k, m, _) in &b.entries {
        b.errs.push(src.error(*m, format!("unknown or misplaced key '{k}' in a {ty} event spec")));
    }
    let ok = b.errs.is_empty();
    errs.append(&mut b.errs);
    ok.then_some(spec)
}

const FD_TYPES: [FdType; 9] = [
    FdType::Closed,
    FdType::Fifo,
    FdType::Char,
    FdType::Dir,
    FdType::Block,
    FdType::File,
    FdType::Symlink,
    FdType::Socket,
    FdType::Other,
];

const RUNTIMES: [Runtime; 8] = [
    Runtime::Docker,
    Runtime::Containerd,
    Runtime::CriContainerd,
    Runtime::Crio,
    Runtime::Podman,
    Runtime::Lxc,
    Runtime::GithubActions,
    Runtime::Kubernetes,
];
