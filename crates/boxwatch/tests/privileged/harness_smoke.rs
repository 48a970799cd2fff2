//! Smoke test of the container test harness itself (`support`): private
//! containerd, docker-style cgroup, hostusr image with python3, detached
//! container pid/cgroup/cgroup id, exec. Included by `main.rs` as
//! `mod harness_smoke;`.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::support::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn harness_smoke() {
    let t0 = Instant::now();
    let cg2 = cgroup2_mount();
    let parents = ["system.slice", "kubepods.slice"];
    let parents_existed: Vec<bool> = parents.iter().map(|p| cg2.join(p).exists()).collect();
    let ctrd = Containerd::start();
    eprintln!("[smoke] Containerd::start: {:?}", ctrd.startup_time());
    assert_eq!(ctrd.image(), "docker.io/boxwatch/hostusr:test");

    // 1. run to completion, docker-style cgroup, python3 from the host's /usr.
    let id = random_container_id();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let cg = docker_cgroup(&id);
    assert_eq!(cg, format!("/system.slice/docker-{id}.scope"));
    let out = ctrd.run(&id, &cg, &["sh", "-c", "cat /proc/self/cgroup; python3 -c 'print(1)'"], T);
    eprintln!("[smoke] run: {:?}", out.elapsed);
    out.assert_success();
    assert!(out.stdout.contains(&format!("0::{cg}\n")), "cgroup2 line missing: {out}");
    assert!(out.stdout.lines().any(|l| l.ends_with(&format!(":memory:{cg}"))), "memory line missing: {out}");
    assert!(out.stdout.lines().any(|l| l == "1"), "python3 output missing: {out}");
    // run --rm left no container and no leaf cgroup behind
    let ls = ctrd.ctr().args(["containers", "list", "--quiet"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ls.stdout).contains(&id));
    for h in cgroup_hierarchies() {
        let leaf = h.join(cg.trim_start_matches('/'));
        assert!(!leaf.exists(), "{} left behind", leaf.display());
    }

    // non-zero exit status and stderr come through
    let id2 = random_container_id();
    let out = ctrd.run(&id2, &docker_cgroup(&id2), &["sh", "-c", "echo oops >&2; exit 3"], T);
    assert_eq!(out.status, 3, "{out}");
    assert_eq!(out.stderr.trim(), "oops", "{out}");

    // timeout: SIGKILL semantics, container removed afterwards
    let id3 = random_container_id();
    let out = ctrd.run(&id3, &docker_cgroup(&id3), &["sleep", "100"], Duration::from_millis(800));
    assert!(out.timed_out && out.status == -1, "{out}");
    assert!(out.elapsed < Duration::from_secs(5), "{out}");
    let ls = ctrd.ctr().args(["containers", "list", "--quiet"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ls.stdout).contains(&id3));

    // 2. detached container
    let pod = random_pod_uid();
    let kid = random_container_id();
    let kcg = kubepods_systemd_cgroup(&pod, &kid);
    assert!(kcg.contains(&format!("kubepods-besteffort-pod{}.slice", pod.replace('-', "_"))));
    let did = random_container_id();
    let dcg = docker_cgroup(&did);
    let c = ctrd.run_detached(&did, &dcg, &["sleep", "300"]);
    eprintln!("[smoke] run_detached: {:?}", c.start_time());
    let pid = c.pid();
    assert!(c.is_alive());
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let host_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(host_cg.contains(&format!("0::{dcg}\n")), "{host_cg}");
    let ino = std::fs::metadata(cg2.join(dcg.trim_start_matches('/'))).unwrap().ino();
    assert_eq!(c.cgroup_id(), ino);
    assert!(ino > 1);

    let t_exec = Instant::now();
    let out = c.exec("e1", &["id", "-u"], T);
    eprintln!("[smoke] exec: {:?}", t_exec.elapsed());
    out.assert_success();
    assert_eq!(out.stdout.trim(), "0");
    let out = c.exec_with("e2", &["--user", "1000"], &["id", "-un"], T);
    out.assert_success();
    assert_eq!(out.stdout.trim(), "user");

    // a second, kubepods-style (systemd driver) container at the same time
    let k = ctrd.run_detached(
        &kid,
        &kcg,
        &["python3", "-c", "import time; print('hi', flush=True); time.sleep(300)"],
    );
    assert_ne!(k.cgroup_id(), c.cgroup_id());
    let kcg_host = std::fs::read_to_string(format!("/proc/{}/cgroup", k.pid())).unwrap();
    assert!(kcg_host.contains(&format!("0::{kcg}\n")), "{kcg_host}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !k.logs().contains("hi") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(k.logs().trim(), "hi");

    // dropping a Container kills it and removes its cgroup
    let kpid = k.pid();
    drop(k);
    assert!(
        !std::path::Path::new(&format!("/proc/{kpid}")).exists() || {
            // a zombie reparented to init may linger briefly
            std::fs::read_to_string(format!("/proc/{kpid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
        }
    );
    assert!(!cg2.join(kcg.trim_start_matches('/')).exists());

    // dropping the daemon kills the remaining container and its created parents
    let state = ctrd.state_dir().to_path_buf();
    drop(ctrd); // also kills `c` (still alive): Container outliving its daemon is allowed
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/comm")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim() != "sleep")
                .unwrap_or(true)
    );
    drop(c);
    assert!(!state.exists(), "state dir {} left behind", state.display());
    assert!(!cg2.join(dcg.trim_start_matches('/')).exists());
    // Parent slices the test made runc create are gone, unless another
    // harness instance (a parallel test or process) is still running: the
    // last one to stop removes them.
    let others_running =
        std::fs::read_dir(STATE_BASE).map(|rd| rd.flatten().any(|e| e.path().is_dir())).unwrap_or(false);
    for h in cgroup_hierarchies().into_iter().filter(|_| !others_running) {
        for (p, existed) in parents.iter().zip(&parents_existed) {
            if !existed {
                assert!(!h.join(p).exists(), "{} created by the test and left behind", h.join(p).display());
            }
        }
    }
    eprintln!("[smoke] total: {:?}", t0.elapsed());
}

#[test]
fn cgroup_path_helpers() {
    let id = "ab".repeat(32);
    assert_eq!(docker_cgroup(&id), format!("/system.slice/docker-{id}.scope"));
    assert_eq!(
        kubepods_systemd_cgroup("0f1e2d3c-aaaa-4bbb-8ccc-123456789abc", &id),
        format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_aaaa_4bbb_8ccc_123456789abc.slice/cri-containerd-{id}.scope"
        )
    );
    assert_eq!(
        kubepods_cgroupfs_cgroup("0f1e2d3c-aaaa-4bbb-8ccc-123456789abc", &id),
        format!("/kubepods/besteffort/pod0f1e2d3c-aaaa-4bbb-8ccc-123456789abc/{id}")
    );
    let uid = random_pod_uid();
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "4");
    assert_ne!(random_container_id(), random_container_id());
}
