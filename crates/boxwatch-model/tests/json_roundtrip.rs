//! The event-log JSON reads back into the same events: recorded streams
//! (events.jsonl) can be replayed through the rules for benchmarks and
//! golden tests.

use boxwatch_model::event::Namespaces;
use boxwatch_model::{Detail, Event, FdType, ProcessInfo, SockAddr};

fn ev(detail: Detail, ret: Option<i64>) -> Event {
    Event {
        ktime_ns: 5,
        process: ProcessInfo {
            pid: 1,
            tid: 1,
            ppid: 0,
            vpid: 1,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: "sh".into(),
            start_ns: 9,
            cap_effective: 0xff,
        },
        ns: Namespaces { mnt: 1, pid: 2, net: 3 },
        cgroup_id: 77,
        ret,
        flags: 4,
        detail,
    }
}

#[test]
fn every_kind_round_trips_through_json() {
    let cases = vec![
        ev(
            Detail::Exec {
                filename: "/bin/sh".into(),
                argv: vec!["sh".into(), "-c".into(), "x \"y\"".into()],
                truncated: false,
                stdio: [FdType::Socket, FdType::Socket, FdType::File],
            },
            None,
        ),
        ev(
            Detail::Open {
                path: "/etc/shadow".into(),
                dirfd: -100,
                flags: 0o2000000,
                mode: 0,
                syscall: "openat",
            },
            Some(3),
        ),
        ev(
            Detail::Connect {
                fd: 3,
                addr: Some(SockAddr::Inet { ip: "10.0.0.1".parse().unwrap(), port: 4444 }),
            },
            Some(-115),
        ),
        ev(Detail::Rename { from: "/a".into(), to: "/b".into(), syscall: "renameat2" }, Some(0)),
        ev(Detail::Module { syscall: "finit_module", name: "x".into() }, None),
        ev(Detail::Exit { code: 3, signal: 0 }, None),
    ];
    for e in cases {
        let text = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
        assert_eq!(back, e);
    }
}
