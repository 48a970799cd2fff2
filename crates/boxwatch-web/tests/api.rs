//! The router driven without a port (`tower::ServiceExt::oneshot`), and the served endpoint
//! under idle connections (loopback only).

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use boxwatch_model::process::{ProcessTree, SeedProc};
use boxwatch_web::prometheus_client::metrics::counter::Counter;
use boxwatch_web::prometheus_client::registry::Registry;
use boxwatch_web::{ContainerInfo, CoverageInfo, DataPath, HookInfo, Snapshot, SnapshotCell, Web, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const A: &str = "4be7496d1c7a4f2fb2b7c3c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1";
const B: &str = "4be7ffff1c7a4f2fb2b7c3c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1";

fn container(id: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        short_id: id[..12].into(),
        runtime: "docker".into(),
        pod_uid: None,
        namespace: None,
        nested: false,
        cgroup_root: format!("/system.slice/docker-{id}.scope"),
        name: Some("web\u{1b}[31m".into()),
        image: None,
        pod_name: None,
        pod_namespace: None,
        metadata: "pending: lookup running".into(),
        processes: 2,
        alerts: 1,
    }
}

/// A snapshot built the way the daemon builds its trees: from a process tree.
fn snapshot() -> Snapshot {
    let mut t = ProcessTree::default();
    let p = |pid, ppid, comm: &str, c: Option<&str>| SeedProc {
        pid,
        ppid,
        start_ns: u64::from(pid) * 1000,
        comm: comm.into(),
        container_id: c.map(Into::into),
        ..SeedProc::default()
    };
    t.seed([
        p(1, 0, "init", None),
        p(800, 1, "containerd-shim", None),
        p(900, 800, "sh", Some(A)),
        p(901, 900, "sleep", Some(A)),
    ]);
    let mut s = Snapshot {
        seq: 3,
        taken_unix_ns: 1,
        containers: vec![container(A), container(B)],
        trees: Arc::new(t.container_trees()),
        trees_taken_unix_ns: now_unix_ns(),
        coverage: Arc::new(CoverageInfo {
            attached: 90,
            degraded: vec![HookInfo {
                program: "enter_init_module".into(),
                status: "degraded".into(),
                reason: Some("tracepoint missing".into()),
            }],
            hooks: vec![],
            inflight_store: "task_storage".into(),
        }),
        ..Snapshot::default()
    };
    s.counters.drops.insert("kernel_ringbuf_full".into(), 2);
    s.counters.drops.insert("userspace_queue_full".into(), 3);
    s.counters.ring_size_bytes = 1000;
    s.counters.ring_queued_bytes = 250;
    s.counters.events_per_sec = 12.5;
    s
}

fn now_unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn web() -> (Web, Arc<DataPath>, Counter) {
    let mut registry = Registry::default();
    let c = Counter::default();
    registry.register("boxwatch_test_things", "Things.", c.clone());
    let cell = Arc::new(SnapshotCell::default());
    cell.publish(snapshot());
    let dp = Arc::new(DataPath::default());
    let w = Web {
        registry,
        snapshots: cell,
        data_path: dp.clone(),
        alerts: None,
        stall_after: Duration::from_secs(5),
    };
    (w, dp, c)
}

async fn get(app: axum::Router, uri: &str) -> (StatusCode, String, String) {
    let r = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(app: axum::Router, uri: &str) -> (StatusCode, Value) {
    let (st, ctype, body) = get(app, uri).await;
    assert_eq!(ctype, "application/json", "{uri}: {body}");
    (st, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {body}")))
}

#[tokio::test]
async fn metrics_come_from_the_registry() {
    let (w, _, c) = web();
    c.inc_by(7);
    let (st, ctype, body) = get(router(w), "/metrics").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        body.contains("# TYPE boxwatch_test_things_total counter\nboxwatch_test_things_total 7\n"),
        "{body}"
    );
}

#[tokio::test]
async fn healthz_reports_the_data_path() {
    let (w, dp, _) = web();
    let app = router(w);
    let (st, _, body) = get(app.clone(), "/healthz").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("not ready: ring-buffer reader is not running"), "{body}");
    dp.reader_alive.store(true, Ordering::Relaxed);
    dp.reader_beat();
    dp.processor_beat(true);
    let (st, _, body) = get(app.clone(), "/healthz").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "ok\n"));
    let (_, h) = get_json(app, "/api/v1/health").await;
    assert_eq!(h["ready"], true);
    assert_eq!(h["hooks"]["attached"], 90);
    assert_eq!(h["hooks"]["degraded"][0]["program"], "enter_init_module");
    assert_eq!(h["drops"]["userspace_queue_full"], 3);
    assert_eq!(h["drops_total"], 5);
    assert_eq!(h["ring"]["fill"], 0.25);
    assert_eq!(h["events_per_sec"], 12.5);
    assert!(h["last_event_age_ms"].as_u64().unwrap() < 1000, "{h}");
    assert_eq!(h["queue_depth"], 0);
    assert_eq!(h["snapshot"]["seq"], 3);
}

