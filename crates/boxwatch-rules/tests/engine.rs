//! Rule engine: every operator, lists and macros, exceptions and overrides, the event-type
//! index, alert shape (the Falco fields every alert carries) and embedded examples.

use boxwatch_model::event::Namespaces;
use boxwatch_model::{ContainerRef, Detail, Event, FdType, ProcessInfo, Runtime, SockAddr};
use boxwatch_rules::Priority;
use boxwatch_rules::engine::{Class, Input, RuleSet};

const CID: &str = "4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";

fn container() -> ContainerRef {
    ContainerRef {
        id: CID.into(),
        runtime: Runtime::CriContainerd,
        pod_uid: Some("0b5e-uid".into()),
        namespace: None,
        nested: false,
        cgroup_root: String::new(),
    }
}

fn event(comm: &str, detail: Detail, ret: Option<i64>) -> Event {
    Event {
        ktime_ns: 1_000,
        process: ProcessInfo {
            pid: 77,
            tid: 77,
            ppid: 70,
            vpid: 7,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: comm.into(),
            start_ns: 5,
            cap_effective: 1 << 21,
        },
        ns: Namespaces { mnt: 1, pid: 2, net: 3 },
        cgroup_id: 99,
        ret,
        flags: 0,
        detail,
    }
}

fn open(path: &str, flags: u64) -> Event {
    event(
        "cat",
        Detail::Open { path: path.into(), dirfd: -100, flags, mode: 0o644, syscall: "openat" },
        Some(3),
    )
}

fn exec(filename: &str, argv: &[&str]) -> Event {
    let argv = argv.iter().map(|s| s.to_string()).collect();
    let stdio = [FdType::Socket, FdType::Socket, FdType::Char];
    let comm = filename.rsplit('/').next().unwrap_or(filename);
    event(comm, Detail::Exec { filename: filename.into(), argv, truncated: false, stdio }, None)
}

fn connect(addr: &str, ret: i64) -> Event {
    let a: std::net::SocketAddrV4 = addr.parse().unwrap();
    let addr = Some(SockAddr::Inet { ip: (*a.ip()).into(), port: a.port() });
    event("curl", Detail::Connect { fd: 3, addr }, Some(ret))
}

/// A fully described input around `ev`, in a container.
fn with<'a>(ev: &'a Event, c: &'a ContainerRef, argv: &'a [String], anc: &'a [&'a str]) -> Input<'a> {
    Input {
        container: Some(c),
        container_name: Some("web"),
        image: Some("docker.io/library/nginx:1.25"),
        pod_name: None,
        pod_namespace: Some("prod"),
        exe: Some("/usr/bin/cat"),
        argv,
        ancestors: anc,
        parent_exe: Some("/bin/bash"),
        entry: Some("exec_into:runc exec"),
        wall_ns: 1_795_559_465_123_456_789,
        hostname: "node-1",
        ..Input::new(ev)
    }
}

fn one_rule(prelude: &str, cond: &str) -> String {
    format!(
        "{prelude}\n- rule: r\n  name: R\n  why: w\n  class: other\n  severity: notice\n  condition: |-\n    {cond}\n  output: R %proc.name\n"
    )
}

fn compile(prelude: &str, cond: &str) -> RuleSet {
    let text = one_rule(prelude, cond);
    RuleSet::from_str("t.yaml", &text).unwrap_or_else(|e| panic!("{cond}: {}", e[0]))
}

fn fires(rs: &RuleSet, input: &Input) -> bool {
    let mut out = Vec::new();
    rs.evaluate(input, &mut out);
    !out.is_empty()
}

fn check_all(prelude: &str, ev: &Event, cases: &[(&str, bool)]) {
    let c = container();
    let argv: Vec<String> = ["cat", "/etc/shadow"].iter().map(|s| s.to_string()).collect();
    let anc = ["bash", "containerd-shim", "systemd"];
    let input = with(ev, &c, &argv, &anc);
    for (cond, want) in cases {
        assert_eq!(fires(&compile(prelude, cond), &input), *want, "{cond} on {}", ev.name());
    }
}

