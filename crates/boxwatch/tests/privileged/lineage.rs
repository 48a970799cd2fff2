//! Process lineage on alerts: how a process came into its container
//! (`boxwatch.proc.entry`), its ancestors down to the host-side runtime
//! (`boxwatch.proc.lineage`, `proc.pname`, `proc.apid[N]`), exec ids, and
//! attribution of processes that were exec'd into a running container
//! (`ctr task exec`) or double-forked away from their parent.
//!
//! Also the helpers the other identity tests (`identity`, `restart`,
//! `ps_tree`) share.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::probe::{T, brief, wait_exited};
use crate::support::*;

/// One of the alert's `output_fields`.
pub fn field<'a>(alert: &'a Value, key: &str) -> &'a Value {
    &alert["output_fields"][key]
}

/// `boxwatch.proc.lineage` as strings (panics if it is not an array of strings).
#[track_caller]
pub fn lineage(alert: &Value) -> Vec<String> {
    let l = field(alert, "boxwatch.proc.lineage");
    l.as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<Vec<String>>>())
        .unwrap_or_else(|| panic!("no lineage array in {alert}"))
}

/// Wait for the alert `rule` of container `id` whose fields match `pred`.
#[track_caller]
pub fn wait_alert(d: &Daemon, id: &str, rule: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    d.wait_for(&format!("{rule:?} alert of {what}"), T, |v| {
        v["rule"] == rule && v["output_fields"]["boxwatch.container.full_id"] == id && pred(v)
    })
}

