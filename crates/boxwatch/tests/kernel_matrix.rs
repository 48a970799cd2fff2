//! Kernel matrix: boxwatch on this machine's kernel and on every kernel of
//! `scripts/kernel-matrix/kernels.list`, booted in QEMU by `scripts/kernel-matrix.sh`
//! (TCG where KVM cannot boot a stock kernel). On each VM kernel: `boxwatch check`
//! exits 0 with every hook attached and reports every attach type; a program made
//! unloadable degrades only itself; check fails loudly without the kernel's BTF and
//! works with `--btf`; and a real workload in a docker-style cgroup (exec, open of
//! /etc/shadow, loopback connect) under `boxwatch run` yields the events, the
//! container id and an alert.
//!
//! Slow (about one to five minutes per kernel under TCG), so it is built only with the
//! `kernel-matrix` feature and selected explicitly by `scripts/test.sh`
//! (`cargo test -p boxwatch --features kernel-matrix --test kernel_matrix`). Needs root;
//! fails loudly when it cannot run, never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every attach type `boxwatch check` probes.
const ATTACH_TYPES: [&str; 7] =
    ["tracepoint", "raw_tp", "tp_btf", "fentry", "lsm", "kprobe", "cgroup/connect4"];

/// What `boxwatch check` printed, parsed.
#[derive(Debug, Default)]
struct Check {
    rc: Option<i32>,
    text: String,
    /// Attach type -> loaded and attached.
    attach: BTreeMap<String, bool>,
    attached: usize,
    degraded: usize,
    /// Degraded hooks: program -> reason.
    degraded_hooks: BTreeMap<String, String>,
}

fn parse_check(text: &str, rc: Option<i32>) -> Check {
    let mut c = Check { rc, text: text.to_string(), ..Check::default() };
    let mut in_hooks = false;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("monitor hooks: ") {
            in_hooks = true;
            let nums: Vec<usize> =
                rest.split(|ch: char| !ch.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
            c.attached = nums.first().copied().unwrap_or(0);
            c.degraded = nums.get(1).copied().unwrap_or(0);
            continue;
        }
        let (ok, rest) = if let Some(r) = t.strip_prefix("[ok  ] ") {
            (true, r)
        } else if let Some(r) = t.strip_prefix("[no  ] ") {
            (false, r)
        } else {
            continue;
        };
        let name = rest.split_whitespace().next().unwrap_or("").to_string();
        if in_hooks {
            if !ok {
                let reason = rest.split_once(" — ").map_or("", |(_, r)| r).to_string();
                c.degraded_hooks.insert(name, reason);
            }
        } else if ATTACH_TYPES.contains(&name.as_str()) {
            c.attach.insert(name, ok);
        }
    }
    c
}