#[test]
fn comparison_operators() {
    let ev = open("/etc/shadow", 0);
    check_all(
        "",
        &ev,
        &[
            ("proc.name = cat", true),
            ("proc.name == cat", true),
            ("proc.name = dog", false),
            ("proc.name != dog", true),
            ("proc.name != cat", false),
            ("proc.pid = 77", true),
            ("proc.pid = 0x4d", true),
            ("user.uid < 1000", true),
            ("proc.pid <= 77", true),
            ("proc.pid < 77", false),
            ("proc.pid > 76", true),
            ("proc.pid >= 78", false),
            ("container.privileged = false", true),
            ("evt.type = openat", true),
            ("evt.type != openat", false),
            // An absent field fails every comparison, negated ones too (Falco semantics).
            ("memfd.name != x", false),
            ("not memfd.name = x", true),
        ],
    );
}

#[test]
fn set_and_string_operators() {
    let ev = open("/etc/shadow", 0);
    check_all(
        "",
        &ev,
        &[
            ("proc.name in (dog, cat)", true),
            ("proc.name in ('dog')", false),
            ("proc.name in ()", false),
            ("proc.pid in (1, 77)", true),
            ("evt.type in (execve, openat)", true),
            ("proc.aname intersects (runc, containerd-shim)", true),
            ("proc.aname in (runc)", false),
            ("fd.name startswith /etc/", true),
            ("fd.name startswith (/usr, /etc)", true),
            ("fd.name startswith /usr", false),
            ("fd.name endswith shadow", true),
            ("fd.name endswith (passwd, group)", false),
            ("proc.cmdline contains shadow", true),
            ("proc.cmdline icontains SHADOW", true),
            ("proc.cmdline contains SHADOW", false),
            ("fd.name glob '/etc/*ow'", true),
            ("fd.name glob /etc/?", false),
            ("fd.name glob ('/x/*', '/etc/[rs]hadow')", true),
            ("fd.name pmatch (/etc)", true),
            ("fd.name pmatch (/et)", false),
            ("fd.name pmatch (/usr, /)", true),
            ("k8s.pod.name exists", false),
            ("k8s.ns.name exists", true),
            ("proc.aname[3] exists", true),
            ("proc.aname[4] exists", false),
            ("proc.aname = containerd-shim", true),
            ("proc.aname[2] = containerd-shim", true),
            ("proc.aname[1] = containerd-shim", false),
            ("proc.aname[0] = cat", true),
            ("evt.arg.flags contains O_CREAT", false),
            ("evt.arg.flags = O_RDONLY", true),
            ("proc.cap_effective contains CAP_SYS_ADMIN", true),
            ("proc.cap_effective contains (CAP_SYS_MODULE, CAP_BPF)", false),
        ],
    );
}

#[test]
fn boolean_logic_and_bare_fields() {
    let ev = open("/etc/shadow", 0);
    check_all(
        "",
        &ev,
        &[
            ("not (proc.name = dog or proc.pid = 1) and fd.name = /etc/shadow", true),
            ("proc.name = dog or proc.name = cat and proc.pid = 1", false),
            ("(proc.name = dog or proc.name = cat) and proc.pid = 77", true),
            ("not not proc.name = cat", true),
            ("evt.is_open_read", true),
            ("evt.is_open_write or evt.is_open_create", false),
            ("container.privileged", false),
            ("not container.privileged", true),
            ("evt.succeeded and not evt.failed", true),
        ],
    );
}

