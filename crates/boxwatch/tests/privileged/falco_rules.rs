//! Falco's official rules files (read from `../shared/falco/`, unmodified) in the real daemon,
//! beside the default pack: `boxwatch run --rules ../shared/falco/` starts, and each stable rule
//! whose trigger can be produced here fires in a real container with Falco's rule name and
//! output prefix, while its benign near miss does not.
//!
//! Other rules of the three files fire here too (the incubating "Change namespace privileges via
//! unshare" on runc's set-up of every container: `thread.cap_permitted` is `<NA>`); only the
//! rule under test is checked.
//!
//! Stable rules not covered, and why: "Terminal shell in container" and "System user
//! interactive" need a container with a tty (`ctr run -t` needs a terminal on the test's side);
//! "Contact K8S API Server From Container" matches `fd.sip.name` (DNS names: not resolved);
//! "Drop and execute new binary in container" and "Fileless execution via memfd_create" need
//! exe flags from the kernel (`proc.is_exe_upper_layer`, `proc.is_exe_from_memfd`: `<NA>`);
//! "Disallowed SSH Connection Non Standard Port" needs `fd.l4proto` (`<NA>`); "Redirect
//! STDOUT/STDIN to Network Connection in Container" needs the dup hook (inert); "Linux Kernel
//! Module Injection Detected", "Debugfs Launched in Privileged Container" and "Detect
//! release_agent File Container Escapes" need a privileged container; "Run shell untrusted",
//! "Read sensitive file trusted after startup" and "Directory traversal monitored file read"
//! need a server process tree or normalised paths (`fd.name` is the path as written).

use serde_json::Value;

use crate::probe::{PY_PROLOGUE, T, wait_exited};
use crate::support::*;

struct Pair {
    rule: &'static str,
    trigger: &'static str,
    near_miss: &'static str,
}

const PAIRS: &[Pair] = &[
    Pair {
        rule: "Read sensitive file untrusted",
        trigger: "open('/etc/shadow').read()",
        near_miss: "open('/etc/hostname').read()",
    },
    Pair {
        rule: "Create Symlink Over Sensitive Files",
        trigger: "os.symlink('/etc/shadow', '/tmp/bw-link')",
        near_miss: "os.symlink('/etc/hostname', '/tmp/bw-link')",
    },
    Pair {
        rule: "Execution from /dev/shm",
        // /dev/shm is mounted noexec here: the shell asked to run it is what the rule sees.
        trigger: "subprocess.run(['sh', '-c', '/dev/shm/bw-x'])",
        near_miss: "subprocess.run(['sh', '-c', '/tmp/bw-x'])",
    },
    Pair {
        rule: "Search Private Keys or Passwords",
        trigger: "subprocess.run(['find', '/tmp', '-name', 'id_rsa'])",
        near_miss: "subprocess.run(['find', '/tmp', '-name', 'notes.txt'])",
    },
    Pair {
        rule: "Find AWS Credentials",
        trigger: "subprocess.run(['find', '/tmp', '-path', '/tmp/.aws/credentials'])",
        near_miss: "subprocess.run(['find', '/tmp', '-path', '/tmp/.aws/config'])",
    },
    Pair {
        rule: "Clear Log Activities",
        trigger: "os.makedirs('/var/log', exist_ok=True); open('/var/log/bw.log', 'w').close()",
        near_miss: "os.makedirs('/var/log', exist_ok=True); open('/var/log/bw.log', 'a').close()",
    },
    Pair {
        rule: "Packet socket created in container",
        trigger: "socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
        near_miss: "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
    },
    Pair {
        rule: "Netcat Remote Code Execution in Container",
        trigger: "os.symlink('/usr/bin/true', '/tmp/nc'); subprocess.run(['/tmp/nc', '-e', '/bin/sh', '127.0.0.1', '4444'])",
        near_miss: "os.symlink('/usr/bin/true', '/tmp/nc'); subprocess.run(['/tmp/nc', '-z', '127.0.0.1', '4444'])",
    },
    Pair {
        rule: "PTRACE anti-debug attempt",
        trigger: "libc.ptrace(0, 0, 0, 0)",        // PTRACE_TRACEME
        near_miss: "libc.ptrace(7, 999999, 0, 0)", // PTRACE_CONT on no process
    },
    Pair {
        rule: "PTRACE attached to process",
        trigger: "libc.ptrace(16, 999999, 0, 0)", // PTRACE_ATTACH (ESRCH: the attempt counts)
        near_miss: "libc.ptrace(7, 999999, 0, 0)",
    },
];

fn workload(body: &str) -> Vec<String> {
    let script = format!(
        "{PY_PROLOGUE}\nimport shutil\ntry:\n    {body}\nexcept OSError as e:\n    print('oserror', e)\n"
    );
    vec!["python3".into(), "-c".into(), script]
}

fn falco_alerts<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

#[test]
fn falcos_stable_rules_fire_in_real_containers() {
    let falco_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/falco");
    assert!(
        falco_dir.join("falco_rules.yaml").exists(),
        "Falco's rules files expected in {}",
        falco_dir.display()
    );
    let dir = falco_dir.to_str().expect("utf-8 path").to_string();
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--no-runtime-lookup", "--rules", &dir]);
    let ready = d.stderr_text();
    assert!(ready.contains("rules"), "{ready}");
    let mut failures = Vec::new();
    for p in PAIRS {
        for (trigger, body) in [(true, p.trigger), (false, p.near_miss)] {
            let id = random_container_id();
            let args = workload(body);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = ctrd.run_with(&id, &docker_cgroup(&id), &[], &args, T);
            wait_exited(&d, &id);
            let alerts = d.container_alerts(&id);
            let hits = falco_alerts(&alerts, p.rule);
            let names: Vec<&str> = alerts.iter().filter_map(|a| a["rule"].as_str()).collect();
            if !out.success() {
                failures.push(format!("[{}] workload failed: {out}", p.rule));
            } else if trigger && hits.is_empty() {
                failures.push(format!(
                    "[{}] trigger raised no alert (alerts: {names:?}; out: {})",
                    p.rule,
                    out.stdout.trim()
                ));
            } else if !trigger && !hits.is_empty() {
                failures.push(format!("[{}] near miss raised it: {}", p.rule, hits[0]["output"]));
            }
            for a in hits {
                let output = a["output"].as_str().unwrap_or("");
                // `HH:MM:SS.nnnnnnnnn: Priority ` then Falco's own text.
                let prefix_ok = output.len() > 20
                    && output.as_bytes()[2] == b':'
                    && output.as_bytes()[8] == b'.'
                    && &output[18..20] == ": "
                    && output[20..].starts_with(a["priority"].as_str().unwrap_or("?"));
                if !prefix_ok || !a["output_fields"]["evt.time"].is_u64() {
                    failures.push(format!("[{}] not Falco's output shape: {a}", p.rule));
                }
                if a["output_fields"]["boxwatch.container.full_id"] != id.as_str() {
                    failures.push(format!("[{}] wrong container: {a}", p.rule));
                }
            }
            eprintln!(
                "falco-rule {} {}: {}",
                p.rule,
                if trigger { "trigger" } else { "near miss" },
                names.join(", ")
            );
        }
    }
    d.stop();
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}
