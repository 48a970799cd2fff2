//! The webhook output against a falcosidekick-compatible receiver: every
//! alert arrives as one POST whose JSON has Falco's payload shape (what
//! falcosidekick decodes: output, priority, rule, time, output_fields,
//! source, tags, hostname), identical to the line in alerts.jsonl.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const T: Duration = Duration::from_secs(20);
const PRIORITIES: [&str; 8] =
    ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];

/// A minimal receiver speaking HTTP/1.1 like falcosidekick's `/` endpoint: it
/// rejects (400) a body that is not a Falco payload, and answers 200 otherwise.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!("http://{}/", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let (first, body) = read_request(&conn);
            let ok = first.starts_with("POST / ") && is_falco_payload(&body);
            if ok {
                g.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            }
            let status = if ok { "200 OK" } else { "400 Bad Request" };
            let mut c = conn;
            let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// One HTTP/1.1 request: its request line and its body (Content-Length framed).
fn read_request(conn: &std::net::TcpStream) -> (String, Vec<u8>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let (mut first, mut line, mut len) = (String::new(), String::new(), 0usize);
    r.read_line(&mut first).unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (first, body)
}

fn is_falco_payload(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    let s = |k: &str| v[k].as_str().is_some_and(|x| !x.is_empty());
    let time_ok = v["time"].as_str().is_some_and(|t| t.len() == 30 && t.ends_with('Z') && &t[10..11] == "T");
    s("output")
        && s("rule")
        && s("source")
        && s("hostname")
        && time_ok
        && v["priority"].as_str().is_some_and(|p| PRIORITIES.contains(&p))
        && v["output_fields"].is_object()
        && v["tags"].as_array().is_some_and(|t| t.iter().all(Value::is_string))
}

