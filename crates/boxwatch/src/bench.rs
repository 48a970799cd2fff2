//! `boxwatch bench`: what the monitor costs a workload, measured against no
//! monitor in the same run.
//!
//! A worker process (this binary, `bench-worker`) joins a cgroup and times
//! `openat(/etc/hostname) + close` in a loop. Two cgroups: one named like a
//! docker container (`docker-<64hex>.scope`, so boxwatch classifies it as a
//! container and traces it) and one host cgroup (filtered out in the
//! kernel). Rounds interleave "no monitor" and "real `boxwatch run` daemon
//! attached", and the table reports medians and the added ns per operation.
//! The daemon's RSS is read from /proc while it handles the load.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use crate::cgroups::cgroup2_root;
use crate::cli::{BenchArgs, BenchWorkerArgs};

/// Joins `args.cgroup`, then prints the mean ns per openat+close.
pub fn worker(args: BenchWorkerArgs) -> Result<()> {
    let procs = args.cgroup.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .with_context(|| format!("join {}", procs.display()))?;
    let path = CString::new("/etc/hostname").expect("no NUL");
    let op = || {
        // SAFETY: path is a valid C string; the fd is closed right away.
        unsafe {
            let fd = libc::openat(libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    };
    for _ in 0..args.iterations / 10 + 1000 {
        op();
    }
    let t = Instant::now();
    for _ in 0..args.iterations {
        op();
    }
    let ns = t.elapsed().as_nanos() as f64 / args.iterations.max(1) as f64;
    println!("{ns:.1}");
    Ok(())
}

fn run_worker(cgroup: &Path, iterations: u64) -> Result<f64> {
    let exe = std::env::current_exe().context("locate own executable")?;
    let out = Command::new(exe)
        .args(["bench-worker", "--iterations", &iterations.to_string(), "--cgroup"])
        .arg(cgroup)
        .output()
        .context("run bench worker")?;
    ensure!(out.status.success(), "bench worker failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().context("parse bench worker output")
}

struct Daemon {
    child: Child,
    log_dir: PathBuf,
    /// The stderr drain thread; yields the daemon's last stats line.
    stats: std::thread::JoinHandle<String>,
}

impl Daemon {
    fn start(log_dir: &Path) -> Result<Daemon> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["run", "--stdout", "none", "--no-event-log", "--log-dir"])
            .arg(log_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start boxwatch run")?;
        let stderr = child.stderr.take().context("daemon stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("boxwatch: ready") => break,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.wait();
                    bail!("daemon exited before it was ready");
                }
            }
        }
        // Keep draining stderr so the daemon never blocks on it; keep the last stats line.
        let stats = std::thread::spawn(move || {
            lines.map_while(Result::ok).filter(|l| l.contains("boxwatch: stats")).last().unwrap_or_default()
        });
        Ok(Daemon { child, log_dir: log_dir.to_path_buf(), stats })
    }

    /// (VmRSS, VmHWM) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (get("VmRSS:"), get("VmHWM:"))
    }

    /// SIGTERM, wait; returns the daemon's final stats line.
    fn stop(mut self) -> Result<String> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait()?;
        ensure!(st.success(), "daemon exited with {st} (logs in {})", self.log_dir.display());
        Ok(self.stats.join().unwrap_or_default())
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[derive(Debug, Serialize)]
struct CaseResult {
    case: &'static str,
    baseline_ns: Vec<f64>,
    monitored_ns: Vec<f64>,
    baseline_median_ns: f64,
    monitored_median_ns: f64,
    added_ns: f64,
    ratio: f64,
}

/// Run count and time of one BPF program of the monitor, over the monitored phases.
#[derive(Debug, Default, Serialize)]
struct ProgResult {
    program: String,
    runs: u64,
    run_time_ns: u64,
}

/// Programs of boxwatch's monitor object, by their (15-character) kernel names.
fn is_monitor_prog(name: &str) -> bool {
    ["enter_", "exit_", "handle_", "fallback_sys"].iter().any(|p| name.starts_with(p))
}

#[derive(Debug, Serialize)]
struct BenchResult {
    kernel: String,
    iterations: u64,
    rounds: u64,
    cases: Vec<CaseResult>,
    daemon_rss_kib: u64,
    daemon_hwm_kib: u64,
    daemon_final_stats: String,
    bpf_programs: Vec<ProgResult>,
}

struct BenchCgroups {
    dirs: Vec<PathBuf>,
}

