//! The event hot path through `Outputs` (trait objects, lazily built JSON line) against
//! the same work done directly (`EventLineWriter::line` + `LogFile::write_line`, what the
//! daemon did before the outputs had a trait), both writing events.jsonl in a temp dir.
//! Prints ns per event for each, interleaved rounds; asserts nothing.
//!
//! `cargo bench -p boxwatch-outputs --bench event_path`

use std::time::{Duration, Instant};

use boxwatch_model::{ContainerRef, Event};
use boxwatch_outputs::Outputs;
use boxwatch_outputs::eventline::EventLineWriter;
use boxwatch_outputs::logfile::{self, LogFile, LogSink, Policy};

const EVENT: &str = r#"{"cgroup_id": 78191, "dirfd": -100, "flags": 524288, "kind": "open", "ktime_ns": 9812740507445, "mode": 0, "ns": {"mnt": 4026532177, "net": 4026532181, "pid": 4026532180}, "path": "/usr/local/lib/python3.11/dist-packages/_sandboxing_egress_ca.pth", "process": {"cap_effective": 2818844155, "comm": "python3", "egid": 0, "euid": 0, "gid": 0, "pid": 14894, "ppid": 14870, "start_ns": 9812698912882, "tid": 14894, "uid": 0, "vpid": 1}, "record_flags": 0, "ret": 3, "syscall": "openat"}"#;
const N: u64 = 300_000;

fn main() {
    let ev: Event = serde_json::from_str(EVENT).unwrap();
    let c: ContainerRef = serde_json::from_str(
        r#"{"id":"6ed032e4f2f1d33a5def5baecb515bb4d2625606a543d735ce2d74b6cf2963f0","runtime":"docker","pod_uid":null,"namespace":null,"nested":false,"cgroup_root":"/system.slice/docker-6ed032e4f2f1.scope"}"#,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("bw-event-path-{}", std::process::id()));
    let per = |d: Duration| d.as_nanos() as f64 / N as f64;
    let (mut direct, mut traits) = (Vec::new(), Vec::new());
    for round in 0..5 {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let policy = Policy { max_bytes: 0, max_age: None, keep: 1, sync_every: None };
        let mut log = LogFile::open(&dir.join("direct.jsonl"), policy).unwrap();
        let mut w = EventLineWriter::default();
        let t = Instant::now();
        for i in 0..N {
            let line = w.line(1_764_032_000_000_000_000 + i, &ev, Some(&c), None, Some("14894:1:0"), None);
            log.write_line(&line).unwrap();
        }
        log.flush().unwrap();
        direct.push(per(t.elapsed()));

        let cfg = logfile::Config { events: true, max_bytes: 0, max_age: None, keep: 1 };
        let mut o = Outputs::new();
        o.add_sink(Box::new(LogSink::open(&dir.join("sink"), &cfg).unwrap()));
        let t = Instant::now();
        for i in 0..N {
            o.event(1_764_032_000_000_000_000 + i, &ev, Some(&c), None, Some("14894:1:0"), None);
        }
        o.flush();
        traits.push(per(t.elapsed()));
        o.close(Duration::from_secs(1));
        eprintln!(
            "round {round}: direct {:.0} ns/event, through Outputs {:.0} ns/event",
            direct[round], traits[round]
        );
    }
    let min = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
    println!(
        "event path, best of 5 rounds of {N}: direct {:.0} ns/event, through Outputs {:.0} ns/event",
        min(&direct),
        min(&traits)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