/// `(ppid, comm)` of a host process, from /proc; `None` if it is gone.
pub fn try_proc_parent(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
    let ppid = stat.get(stat.rfind(')')? + 2..)?.split(' ').nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// `(ppid, comm)` of a live host process, from /proc.
#[track_caller]
pub fn proc_parent(pid: u32) -> (u32, String) {
    try_proc_parent(pid).unwrap_or_else(|| panic!("no process {pid} in /proc"))
}

/// The `n` live children of `pid` named `comm`, waiting until there are
/// exactly `n` (e.g. until `runc exec` has exited and the shim adopted its process).
#[track_caller]
pub fn children(pid: u32, comm: &str, n: usize) -> Vec<u32> {
    let t0 = Instant::now();
    loop {
        let kids: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|k| try_proc_parent(*k).is_some_and(|(ppid, c)| ppid == pid && c == comm))
            .collect();
        if kids.len() == n {
            return kids;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{comm} children of {pid}: {kids:?}, want {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The single live child of `pid` named `comm` (waits until there is one).
#[track_caller]
pub fn child_of(pid: u32, comm: &str) -> u32 {
    children(pid, comm, 1)[0]
}

/// The containerd-shim that is the (current) parent of a container's init.
#[track_caller]
pub fn shim_of(init_pid: u32) -> u32 {
    let (shim, _) = proc_parent(init_pid);
    let comm = std::fs::read_to_string(format!("/proc/{shim}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "containerd-shim", "parent {shim} of container init {init_pid}");
    shim
}

/// The lineage from index `at` on is the host side: `<shim>:containerd-shim[host]`
/// first, then only `[host]` processes (the shim's own parents).
#[track_caller]
pub fn assert_host_tail(alert: &Value, at: usize, shim: u32) {
    let l = lineage(alert);
    assert_eq!(
        l.get(at).map(String::as_str),
        Some(format!("{shim}:containerd-shim[host]").as_str()),
        "lineage[{at}] of {}: {l:?}",
        field(alert, "proc.name")
    );
    for a in &l[at..] {
        assert!(a.ends_with("[host]"), "{a} above the shim is not marked [host]: {l:?}");
    }
    assert_eq!(field(alert, &format!("proc.aname[{}]", at + 1)), "containerd-shim", "{l:?}");
    assert_eq!(field(alert, &format!("proc.apid[{}]", at + 1)), shim, "{l:?}");
}

/// A process that came in through `ctr task exec`, or a child of one: from
/// index `at` on, its lineage is the host-side runtime. That is `runc` (the
/// `runc exec` that started the process) then the shim, or, once runc has
/// exited, the shim (the subreaper that adopted the process) directly.
#[track_caller]
pub fn assert_exec_runtime_tail(alert: &Value, at: usize, shim: u32) {
    let l = lineage(alert);
    let runc = l.get(at).is_some_and(|a| {
        a.split_once(':').is_some_and(|(pid, comm)| pid.parse::<u32>().is_ok() && comm == "runc[host]")
    });
    assert_host_tail(alert, at + usize::from(runc), shim);
}

/// Every event of process (pid, start_ns) carries container `id`; returns them.
#[track_caller]
pub fn events_of_process(d: &Daemon, pid: u64, start_ns: &Value, id: &str) -> Vec<Value> {
    let evs: Vec<Value> = d
        .lines()
        .into_iter()
        .filter(|v| {
            v["type"] == "event" && v["process"]["pid"] == pid && &v["process"]["start_ns"] == start_ns
        })
        .collect();
    for v in &evs {
        assert_eq!(v["container"]["id"], id, "event of process {pid} not attributed: {}", brief(v));
        let exec_id = v["exec_id"].as_str().unwrap_or_else(|| panic!("no exec_id: {}", brief(v)));
        assert!(exec_id.starts_with(&format!("{pid}:{start_ns}:")), "{exec_id} vs {}", brief(v));
    }
    evs
}

/// Wait for the exit event of a process of container `id` (then all its events are printed).
#[track_caller]
fn wait_process_exit(d: &Daemon, id: &str, pid: &Value) -> Value {
    d.wait_for(&format!("exit of process {pid}"), T, |v| {
        v["kind"] == "exit" && v["process"]["pid"] == *pid && v["container"]["id"] == id
    })
}

/// `ctr task exec` into a running container: the exec'd process and its
/// children are attributed, its alerts say `exec_into:runc exec` and their
/// lineage reaches runc / containerd-shim on the host; the container's init
/// says `container_init`, parent containerd-shim.
#[test]
fn exec_into_running_container_has_entry_and_host_lineage() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let id = random_container_id();
    let c = ctrd.run_detached(
        &id,
        &docker_cgroup(&id),
        &["sh", "-c", ": > /etc/bw-lineage-init; cat /etc/shadow >/dev/null; sleep 300; exit 0"],
    );
    let (init, shim) = (c.pid(), shim_of(c.pid()));

    // The init: a shell started by containerd-shim (through runc create); its own
    // redirection below /etc is its alert.
    let sh =
        wait_alert(&d, &id, "Write below /etc in a container", "the init", |v| field(v, "proc.pid") == init);
    assert_eq!(field(&sh, "boxwatch.proc.entry"), "container_init", "{sh}");
    assert_eq!(field(&sh, "proc.vpid"), 1);
    assert_eq!(field(&sh, "proc.pname"), "containerd-shim");
    assert_eq!(field(&sh, "proc.ppid"), shim);
    assert_host_tail(&sh, 0, shim);
    let init_exec_id = field(&sh, "boxwatch.proc.exec_id").as_str().unwrap().to_string();
    assert!(init_exec_id.starts_with(&format!("{init}:")) && init_exec_id.ends_with(":1"), "{init_exec_id}");
    // Its child: no entry (born inside), parent the init, then the host side.
    let cat = wait_alert(&d, &id, "Sensitive file read in a container", "the init's cat", |v| {
        field(v, "proc.ppid") == init
    });
    assert_eq!(field(&cat, "boxwatch.proc.entry"), &Value::Null, "{cat}");
    assert_eq!(field(&cat, "proc.pname"), "sh");
    assert_eq!(lineage(&cat)[0], format!("{init}:sh"));
    assert_eq!(field(&cat, "boxwatch.proc.parent_exec_id"), init_exec_id.as_str());
    assert_host_tail(&cat, 1, shim);

    // 1. `ctr task exec cat`: the exec'd process itself alerts.
    c.exec("bw-exec-cat", &["cat", "/etc/shadow", "/etc/passwd"], T).assert_success();
    let a = wait_alert(&d, &id, "Sensitive file read in a container", "the exec'd cat", |v| {
        field(v, "proc.cmdline") == "cat /etc/shadow /etc/passwd"
    });
    assert_eq!(field(&a, "boxwatch.proc.entry"), "exec_into:runc exec", "{a}");
    assert_eq!(field(&a, "container.id"), &id[..12]);
    assert!(field(&a, "proc.vpid").as_u64() > Some(1), "{a}");
    // Its parent is the `runc exec` that started it, or the shim: nothing in the container.
    let pname = field(&a, "proc.pname").as_str().unwrap();
    let ppid = field(&a, "proc.ppid").as_u64().unwrap();
    assert_eq!(lineage(&a)[0], format!("{ppid}:{pname}[host]"));
    assert!(pname == "runc" || pname == "containerd-shim", "parent {pname}: {:?}", lineage(&a));
    assert_exec_runtime_tail(&a, 0, shim);
    // Every event of the exec'd process (exec, opens, exit) is attributed.
    let pid = field(&a, "proc.pid").clone();
    let exit = wait_process_exit(&d, &id, &pid);
    assert_eq!(exit["code"], 0);
    let start = field(&a, "boxwatch.proc.start_ns").clone();
    let evs = events_of_process(&d, pid.as_u64().unwrap(), &start, &id);
    let exec = evs.iter().find(|v| v["kind"] == "exec").expect("exec event of the exec'd cat");
    assert_eq!(exec["argv"], serde_json::json!(["cat", "/etc/shadow", "/etc/passwd"]));
    assert_eq!(exec["exec_id"], *field(&a, "boxwatch.proc.exec_id"));
    // Before its exec it was `runc init` (generation 0), attributed too; the
    // cat image (generation 1) opens each file once.
    let cat_id = field(&a, "boxwatch.proc.exec_id");
    let opens: Vec<String> =
        evs.iter().filter(|v| v["kind"] == "open" && v["exec_id"] == *cat_id).map(brief).collect();
    for p in ["/etc/shadow", "/etc/passwd"] {
        let n = opens.iter().filter(|v| v.contains(&format!("\"path\":\"{p}\""))).count();
        assert_eq!(n, 1, "opens of {p} by the exec'd cat: {opens:#?}");
    }
    assert!(evs.iter().any(|v| v["process"]["comm"] == "runc:[2:INIT]"), "runc init stage not attributed");

    // 2. `ctr task exec sh -c`: the shell is the entry, its child inherits the chain.
    c.exec(
        "bw-exec-sh",
        &["sh", "-c", ": > /etc/bw-exec-sh; cat /etc/shadow /etc/group >/dev/null; exit 0"],
        T,
    )
    .assert_success();
    let sh2 = wait_alert(&d, &id, "Write below /etc in a container", "the exec'd shell", |v| {
        field(v, "proc.pid") != init
    });
    assert_eq!(field(&sh2, "boxwatch.proc.entry"), "exec_into:runc exec", "{sh2}");
    let sh2_pid = field(&sh2, "proc.pid").as_u64().unwrap();
    assert_exec_runtime_tail(&sh2, 0, shim);
    let cat2 = wait_alert(&d, &id, "Sensitive file read in a container", "the exec'd shell's cat", |v| {
        field(v, "proc.cmdline") == "cat /etc/shadow /etc/group"
    });
    assert_eq!(field(&cat2, "boxwatch.proc.entry"), &Value::Null, "{cat2}");
    assert_eq!(field(&cat2, "proc.ppid"), sh2_pid);
    assert_eq!(field(&cat2, "proc.pname"), "sh");
    assert_eq!(field(&cat2, "boxwatch.proc.parent_exec_id"), field(&sh2, "boxwatch.proc.exec_id"));
    let l2 = lineage(&cat2);
    assert_eq!(l2[0], format!("{sh2_pid}:sh"), "the exec'd shell is inside the container: {l2:?}");
    // Then the shell's parents now (runc may have exited since the shell's exec).
    assert_exec_runtime_tail(&cat2, 1, shim);
    drop(c);
    wait_exited(&d, &id);
}

/// A process that double-forks (its parent exits, it is adopted by the
/// container's init) stays attributed to its container, and its lineage
/// follows the adoption: orphan → init → containerd-shim.
#[test]
fn double_forked_process_stays_in_its_container() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let id = random_container_id();
    let c = ctrd.run_detached(&id, &docker_cgroup(&id), &["sh", "-c", "sleep 300; exit 0"]);
    let (init, shim) = (c.pid(), shim_of(c.pid()));

    // 1. Shell double fork from a `ctr task exec`: the subshell exits at once,
    //    the inner shell is adopted by the init and reads /etc/shadow later.
    let script = "(sh -c 'sleep 1; cat /etc/shadow /etc/hosts >/dev/null; exit 0' &) ; exit 0";
    c.exec("bw-dfork", &["sh", "-c", script], T).assert_success();
    let a = wait_alert(&d, &id, "Sensitive file read in a container", "the double-forked cat", |v| {
        field(v, "proc.cmdline") == "cat /etc/shadow /etc/hosts"
    });
    assert_eq!(field(&a, "container.id"), &id[..12]);
    assert_eq!(field(&a, "container.runtime"), "docker");
    let l = lineage(&a);
    let orphan = field(&a, "proc.ppid").as_u64().unwrap();
    assert_eq!(l[0], format!("{orphan}:sh"), "{l:?}");
    // The orphaned shell's current parent is the container's init.
    assert_eq!(l.get(1), Some(&format!("{init}:sh")), "{l:?}");
    assert_host_tail(&a, 2, shim);
    let exit = wait_process_exit(&d, &id, field(&a, "proc.pid"));
    let evs =
        events_of_process(&d, exit["process"]["pid"].as_u64().unwrap(), &exit["process"]["start_ns"], &id);
    assert!(evs.iter().any(|v| v["kind"] == "open" && v["path"] == "/etc/shadow"), "{evs:?}");
    drop(c);
    wait_exited(&d, &id);

    // 2. Python double fork in a container run to completion: the grandchild
    //    waits until its parent has exited (it is then the init's child), then
    //    reads /etc/shadow; the init reaps it.
    let py = r#"
import json, os, time
mid = os.fork()
if mid == 0:
    if os.fork() == 0:
        while os.getppid() != 1:  # until the middle process is gone
            time.sleep(0.001)
        open("/etc/shadow").close()
        os._exit(0)
    os._exit(0)
os.waitpid(mid, 0)
gc = os.wait()
print(json.dumps({"mid": mid, "gc": gc[0], "status": gc[1]}), flush=True)
"#;
    let id2 = random_container_id();
    let out = ctrd.run(&id2, &docker_cgroup(&id2), &["python3", "-c", py], T);
    out.assert_success();
    wait_exited(&d, &id2);
    let res: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(res["status"], 0, "{out}");
    let evs = d.container_events(&id2);
    let init_exec = evs
        .iter()
        .find(|v| v["kind"] == "exec" && v["process"]["vpid"] == 1 && v["argv"][0] == "python3")
        .expect("the init's exec");
    let pyinit = init_exec["process"]["pid"].as_u64().unwrap();
    let forks = |pid: u64| -> Vec<&Value> {
        evs.iter().filter(|v| v["kind"] == "fork" && v["process"]["pid"] == pid).collect()
    };
    let f1 = forks(pyinit);
    assert_eq!(f1.len(), 1, "forks of the init: {f1:?}");
    let mid = f1[0]["child_pid"].as_u64().unwrap();
    let f2 = forks(mid);
    assert_eq!(f2.len(), 1, "forks of the middle process: {f2:?}");
    let (gc, gc_start) = (f2[0]["child_pid"].as_u64().unwrap(), &f2[0]["child_start_ns"]);
    let a = wait_alert(&d, &id2, "Sensitive file read in a container", "the grandchild", |v| {
        field(v, "proc.pid") == gc
    });
    assert_eq!(field(&a, "container.id"), &id2[..12]);
    assert_eq!(field(&a, "proc.ppid"), pyinit, "adopted by the init: {a}");
    assert_eq!(field(&a, "proc.pname"), "python3");
    assert_eq!(
        field(&a, "boxwatch.proc.exec_id"),
        format!("{gc}:{gc_start}:0").as_str(),
        "forked, never exec'd"
    );
    assert_eq!(field(&a, "boxwatch.proc.parent_exec_id"), &init_exec["exec_id"]);
    assert_eq!(field(&a, "boxwatch.proc.entry"), &Value::Null);
    let l = lineage(&a);
    assert_eq!(l[0], format!("{pyinit}:python3"), "{l:?}");
    assert!(
        l[1].ends_with(":containerd-shim[host]") && l[1..].iter().all(|x| x.ends_with("[host]")),
        "{l:?}"
    );
    for (pid, start) in [(mid, &f1[0]["child_start_ns"]), (gc, gc_start)] {
        let e = events_of_process(&d, pid, start, &id2);
        assert!(e.iter().any(|v| v["kind"] == "exit" && v["code"] == 0), "exit of {pid}: {e:?}");
    }
}