impl Drop for BenchCgroups {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let root = cgroup2_root()?;
    let parent = root.join("boxwatch-bench");
    let id: String =
        format!("{:016x}", u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(4);
    let container = parent.join(format!("docker-{id}.scope"));
    let host = root.join("boxwatch-bench-host");
    let guard = BenchCgroups { dirs: vec![parent.clone(), container.clone(), host.clone()] };
    for d in &guard.dirs {
        if !d.exists() {
            std::fs::create_dir(d).with_context(|| format!("create cgroup {}", d.display()))?;
        }
    }
    let log_dir = std::env::temp_dir().join(format!("boxwatch-bench-{}", std::process::id()));
    let cases: [(&'static str, &Path); 2] =
        [("monitored container process", &container), ("filtered-out host process", &host)];
    let mut base = vec![Vec::new(); cases.len()];
    let mut mon = vec![Vec::new(); cases.len()];
    let (mut rss, mut hwm) = (0, 0);
    let mut progs: std::collections::BTreeMap<String, ProgResult> = std::collections::BTreeMap::new();
    let mut final_stats = String::new();
    eprintln!(
        "boxwatch bench: {} rounds x {} openat+close per case (interleaved: no monitor / monitor)",
        args.rounds, args.iterations
    );
    for round in 0..args.rounds {
        for (i, (_, cg)) in cases.iter().enumerate() {
            base[i].push(run_worker(cg, args.iterations)?);
        }
        let d = Daemon::start(&log_dir)?;
        std::thread::sleep(Duration::from_millis(200));
        for (i, (_, cg)) in cases.iter().enumerate() {
            mon[i].push(run_worker(cg, args.iterations)?);
        }
        // Kernel-side cost per program (BPF_ENABLE_STATS) in a separate, untimed pass of the
        // monitored case: the accounting itself adds two clock reads per program run.
        let stats_on = boxwatch_bpf::stats::enable();
        let before = boxwatch_bpf::stats::all_programs();
        run_worker(&container, args.iterations / 2)?;
        if stats_on.is_ok() {
            for p in boxwatch_bpf::stats::all_programs().into_iter().filter(|p| is_monitor_prog(&p.name)) {
                let b = before.iter().find(|b| b.id == p.id);
                let e = progs
                    .entry(p.name.clone())
                    .or_insert_with(|| ProgResult { program: p.name.clone(), ..Default::default() });
                e.runs += p.run_cnt - b.map_or(0, |b| b.run_cnt);
                e.run_time_ns += p.run_time_ns - b.map_or(0, |b| b.run_time_ns);
            }
        }
        drop(stats_on);
        let (r, h) = d.rss_kib();
        rss = rss.max(r);
        hwm = hwm.max(h);
        final_stats = d.stop()?;
        eprintln!("  round {}: done", round + 1);
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut results = Vec::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        let b = median(&mut base[i].clone());
        let m = median(&mut mon[i].clone());
        results.push(CaseResult {
            case: name,
            baseline_ns: base[i].clone(),
            monitored_ns: mon[i].clone(),
            baseline_median_ns: b,
            monitored_median_ns: m,
            added_ns: m - b,
            ratio: m / b,
        });
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let mut out = std::io::stdout().lock();
    writeln!(out, "openat+close, ns per operation (median of {} rounds, kernel {kernel})", args.rounds)?;
    writeln!(
        out,
        "{:<30} {:>10} {:>10} {:>10} {:>7}  min..max monitored",
        "case", "no monitor", "monitor", "added", "ratio"
    )?;
    for r in &results {
        let (lo, hi) = r.monitored_ns.iter().fold((f64::MAX, 0f64), |(l, h), &v| (l.min(v), h.max(v)));
        writeln!(
            out,
            "{:<30} {:>10.0} {:>10.0} {:>+10.0} {:>7.2}  {lo:.0}..{hi:.0}",
            r.case, r.baseline_median_ns, r.monitored_median_ns, r.added_ns, r.ratio
        )?;
    }
    writeln!(out, "daemon RSS: {:.1} MiB (peak {:.1} MiB)", rss as f64 / 1024.0, hwm as f64 / 1024.0)?;
    let mut progs: Vec<ProgResult> = progs.into_values().filter(|p| p.runs > 0).collect();
    progs.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
    if !progs.is_empty() {
        writeln!(out, "BPF programs, monitored container process (separate pass with BPF_ENABLE_STATS):")?;
        writeln!(out, "{:<18} {:>12} {:>10} {:>12}", "program", "runs", "ns/run", "total ms")?;
        for p in progs.iter().take(10) {
            writeln!(
                out,
                "{:<18} {:>12} {:>10.0} {:>12.1}",
                p.program,
                p.runs,
                p.run_time_ns as f64 / p.runs as f64,
                p.run_time_ns as f64 / 1e6
            )?;
        }
    }
    writeln!(out, "daemon final stats: {}", final_stats.trim())?;
    let result = BenchResult {
        kernel,
        iterations: args.iterations,
        rounds: args.rounds,
        cases: results,
        daemon_rss_kib: rss,
        daemon_hwm_kib: hwm,
        daemon_final_stats: final_stats.trim().to_string(),
        bpf_programs: progs,
    };
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}
