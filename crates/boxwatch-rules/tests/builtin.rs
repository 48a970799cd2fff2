//! Fixture tests of the built-in detections: events as the decoder produces
//! them → the alerts expected, including the cases that must stay silent.

use boxwatch_model::container::parse_cgroup_path;
use boxwatch_model::event::Namespaces;
use boxwatch_model::{ContainerRef, Detail, Event, ProcessInfo};
use boxwatch_rules::{Context, Priority, detect};

const ID: &str = "c8922b5d8df1217fd3870214a1855b64d139ecc51826152e1ae777590dce0328";

fn container() -> ContainerRef {
    parse_cgroup_path(&format!("/system.slice/docker-{ID}.scope")).expect("docker layout")
}

fn event(detail: Detail, ret: Option<i64>) -> Event {
    Event {
        ktime_ns: 1,
        process: ProcessInfo {
            pid: 42,
            tid: 42,
            ppid: 41,
            vpid: 7,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: "cat".into(),
            start_ns: 99,
            cap_effective: 0,
        },
        ns: Namespaces { mnt: 1, pid: 2, net: 3 },
        cgroup_id: 8556,
        ret,
        flags: 0,
        detail,
    }
}

fn open(path: &str, flags: u64, ret: i64) -> Event {
    event(Detail::Open { path: path.into(), dirfd: -100, flags, mode: 0o644, syscall: "openat" }, Some(ret))
}

fn rules(ev: &Event, c: Option<&ContainerRef>) -> Vec<String> {
    let ctx = Context {
        container: c,
        exe: Some("/usr/bin/cat"),
        cmdline: Some("cat /etc/shadow"),
        wall_ns: 1_795_559_465_123_456_789,
        hostname: "node-1",
    };
    detect(ev, &ctx).into_iter().map(|a| a.rule).collect()
}

#[test]
fn shadow_read_in_container_alerts_with_falco_fields() {
    let c = container();
    let ev = open("/etc/shadow", 0, 3);
    let ctx = Context {
        container: Some(&c),
        exe: Some("/usr/bin/cat"),
        cmdline: Some("cat /etc/shadow"),
        wall_ns: 1_795_559_465_123_456_789,
        hostname: "node-1",
    };
    let alerts = detect(&ev, &ctx);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.rule, "Sensitive file read in a container");
    assert_eq!(a.priority, Priority::Warning);
    let j = serde_json::to_value(a).unwrap();
    assert_eq!(j["time"], "2026-11-24T22:31:05.123456789Z");
    assert_eq!(j["priority"], "Warning");
    assert_eq!(j["source"], "syscall");
    assert_eq!(j["hostname"], "node-1");
    let f = &j["output_fields"];
    assert_eq!(f["container.id"], &ID[..12]);
    assert_eq!(f["boxwatch.container.full_id"], ID);
    assert_eq!(f["proc.pid"], 42);
    assert_eq!(f["proc.exepath"], "/usr/bin/cat");
    assert_eq!(f["proc.cmdline"], "cat /etc/shadow");
    assert_eq!(f["fd.name"], "/etc/shadow");
    assert_eq!(f["evt.type"], "openat");
    assert!(j["tags"].as_array().unwrap().iter().any(|t| t == "T1003.008"));
}

#[test]
fn writes_below_etc_alert_for_every_write_syscall() {
    let c = Some(container());
    let c = c.as_ref();
    const O_WRONLY_CREAT_TRUNC: u64 = 0o1101;
    let cases = [
        open("/etc/x", O_WRONLY_CREAT_TRUNC, 3),
        open("/etc/passwd", 0o2, 3), // O_RDWR
        event(Detail::Unlink { path: "/etc/x".into(), syscall: "unlinkat" }, Some(0)),
        event(
            Detail::Rename { from: "/tmp/a".into(), to: "/etc/cron.d/a".into(), syscall: "rename" },
            Some(0),
        ),
        event(
            Detail::Symlink { target: "/bin/sh".into(), link: "/etc/rc.local".into(), syscall: "symlink" },
            Some(0),
        ),
        event(
            Detail::Chmod { path: Some("/etc/sudoers".into()), fd: None, mode: 0o777, syscall: "chmod" },
            Some(0),
        ),
    ];
    for ev in &cases {
        assert_eq!(rules(ev, c), ["Write below /etc in a container"], "{ev:?}");
    }
}

#[test]
fn shell_exec_in_container_alerts() {
    let c = container();
    let ev = event(
        Detail::Exec {
            filename: "/usr/bin/bash".into(),
            argv: vec!["bash".into(), "-i".into()],
            truncated: false,
            stdio: [boxwatch_model::FdType::Closed; 3],
        },
        None,
    );
    assert_eq!(rules(&ev, Some(&c)), ["Shell spawned in a container"]);
}

#[test]
fn benign_and_host_activity_stays_silent() {
    let c = container();
    let silent = [
        open("/etc/passwd", 0, 3),              // id, whoami
        open("/etc/ld.so.cache", 0o2000000, 3), // every exec
        open("/tmp/out", 0o1101, 3),            // writes elsewhere
        open("/etc/x", 0o1101, -13),            // failed write (EACCES)
        open("/etc/shadow", 0, -2),             // failed read
        open("/etcetera/x", 0o1101, 3),         // prefix, not a directory
        event(Detail::Unlink { path: "/tmp/x".into(), syscall: "unlink" }, Some(0)),
        event(
            Detail::Exec {
                filename: "/usr/bin/cat".into(),
                argv: vec!["cat".into()],
                truncated: false,
                stdio: [boxwatch_model::FdType::Closed; 3],
            },
            None,
        ),
    ];
    for ev in &silent {
        assert!(rules(ev, Some(&c)).is_empty(), "{ev:?}");
    }
    // The same attacks from a host process raise nothing: these rules are about containers.
    assert!(rules(&open("/etc/shadow", 0, 3), None).is_empty());
    assert!(rules(&open("/etc/x", 0o1101, 3), None).is_empty());
}
