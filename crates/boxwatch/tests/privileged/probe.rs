//! Helpers shared by the kernel-to-alert slice tests (`events`, `network`,
//! `privileges`, `filtering`): run a workload in a fresh container while a
//! daemon watches, wait until every event of that container has been
//! printed, and pick events out of the output with precise failure messages.
//!
//! The workloads use x86_64 syscall numbers (ctypes `syscall(175, ...)`).

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Timeout of one container run and of each wait for output.
pub const T: Duration = Duration::from_secs(30);

/// Python prologue of every workload: `libc` with errno, `sc(nr, *args)`
/// for raw syscalls (all arguments passed as C longs or pointers) and
/// `out` (a dict printed as JSON at exit, for the test to parse).
pub const PY_PROLOGUE: &str = r#"
import ctypes, json, os, socket, struct, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    conv = [a if isinstance(a, (bytes, ctypes.Array)) or a is None else ctypes.c_long(a) for a in args]
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return r if r >= 0 else -ctypes.get_errno()
def err(r):
    return r if r >= 0 else -ctypes.get_errno()
out = {}
"#;

/// What one container run produced.
pub struct Traced {
    pub id: String,
    /// Parsed JSON of the workload's last stdout line (`out` for python workloads; `Null` otherwise).
    pub out: Value,
    pub stdout: String,
    /// Every event line attributed to the container, in output order.
    pub events: Vec<Value>,
}

impl Traced {
    /// Events of process `comm`, of kind `kind`, matching `pred`.
    pub fn find(&self, comm: &str, kind: &str, pred: impl Fn(&Value) -> bool) -> Vec<&Value> {
        self.events.iter().filter(|v| v["process"]["comm"] == comm && v["kind"] == kind && pred(v)).collect()
    }

    /// The single event of process `comm`, of kind `kind`, matching `pred`;
    /// panics (listing that process's events of the kind) unless exactly one.
    #[track_caller]
    pub fn one(&self, comm: &str, kind: &str, what: &str, pred: impl Fn(&Value) -> bool) -> &Value {
        let hits = self.find(comm, kind, pred);
        if hits.len() != 1 {
            let same_kind: Vec<String> = self.find(comm, kind, |_| true).iter().map(|v| brief(v)).collect();
            panic!(
                "expected exactly one {kind} event of {comm} for {what}, found {}; its {kind} events:\n{}\n\
                 workload stdout:\n{}",
                hits.len(),
                same_kind.join("\n"),
                self.stdout
            );
        }
        hits[0]
    }

    /// `out[key]` as i64 (panics if absent).
    #[track_caller]
    pub fn out_i64(&self, key: &str) -> i64 {
        self.out[key]
            .as_i64()
            .unwrap_or_else(|| panic!("workload output has no integer {key:?}: {}", self.out))
    }
}

/// An event without the bulky common fields, for failure messages.
pub fn brief(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["container", "time", "type", "ns", "cgroup_id", "ktime_ns"] {
            m.remove(k);
        }
        if let Some(argv) = m.get_mut("argv").and_then(Value::as_array_mut) {
            argv.iter_mut().for_each(|a| {
                if let Some(s) = a.as_str().filter(|s| s.len() > 60) {
                    *a = Value::from(format!("{}...", &s[..60]));
                }
            });
        }
    }
    v.to_string()
}

/// Run `args` to completion in a new docker-style container while `d`
/// watches; returns once the daemon reported the container's exit (its
/// cgroup was removed, so every event of it was already printed).
#[track_caller]
pub fn run_traced(ctrd: &Containerd, d: &Daemon, args: &[&str]) -> Traced {
    let id = random_container_id();
    let out = ctrd.run(&id, &docker_cgroup(&id), args, T);
    out.assert_success();
    wait_exited(d, &id);
    let parsed = out.stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    Traced { events: d.container_events(&id), id, out: parsed, stdout: out.stdout.clone() }
}

/// [`run_traced`] of `python3 -c <PY_PROLOGUE + body + print(json.dumps(out))>`.
#[track_caller]
pub fn run_python(ctrd: &Containerd, d: &Daemon, body: &str) -> Traced {
    let script = format!("{PY_PROLOGUE}\n{body}\nprint(json.dumps(out), flush=True)\n");
    let t = run_traced(ctrd, d, &["python3", "-c", &script]);
    assert!(t.out.is_object(), "python workload printed no JSON result:\n{}", t.stdout);
    t
}

/// Wait for the `"container" "exited"` line of container `id`.
#[track_caller]
pub fn wait_exited(d: &Daemon, id: &str) -> Value {
    d.wait_for(&format!("exit of container {id}"), T, |v| {
        v["type"] == "container" && v["action"] == "exited" && v["container"]["id"] == id
    })
}

/// The attribution every event of a docker container `id` must carry.
#[track_caller]
pub fn assert_attributed(ev: &Value, id: &str) {
    let c = &ev["container"];
    assert_eq!(c["id"], id, "container id of {}", brief(ev));
    assert_eq!(c["runtime"], "docker", "runtime of {}", brief(ev));
    assert_eq!(c["cgroup_root"], docker_cgroup(id).as_str(), "cgroup_root of {}", brief(ev));
    assert_eq!(ev["type"], "event");
    assert!(ev["cgroup_id"].as_u64().is_some_and(|c| c > 1), "cgroup_id of {}", brief(ev));
}

/// A syscall event's `ret` (panics if absent).
#[track_caller]
pub fn ret(ev: &Value) -> i64 {
    ev["ret"].as_i64().unwrap_or_else(|| panic!("no ret in {}", brief(ev)))
}

/// `-errno` as the kernel returns it.
pub const EPERM: i64 = -1;
pub const ENOENT: i64 = -2;
pub const ENOSYS: i64 = -38;
pub const ENETUNREACH: i64 = -101;
