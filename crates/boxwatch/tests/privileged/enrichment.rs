//! Container enrichment (`boxwatch-runtime`) against the real private containerd of the test
//! harness: name, image, namespace, labels and CRI pod fields through containerd's gRPC API,
//! with and without a namespace hint, the lookup that races container creation, and the error
//! paths (unknown id, wrong namespace, missing socket). Included by `main.rs` as
//! `mod enrichment;`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use boxwatch_model::container::{ContainerRef, Runtime, container_from_proc};
use boxwatch_runtime::{Enricher, EnricherConfig, LookupError, Metadata, lookup_blocking};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

fn config(ctrd: &Containerd, retries: u32) -> EnricherConfig {
    EnricherConfig {
        containerd_sockets: vec![ctrd.address().to_path_buf()],
        docker_socket: None,
        timeout: Duration::from_secs(5),
        retries,
        queue: 64,
    }
}

/// Requests `id` and waits for its result.
fn lookup(e: &Enricher, id: &str, hint: Option<&str>) -> Result<Metadata, LookupError> {
    assert!(e.request(id, hint), "request refused: {:?}", e.stats());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((got, result)) = e.wait_results(Duration::from_millis(200)).into_iter().next() {
            assert_eq!(got, id, "result for a container that was not asked about");
            return result;
        }
        assert!(Instant::now() < deadline, "no enrichment result for {id} within {WAIT:?}: {:?}", e.stats());
    }
}

/// The container as boxwatch identifies it: from its init's `/proc/<pid>/cgroup`.
fn identify(c: &Container) -> ContainerRef {
    let proc = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).expect("read /proc/<pid>/cgroup");
    container_from_proc(&proc).unwrap_or_else(|| panic!("not identified as a container: {proc}"))
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn assert_has_labels(m: &Metadata, want: &BTreeMap<String, String>) {
    for (k, v) in want {
        assert_eq!(m.labels.get(k), Some(v), "label {k} missing or different in {m:#?}");
    }
}