#[test]
fn fields_of_a_file_event() {
    let ev = open("/etc/shadow", 0o1101);
    check_all(
        "",
        &ev,
        &[
            ("container.id = 4f3c2a1b0e9d", true),
            ("container.full_id startswith 4f3c2a1b0e9d8c7b", true),
            ("container.runtime = cri-containerd", true),
            ("container.name = web", true),
            ("container.image.repository = docker.io/library/nginx", true),
            ("container.image.tag = '1.25'", true),
            ("k8s.pod.uid = 0b5e-uid", true),
            ("fd.directory = /etc and fd.filename = shadow", true),
            ("fd.typechar = f and fd.type = file", true),
            ("evt.res = SUCCESS and evt.rawres = 3", true),
            ("evt.arg.flags contains O_WRONLY|O_CREAT", true),
            ("evt.arg.flags contains (O_APPEND, O_TRUNC)", true),
            ("evt.is_open_write and evt.is_open_create and not evt.is_open_read", true),
            ("evt.arg.mode contains S_IWUSR", true),
            ("proc.exepath = /usr/bin/cat and proc.pexepath = /bin/bash", true),
            ("proc.exe = cat and proc.args = /etc/shadow", true),
            ("proc.pname = bash and proc.ppid = 70 and proc.vpid = 7", true),
            ("proc.entry startswith exec_into:", true),
            ("proc.is_container_init", false),
            ("user.euid = 0 and user.gid = 0 and group.gid = 0", true),
            ("evt.hostname = node-1", true),
        ],
    );
}

#[test]
fn fields_of_exec_network_and_other_events() {
    let ev = exec("/bin/sh", &["sh", "-c", "id"]);
    check_all(
        "",
        &ev,
        &[
            ("proc.exepath = /bin/sh and proc.cmdline = 'sh -c id' and proc.args = '-c id'", true),
            ("proc.stdio_is_socket and proc.stdin.type = socket and proc.stderr.type = char", true),
            ("fd.name exists", false),
        ],
    );
    let ev = connect("10.0.0.5:443", -111);
    check_all(
        "",
        &ev,
        &[
            ("fd.sip = 10.0.0.5 and fd.dport = 443 and fd.sport = 443 and net.port = 443", true),
            ("fd.sip in (10.0.0.0/8, 192.168.0.0/16)", true),
            ("fd.sip in (172.16.0.0/12)", false),
            ("fd.rip = 10.0.0.5 and not fd.cip exists and not fd.lport exists", true),
            ("fd.family = inet and fd.typechar = '4' and not fd.is_server", true),
            ("evt.failed and evt.res = ECONNREFUSED and evt.rawres < 0", true),
        ],
    );
    let cases: &[(Detail, &str)] = &[
        (
            Detail::Chmod { path: Some("/tmp/x".into()), fd: None, mode: 0o4755, syscall: "chmod" },
            "evt.arg.mode contains S_ISUID and fd.name = /tmp/x",
        ),
        (
            Detail::SetId { syscall: "setresuid", ids: vec![1000, 0, -1] },
            "setid.ids intersects (0) and setid.ids > 999",
        ),
        (Detail::Unshare { flags: 0x1002_0000 }, "unshare.flags contains CLONE_NEWNS|CLONE_NEWUSER"),
        (Detail::Setns { fd: 3, nstype: 0, ns_inode: 1 }, "setns.nstype = 0"),
        (
            Detail::Ptrace { request: 16, pid: 1 },
            "ptrace.request in (PTRACE_ATTACH, PTRACE_SEIZE) and ptrace.pid = 1",
        ),
        (
            Detail::Mount {
                source: "/dev/sda1".into(),
                target: "/mnt".into(),
                fstype: "ext4".into(),
                flags: 4096,
            },
            "mount.fstype = ext4 and mount.source = /dev/sda1 and mount.target = /mnt and mount.flags contains MS_BIND",
        ),
        (
            Detail::Umount { target: "/mnt".into(), flags: 2 },
            "mount.target = /mnt and umount.flags contains MNT_DETACH",
        ),
        (Detail::Module { syscall: "finit_module", name: "evil.ko".into() }, "module.name endswith .ko"),
        (Detail::Bpf { cmd: 5, attr_type: 2 }, "bpf.cmd = BPF_PROG_LOAD and bpf.attr_type = 2"),
        (
            Detail::Memfd { name: "x".into(), flags: 1 },
            "memfd.name = x and memfd.flags contains MFD_CLOEXEC and fd.type = memfd",
        ),
        (
            Detail::Capset { pid: 0, effective: 1 << 21, permitted: 1 << 21, inheritable: 0 },
            "capset.effective contains CAP_SYS_ADMIN and capset.permitted contains CAP_SYS_ADMIN",
        ),
        (
            Detail::Socket { domain: 17, sock_type: 3 | 0o4000, protocol: 0 },
            "sock.domain = AF_PACKET and sock.type = SOCK_RAW and sock.protocol = 0",
        ),
        (
            Detail::Rename { from: "/a/b".into(), to: "/etc/c".into(), syscall: "renameat2" },
            "fd.name = /etc/c and fd.oldname = /a/b",
        ),
        (
            Detail::Chown { path: Some("/f".into()), fd: None, uid: 0, gid: 5, syscall: "chown" },
            "chown.uid = 0 and chown.gid = 5",
        ),
        (
            Detail::Bind { fd: 3, addr: Some(SockAddr::Inet { ip: [0, 0, 0, 0].into(), port: 4444 }) },
            "fd.lport = 4444 and fd.sport = 4444 and not fd.dport exists and fd.is_server",
        ),
        (
            Detail::Accept {
                fd: 3,
                peer: Some(SockAddr::Inet6 { ip: "::1".parse().unwrap(), port: 5555 }),
                syscall: "accept4",
            },
            "fd.cip = ::1 and fd.rport = 5555 and fd.typechar = '6' and fd.family = inet6",
        ),
        (
            Detail::Connect {
                fd: 3,
                addr: Some(SockAddr::Unix { path: "/var/run/docker.sock".into(), abstract_ns: false }),
            },
            "fd.name = /var/run/docker.sock and fd.typechar = u and not fd.sip exists",
        ),
    ];
    for (d, cond) in cases {
        let ev = event("x", d.clone(), Some(0));
        check_all("", &ev, &[(cond, true)]);
    }
}

