//! `boxwatch-eval`: run the detection corpus (`eval/*.toml`) against one `boxwatch run`,
//! each scenario in its own real containerd container, and score it per threat class.
//!
//! An attack counts as detected when its container raised an alert of priority Warning or
//! above whose `boxwatch.rule.class` is the scenario's class. A benign workload is a false
//! positive (for a class) when its container raised a Warning-or-above alert (of that class).
//! `--quick` runs the `quick = true` subset and fails on any scenario whose expectation is
//! not met (attacks: every expected rule and the right class; benign: nothing at Warning+).

mod corpus;
mod daemon;
mod report;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use boxwatch_testbed::{Containerd, docker_cgroup, random_container_id, random_hex};
use clap::Parser;
use serde_json::Value;

use corpus::Scenario;

#[derive(Debug, Parser)]
#[command(
    name = "boxwatch-eval",
    about = "Detection quality of boxwatch on a corpus of attacks and benign workloads"
)]
struct Args {
    /// The boxwatch binary under evaluation.
    #[arg(long, default_value = "target/release/boxwatch")]
    boxwatch: PathBuf,
    /// Directory of the corpus files (`*.toml`).
    #[arg(long, default_value = "eval")]
    corpus: PathBuf,
    /// Only the quick subset, with per-scenario expectations asserted (CI).
    #[arg(long)]
    quick: bool,
    /// Only scenarios whose id contains one of these strings.
    #[arg(long)]
    only: Vec<String>,
    /// Containers run at once.
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Write the Markdown report here (table, per-scenario results, machine).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write every result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the last events of scenarios that missed or raised a false positive.
    #[arg(long)]
    verbose: bool,
}

/// What one scenario produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: Scenario,
    pub container: String,
    /// Every alert of the container: (rule id, class, priority).
    pub alerts: Vec<(String, String, String)>,
    pub exit_status: i32,
    pub timed_out: bool,
    pub saw_exit: bool,
    pub elapsed: Duration,
    pub output_tail: String,
    pub events: Vec<Value>,
}

pub const ACTIONABLE: [&str; 5] = ["Warning", "Error", "Critical", "Alert", "Emergency"];

impl Outcome {
    /// Warning-or-above alerts.
    pub fn actionable(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.alerts.iter().filter(|a| ACTIONABLE.contains(&a.2.as_str()))
    }

    /// Attack: an actionable alert with the scenario's class.
    pub fn detected(&self) -> bool {
        self.actionable().any(|a| a.1 == self.scenario.class)
    }

    /// Every expected rule fired (any priority).
    pub fn expected_fired(&self) -> bool {
        self.scenario.expect.iter().all(|r| self.alerts.iter().any(|a| &a.0 == r))
    }

    /// Benign: any actionable alert.
    pub fn false_positive(&self) -> bool {
        self.scenario.is_benign() && self.actionable().next().is_some()
    }

    /// The per-scenario expectation the quick subset asserts.
    pub fn meets_expectation(&self) -> bool {
        if self.scenario.is_benign() {
            !self.false_positive()
        } else {
            self.detected() && self.expected_fired()
        }
    }
}

/// Helpers every python scenario starts with (raw syscalls through ctypes, bounded sockets).
const PY_PROLOGUE: &str = r#"
import ctypes, errno, os, select, socket, struct, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    conv = [a if isinstance(a, (bytes, ctypes.Array)) or a is None else ctypes.c_long(a) for a in args]
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return r if r >= 0 else -ctypes.get_errno()
def nb_connect(host, port, fam=socket.AF_INET, timeout=0.2):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    r = s.connect_ex((host, port))
    if r == errno.EINPROGRESS:
        select.select([], [s], [], timeout)
        r = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ETIMEDOUT
    s.close()
    return -abs(r) if r else 0
def lab_addr(addr="198.51.100.7"):
    # An address on this container's own loopback (its own network namespace): traffic to it
    # never leaves the container. Needs CAP_NET_ADMIN (flags: --cap-add CAP_NET_ADMIN).
    subprocess.run(["ip", "addr", "add", addr + "/32", "dev", "lo"], check=True)
    return addr
