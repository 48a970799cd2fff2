//! Enricher behaviour without a real runtime: the Docker client against a tiny HTTP server on a
//! unix socket, error paths (missing sockets, silent or garbage-speaking sockets, timeouts),
//! and the non-blocking queue. The containerd client is tested against a real containerd in
//! `crates/boxwatch/tests/privileged/enrichment.rs`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::meta::tests::DOCKER_INSPECT_K8S;

const ID: &str = "6b1e3a1b4d4c2f0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f";

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "bw-runtime-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in for dockerd: no Docker daemon can run on the test machines, so the Docker
/// client is exercised against this minimal HTTP/1.1 server on a unix socket, which answers
/// each connection with `answer(request_head)` (raw bytes, a recorded Engine API response) and
/// records the request heads. It serves `max` connections, then exits.
fn http_server(
    socket: &Path,
    max: usize,
    answer: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let listener = UnixListener::bind(socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming().take(max) {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let out = answer(&head);
            seen2.lock().unwrap().push(head);
            let _ = conn.write_all(&out);
        }
    });
    seen
}

fn json_answer(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nApi-Version: 1.43\r\nContent-Type: application/json\r\n\
         Docker-Experimental: false\r\nServer: Docker/24.0.7 (linux)\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A socket that accepts connections and never says anything.
fn silent_server(socket: &Path) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        // Accepted connections are kept open (in the Vec being collected), never answered.
        let held: Vec<UnixStream> = listener.incoming().take(64).flatten().collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
}

fn docker_only(socket: PathBuf) -> EnricherConfig {
    EnricherConfig {
        containerd_sockets: vec![],
        docker_socket: Some(socket),
        timeout: Duration::from_secs(5),
        retries: 0,
        queue: 16,
    }
}

fn one_result(e: &Enricher) -> (String, Result<Metadata, LookupError>) {
    let mut r = e.wait_results(Duration::from_secs(20));
    assert_eq!(r.len(), 1, "{r:?}");
    r.pop().unwrap()
}