const PRELUDE: &str = "
- list: shells
  items: [sh, bash]
- list: more_shells
  items: [shells, zsh]
- list: shells
  append: true
  items: [dash]
- macro: spawned
  condition: evt.type = execve
- macro: shell_spawned
  condition: spawned and proc.name in (more_shells)
- macro: {name: nested_form, condition: proc.pid = 77}
";

#[test]
fn lists_and_macros() {
    for (comm, want) in [("sh", true), ("zsh", true), ("dash", true), ("python", false)] {
        let ev = exec(&format!("/bin/{comm}"), &[comm]);
        check_all(PRELUDE, &ev, &[("shell_spawned and nested_form", want)]);
    }
    // A quoted value is never a list reference.
    check_all(
        PRELUDE,
        &exec("/bin/shells", &["shells"]),
        &[("proc.name in ('shells')", true), ("proc.name in (shells)", false)],
    );
    let rs = compile(PRELUDE, "shell_spawned");
    assert_eq!(rs.rules().count(), 1);
}

#[test]
fn exceptions_and_overrides() {
    let text = "
- list: trusted
  items: [vim, nano]
- rule: etc-write
  name: Write below etc
  why: w
  class: filesystem
  severity: error
  condition: fd.name startswith /etc/ and evt.is_open_write
  exceptions:
    - name: editors
      fields: [proc.name, fd.name]
      comps: [in, startswith]
      values:
        - [[vim, emacs], /etc/nginx/]
        - [trusted, /etc/app/]
    - name: one_field
      fields: proc.name
      values: [puppet, chef]
  output: write %fd.name
";
    let rs = RuleSet::from_str("x.yaml", text).unwrap();
    let c = container();
    let cases = [
        ("cat", "/etc/nginx/a", true),
        ("vim", "/etc/nginx/a", false),
        ("emacs", "/etc/nginx/a", false),
        ("nano", "/etc/app/x", false),
        ("nano", "/etc/nginx/x", true),
        ("puppet", "/etc/passwd", false),
        ("chef", "/etc/passwd", false),
    ];
    for (comm, path, want) in cases {
        let mut ev = open(path, 1);
        ev.process.comm = comm.into();
        assert_eq!(fires(&rs, &with(&ev, &c, &[], &[])), want, "{comm} {path}");
    }
    let overrides = "
- rule: etc-write
  override: true
  severity: critical
  exceptions:
    - name: cats
      fields: [proc.name]
      values: [[cat]]
- rule: {id: etc-write-2, override: true, enabled: false}
";
    let base = text.to_string() + &text.replace("etc-write", "etc-write-2").replace("trusted", "trusted2");
    let rs = RuleSet::from_sources(&[("a.yaml", &base), ("b.yaml", overrides)]).unwrap();
    let ev = open("/etc/passwd", 1);
    let mut out = Vec::new();
    rs.evaluate(&with(&ev, &c, &[], &[]), &mut out);
    assert!(out.is_empty(), "{out:?}");
    let mut ev = open("/etc/passwd", 1);
    ev.process.comm = "dd".into();
    rs.evaluate(&with(&ev, &c, &[], &[]), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].priority, Priority::Critical);
    assert!(!rs.rules().find(|r| r.id == "etc-write-2").unwrap().enabled);
}