def listener(addr, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(16)
    return s
"#;

/// Helpers for shell scenarios.
const SH_PROLOGUE: &str = "set +e\nlab_addr() { ip addr add \"${1:-198.51.100.7}/32\" dev lo; }\n";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("boxwatch-eval loads BPF programs and starts containers: run it as root (scripts/eval.sh)");
    }
    let mut scenarios = corpus::load(&args.corpus)?;
    if args.quick {
        scenarios.retain(|s| s.quick);
    }
    if !args.only.is_empty() {
        scenarios.retain(|s| args.only.iter().any(|o| s.id.contains(o.as_str())));
    }
    if scenarios.is_empty() {
        bail!("no scenario selected");
    }
    let binary = std::fs::canonicalize(&args.boxwatch)
        .with_context(|| format!("boxwatch binary {}", args.boxwatch.display()))?;
    let fixtures = make_fixtures()?;
    let t0 = Instant::now();
    let ctrd = Containerd::start();
    let log_dir = std::env::temp_dir().join(format!("boxwatch-eval-logs-{}", random_hex(6)));
    let d = daemon::Daemon::start(&binary, log_dir)?;
    eprintln!("boxwatch-eval: {} scenarios, {} at a time; {}", scenarios.len(), args.jobs, d.ready_line());

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(s) = scenarios.get(i) else { break };
                    let o = run_one(&ctrd, &d, s, &fixtures);
                    let mark = if o.meets_expectation() { "ok  " } else { "MISS" };
                    let fired: Vec<String> =
                        o.actionable().map(|a| format!("{}({})", a.0, a.1)).collect::<Vec<_>>();
                    eprintln!(
                        "{mark} {:<34} {:<20} {:>5.1}s exit={} {}",
                        s.id,
                        s.class,
                        o.elapsed.as_secs_f64(),
                        o.exit_status,
                        fired.join(" ")
                    );
                    if args.verbose && !o.meets_expectation() {
                        report::print_debug(&o);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(o);
                }
            });
        }
    });
    let stats = d.stop();
    drop(ctrd);
    let _ = std::fs::remove_dir_all(&fixtures);
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|o| scenarios.iter().position(|s| s.id == o.scenario.id));
    let wall = t0.elapsed();
    let table = report::table(&results);
    println!("{table}");
    eprintln!("boxwatch-eval: {} scenarios in {:.0} s; daemon {stats}", results.len(), wall.as_secs_f64());
    if let Some(p) = &args.markdown {
        std::fs::write(p, report::markdown(&results, &table, wall, &binary, &stats))
            .with_context(|| format!("write {}", p.display()))?;
        eprintln!("boxwatch-eval: wrote {}", p.display());
    }
    if let Some(p) = &args.json {
        std::fs::write(p, report::json(&results).to_string())
            .with_context(|| format!("write {}", p.display()))?;
    }
    let unmet: Vec<&str> =
        results.iter().filter(|o| !o.meets_expectation()).map(|o| o.scenario.id.as_str()).collect();
    let broken: Vec<&str> =
        results.iter().filter(|o| !o.saw_exit || o.timed_out).map(|o| o.scenario.id.as_str()).collect();
    if !broken.is_empty() {
        bail!("scenarios that timed out or whose container exit was never reported: {broken:?}");
    }
    if args.quick && !unmet.is_empty() {
        bail!("quick subset: expectations not met by {unmet:?}");
    }
    Ok(())
}

fn run_one(ctrd: &Containerd, d: &daemon::Daemon, s: &Scenario, fixtures: &str) -> Outcome {
    let id = random_container_id();
    let script = match s.run.as_str() {
        "python" => format!("{PY_PROLOGUE}\n{}", s.script),
        _ => format!("{SH_PROLOGUE}{}", s.script),
    };
    let interp = match s.run.as_str() {
        "python" => "python3",
        "bash" => "bash",
        _ => "sh",
    };
    let flags: Vec<String> = s.flags.iter().map(|f| f.replace("{fixtures}", fixtures)).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let out = ctrd.run_with(
        &id,
        &docker_cgroup(&id),
        &flags,
        &[interp, "-c", &script],
        Duration::from_secs(s.timeout_s),
    );
    let elapsed = t0.elapsed();
    let (alerts, events, saw_exit) = d.collect(&id, Duration::from_secs(15));
    let alerts = alerts
        .iter()
        .map(|a| {
            let f = &a["output_fields"];
            let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
            (s(&f["boxwatch.rule.id"]), s(&f["boxwatch.rule.class"]), s(&a["priority"]))
        })
        .collect();
    let mut output_tail = format!("{}{}", out.stdout, out.stderr);
    if output_tail.len() > 600 {
        let cut = output_tail.len() - 600;
        let cut = (cut..output_tail.len()).find(|i| output_tail.is_char_boundary(*i)).unwrap_or(cut);
        output_tail = output_tail[cut..].to_string();
    }
    Outcome {
        scenario: s.clone(),
        container: id,
        alerts,
        exit_status: out.status,
        timed_out: out.timed_out,
        saw_exit,
        elapsed,
        output_tail,
        events,
    }
}

/// Read-only files bind-mounted into scenarios that need an image's secrets
/// (`--mount type=bind,src={fixtures}/shadow,dst=/etc/shadow,options=rbind:ro`).
fn make_fixtures() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("boxwatch-eval-fixtures-{}", random_hex(6)));
    std::fs::create_dir_all(&dir)?;
    let files: &[(&str, &str)] = &[
        ("shadow", "root:$6$evalsalt$notarealhash:19000:0:99999:7:::\nuser:!:19000:0:99999:7:::\n"),
        ("sudoers", "root ALL=(ALL:ALL) ALL\n"),
        ("token", "eyJhbGciOiJSUzI1NiJ9.eval-fixture-not-a-token.sig\n"),
        ("ca.crt", "-----BEGIN CERTIFICATE-----\nZXZhbA==\n-----END CERTIFICATE-----\n"),
    ];
    for (name, body) in files {
        std::fs::write(dir.join(name), body)?;
    }
    Ok(dir.to_str().context("fixture path is not UTF-8")?.to_string())
}