#[tokio::test]
async fn a_stalled_processor_fails_healthz() {
    let (mut w, dp, _) = web();
    w.stall_after = Duration::from_millis(20);
    dp.reader_alive.store(true, Ordering::Relaxed);
    dp.processor_beat(true);
    dp.enqueued.store(42, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(40));
    dp.reader_beat(); // the reader still polls; the processor does not
    let app = router(w);
    let (st, _, body) = get(app.clone(), "/healthz").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("processor stalled: last heartbeat") && body.contains("42 events queued"),
        "{body}"
    );
    let (_, h) = get_json(app, "/api/v1/health").await;
    assert_eq!(h["ready"], false);
    assert!(h["reasons"][0].as_str().unwrap().starts_with("processor stalled"), "{h}");
}

#[tokio::test]
async fn containers_and_their_trees() {
    let (w, _, _) = web();
    let app = router(w);
    let (st, v) = get_json(app.clone(), "/api/v1/containers").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["containers"].as_array().unwrap().len(), 2);
    assert_eq!(v["containers"][0]["id"], A);
    assert_eq!(v["containers"][0]["name"], "web\u{1b}[31m", "intact in JSON");
    let (st, v) = get_json(app.clone(), &format!("/api/v1/containers/{A}/tree")).await;
    assert_eq!(st, StatusCode::OK);
    let procs: Vec<(u64, &str, Value)> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pid"].as_u64().unwrap(), p["comm"].as_str().unwrap(), p["parent_pid"].clone()))
        .collect();
    assert_eq!(
        procs,
        [
            (1, "init", Value::Null),
            (800, "containerd-shim", 1.into()),
            (900, "sh", 800.into()),
            (901, "sleep", 900.into())
        ],
        "lineage up to the shim"
    );
    assert_eq!(v["processes"][1]["container_id"], Value::Null, "host process");
    let (st, v) = get_json(app.clone(), "/api/v1/containers/4be7496d/tree").await;
    assert_eq!((st, &v["container"]["id"]), (StatusCode::OK, &Value::from(A)), "unique prefix");
    let (st, v) = get_json(app.clone(), &format!("/api/v1/containers/{B}/tree")).await;
    assert_eq!((st, v["processes"].as_array().unwrap().len()), (StatusCode::OK, 0), "no live processes");
    for (uri, want, msg) in [
        ("/api/v1/containers/4be7/tree", StatusCode::BAD_REQUEST, "ambiguous"),
        ("/api/v1/containers/ffff/tree", StatusCode::NOT_FOUND, "no container whose id starts with"),
        ("/api/v1/containers/a%2F..%2Fb/tree", StatusCode::BAD_REQUEST, "expected an id"),
        ("/api/v1/containers/%FF%FE/tree", StatusCode::BAD_REQUEST, "container id:"),
        ("/api/v1/containers/%1B%5B31m/tree", StatusCode::BAD_REQUEST, "expected an id"),
    ] {
        let (st, v) = get_json(app.clone(), uri).await;
        assert_eq!(st, want, "{uri}: {v}");
        assert!(v["error"].as_str().unwrap().contains(msg), "{uri}: {v}");
        assert_eq!(v["status"], want.as_u16());
    }
}