#[test]
fn type_index_keeps_unconstrained_rules_for_every_type() {
    let text = "
- macro: m
  condition: evt.type in (openat, connect)
- rule: any
  name: Any
  why: w
  class: other
  severity: debug
  condition: proc.pid = 77
  output: any
- rule: exec-only
  name: Exec
  why: w
  class: other
  severity: debug
  condition: evt.type = execve and proc.pid = 77
  output: exec
- rule: not-open
  name: NotOpen
  why: w
  class: other
  severity: debug
  condition: not evt.type = openat
  output: not open
- rule: via-macro
  name: Macro
  why: w
  class: other
  severity: debug
  condition: m
  output: m
- rule: or-mixed
  name: Mixed
  why: w
  class: other
  severity: debug
  condition: evt.type = openat or proc.name = sh
  output: mixed
";
    let mut rs = RuleSet::from_str("i.yaml", text).unwrap();
    let c = container();
    let fired = |rs: &RuleSet, ev: &Event| {
        let mut out = Vec::new();
        rs.evaluate(&with(ev, &c, &[], &[]), &mut out);
        out.into_iter().map(|a| a.output).collect::<Vec<_>>()
    };
    assert_eq!(fired(&rs, &open("/x", 0)), ["any", "m", "mixed"]);
    assert_eq!(fired(&rs, &exec("/bin/sh", &["sh"])), ["any", "exec", "not open", "mixed"]);
    assert_eq!(fired(&rs, &connect("1.2.3.4:80", 0)), ["any", "not open", "m"]);
    let others = [
        Detail::Fork { child_pid: 1, child_start_ns: 1 },
        Detail::Exit { code: 0, signal: 0 },
        Detail::CgroupMkdir { id: 1, level: 1, path: "/x".into() },
        Detail::Listen { fd: 3, backlog: 1 },
    ];
    for d in others {
        assert_eq!(fired(&rs, &event("x", d, None)), ["any", "not open"]);
    }
    assert!(rs.set_enabled("any", false));
    assert!(!rs.set_enabled("nope", false));
    assert_eq!(fired(&rs, &open("/x", 0)), ["m", "mixed"]);
}