/// The sections one VM reported: name -> (exit status, body).
fn sections(console: &str) -> BTreeMap<String, (i32, String)> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in console.lines() {
        if let Some(name) = line.strip_prefix("@@BW BEGIN ") {
            cur = Some((name.trim().to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("@@BW END ") {
            if let Some((name, body)) = cur.take() {
                let rc = rest.rsplit_once("rc=").and_then(|(_, n)| n.trim().parse().ok()).unwrap_or(-1);
                out.insert(name, (rc, body));
            }
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assert_every_type_attaches(kernel: &str, c: &Check) {
    for t in ATTACH_TYPES {
        assert_eq!(
            c.attach.get(t),
            Some(&true),
            "{kernel}: attach type {t} should load and attach:\n{}",
            c.text
        );
    }
}

/// The workload's JSON lines (stdout of `boxwatch run`, container lines and alerts only).
fn run_lines(body: &str) -> Vec<Value> {
    let stdout = body.split_once("@@BW STDOUT\n").map_or("", |(_, s)| s);
    stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn check_vm(kernel: &str, console: &str) -> String {
    let s = sections(console);
    let section = |name: &str| {
        s.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{kernel}: no '{name}' section in the console log:\n{console}"))
    };

    // 1. check: exit 0, every attach type, every hook attached.
    let (rc, body) = section("check");
    let check = parse_check(&body, Some(rc));
    assert_eq!(rc, 0, "{kernel}: boxwatch check must exit 0:\n{body}");
    assert_every_type_attaches(kernel, &check);
    assert_eq!(check.degraded, 0, "{kernel}: every hook should attach: {:?}\n{body}", check.degraded_hooks);
    assert!(check.attached >= 90, "{kernel}: only {} hooks attached:\n{body}", check.attached);

    // 2. one refused program degrades only itself.
    let (rc, body) = section("refuse");
    let refuse = parse_check(&body, Some(rc));
    assert_eq!(rc, 0, "{kernel}: a refused non-core program must not fail check:\n{body}");
    assert_eq!(refuse.degraded, 1, "{kernel}: {:?}\n{body}", refuse.degraded_hooks);
    let why = refuse.degraded_hooks.get("enter_openat").map(String::as_str).unwrap_or("");
    assert!(why.starts_with("refused by the kernel: verifier:"), "{kernel}: enter_openat: {why}\n{body}");
    assert_eq!(refuse.attached, check.attached - 1, "{kernel}:\n{body}");

    // 3. without the kernel's BTF check fails loudly; with --btf it loads as before.
    let (rc, body) = section("nobtf");
    assert_eq!(rc, 1, "{kernel}: check without BTF must exit 1:\n{body}");
    assert!(body.contains("[FAIL] monitor") && body.contains("BTF"), "{kernel}: {body}");
    let (rc, body) = section("btf");
    let btf = parse_check(&body, Some(rc));
    assert_eq!(rc, 0, "{kernel}: check --btf must exit 0:\n{body}");
    assert!(body.contains("[ok  ] BTF from --btf /boot/vmlinux.btf"), "{kernel}: {body}");
    assert_eq!(btf.attached, check.attached, "{kernel}:\n{body}");

    // 4. the workload: container, exec, /etc/shadow, connect, alert.
    let id = console
        .lines()
        .find_map(|l| l.strip_prefix("@@BW CONTAINER "))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{kernel}: the VM did not say which container id it used"));
    assert_eq!(id.len(), 64, "{kernel}: container id {id}");
    let (rc, body) = section("run");
    assert_eq!(rc, 0, "{kernel}: boxwatch run must exit 0 on SIGTERM:\n{body}");
    assert!(body.contains("boxwatch: ready: "), "{kernel}: no ready line:\n{body}");
    assert!(body.contains(" 0 degraded"), "{kernel}: the ready line reports degraded hooks:\n{body}");
    let lines = run_lines(&body);
    let in_container = |v: &Value| v["container"]["id"] == id;
    let find = |what: &str, f: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .find(|v| f(v))
            .cloned()
            .unwrap_or_else(|| panic!("{kernel}: no {what} in boxwatch's output:\n{body}"))
    };
    let started = find("container start", &|v| v["type"] == "container" && in_container(v));
    assert_eq!(started["action"], "started", "{kernel}: {started}");
    assert_eq!(started["container"]["runtime"], "docker", "{kernel}: {started}");
    find("exec of cat in the container", &|v| {
        v["type"] == "event" && in_container(v) && v["kind"] == "exec" && v["argv"][0] == "cat"
    });
    let open = find("open of /etc/shadow", &|v| {
        v["type"] == "event" && in_container(v) && v["kind"] == "open" && v["path"] == "/etc/shadow"
    });
    assert!(open["ret"].as_i64().is_some_and(|r| r >= 0), "{kernel}: {open}");
    find("loopback connect", &|v| {
        v["type"] == "event"
            && in_container(v)
            && v["kind"] == "connect"
            && v["addr"]["ip"] == "127.0.0.1"
            && v["addr"]["port"] == 7070
    });
    let alert = find("Sensitive file read alert", &|v| v["rule"] == "Sensitive file read in a container");
    assert_eq!(alert["output_fields"]["boxwatch.container.full_id"], id, "{kernel}: {alert}");
    format!(
        "{} hooks attached, 0 degraded; attach types all ok; refused program degraded alone; --btf ok; \
         run: {} lines, exec/open/connect + alert in container {}",
        check.attached,
        lines.len(),
        &id[..12]
    )
}

#[test]
fn kernel_matrix() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("the kernel matrix loads BPF and boots VMs: run it as root (scripts/test.sh)");
    }
    let bin = env!("CARGO_BIN_EXE_boxwatch");
    let mut summary = Vec::new();

    // This machine's kernel: what the other tests run on.
    let out = Command::new(bin).arg("check").output().expect("run boxwatch check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let host = parse_check(&text, out.status.code());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    assert_eq!(host.rc, Some(0), "host {release}: boxwatch check must exit 0:\n{text}");
    for t in ["tracepoint", "raw_tp", "tp_btf", "cgroup/connect4"] {
        assert_eq!(host.attach.get(t), Some(&true), "host {release}: {t}:\n{text}");
    }
    // Here only missing tracepoints may degrade a hook; nothing may be refused.
    for (prog, why) in &host.degraded_hooks {
        assert!(
            why.contains("does not exist on this kernel"),
            "host {release}: {prog} degraded: {why}\n{text}"
        );
    }
    let missing: Vec<&str> = host.attach.iter().filter(|(_, ok)| !**ok).map(|(t, _)| t.as_str()).collect();
    summary.push(format!(
        "host {release}: check ok, {} hooks attached, {} degraded (missing tracepoints: {}), attach types not available: {}",
        host.attached,
        host.degraded,
        host.degraded_hooks.keys().cloned().collect::<Vec<_>>().join(", "),
        if missing.is_empty() { "none".to_string() } else { missing.join(", ") }
    ));

    // The VM kernels.
    let ws = workspace();
    let out_dir = ws.join("target/kernel-matrix");
    let status = Command::new("bash")
        .arg(ws.join("scripts/kernel-matrix.sh"))
        .args(["--boxwatch", bin, "--out"])
        .arg(&out_dir)
        .status()
        .expect("run scripts/kernel-matrix.sh");
    let results = std::fs::read_to_string(out_dir.join("results.tsv")).unwrap_or_default();
    assert!(status.success(), "scripts/kernel-matrix.sh failed ({status}); results so far:\n{results}");
    let rows: Vec<Vec<&str>> = results.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    assert!(!rows.is_empty(), "no kernel was booted:\n{results}");
    for row in rows {
        let [release, package, accel, ms, console] = row[..] else { panic!("bad results line: {row:?}") };
        let log = std::fs::read_to_string(console).unwrap_or_else(|e| panic!("{console}: {e}"));
        let verdict = check_vm(release, &log);
        summary.push(format!(
            "vm {release} ({package}, {accel}, {:.0} s): {verdict}",
            ms.parse::<f64>().unwrap_or(0.0) / 1000.0
        ));
    }
    eprintln!("kernel matrix:\n  {}", summary.join("\n  "));
}