#[test]
fn docker_lookup_through_enricher() {
    let dir = TempDir::new();
    let sock = dir.path("docker.sock");
    let seen = http_server(&sock, 1, |_| json_answer("200 OK", DOCKER_INSPECT_K8S));
    let e = Enricher::start(docker_only(sock));
    assert!(e.request(ID, None));
    let (id, r) = one_result(&e);
    assert_eq!(id, ID);
    let m = r.unwrap();
    assert_eq!(m.source, "docker");
    assert_eq!(m.name.as_deref(), Some("web"));
    assert_eq!(m.pod_name.as_deref(), Some("web-7d9f-abcde"));
    assert_eq!(m.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(m.labels.get("io.kubernetes.docker.type").map(String::as_str), Some("container"));
    let head = seen.lock().unwrap()[0].clone();
    assert!(head.starts_with(&format!("GET /containers/{ID}/json HTTP/1.1\r\n")), "{head}");
    assert!(head.contains("\r\nHost: docker\r\n") && head.contains("\r\nConnection: close\r\n"), "{head}");
    let s = e.stats();
    assert_eq!((s.requested, s.succeeded, s.failed, s.dropped_queue_full), (1, 1, 0, 0));
    assert!(e.try_results().is_empty());
}

#[test]
fn docker_chunked_answer() {
    let dir = TempDir::new();
    let sock = dir.path("docker.sock");
    http_server(&sock, 1, |_| {
        let body = DOCKER_INSPECT_K8S.as_bytes();
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for piece in body.chunks(100) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    });
    let m = lookup_blocking(&docker_only(sock), ID, None).unwrap();
    assert_eq!(m.pod_uid.as_deref(), Some("0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
}

#[test]
fn docker_not_found_is_retried_then_reported() {
    let dir = TempDir::new();
    let sock = dir.path("docker.sock");
    let seen =
        http_server(&sock, 3, |_| json_answer("404 Not Found", r#"{"message":"No such container: x"}"#));
    let cfg = EnricherConfig { retries: 2, ..docker_only(sock.clone()) };
    let err = lookup_blocking(&cfg, ID, None).unwrap_err();
    assert_eq!(err, LookupError::NotFound { id: ID.into(), searched: format!("docker {}", sock.display()) });
    assert_eq!(seen.lock().unwrap().len(), 3, "1 attempt + 2 retries");
}

#[test]
fn docker_found_on_a_later_attempt() {
    // The container registers with the runtime after the first lookup (the cgroup-creation race).
    let dir = TempDir::new();
    let sock = dir.path("docker.sock");
    let n = AtomicU32::new(0);
    http_server(&sock, 3, move |_| {
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            json_answer("404 Not Found", r#"{"message":"No such container"}"#)
        } else {
            json_answer("200 OK", DOCKER_INSPECT_K8S)
        }
    });
    let cfg = EnricherConfig { retries: 3, ..docker_only(sock) };
    let e = Enricher::start(cfg);
    e.request(ID, None);
    let (_, r) = one_result(&e);
    assert_eq!(r.unwrap().name.as_deref(), Some("web"));
    assert_eq!(e.stats().retries, 2);
}

#[test]
fn docker_server_error() {
    let dir = TempDir::new();
    let sock = dir.path("docker.sock");
    http_server(&sock, 1, |_| json_answer("500 Internal Server Error", r#"{"message":"boom"}"#));
    let err = lookup_blocking(&docker_only(sock.clone()), ID, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("docker at {}: GET /containers/{ID}/json returned HTTP 500: boom", sock.display())
    );
    assert!(err.is_retryable());
}

#[test]
fn docker_garbage_and_short_answers() {
    let dir = TempDir::new();
    for (i, answer) in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{not json"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}",
        b"garbage without header end",
        b"",
    ]
    .into_iter()
    .enumerate()
    {
        let sock = dir.path(&format!("d{i}.sock"));
        http_server(&sock, 1, move |_| answer.to_vec());
        let err = lookup_blocking(&docker_only(sock.clone()), ID, None).unwrap_err();
        assert!(matches!(err, LookupError::Protocol { .. }), "{i}: {err}");
        assert!(err.to_string().contains(&sock.display().to_string()), "{err}");
    }
}

#[test]
fn missing_sockets_fail_fast_naming_them() {
    let cfg = EnricherConfig {
        containerd_sockets: vec!["/nonexistent/boxwatch/containerd.sock".into()],
        docker_socket: Some("/nonexistent/boxwatch/docker.sock".into()),
        timeout: Duration::from_secs(5),
        retries: 10,
        queue: 4,
    };
    let t0 = Instant::now();
    let err = lookup_blocking(&cfg, ID, None).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "not retried: {:?}", t0.elapsed());
    assert_eq!(
        err.to_string(),
        "no container runtime socket found: none of /nonexistent/boxwatch/docker.sock, \
         /nonexistent/boxwatch/containerd.sock exists"
    );
    // With a namespace hint other than moby, Docker is not asked.
    let err = lookup_blocking(&cfg, ID, Some("k8s.io")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no container runtime socket found: /nonexistent/boxwatch/containerd.sock does not exist"
    );
    let err =
        lookup_blocking(&EnricherConfig { docker_socket: None, containerd_sockets: vec![], ..cfg }, ID, None)
            .unwrap_err();
    assert_eq!(err, LookupError::NoSocket { sockets: vec![] });
}

#[test]
fn silent_sockets_time_out() {
    let dir = TempDir::new();
    let (c, d) = (dir.path("containerd.sock"), dir.path("docker.sock"));
    silent_server(&c);
    silent_server(&d);
    let timeout = Duration::from_millis(300);
    let cfg = EnricherConfig {
        containerd_sockets: vec![c.clone()],
        docker_socket: Some(d.clone()),
        timeout,
        retries: 0,
        queue: 4,
    };
    let t0 = Instant::now();
    let err = lookup_blocking(&cfg, ID, Some("k8s.io")).unwrap_err();
    assert_eq!(err, LookupError::Timeout { socket: c.clone(), after: timeout });
    assert!(err.to_string().contains(&c.display().to_string()));
    let err = lookup_blocking(&cfg, ID, None).unwrap_err();
    assert_eq!(err, LookupError::Timeout { socket: d, after: timeout }, "first error is reported");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn garbage_speaking_containerd_socket() {
    let dir = TempDir::new();
    let sock = dir.path("containerd.sock");
    http_server(&sock, 4, |_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
    let cfg = EnricherConfig {
        containerd_sockets: vec![sock.clone()],
        docker_socket: None,
        timeout: Duration::from_secs(5),
        retries: 0,
        queue: 4,
    };
    let err = lookup_blocking(&cfg, ID, None).unwrap_err();
    assert!(matches!(err, LookupError::Connect { .. } | LookupError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains(&sock.display().to_string()), "{err}");
}

#[test]
fn socket_path_that_is_not_a_socket() {
    let dir = TempDir::new();
    let file = dir.path("containerd.sock");
    std::fs::write(&file, b"").unwrap();
    let cfg = EnricherConfig {
        containerd_sockets: vec![file.clone()],
        docker_socket: None,
        timeout: Duration::from_secs(5),
        retries: 0,
        queue: 4,
    };
    let err = lookup_blocking(&cfg, ID, None).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("cannot connect to runtime socket {}: ", file.display())),
        "{err}"
    );
}

#[test]
fn request_never_blocks_and_counts_drops() {
    let dir = TempDir::new();
    let sock = dir.path("containerd.sock");
    silent_server(&sock);
    let cfg = EnricherConfig {
        containerd_sockets: vec![sock],
        docker_socket: None,
        timeout: Duration::from_secs(60),
        retries: 0,
        queue: 2,
    };
    let e = Enricher::start(cfg);
    let t0 = Instant::now();
    let mut accepted = 0u64;
    for i in 0..10_000u32 {
        if e.request(&format!("c{i}"), Some("default")) {
            accepted += 1;
        }
    }
    let spent = t0.elapsed();
    assert!(spent < Duration::from_secs(1), "10k requests took {spent:?}");
    let s = e.stats();
    assert_eq!(s.requested, accepted);
    assert_eq!(s.requested + s.dropped_queue_full, 10_000);
    assert!(s.dropped_queue_full > 9_000, "{s:?}");
    assert!(e.try_results().is_empty());
    // Dropping it abandons the hanging lookups at once.
    let t0 = Instant::now();
    drop(e);
    assert!(t0.elapsed() < Duration::from_secs(2), "drop took {:?}", t0.elapsed());
}

#[test]
fn concurrent_requests_for_one_id_are_coalesced() {
    let dir = TempDir::new();
    let sock = dir.path("docker.sock");
    let seen = http_server(&sock, 2, |_| {
        std::thread::sleep(Duration::from_millis(300));
        json_answer("200 OK", DOCKER_INSPECT_K8S)
    });
    let e = Enricher::start(docker_only(sock));
    for _ in 0..5 {
        assert!(e.request(ID, None));
    }
    let (_, r) = one_result(&e);
    assert!(r.is_ok());
    std::thread::sleep(Duration::from_millis(100));
    assert!(e.try_results().is_empty());
    let s = e.stats();
    assert_eq!((s.requested, s.coalesced, s.succeeded), (5, 4, 1), "{s:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn invalid_ids_are_answered_at_once() {
    let e = Enricher::start(EnricherConfig {
        docker_socket: None,
        containerd_sockets: vec![],
        ..Default::default()
    });
    assert!(e.request("../../etc/passwd", None));
    assert!(e.request("ok", Some("bad ns")));
    let r = e.try_results();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].1, Err(LookupError::InvalidId("../../etc/passwd".into())));
    assert_eq!(r[1].1, Err(LookupError::InvalidNamespace("bad ns".into())));
    assert_eq!(e.stats().failed, 2);
    assert!(lookup_blocking(&EnricherConfig::default(), "a b", None).is_err());
}

#[test]
fn defaults() {
    let c = EnricherConfig::default();
    assert_eq!(c.containerd_sockets[0], PathBuf::from("/run/containerd/containerd.sock"));
    assert_eq!(c.docker_socket.as_deref(), Some(Path::new("/var/run/docker.sock")));
    assert!(c.queue >= 1 && c.retries >= 1);
    // A zero queue is clamped rather than panicking.
    let e =
        Enricher::start(EnricherConfig { queue: 0, containerd_sockets: vec![], docker_socket: None, ..c });
    assert!(e.request("x", None));
    let (_, r) = one_result(&e);
    assert_eq!(r, Err(LookupError::NoSocket { sockets: vec![] }));
}

#[test]
fn enricher_is_shareable_and_blocking_lookup_refuses_async_context() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Enricher>();
    assert_send_sync::<LookupError>();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let r = rt.block_on(async { lookup_blocking(&EnricherConfig::default(), "x", None) });
    assert!(matches!(r, Err(LookupError::Unavailable(_))), "{r:?}");
}

#[test]
fn try_results_does_not_wait_for_a_blocked_reader() {
    let e = Arc::new(Enricher::start(EnricherConfig {
        containerd_sockets: vec![],
        docker_socket: None,
        ..Default::default()
    }));
    let e2 = Arc::clone(&e);
    let waiter = std::thread::spawn(move || e2.wait_results(Duration::from_millis(500)));
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let _ = e.try_results();
    assert!(t0.elapsed() < Duration::from_millis(100), "{:?}", t0.elapsed());
    assert!(waiter.join().unwrap().is_empty());
}