#[test]
fn enrichment_from_containerd_with_and_without_namespace_hint() {
    let ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    let e = Enricher::start(config(&ctrd, 2));

    // A plain `ctr` container in the `/<namespace>/<id>` cgroup layout, with labels.
    let id = random_container_id();
    let plain = ctrd.run_detached_with(
        &id,
        &format!("/{ns}/{id}"),
        &["--label", "app=web", "--label", "tier=frontend"],
        &["sleep", "300"],
    );
    let r = identify(&plain);
    assert_eq!(
        (r.runtime, r.id.as_str(), r.namespace.as_deref()),
        (Runtime::Containerd, id.as_str(), Some(&*ns))
    );

    let want_labels = labels(&[("app", "web"), ("tier", "frontend")]);
    let check_plain = |m: &Metadata| {
        assert_eq!(m.source, "containerd");
        assert_eq!(m.name.as_deref(), Some(id.as_str()), "a ctr container is named by its id");
        assert_eq!(m.image.as_deref(), Some(ctrd.image()));
        assert_eq!(m.image.as_deref(), Some("docker.io/boxwatch/hostusr:test"));
        assert_eq!(m.runtime_namespace.as_deref(), Some(ns.as_str()));
        assert_has_labels(m, &want_labels);
        assert_eq!((&m.pod_name, &m.pod_namespace, &m.pod_uid), (&None, &None, &None));
    };
    // With the namespace from the cgroup path as hint.
    let t0 = Instant::now();
    let m = lookup(&e, &r.id, r.namespace.as_deref()).unwrap_or_else(|err| panic!("lookup with hint: {err}"));
    eprintln!("[enrichment] hinted lookup {:?}: {m:?}", t0.elapsed());
    check_plain(&m);
    // Without: the namespace is discovered with Namespaces/List.
    let t0 = Instant::now();
    let m2 = lookup(&e, &id, None).unwrap_or_else(|err| panic!("lookup without hint: {err}"));
    eprintln!("[enrichment] discovering lookup {:?}", t0.elapsed());
    assert_eq!(m2, m);

    // A Kubernetes-style container: kubepods cgroup, and the OCI annotations that containerd's
    // CRI plugin puts into the spec (ctr --annotation). Only one of the CRI labels is set, so the
    // pod fields must come from the spec (a `google.protobuf.Any` holding JSON); the
    // `io.kubernetes.*` label path is covered by unit tests.
    let pod_uid = random_pod_uid();
    let kid = random_container_id();
    let sandbox_id = random_container_id();
    let cri_labels = labels(&[("io.cri-containerd.kind", "container"), ("team", "payments")]);
    let mut flags: Vec<String> = Vec::new();
    for (k, v) in &cri_labels {
        flags.extend(["--label".to_string(), format!("{k}={v}")]);
    }
    for (k, v) in [
        ("io.kubernetes.cri.container-type", "container"),
        ("io.kubernetes.cri.container-name", "nginx"),
        ("io.kubernetes.cri.sandbox-id", sandbox_id.as_str()),
        ("io.kubernetes.cri.sandbox-name", "web-0"),
        ("io.kubernetes.cri.sandbox-namespace", "shop"),
        ("io.kubernetes.cri.sandbox-uid", pod_uid.as_str()),
        ("io.kubernetes.cri.image-name", "docker.io/boxwatch/hostusr:test"),
    ] {
        flags.extend(["--annotation".to_string(), format!("{k}={v}")]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let kube =
        ctrd.run_detached_with(&kid, &kubepods_systemd_cgroup(&pod_uid, &kid), &flags, &["sleep", "300"]);
    let kr = identify(&kube);
    assert_eq!((kr.runtime, kr.id.as_str()), (Runtime::CriContainerd, kid.as_str()));
    assert_eq!(kr.pod_uid.as_deref(), Some(pod_uid.as_str()));
    // No namespace in this cgroup layout: discovery.
    let km = lookup(&e, &kr.id, kr.namespace.as_deref()).unwrap_or_else(|err| panic!("CRI lookup: {err}"));
    eprintln!("[enrichment] CRI-style: {km:?}");
    assert_eq!(km.name.as_deref(), Some("nginx"));
    assert_eq!(km.image.as_deref(), Some("docker.io/boxwatch/hostusr:test"));
    assert_eq!(km.runtime_namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(km.pod_name.as_deref(), Some("web-0"));
    assert_eq!(km.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(km.pod_uid, kr.pod_uid, "the runtime agrees with the cgroup path");
    assert_has_labels(&km, &cri_labels);

    let s = e.stats();
    assert_eq!((s.requested, s.succeeded, s.failed, s.dropped_queue_full), (3, 3, 0, 0), "{s:?}");
    drop(plain);
    drop(kube);
}

#[test]
fn enrichment_error_paths_against_containerd() {
    let ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    let id = random_container_id();
    let _c = ctrd.run_detached_with(&id, &docker_cgroup(&id), &["--label", "k=v"], &["sleep", "300"]);
    let cfg = config(&ctrd, 1);
    let sock = ctrd.address().display().to_string();

    // Unknown id, with and without hint: NOT_FOUND from containerd, after the one retry.
    let e = Enricher::start(cfg.clone());
    let unknown = random_container_id();
    let t0 = Instant::now();
    let err = lookup(&e, &unknown, Some(&ns)).expect_err("unknown id must not be found");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        err,
        LookupError::NotFound {
            id: unknown.clone(),
            searched: format!("containerd {sock} namespaces [{ns}]")
        }
    );
    let err = lookup(&e, &unknown, None).expect_err("unknown id must not be found");
    match &err {
        LookupError::NotFound { id, searched } => {
            assert_eq!(id, &unknown);
            assert!(searched.starts_with(&format!("containerd {sock} namespaces [")), "{err}");
            assert!(searched.contains(&ns), "all namespaces were searched: {err}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    eprintln!("[enrichment] unknown id: {err}");
    // The right id in the wrong namespace.
    let err = lookup(&e, &id, Some("default")).expect_err("wrong namespace");
    assert!(matches!(err, LookupError::NotFound { .. }), "{err}");
    // ... and the right one still works on the same (reused) connection.
    let m = lookup(&e, &id, Some(&ns)).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(m.labels.get("k").map(String::as_str), Some("v"));
    let s = e.stats();
    assert_eq!((s.succeeded, s.failed, s.retries), (1, 3, 3), "{s:?}");

    // A socket path that does not exist: a clear error naming it, at once (no retries).
    let missing: PathBuf = ctrd.state_dir().join("no-such-containerd.sock");
    let cfg_missing = EnricherConfig { containerd_sockets: vec![missing.clone()], retries: 5, ..cfg.clone() };
    let t0 = Instant::now();
    let err = lookup_blocking(&cfg_missing, &id, None).expect_err("missing socket");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(
        err.to_string(),
        format!("no container runtime socket found: {} does not exist", missing.display())
    );

    // A missing socket listed before the real one (e.g. k3s's path on a stock host) is skipped.
    let cfg_both = EnricherConfig { containerd_sockets: vec![missing, ctrd.address().to_path_buf()], ..cfg };
    let m = lookup_blocking(&cfg_both, &id, None).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(m.runtime_namespace.as_deref(), Some(ns.as_str()));
}

#[test]
fn enrichment_lookup_racing_container_creation() {
    // A lookup issued when the cgroup appears may reach containerd before the container is
    // registered; the enricher retries with backoff instead of giving up (`<NA>`).
    let ctrd = Containerd::start();
    let e = Enricher::start(config(&ctrd, 12));
    let id = random_container_id();
    assert!(e.request(&id, None));
    let deadline = Instant::now() + WAIT;
    while e.stats().retries == 0 {
        assert!(Instant::now() < deadline, "no retry happened: {:?}", e.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = ctrd.run_detached_with(&id, &docker_cgroup(&id), &["--label", "late=yes"], &["sleep", "300"]);
    let results = e.wait_results(WAIT);
    assert_eq!(results.len(), 1, "{results:?}");
    let (got, r) = &results[0];
    assert_eq!(got, &id);
    let m = r.as_ref().unwrap_or_else(|err| panic!("lookup racing creation failed: {err}"));
    assert_eq!(m.labels.get("late").map(String::as_str), Some("yes"));
    assert_eq!(m.image.as_deref(), Some(ctrd.image()));
    let s = e.stats();
    eprintln!("[enrichment] race: {s:?}");
    assert!(s.retries >= 1 && s.succeeded == 1, "{s:?}");
    drop(c);
}
