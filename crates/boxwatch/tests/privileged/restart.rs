//! A daemon started after the containers: it reports them as "first_seen",
//! and the processes that were already running (seeded from /proc) and
//! their new children get the container and a lineage down to
//! containerd-shim on the host.

use serde_json::Value;

use crate::identity::expected;
use crate::lineage::{assert_host_tail, children, field, lineage, shim_of, wait_alert};
use crate::probe::{T, brief, wait_exited};
use crate::support::*;

/// Waits for /tmp/bw-go (created by the test once the daemon runs), then
/// reads /etc/shadow itself (a redirection of the `:` builtin) and through
/// a child `cat`, and sleeps.
const SCRIPT: &str = "while [ ! -e /tmp/bw-go ]; do sleep 0.05; done; : </etc/shadow; \
                      cat /etc/shadow /etc/hostname >/dev/null; sleep 300; exit 0";

/// Exec'd into the running containers before the daemon starts.
const EXEC_SCRIPT: &str = "while [ ! -e /tmp/bw-go ]; do sleep 0.05; done; : </etc/shadow; sleep 300; exit 0";

fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap().to_string_lossy().into_owned()
}

#[test]
fn containers_running_before_the_daemon_are_first_seen_with_lineage() {
    let ctrd = Containerd::start();
    let pod = random_pod_uid();
    let (id_d, id_k) = (random_container_id(), random_container_id());
    let containers = [
        (ctrd.run_detached(&id_d, &docker_cgroup(&id_d), &["sh", "-c", SCRIPT]), "docker", None),
        (
            ctrd.run_detached(&id_k, &kubepods_systemd_cgroup(&pod, &id_k), &["sh", "-c", SCRIPT]),
            "cri-containerd",
            Some(pod.as_str()),
        ),
    ];
    // A process exec'd into each (`ctr task exec --detach`) that waits too,
    // then reads /etc/shadow itself.
    for (c, _, _) in &containers {
        c.exec_with("bw-pre-exec", &["--detach"], &["sh", "-c", EXEC_SCRIPT], T).assert_success();
        children(shim_of(c.pid()), "sh", 2); // the init and, `runc exec` gone, the exec'd shell
    }
    let d = Daemon::start(&[]);
    for (c, runtime, pod) in &containers {
        let (id, init) = (c.id.as_str(), c.pid());
        let want = expected(id, runtime, *pod, &c.cgroup_path);
        let seen = d.wait_for(&format!("first_seen of {id}"), T, |v| {
            v["type"] == "container" && v["container"]["id"] == id
        });
        assert_eq!(seen["action"], "first_seen", "{seen}");
        assert_eq!(seen["container"], want);

        let shim = shim_of(init);
        let go = format!("/proc/{init}/root/tmp/bw-go");
        std::fs::write(&go, b"").unwrap_or_else(|e| panic!("create {go}: {e}"));

        // The pre-existing init shell's own read.
        let own = wait_alert(&d, id, "Sensitive file read in a container", "the init shell", |v| {
            field(v, "proc.pid") == init
        });
        assert_eq!(field(&own, "proc.name"), "sh", "{own}");
        // Command line and executable come from /proc: the daemon never saw the exec.
        assert_eq!(field(&own, "proc.cmdline"), format!("sh -c {SCRIPT}").as_str());
        assert_eq!(field(&own, "proc.exepath"), exe(init).as_str());
        assert_eq!(field(&own, "proc.vpid"), 1);
        assert_eq!(field(&own, "container.runtime"), *runtime);
        assert_eq!(field(&own, "k8s.pod.uid"), &serde_json::json!(pod));
        assert_eq!(field(&own, "boxwatch.proc.entry"), "container_init", "{own}");
        assert_eq!(field(&own, "proc.pname"), "containerd-shim");
        assert_host_tail(&own, 0, shim);
        // Seeded from /proc, never seen exec: generation 0.
        let own_exec_id = field(&own, "boxwatch.proc.exec_id").as_str().unwrap().to_string();
        assert!(own_exec_id.starts_with(&format!("{init}:")) && own_exec_id.ends_with(":0"), "{own_exec_id}");

        // The pre-existing exec'd shell: adopted by the shim when `runc exec` exited.
        let exec = wait_alert(&d, id, "Sensitive file read in a container", "the exec'd shell", |v| {
            field(v, "proc.name") == "sh" && field(v, "proc.pid") != init
        });
        assert_eq!(field(&exec, "boxwatch.proc.entry"), "exec_into:ctr task exec", "{exec}");
        assert_eq!(field(&exec, "proc.cmdline"), format!("sh -c {EXEC_SCRIPT}").as_str());
        assert!(field(&exec, "proc.vpid").as_u64() > Some(1), "{exec}");
        assert_eq!(field(&exec, "proc.pname"), "containerd-shim");
        assert_host_tail(&exec, 0, shim);

        // The init's new child.
        let cat = wait_alert(&d, id, "Sensitive file read in a container", "the init's cat", |v| {
            field(v, "proc.cmdline") == "cat /etc/shadow /etc/hostname"
        });
        assert_eq!(field(&cat, "container.id"), &id[..12]);
        assert_eq!(field(&cat, "k8s.pod.uid"), &serde_json::json!(pod));
        assert_eq!(field(&cat, "proc.pname"), "sh", "{cat}");
        assert_eq!(field(&cat, "proc.ppid"), init);
        assert_eq!(field(&cat, "boxwatch.proc.entry"), &Value::Null);
        assert_eq!(field(&cat, "boxwatch.proc.parent_exec_id"), own_exec_id.as_str());
        assert_eq!(lineage(&cat)[0], format!("{init}:sh"));
        assert_host_tail(&cat, 1, shim);
        // Every event of the container so far carries exactly its identity.
        let evs = d.container_events(id);
        assert!(evs.iter().any(|v| v["kind"] == "exec" && v["argv"][0] == "cat"), "no exec of cat");
        for v in &evs {
            assert_eq!(v["container"], want, "{}", brief(v));
        }
    }
    let lines = d.lines();
    let is_ours = |v: &Value| v["container"]["id"] == id_d || v["container"]["id"] == id_k;
    let started: Vec<&Value> =
        lines.iter().filter(|v| v["type"] == "container" && v["action"] == "started" && is_ours(v)).collect();
    assert!(started.is_empty(), "pre-existing containers reported as started: {started:?}");
    drop(containers);
    wait_exited(&d, &id_d);
    wait_exited(&d, &id_k);
}
