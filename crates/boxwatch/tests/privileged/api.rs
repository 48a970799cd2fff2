//! The HTTP API of a running `boxwatch run` (boxwatch-web on the daemon's listener) watching a
//! real container: `/api/v1/health`, `/api/v1/containers`, a container's tree up to
//! containerd-shim, `/api/v1/alerts` from the SQLite history, `/healthz` under idle
//! connections, and every series `/metrics` had before it moved to prometheus-client.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lineage::shim_of;
use crate::probe::T;
use crate::support::*;

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Poll `path` until `pred` holds on its JSON; panics with the last answer after `T`.
#[track_caller]
fn poll_json(d: &Daemon, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (st, v) = d.http_json(path);
        if st == 200 && pred(&v) {
            return v;
        }
        assert!(t0.elapsed() < T, "GET {path}: condition not met after {T:?}; last answer ({st}): {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn api_answers_json_about_a_real_container() {
    let ctrd = Containerd::start();
    let scratch = Scratch(std::env::temp_dir().join(format!("boxwatch-api-{}", random_hex(6))));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let db = scratch.0.join("alerts.db");
    let socket = ctrd.address().to_str().unwrap().to_string();
    let d = Daemon::start(&["--history", db.to_str().unwrap(), "--containerd-socket", &socket]);
    let id = random_container_id();
    let c = ctrd.run_detached(&id, &docker_cgroup(&id), &["sh", "-c", "sleep 300; exit 0"]);
    c.exec("bw-api", &["cat", "/etc/shadow"], T).assert_success();
    d.wait_for("the alert", T, |v| {
        v["rule"] == "Sensitive file read in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    });

    // /healthz: ready once both data-path threads beat (they do within a poll timeout).
    let t0 = Instant::now();
    loop {
        let r = d.http_get("/healthz");
        if r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\nok\n") {
            break;
        }
        assert!(t0.elapsed() < T, "/healthz never became ready: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The container, its live processes and its alert count.
    let v = poll_json(&d, "/api/v1/containers", |v| {
        v["containers"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["id"] == id.as_str() && c["alerts"].as_u64() >= Some(1)))
    });
    let me = v["containers"].as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).unwrap();
    assert_eq!(me["runtime"], "docker", "{me}");
    assert_eq!(me["short_id"], &id[..12]);
    assert_eq!(me["cgroup_root"], docker_cgroup(&id));
    assert!(me["processes"].as_u64() >= Some(2), "sh and sleep: {me}");
    assert!(me["metadata"].as_str().unwrap().starts_with("complete (containerd)"), "{me}");

    // Its tree, from containerd-shim (a host process) down to sleep, by a 12-character prefix.
    let (init, shim) = (c.pid(), shim_of(c.pid()));
    let v = poll_json(&d, &format!("/api/v1/containers/{}/tree", &id[..12]), |v| {
        v["processes"].as_array().is_some_and(|ps| ps.iter().any(|p| p["comm"] == "sleep"))
    });
    let procs = v["processes"].as_array().unwrap();
    let node = |pid: u32| {
        procs.iter().find(|p| p["pid"] == pid).unwrap_or_else(|| panic!("pid {pid} not in the tree: {v:#}"))
    };
    let (shim_n, init_n) = (node(shim), node(init));
    assert_eq!(shim_n["comm"], "containerd-shim");
    assert_eq!(shim_n["container_id"], Value::Null, "the shim is a host process");
    assert_eq!(init_n["parent_pid"], shim, "{init_n}");
    assert_eq!(init_n["container_id"], id.as_str());
    assert_eq!(init_n["entry"], "container_init");
    assert_eq!(init_n["argv"], serde_json::json!(["sh", "-c", "sleep 300; exit 0"]));
    let sleep = procs.iter().find(|p| p["comm"] == "sleep").unwrap();
    assert_eq!(sleep["parent_pid"], init);
    assert!(sleep["depth"].as_u64() > shim_n["depth"].as_u64());
    let (st, e) = d.http_json("/api/v1/containers/ffffffffffff/tree");
    assert_eq!(st, 404, "{e}");

    // Health: hooks, event rate, drops by cause, ring fill, queue, last event age.
    let h = poll_json(&d, "/api/v1/health", |h| {
        h["ready"] == true && h["counters"]["received"].as_u64() > Some(0)
    });
    assert!(h["hooks"]["attached"].as_u64() > Some(50), "{h}");
    assert!(h["hooks"]["degraded"].is_array());
    assert!(h["events_per_sec"].is_number());
    for cause in ["kernel_ringbuf_full", "kernel_inflight_full", "userspace_queue_full", "decode_errors"] {
        assert_eq!(h["drops"][cause], 0, "{cause}: {h}");
    }
    assert!(h["ring"]["size_bytes"].as_u64() >= Some(1 << 20), "{h}");
    assert!(h["queue_depth"].is_u64());
    assert!(h["last_event_age_ms"].as_u64().is_some(), "events were processed: {h}");
    assert_eq!(h["reader_alive"], true);

    // Alerts from the history, filtered; bad input is a 400 with a reason.
    let v =
        poll_json(&d, &format!("/api/v1/alerts?container={}&priority=warning&since=10m", &id[..12]), |v| {
            v["count"].as_u64() >= Some(1)
        });
    assert!(
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["output_fields"]["boxwatch.container.full_id"] == id.as_str())
    );
    assert_eq!(v["alerts"][0]["rule"], "Sensitive file read in a container");
    let (st, v) = d.http_json("/api/v1/alerts?priority=critical&container=".to_string().as_str());
    assert_eq!(st, 400, "{v}");
    let (st, v) = d.http_json(&format!("/api/v1/alerts?container={}&priority=critical", &id[..12]));
    assert_eq!((st, &v["count"]), (200, &Value::from(0)), "a Warning alert is below critical: {v}");

    // Ten idle connections do not delay /healthz (#14: the old endpoint took 20 s).
    let addr = d.http_addr();
    let idle: Vec<std::net::TcpStream> =
        (0..10).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.ends_with("ok\n"), "{r}");
    assert!(t0.elapsed() < Duration::from_secs(1), "/healthz took {:?} with idle connections", t0.elapsed());
    drop(idle);

    // Every series the hand-written /metrics had is still there.
    let m = d.http_get("/metrics");
    for name in [
        "boxwatch_events_total{kind=\"exec\"}",
        "boxwatch_kernel_events_total{kind=\"open\"}",
        "boxwatch_alerts_total{rule=\"Sensitive file read in a container\",priority=\"Warning\"}",
        "boxwatch_drops_total{cause=\"kernel_ringbuf_full\"}",
        "boxwatch_drops_total{cause=\"output_write_errors\"}",
        "boxwatch_filter_map_errors_total",
        "boxwatch_cgroups_reconciled_total",
        "boxwatch_received_total",
        "boxwatch_ringbuf_bytes{what=\"queued_max\"}",
        "boxwatch_containers",
        "boxwatch_cgroups",
        "boxwatch_processes_live",
        "boxwatch_processes_exited",
        "boxwatch_processes_evicted_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "boxwatch_runtime_lookups_total{result=\"succeeded\"}",
    ] {
        assert!(m.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing from /metrics:\n{m}");
    }
    drop(c);
    d.stop();
}

/// #14 item 8: `/healthz` follows the data path. The processor is stalled the way #14 item 7
/// found (SIGHUP with a FIFO among the rules files: the reload blocks on the processor thread);
/// `/healthz` must fail while it is stalled and recover after. When reloads move off the event
/// path (#14 item 7), this test needs another way to stall the processor.
#[test]
fn healthz_fails_while_the_processor_is_stalled() {
    let scratch = Scratch(std::env::temp_dir().join(format!("boxwatch-stall-{}", random_hex(6))));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let d = Daemon::start(&["--rules", scratch.0.to_str().unwrap()]);
    let ready = |d: &Daemon| d.http_get("/healthz");
    let t0 = Instant::now();
    while !ready(&d).ends_with("\r\n\r\nok\n") {
        assert!(t0.elapsed() < T, "/healthz never became ready: {}", ready(&d));
        std::thread::sleep(Duration::from_millis(100));
    }
    let fifo = scratch.0.join("zz.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", fifo.display());
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) }, 0);
    let t0 = Instant::now();
    let stalled = loop {
        let r = ready(&d);
        if r.starts_with("HTTP/1.1 503") {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "/healthz still ok with the processor stalled: {r}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stalled.contains("not ready: processor stalled: last heartbeat"), "{stalled}");
    let (st, h) = d.http_json("/api/v1/health");
    assert_eq!((st, &h["ready"]), (200, &Value::Bool(false)), "{h}");
    assert!(h["processor_heartbeat_age_ms"].as_u64() >= Some(5000), "{h}");
    // Unblock the reload: a writer opens the FIFO and closes it (an empty rules file).
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"").unwrap();
    let t0 = Instant::now();
    while !ready(&d).ends_with("\r\n\r\nok\n") {
        assert!(t0.elapsed() < T, "/healthz did not recover: {}", ready(&d));
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&fifo);
    d.stop();
}
