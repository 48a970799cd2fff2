//! Container identity from real containerd containers: the cgroup naming
//! styles of docker and of Kubernetes (systemd and cgroupfs drivers) give
//! every event the full id, the runtime and the pod uid, from the very first
//! exec; host processes never get a container.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::lineage::{assert_host_tail, field, lineage, wait_alert};
use crate::probe::{T, brief, wait_exited};
use crate::support::*;

/// The `container` object every line about a container must carry.
pub fn expected(id: &str, runtime: &str, pod_uid: Option<&str>, cgroup: &str) -> Value {
    json!({
        "id": id,
        "runtime": runtime,
        "pod_uid": pod_uid,
        "namespace": null,
        "nested": false,
        "cgroup_root": cgroup,
    })
}

/// Docker, kubepods (systemd driver) and kubepods (cgroupfs driver) cgroups:
/// every event of each container carries exactly its identity, the first
/// exec of the payload included, and its alerts name the container, the
/// runtime, the pod and the lineage down to containerd-shim.
#[test]
fn docker_and_kubepods_containers_are_identified_from_the_first_exec() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let pod = random_pod_uid();
    assert!(pod.len() == 36 && pod.matches('-').count() == 4, "{pod}");
    let styles =
        [("docker", None), ("cri-containerd", Some(pod.clone())), ("kubernetes", Some(random_pod_uid()))];
    for (runtime, pod) in &styles {
        let id = random_container_id();
        let cgroup = match (*runtime, pod) {
            ("docker", _) => docker_cgroup(&id),
            ("cri-containerd", Some(p)) => kubepods_systemd_cgroup(p, &id),
            (_, Some(p)) => kubepods_cgroupfs_cgroup(p, &id),
            _ => unreachable!(),
        };
        let marker = format!("bw-identity-{}", random_hex(4));
        // The shell itself writes below /etc (its redirection), so the init has an alert of its
        // own: a scripted `sh -c` no longer raises the interactive-shell Notice.
        let script = format!(": > /etc/bw-identity; cat /etc/shadow >/dev/null; echo {marker}; exit 0");
        let out = ctrd.run(&id, &cgroup, &["sh", "-c", &script], T);
        out.assert_success();
        assert_eq!(out.stdout.trim(), marker);
        let exited = wait_exited(&d, &id);
        let want = expected(&id, runtime, pod.as_deref(), &cgroup);
        assert_eq!(exited["container"], want, "exited line of the {runtime} container");

        let all = d.lines();
        let started = all
            .iter()
            .position(|v| v["type"] == "container" && v["action"] == "started" && v["container"]["id"] == id)
            .unwrap_or_else(|| panic!("no started line for the {runtime} container {cgroup}"));
        assert_eq!(all[started]["container"], want, "started line");
        // The payload's exec: the first exec in the cgroup that is not runc's own.
        let init = all
            .iter()
            .find(|v| v["type"] == "event" && v["kind"] == "exec" && v["argv"] == json!(["sh", "-c", script]))
            .unwrap_or_else(|| panic!("no exec of the {runtime} container's payload"));
        let cgid = init["cgroup_id"].as_u64().unwrap();
        assert_eq!(init["process"]["vpid"], 1, "{}", brief(init));
        let in_cgroup: Vec<&Value> =
            all.iter().filter(|v| v["type"] == "event" && v["cgroup_id"] == cgid).collect();
        let first_exec = in_cgroup
            .iter()
            .filter(|v| v["kind"] == "exec" && v["argv"][0] != "runc")
            .min_by_key(|v| v["ktime_ns"].as_u64().unwrap())
            .unwrap();
        assert_eq!(first_exec["argv"], init["argv"], "first exec in {cgroup}: {}", brief(first_exec));
        // Every event from the cgroup carries the container, and the
        // container is on no event from elsewhere.
        for v in &in_cgroup {
            assert_eq!(v["container"], want, "{runtime}: {}", brief(v));
        }
        let claimed = all.iter().filter(|v| v["type"] == "event" && v["container"]["id"] == id);
        for v in claimed {
            assert_eq!(v["cgroup_id"], cgid, "event from another cgroup attributed to {id}: {}", brief(v));
        }
        let first_event = all.iter().position(|v| v["type"] == "event" && v["cgroup_id"] == cgid).unwrap();
        assert!(started < first_event, "started line {started} after the first event {first_event}");
        let cat = in_cgroup.iter().find(|v| v["kind"] == "open" && v["path"] == "/etc/shadow");
        assert!(cat.is_some_and(|v| v["process"]["comm"] == "cat"), "no open of /etc/shadow in {cgroup}");

        // Alerts: the init shell (entry container_init, parent the shim) and its cat.
        let shim = init["process"]["ppid"].as_u64().unwrap() as u32;
        let pid = &init["process"]["pid"];
        let sh = wait_alert(&d, &id, "Write below /etc in a container", "the init", |v| {
            field(v, "proc.pid") == pid
        });
        let cat = wait_alert(&d, &id, "Sensitive file read in a container", "the cat", |v| {
            field(v, "proc.ppid") == pid
        });
        for a in [&sh, &cat] {
            assert_eq!(field(a, "container.id"), &id[..12]);
            assert_eq!(field(a, "container.runtime"), *runtime);
            assert_eq!(field(a, "k8s.pod.uid"), &json!(pod), "{a}");
            assert_eq!(field(a, "boxwatch.cgroup_id"), cgid);
        }
        assert_eq!(field(&sh, "boxwatch.proc.entry"), "container_init", "{sh}");
        assert_eq!(field(&sh, "proc.pname"), "containerd-shim");
        assert_eq!(field(&sh, "boxwatch.proc.exec_id"), &init["exec_id"]);
        assert_eq!(field(&sh, "boxwatch.proc.parent_exec_id"), &init["parent_exec_id"]);
        assert_host_tail(&sh, 0, shim);
        assert_eq!(field(&cat, "boxwatch.proc.entry"), &Value::Null);
        assert_eq!(lineage(&cat)[0], format!("{pid}:sh"));
        assert_host_tail(&cat, 1, shim);
    }
    let stats = d.stop();
    assert!(stats.contains(" decode_errors=0 "), "{stats}");
}