/// Trees are built only while asked for: a request flags the interest and waits (2 s at most)
/// for a fresh build; the answer says how old the trees are.
#[tokio::test]
async fn tree_requests_ask_the_processor_for_trees() {
    let (w, _, _) = web();
    let cell = Arc::clone(&w.snapshots);
    let mut stale = snapshot();
    stale.trees_taken_unix_ns = now_unix_ns() - 60_000_000_000;
    cell.publish(stale);
    assert!(!cell.trees_wanted_within(Duration::from_secs(60)));
    let app = router(w);
    // The "processor": publishes fresh trees once asked.
    let publisher = {
        let cell = Arc::clone(&cell);
        tokio::spawn(async move {
            while !cell.trees_wanted_within(Duration::from_secs(60)) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            cell.publish(snapshot());
        })
    };
    let t0 = Instant::now();
    let (st, v) = get_json(app.clone(), &format!("/api/v1/containers/{A}/tree")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(t0.elapsed() >= Duration::from_millis(100), "answered before the fresh trees");
    assert!(v["trees_age_ms"].as_u64().unwrap() < 1000, "{v}");
    assert_eq!(v["processes"].as_array().unwrap().len(), 4);
    publisher.await.unwrap();
    // Nobody publishes: after 2 s the stale trees are served, with their age.
    let mut stale = snapshot();
    stale.trees_taken_unix_ns = now_unix_ns() - 60_000_000_000;
    cell.publish(stale);
    let t0 = Instant::now();
    let (st, v) = get_json(app, &format!("/api/v1/containers/{A}/tree")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(t0.elapsed() >= Duration::from_secs(2) && t0.elapsed() < Duration::from_secs(4));
    assert!(v["trees_age_ms"].as_u64().unwrap() >= 60_000, "{v}");
}

#[tokio::test]
async fn bad_alert_queries_are_400_with_a_reason() {
    let (w, _, _) = web();
    let app = router(w);
    for (q, msg) in [
        ("limit=0", "limit: expected a whole number from 1 to 10000"),
        ("limit=abc", "limit:"),
        ("since=yesterday", "since: expected a duration"),
        ("priority=loud", "priority: expected one of"),
        ("container=..%2Fx", "container: expected an id"),
        ("rule=a%0Ab", "rule: control characters"),
        ("bogus=1", "unknown field `bogus`"),
        ("limit=1&limit=2", "duplicate field `limit`"),
        ("since=%FF", "since: expected"),
    ] {
        let (st, v) = get_json(app.clone(), &format!("/api/v1/alerts?{q}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert!(v["error"].as_str().unwrap().contains(msg), "{q}: {v}");
    }
    let (st, v) = get_json(app, "/api/v1/alerts?limit=5").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"].as_str().unwrap().contains("--history"), "{v}");
}

#[tokio::test]
async fn unknown_routes_say_what_exists() {
    let (w, _, _) = web();
    let app = router(w);
    let (st, v) = get_json(app.clone(), "/api/v1/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("/api/v1/containers"), "{v}");
    let (st, _, body) = get(app, "/").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(body.contains("/metrics"), "{body}");
}

/// #14 item 9: the old endpoint served one connection at a time with a 2 s read timeout, so ten
/// idle clients delayed /healthz by 20 s. Every connection is now its own task.
#[test]
fn idle_connections_do_not_stall_healthz() {
    let (w, dp, _) = web();
    dp.reader_alive.store(true, Ordering::Relaxed);
    dp.reader_beat();
    dp.processor_beat(false);
    let listener = boxwatch_web::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = boxwatch_web::server::Server::spawn(listener, router(w)).unwrap();
    let addr = server.local_addr();
    let mut idle: Vec<std::net::TcpStream> =
        (0..10).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    // One of them sends half a request and stops.
    idle[0].write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(c, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let took = t0.elapsed();
    assert!(resp.starts_with("HTTP/1.1 200 OK") && resp.ends_with("\r\n\r\nok\n"), "{resp}");
    assert!(took < Duration::from_millis(500), "/healthz took {took:?} with 10 idle connections open");
    let t0 = Instant::now();
    server.stop();
    assert!(t0.elapsed() < Duration::from_secs(2), "idle connections held up shutdown");
    drop(idle);
}