#[test]
fn alerts_match_the_builtin_shape() {
    let text = "
- rule: sensitive-read
  name: Sensitive file read in a container
  why: Credential files are what attackers read first.
  class: filesystem
  severity: warning
  mitre: [T1003.008]
  tags: [container, filesystem, mitre_credential_access]
  condition: container.id != host and evt.is_open_read and fd.name in (/etc/shadow, /etc/sudoers)
  output: Sensitive file opened for reading (file=%fd.name flags=%evt.arg.flags image=%container.image.repository pod=%k8s.pod.name)
";
    let rs = RuleSet::from_str("p.yaml", text).unwrap();
    let c = container();
    let ev = open("/etc/shadow", 0o2000000);
    let argv: Vec<String> = vec!["cat".into(), "/etc/shadow".into()];
    let input = with(&ev, &c, &argv, &["bash"]);
    let mut out = Vec::new();
    rs.evaluate(&input, &mut out);
    assert_eq!(out.len(), 1);
    let a = &out[0];
    // The Falco fields every alert carries (what falcosidekick and Talon read).
    assert_eq!(
        (a.rule.as_str(), a.priority, a.source, a.hostname.as_str()),
        ("Sensitive file read in a container", Priority::Warning, "syscall", input.hostname,)
    );
    assert_eq!(a.time, boxwatch_rules::time::rfc3339_ns(input.wall_ns));
    let f = &a.output_fields;
    assert_eq!(f["container.id"], &c.id[..12]);
    assert_eq!(f["boxwatch.container.full_id"], c.id.as_str());
    assert_eq!(f["container.runtime"], c.runtime.as_str());
    assert_eq!(f["evt.type"], ev.name());
    assert_eq!(f["proc.pid"], ev.process.pid);
    assert_eq!(f["proc.name"], ev.process.comm.as_str());
    assert_eq!(f["proc.exepath"], serde_json::json!(input.exe));
    assert_eq!(f["proc.cmdline"], "cat /etc/shadow");
    assert_eq!(f["user.uid"], ev.process.uid);
    assert_eq!(f["fd.name"], "/etc/shadow");
    assert_eq!(
        a.output,
        "Sensitive file opened for reading (file=/etc/shadow flags=O_RDONLY|O_CLOEXEC image=docker.io/library/nginx pod=<NA>)"
    );
    let f = &a.output_fields;
    assert_eq!(f["boxwatch.rule.id"], "sensitive-read");
    assert_eq!(f["boxwatch.rule.class"], "filesystem");
    assert_eq!(f["boxwatch.rule.why"], "Credential files are what attackers read first.");
    assert_eq!(f["evt.arg.flags"], 0o2000000);
    assert_eq!(f["k8s.pod.name"], serde_json::Value::Null);
    assert_eq!(f["container.name"], "web");
    assert_eq!(a.tags, ["filesystem", "T1003.008", "container", "mitre_credential_access"]);
    let info = rs.rules().next().unwrap();
    assert_eq!(
        (info.class, info.severity, info.origin.as_str()),
        (Class::Filesystem, Priority::Warning, "p.yaml:2")
    );
    // Host processes: container.id is "host".
    let mut out = Vec::new();
    rs.evaluate(&Input::new(&ev), &mut out);
    assert!(out.is_empty());
}

#[test]
fn embedded_examples_run_and_report_positions() {
    let text = "
- rule: shell
  name: Shell
  why: w
  class: other
  severity: notice
  condition: evt.type = execve and proc.name in (sh, bash) and container.id != host
  output: shell %proc.exepath
  examples:
    - event: {type: execve, exe: /bin/sh, container: true}
      expect: alert
    - event: {type: execve, exe: /bin/sh}
      expect: no_alert
    - event: {type: execve, filename: /usr/bin/python3, container: true}
      expect: alert
- rule: reverse-shell
  name: Reverse shell
  why: w
  class: network
  severity: critical
  condition: evt.type = execve and proc.stdio_is_socket and proc.name in (sh, bash)
  output: rs
  examples:
    - event: {type: execve, exe: /bin/bash, stdio_is_socket: true, container: abc}
      expect: alert
    - event: {type: execve, exe: /bin/bash, stdin: socket}
      expect: alert
    - event: {type: execve, exe: /bin/bash, stdout: file}
      expect: no_alert
- rule: shadow
  name: Shadow
  why: w
  class: filesystem
  severity: warning
  condition: evt.type = openat and fd.name = /etc/shadow and evt.arg.flags contains O_CREAT and proc.aname[2] = runc
  output: x
  enabled: false
  examples:
    - event: {type: openat, path: /etc/shadow, flags: O_WRONLY|O_CREAT, ret: 3, comm: cat, ancestors: [bash, runc]}
      expect: alert
    - event: {type: connect, addr: '10.0.0.1:80', ret: -111, container: true, image: nginx, pod: p, privileged: true}
      expect: no_alert
";
    let rs = RuleSet::from_str("ex.yaml", text).unwrap();
    let report = rs.run_examples();
    assert_eq!(report.passed, 7, "{report:?}");
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        report.to_string(),
        "ex.yaml:14:7: rule 'shell': expected an alert, but the rule did not fire\nexamples: 7 passed, 1 failed\n"
    );
}