#[test]
fn alerts_are_posted_to_a_falcosidekick_compatible_receiver() {
    let (url, got) = receiver();
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--webhook", &url]);
    let id = random_container_id();
    // The inner `sh` reads its stdin (/dev/null): an interactive shell, the Notice.
    ctrd.run(
        &id,
        &docker_cgroup(&id),
        &["sh", "-c", "cat /etc/shadow >/dev/null; touch /etc/x; sh </dev/null"],
        T,
    )
    .assert_success();
    let mine = |v: &Value| v["output_fields"]["boxwatch.container.full_id"] == id.as_str();
    d.wait_for("write-below-etc alert on stdout", T, |v| {
        v["rule"] == "Write below /etc in a container" && mine(v)
    });
    let t0 = std::time::Instant::now();
    while got.lock().unwrap().iter().filter(|v| mine(v)).count() < 3 {
        assert!(t0.elapsed() < T, "receiver got: {:?}", got.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    // alerts.jsonl is flushed per alert; the log directory goes away with the daemon.
    let mut log = String::new();
    std::fs::File::open(d.log_dir.join("alerts.jsonl")).unwrap().read_to_string(&mut log).unwrap();
    let stats = d.stop();
    assert!(stats.contains("webhook_queue_full=0 webhook_failed=0"), "{stats}");
    let posted: Vec<Value> = got.lock().unwrap().iter().filter(|v| mine(v)).cloned().collect();
    let rules: Vec<&str> = posted.iter().map(|v| v["rule"].as_str().unwrap()).collect();
    for r in [
        "Shell spawned in a container",
        "Sensitive file read in a container",
        "Write below /etc in a container",
    ] {
        assert!(rules.contains(&r), "{r} not posted: {rules:?}");
    }
    // Each validates against the schema in the repository.
    let schema: Value = serde_json::from_str(include_str!("../../../../schemas/alert.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for v in &posted {
        let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}: {v}");
    }
    // What was posted is exactly what alerts.jsonl holds.
    let logged: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap()).filter(|v| mine(v)).collect();
    assert_eq!(posted, logged);
}

/// A receiver that can be stopped and started again on the same port.
struct Flaky {
    addr: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn start(addr: &str, got: Arc<Mutex<Vec<Value>>>) -> Flaky {
        let l = TcpListener::bind(addr).expect("bind receiver");
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, s) = (got, Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((conn, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let (_, body) = read_request(&conn);
                g.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                let mut c = conn;
                let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Flaky { addr, stop }
    }

    fn kill(self) -> std::net::SocketAddr {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100)); // the listener is dropped with the thread
        self.addr
    }
}

#[test]
fn a_dead_receiver_loses_nothing_that_fits_the_queue_and_counts_the_rest() {
    let _no_flood = quiet();
    let got = Arc::new(Mutex::new(Vec::new()));
    let rx = Flaky::start("127.0.0.1:0", Arc::clone(&got));
    let url = format!("http://{}/", rx.addr);
    let ctrd = Containerd::start();
    // A queue of 3: while the receiver is down, the fourth alert onwards cannot be held.
    let d = Daemon::start(&["--webhook", &url, "--webhook-queue", "3"]);
    let mine = |id: &str| {
        let id = id.to_string();
        move |v: &Value| v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    };
    let id1 = random_container_id();
    // Two alerts: the read, and the interactive-shell Notice of the inner `sh`.
    ctrd.run(&id1, &docker_cgroup(&id1), &["sh", "-c", "cat /etc/shadow >/dev/null; sh </dev/null"], T)
        .assert_success();
    let t0 = std::time::Instant::now();
    while got.lock().unwrap().iter().filter(|v| mine(&id1)(v)).count() < 2 {
        assert!(t0.elapsed() < T, "receiver up: alerts not delivered");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Receiver down: 1 alert in delivery + 3 queued survive; the rest are counted.
    let addr = rx.kill();
    let id2 = random_container_id();
    let many = "for i in $(seq 1 12); do touch /etc/f$i; done";
    ctrd.run(&id2, &docker_cgroup(&id2), &["sh", "-c", many], T).assert_success();
    let printed = d.wait_for("alerts on stdout while the receiver is down", T, |v| {
        v["rule"] == "Write below /etc in a container" && mine(&id2)(v)
    });
    drop(printed);
    std::thread::sleep(Duration::from_millis(500));
    let printed = d.container_alerts(&id2).len();
    assert!(printed >= 10, "stdout has the 12 writes: {printed}");

    // Receiver back on the same port within the retry budget: what was held arrives (1 in
    // delivery + 3 queued; other tests' containers may hold some of those places, since every
    // daemon sees every container, so they are counted whatever their container).
    let held_from = got.lock().unwrap().len();
    let _rx2 = Flaky::start(&addr.to_string(), Arc::clone(&got));
    let t0 = std::time::Instant::now();
    while got.lock().unwrap().len() < held_from + 4 {
        assert!(
            t0.elapsed() < T,
            "held alerts not delivered after the receiver came back: {:?}",
            got.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Lost alerts are counted as the webhook's delivery failures, not as lost events.
    let t0 = std::time::Instant::now();
    let metric = |m: &str, series: &str| -> Option<f64> {
        m.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    loop {
        let m = d.http_get("/metrics");
        let full =
            metric(&m, r#"boxwatch_alert_delivery_failures_total{output="webhook",cause="queue_full"} "#);
        let sent = metric(&m, r#"boxwatch_alerts_delivered_total{output="webhook"} "#);
        if full >= Some(1.0) && sent >= Some(6.0) {
            assert!(
                metric(&m, r#"boxwatch_alert_delivery_failures_total{output="webhook",cause="failed"} "#)
                    .is_some()
            );
            assert!(metric(&m, r#"boxwatch_output_retries_total{output="webhook"} "#) >= Some(1.0), "{m}");
            assert!(
                !m.contains("boxwatch_drops_total{cause=\"webhook"),
                "alert losses are not event drops:\n{m}"
            );
            assert_eq!(metric(&m, r#"boxwatch_drops_total{cause="output_write_errors"} "#), Some(0.0));
            break;
        }
        assert!(t0.elapsed() < T, "delivery counters not in /metrics:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Stopping drains the webhook queue; afterwards every alert the daemon wrote (from any
    // container: other tests run in parallel) was either received or counted as dropped.
    let stats = d.stop();
    let delivered = got.lock().unwrap().len();
    let field = |k: &str| -> usize {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX)
    };
    let (full, failed) = (field("webhook_queue_full="), field("webhook_failed="));
    assert_eq!(failed, 0, "nothing gave up: the receiver came back within the retry budget; {stats}");
    assert!(full >= 1, "alerts beyond the queue are counted: {stats}");
    let written = field("alerts=");
    assert_eq!(delivered + full, written, "every alert is either delivered or counted as dropped: {stats}");
}