/// Processes that must stay on the host whatever they do.
const HOST_COMMS: [&str; 3] = ["ctr", "containerd-shim", "containerd"];

/// Waits up to `timeout` for a line matching `pred`; `None` if none came.
fn poll_for(d: &Daemon, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = d.lines().into_iter().find(|v| pred(v)) {
            return Some(v);
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host shell that execs and opens (even /etc/shadow) while a container
/// runs and is exec'd into: none of its events has a container, none
/// raises an alert; nor do the runtime's host processes (ctr, containerd,
/// containerd-shim), and the container's own events keep their identity.
#[test]
fn host_processes_are_never_attributed() {
    let _no_flood = quiet();
    let ctrd = Containerd::start();
    // Host exec and open are printed (unattributed) with --host-events: so is
    // every host open on the machine, and a burst from another test may fill
    // the ring buffer. The host workload is repeated until one run of it was
    // seen whole (its last open printed, its cat execs and /etc/shadow open).
    let d = Daemon::start(&["--host-events", "exec,open", "--no-event-log"]);
    let id = random_container_id();
    let c = ctrd.run_detached(
        &id,
        &docker_cgroup(&id),
        &["sh", "-c", "while :; do cat /etc/hostname >/dev/null; sleep 0.05; done"],
    );
    let mut shells: Vec<u64> = Vec::new();
    for attempt in 0.. {
        assert!(attempt < 10, "no run of the host workload was printed whole: {shells:?}");
        let done = format!("/tmp/bw-host-done-{}", random_hex(6));
        let script = format!(
            "for i in 1 2 3 4 5; do cat /etc/shadow /etc/hostname >/dev/null; ls /etc >/dev/null; sleep 0.05; \
             done; cat {done} 2>/dev/null; exit 0"
        );
        let mut host =
            Command::new("/bin/sh").args(["-c", &script]).spawn().expect("spawn the host workload");
        if attempt == 0 {
            // Exec into the container meanwhile: ctr, containerd, the shim and runc work on the host.
            c.exec("bw-host-probe", &["cat", "/etc/hostname"], T).assert_success();
        }
        assert!(host.wait().unwrap().success());
        let sh = host.id() as u64;
        shells.push(sh);
        let last = poll_for(&d, Duration::from_secs(5), |v| {
            v["kind"] == "open" && v["path"] == done.as_str() && v["process"]["ppid"] == sh
        });
        let lines = d.lines();
        let of_sh = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
            lines.iter().filter(|v| v["kind"] == kind && v["process"]["ppid"] == sh && pred(v)).count()
        };
        let whole = last.is_some()
            && of_sh("exec", &|v| v["argv"][0] == "cat") == 6
            && of_sh("exec", &|v| v["argv"][0] == "ls") == 5
            && of_sh("open", &|v| v["path"] == "/etc/shadow") == 5;
        if whole {
            break;
        }
    }
    eprintln!("[identity] host workload runs: {}", shells.len());

    let all = d.lines();
    let is_host_workload =
        |v: &Value| shells.iter().any(|sh| v["process"]["pid"] == *sh || v["process"]["ppid"] == *sh);
    let host_events: Vec<&Value> =
        all.iter().filter(|v| v["type"] == "event" && is_host_workload(v)).collect();
    for v in &host_events {
        assert!(v["container"].is_null(), "host workload event attributed to a container: {}", brief(v));
        let pid = v["process"]["pid"].as_u64().unwrap();
        let exec_id = v["exec_id"].as_str().unwrap_or_else(|| panic!("no exec_id on {}", brief(v)));
        assert!(exec_id.starts_with(&format!("{pid}:")), "{exec_id}: {}", brief(v));
    }
    let is_shell = |v: &Value| shells.iter().any(|sh| v == sh);
    let alerts: Vec<&Value> = all
        .iter()
        .filter(|v| {
            v.get("rule").is_some() && (is_shell(field(v, "proc.pid")) || is_shell(field(v, "proc.ppid")))
        })
        .collect();
    assert!(alerts.is_empty(), "alerts for host processes: {alerts:?}");

    let runtime_events: Vec<&Value> = all
        .iter()
        .filter(|v| v["type"] == "event" && HOST_COMMS.iter().any(|c| v["process"]["comm"] == *c))
        .collect();
    assert!(runtime_events.iter().any(|v| v["process"]["comm"] == "ctr"), "no event of ctr seen");
    eprintln!(
        "[identity] host workload events {}, runtime events {}, all {}",
        host_events.len(),
        runtime_events.len(),
        all.len()
    );
    for v in &runtime_events {
        assert!(v["container"].is_null(), "runtime host process attributed to a container: {}", brief(v));
    }
    // The container's events meanwhile: all from its own cgroup.
    let cgid = c.cgroup_id();
    let mine = d.container_events(&id);
    assert!(mine.iter().any(|v| v["kind"] == "open" && v["path"] == "/etc/hostname"), "container's opens");
    for v in &mine {
        assert_eq!(v["cgroup_id"], cgid, "{}", brief(v));
    }
    drop(c);
    wait_exited(&d, &id);
}
