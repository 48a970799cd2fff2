//! The kernel-to-alert slice: events from inside a container attributed to
//! it, alerts raised, host processes filtered out in the kernel.

use std::time::Duration;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn shadow_read_and_etc_write_in_container_raise_alerts() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let id = random_container_id();
    let out =
        ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", "cat /etc/shadow >/dev/null; touch /etc/x"], T);
    out.assert_success();
    let open = d.wait_for("open of /etc/shadow in the container", T, |v| {
        v["type"] == "event" && v["container"]["id"] == id.as_str() && v["path"] == "/etc/shadow"
    });
    assert_eq!(open["container"]["runtime"], "docker");
    assert_eq!(open["syscall"], "openat");
    assert!(open["ret"].as_i64().unwrap() >= 0, "{open}");
    assert_eq!(open["process"]["comm"], "cat");
    d.wait_for("sensitive-file alert", T, |v| {
        v["rule"] == "Sensitive file read in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    });
    let w = d.wait_for("write-below-etc alert", T, |v| {
        v["rule"] == "Write below /etc in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    });
    assert_eq!(w["output_fields"]["container.id"], &id[..12]);
    assert_eq!(w["output_fields"]["fd.name"], "/etc/x");
    assert_eq!(w["source"], "syscall");

    // The same alerts are counted in /metrics, and every drop cause is exported.
    let health = d.http_get("/healthz");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
    let m = d.http_get("/metrics");
    let value = |line: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line} missing from /metrics:\n{m}"))
    };
    assert!(
        value(r#"boxwatch_alerts_total{rule="Sensitive file read in a container",priority="Warning"}"#)
            >= 1.0
    );
    assert!(
        value(r#"boxwatch_alerts_total{rule="Write below /etc in a container",priority="Notice"}"#) >= 1.0
    );
    assert!(value(r#"boxwatch_events_total{kind="open"}"#) >= 2.0);
    for cause in ["kernel_ringbuf_full", "kernel_inflight_full", "userspace_queue_full", "decode_errors"] {
        assert_eq!(value(&format!("boxwatch_drops_total{{cause=\"{cause}\"}}")), 0.0, "{cause}");
    }
    assert!(value("process_resident_memory_bytes") > 1e6);
    // Every series family exported before the outputs moved to their crate is still there.
    for name in [
        "boxwatch_events_total",
        "boxwatch_kernel_events_total",
        "boxwatch_alerts_total",
        "boxwatch_drops_total",
        "boxwatch_filter_map_errors_total",
        "boxwatch_cgroups_reconciled_total",
        "boxwatch_received_total",
        "boxwatch_ringbuf_bytes",
        "boxwatch_containers",
        "boxwatch_cgroups",
        "boxwatch_processes_live",
        "boxwatch_processes_exited",
        "boxwatch_processes_evicted_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(m.contains(&format!("\n# TYPE {name} ")), "{name} missing from /metrics:\n{m}");
    }
    assert_eq!(value(r#"boxwatch_drops_total{cause="output_write_errors"}"#), 0.0);
    assert_eq!(value(r#"boxwatch_output_write_errors_total{output="logfiles"}"#), 0.0);
    let stats = d.stop();
    assert!(stats.contains("kernel_ringbuf_full=0") && stats.contains("userspace_queue_full=0"), "{stats}");
}

#[test]
fn check_reports_this_kernel_and_refuses_unprivileged() {
    let bin = env!("CARGO_BIN_EXE_boxwatch");
    let out = std::process::Command::new(bin).arg("check").output().expect("run boxwatch check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check as root must report ready:\n{text}");
    assert!(text.contains("[ok  ] tracepoint"), "{text}");
    // This kernel refuses fentry and LSM programs and has no kprobes: check must say so.
    for kind in ["fentry", "lsm", "kprobe"] {
        assert!(
            text.lines().any(|l| l.contains("[no  ]") && l.contains(kind)),
            "{kind} not reported:\n{text}"
        );
    }
    assert!(text.contains("ready: boxwatch can run here"), "{text}");

    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "check"])
        .output()
        .expect("run boxwatch check unprivileged (setpriv from util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "unprivileged check must exit 1:\n{text}");
    assert!(text.contains("lacks CAP_SYS_ADMIN"), "{text}");
    assert!(text.contains("NOT READY"), "{text}");
}

#[test]
fn alerts_carry_runtime_metadata_from_containerd() {
    let ctrd = Containerd::start();
    let sock = ctrd.address().display().to_string();
    let d = Daemon::start(&["--containerd-socket", &sock]);
    let id = random_container_id();
    let out = ctrd.run_with(
        &id,
        &docker_cgroup(&id),
        &["--label", "app=shop", "--label", "tier=web"],
        &["sh", "-c", "cat /etc/shadow >/dev/null"],
        T,
    );
    out.assert_success();
    let a = d.wait_for("sensitive-file alert with metadata", T, |v| {
        v["rule"] == "Sensitive file read in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    });
    let f = &a["output_fields"];
    assert_eq!(f["boxwatch.container.metadata"], "complete (containerd)", "{a}");
    assert_eq!(f["container.image.repository"], "docker.io/boxwatch/hostusr");
    assert_eq!(f["container.image.tag"], "test");
    assert_eq!(f["container.name"], id.as_str());
    assert_eq!(f["container.labels"]["app"], "shop");
    assert_eq!(f["boxwatch.container.namespace"], ctrd.namespace());

    // Without a reachable runtime socket the alert still ships at once, and says why.
    let d2 = Daemon::start(&["--containerd-socket", "/nonexistent/containerd.sock"]);
    let id2 = random_container_id();
    ctrd.run(&id2, &docker_cgroup(&id2), &["sh", "-c", "cat /etc/shadow >/dev/null"], T).assert_success();
    let a2 = d2.wait_for("alert without metadata", T, |v| {
        v["rule"] == "Sensitive file read in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id2.as_str()
    });
    let status = a2["output_fields"]["boxwatch.container.metadata"].as_str().unwrap_or_default().to_string();
    assert!(status.starts_with("unavailable:") && status.contains("/nonexistent/containerd.sock"), "{a2}");
}

#[test]
fn identical_alerts_are_folded_and_a_noisy_container_is_rate_limited() {
    let _no_flood = quiet();
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--aggregate-window", "2", "--rate-per-container", "5"]);
    // 30 identical credential reads: one alert at once, one summary with the count.
    let id = random_container_id();
    let loop30 = "for i in $(seq 1 30); do cat /etc/shadow >/dev/null; done";
    ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", loop30], T).assert_success();
    let s = d.wait_for("summary of the folded alerts", T, |v| {
        v["rule"] == "Sensitive file read in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
            && v["output_fields"]["boxwatch.aggregate.count"].is_u64()
    });
    assert_eq!(s["output_fields"]["boxwatch.aggregate.count"], 30, "{s}");
    let singles =
        d.container_alerts(&id).iter().filter(|v| v["rule"] == "Sensitive file read in a container").count();
    assert_eq!(singles, 2, "the first alert and one summary");

    // 40 distinct alerts (Notice) from one container at once: the per-container limit of its
    // priority band (burst 10) holds them back, and an in-band notice says so.
    let id2 = random_container_id();
    let distinct = "for i in $(seq 1 40); do touch /etc/f$i; done";
    ctrd.run(&id2, &docker_cgroup(&id2), &["sh", "-c", distinct], T).assert_success();
    d.wait_for("first write alert", T, |v| {
        v["rule"] == "Write below /etc in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id2.as_str()
    });
    d.wait_for("the suppression notice", T, |v| {
        v["rule"] == "Alerts suppressed for a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id2.as_str()
    });
    std::thread::sleep(Duration::from_millis(500));
    let n =
        d.container_alerts(&id2).iter().filter(|v| v["rule"] == "Write below /etc in a container").count();
    assert!(n <= 13, "rate limit: {n} alerts for container 2");
    let stats = d.stop();
    let limited: u64 = stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix("alerts_rate_limited="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no alerts_rate_limited in {stats}"));
    assert!(limited >= 25, "{stats}");
}

#[test]
fn log_files_rotate_by_size_without_losing_lines() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--log-max-mb", "1", "--log-keep", "3"]);
    let id = random_container_id();
    let opens =
        "python3 -c 'import os\nfor i in range(4000): os.close(os.open(\"/etc/hostname\", os.O_RDONLY))'";
    ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", opens], T).assert_success();
    d.wait_for("the container's exit", T, |v| {
        v["type"] == "container" && v["action"] == "exited" && v["container"]["id"] == id.as_str()
    });
    let dir = d.log_dir.clone();
    let printed = d.lines().iter().filter(|v| v["type"] == "event" || v["type"] == "container").count();
    let stats = d.stop_keep_logs();
    assert!(stats.contains("output_write_errors=0"), "{stats}");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let files = ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"];
    for f in &files[..3] {
        assert!(dir.join(f).exists(), "{f} missing: 4000 opens (~3 MB of events) must rotate at 1 MiB");
    }
    for f in files {
        let size = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(size <= 1024 * 1024, "{f} is {size} bytes, over the 1 MiB limit");
    }
    assert!(!dir.join("events.jsonl.4").exists(), "only 3 rotated files are kept");
    let logged: usize = files.iter().map(|f| read(f).lines().count()).sum();
    if !dir.join("events.jsonl.3").exists() {
        // Nothing was dropped off the end: every printed line is in the files, each once.
        assert_eq!(logged, printed, "lines in the rotated files vs lines printed on stdout");
    }
    for f in files {
        for l in read(f).lines() {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{f}: a line split by rotation? {e}: {l}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_drains_everything_accepted() {
    let ctrd = Containerd::start();
    // A long poll interval: at SIGTERM most of the burst is still in the ring buffer or the queue.
    let d = Daemon::start(&["--latency-ms", "1000"]);
    let id = random_container_id();
    let burst =
        "python3 -c 'import os\nfor i in range(3000): os.close(os.open(\"/etc/hostname\", os.O_RDONLY))'";
    ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", burst], T).assert_success();
    // The workload is over: everything it did happened before this SIGTERM.
    let dir = d.log_dir.clone();
    let stats = d.stop_keep_logs();
    let num = |k: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    for k in ["kernel_ringbuf_full=", "userspace_queue_full=", "decode_errors=", "output_write_errors="] {
        assert_eq!(num(k), 0, "{k} {stats}");
    }
    let logged = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let opens =
        logged.lines().filter(|l| l.contains(&id) && l.contains("\"path\":\"/etc/hostname\"")).count();
    assert_eq!(opens, 3000, "every open that happened before SIGTERM is in events.jsonl: {stats}");
    let _ = std::fs::remove_dir_all(&dir);
}
