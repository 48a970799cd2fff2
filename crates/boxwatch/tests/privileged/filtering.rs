//! Host processes are filtered out in the kernel, not in userspace.
//!
//! Two daemons watch the same window: the default one (in-kernel cgroup
//! filter) and a control one with `--all-processes`. A host process (in this
//! test's own cgroup) opens a unique marker path 20000 times, then a
//! container opens the same path once.
//!
//! * Both daemons print the container's open, attributed to the container.
//! * The control prints the host opens: the workload is visible to the hooks.
//! * The default daemon prints no host open, and its stats show the kernel
//!   did not emit them: every record the kernel emitted or lost
//!   (`kernel_emitted` + kernel drops) was printed, but for a small rest
//!   (cgroup lifecycle records, userspace queue drops). Were the filter in
//!   userspace, that rest would be at least the 20000 marker opens.

use std::process::Command;

use serde_json::Value;

use crate::probe::*;
use crate::support::*;

const N: u64 = 20_000;

const HOST_WORKLOAD: &str = r#"
import os, sys
p, n = sys.argv[1], int(sys.argv[2])
open(p, "w").close()
for _ in range(n):
    os.close(os.open(p, os.O_RDONLY))
os.unlink(p)
print(os.getpid())
"#;

/// `key=<u64>` from a `boxwatch: stats` line.
fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in stats line: {line:?}"))
}

/// Sum of the kernel drop counters (`kernel_*=` after `drops:`) of a stats line.
fn kernel_drops(line: &str) -> u64 {
    let (_, drops) = line.split_once("drops:").unwrap_or_else(|| panic!("no drops: in stats line {line:?}"));
    assert!(drops.contains("kernel_ringbuf_full="), "{line}");
    drops
        .split_whitespace()
        .filter(|kv| kv.starts_with("kernel_"))
        .filter_map(|kv| kv.split_once('=')?.1.parse::<u64>().ok())
        .sum()
}

fn is_host_marker_open(v: &Value, marker: &str, pid: u64) -> bool {
    v["type"] == "event" && v["kind"] == "open" && v["path"] == marker && v["process"]["pid"] == pid
}

#[test]
fn host_processes_are_filtered_out_in_kernel() {
    let _no_flood = quiet();
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let ctrd = Containerd::start();
    let filtered = Daemon::start(&[]);
    // The control sees every host event: give it room so its lifecycle lines are not lost.
    let control =
        Daemon::start(&["--all-processes", "--ringbuf-mib", "32", "--queue", "262144", "--no-event-log"]);
    let marker = format!("/tmp/bw-host-marker-{}", random_hex(8));

    let host = Command::new("/usr/bin/python3")
        .args(["-c", HOST_WORKLOAD, &marker, &N.to_string()])
        .output()
        .expect("run the host workload");
    assert!(host.status.success(), "host workload failed: {host:?}");
    let host_pid: u64 = String::from_utf8_lossy(&host.stdout).trim().parse().expect("host workload pid");

    // The same path opened once inside a container, after the host workload.
    let id = random_container_id();
    let script = format!("open('{marker}', 'w').close()");
    ctrd.run(&id, &docker_cgroup(&id), &["python3", "-c", &script], T).assert_success();
    // The container's exit (cgroup removal) comes after all its events and
    // after the host workload's in the ring buffer: everything was printed.
    wait_exited(&filtered, &id);
    wait_exited(&control, &id);

    // Both daemons attribute the container's open.
    for (name, d) in [("default", &filtered), ("--all-processes", &control)] {
        let c = d.container_events(&id);
        let open = c.iter().find(|v| v["kind"] == "open" && v["path"] == marker.as_str());
        let open = open.unwrap_or_else(|| panic!("{name} daemon: no open of {marker} in the container"));
        assert_attributed(open, &id);
        assert_eq!(open["flags"], 0o2001101, "{}", brief(open)); // O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC
        assert!(ret(open) >= 0, "{}", brief(open));
    }

    // The control saw the host workload: its opens are printed, unattributed,
    // or counted as lost (ring buffer or queue full under that burst).
    let control_lines = control.lines();
    let seen = control_lines.iter().filter(|v| is_host_marker_open(v, &marker, host_pid)).count() as u64;
    let first = control_lines.iter().find(|v| is_host_marker_open(v, &marker, host_pid));
    let first = first.unwrap_or_else(|| panic!("--all-processes printed no host open of {marker}"));
    assert!(first["container"].is_null(), "a host open attributed to a container: {}", brief(first));
    assert_eq!(first["ret"].as_i64().map(|r| r >= 0), Some(true), "{}", brief(first));

    // The default daemon printed none of them.
    let leaked: Vec<String> = filtered
        .lines()
        .iter()
        .filter(|v| v["path"] == marker.as_str() && v["container"]["id"] != id.as_str())
        .map(brief)
        .collect();
    assert!(leaked.is_empty(), "host opens of {marker} got through the filter:\n{}", leaked.join("\n"));

    let fs = filtered.stop();
    let cs = control.stop();
    let lost = kernel_drops;
    let cs_lost = lost(&cs) + stat(&cs, "userspace_queue_full");
    assert!(
        seen + cs_lost >= N,
        "--all-processes accounts for only {seen} printed + {cs_lost} lost of the {N} host opens:\n{cs}"
    );
    assert!(stat(&cs, "kernel_emitted") >= seen, "{cs}");
    // In-kernel filter: what the kernel emitted (or lost) was printed, but
    // for a small rest; never the N host opens.
    let from_kernel = stat(&fs, "kernel_emitted") + lost(&fs);
    let printed = stat(&fs, "events_out");
    let unprinted = from_kernel.saturating_sub(printed);
    assert!(
        unprinted < N / 4,
        "the kernel emitted {from_kernel} records but only {printed} were printed: {unprinted} host records were \
         filtered in userspace, not in the kernel (test cgroup: {own_cgroup:?}; stats of the control run: {cs})\n{fs}"
    );
    eprintln!(
        "[filtering] host opens {N}: control printed {seen} (lost {cs_lost}); default daemon: kernel {from_kernel}, \
         printed {printed}, unprinted {unprinted}"
    );
}
