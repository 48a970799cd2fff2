//! A tenant must not silence boxwatch (#14 items 1, 2 and 5): with the
//! default rate limits and folding on, one container's flood neither
//! suppresses another container's alerts of the same rule nor its own
//! higher-priority alerts, and its own suppression is announced in-band.

use std::time::Duration;

use serde_json::Value;

use crate::probe::*;
use crate::support::*;

/// Folding and rate limits as shipped (the harness turns folding off by default).
const DEFAULTS: &[&str] = &["--no-runtime-lookup", "--aggregate-window", "10"];

const LOG_RULE: &str = "Log file cleared or removed";

/// Truncating opens of distinct files (`path` with `%d` for the number),
/// `rate` a second for `secs` seconds. Below /var/log that is `Log file
/// cleared`, below /var/spool/cron `Scheduled task created or changed`, a
/// `.bash_history` is `Shell history deleted or truncated`: all Warning.
fn flood(path: &str, rate: u32, secs: u32) -> String {
    format!(
        r#"
import os, time
t0 = time.monotonic()
for i in range({n}):
    p = "{path}" % i
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "w").close()
    delay = t0 + (i + 1) / {rate} - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"#,
        n = rate * secs
    )
}

fn log_flood(prefix: &str, rate: u32, secs: u32) -> String {
    flood(&format!("/var/log/{prefix}-%d"), rate, secs)
}

fn alerts_of(d: &Daemon, id: &str, rule: &str) -> Vec<Value> {
    d.container_alerts(id).into_iter().filter(|a| a["rule"] == rule).collect()
}

/// #14.1: A truncates 300 log files a second; B truncates 20 in the same
/// seconds. B gets all 20 of its alerts; A is limited and told so.
#[test]
fn one_tenants_flood_does_not_silence_the_same_rule_for_another() {
    let _exclusive = crate::support::flood();
    let ctrd = Containerd::start();
    let d = Daemon::start(DEFAULTS);
    let (a, b) = (random_container_id(), random_container_id());
    let flood = ctrd.run_detached(&a, &docker_cgroup(&a), &["python3", "-c", &log_flood("noise", 300, 4)]);
    d.wait_for("A's first alert", T, |v| {
        v["rule"] == LOG_RULE && v["output_fields"]["boxwatch.container.full_id"] == a
    });
    ctrd.run(&b, &docker_cgroup(&b), &["python3", "-c", &log_flood("b", 10, 2)], T).assert_success();
    wait_exited(&d, &b);
    drop(flood);
    wait_exited(&d, &a);
    let b_alerts = alerts_of(&d, &b, LOG_RULE);
    assert_eq!(b_alerts.len(), 20, "B got {} of its 20 alerts under A's flood", b_alerts.len());
    let a_alerts = alerts_of(&d, &a, LOG_RULE).len();
    assert!(a_alerts < 600, "A is held to its own budget: {a_alerts} alerts of 1200");
    assert!(
        d.container_alerts(&b).iter().all(|v| v["rule"] != "Alerts suppressed for a container"),
        "B was never suppressed"
    );
    let notice = d.wait_for("A's suppression notice", T, |v| {
        v["rule"] == "Alerts suppressed for a container"
            && v["output_fields"]["boxwatch.container.full_id"] == a
    });
    assert_eq!(notice["priority"], "Warning");
    let stats = d.stop();
    assert!(stats.contains("alerts_rate_limited="), "{stats}");
}

/// #14.2: A's own Warning noise, spread over three rules so that its
/// container budget is spent, does not cost its Critical alerts.
#[test]
fn a_tenants_noise_does_not_suppress_its_own_critical_alerts() {
    let _exclusive = crate::support::flood();
    let ctrd = Containerd::start();
    let d = Daemon::start(DEFAULTS);
    let a = random_container_id();
    let script = format!(
        r#"
import os, sys, time
noise = []
for code in [{log:?}, {cron:?}, {history:?}]:
    pid = os.fork()
    if pid == 0:
        exec(compile(code, "flood", "exec"))
        os._exit(0)
    noise.append(pid)
time.sleep(2)
with open("/usr/bin/true", "rb") as f:
    payload = f.read()
for i in range(5):
    fd = os.memfd_create("bw-fileless-%d" % i, 0)
    os.write(fd, payload)
    child = os.fork()
    if child == 0:
        try:
            os.execv("/proc/self/fd/%d" % fd, ["bw-fileless-%d" % i])
        finally:
            os._exit(127)
    os.waitpid(child, 0)
    time.sleep(0.1)
for pid in noise:
    os.waitpid(pid, 0)
"#,
        log = log_flood("noise", 200, 4),
        cron = flood("/var/spool/cron/noise-%d", 200, 4),
        history = flood("/tmp/h%d/.bash_history", 200, 4),
    );
    ctrd.run(&a, &docker_cgroup(&a), &["python3", "-c", &script], Duration::from_secs(60)).assert_success();
    wait_exited(&d, &a);
    let fileless = alerts_of(&d, &a, "Fileless execution from memory");
    assert_eq!(
        fileless.len(),
        5,
        "every Critical alert arrives under the container's own noise: {fileless:?}"
    );
    let noise: usize = [LOG_RULE, "Scheduled task created or changed", "Shell history deleted or truncated"]
        .iter()
        .map(|r| alerts_of(&d, &a, r).len())
        .sum();
    assert!(noise < 1800, "the noise itself is limited: {noise} of 2400");
    d.wait_for("A's suppression notice", T, |v| {
        v["rule"] == "Alerts suppressed for a container"
            && v["output_fields"]["boxwatch.container.full_id"] == a
    });
}
