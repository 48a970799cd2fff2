//! The monitors compared in one run: none, boxwatch, the libbpf-tools trio
//! users would run for the same visibility, a bpftrace script with
//! equivalent probes, and a bpftrace script with empty openat probes (the
//! tracepoint floor every tracer pays).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use boxwatch_bpf::stats::{ProgStats, all_programs};
use serde::Serialize;

use crate::daemon::Daemon;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    None,
    Boxwatch,
    LibbpfTools,
    Bpftrace,
    Floor,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::None => "no monitor",
            Tool::Boxwatch => "boxwatch",
            Tool::LibbpfTools => "libbpf-tools",
            Tool::Bpftrace => "bpftrace",
            Tool::Floor => "tracepoint floor",
        }
    }
}

/// bpftrace with the probes the peers use: openat enter/exit (path and
/// result), execve, connect.
const BPFTRACE_SCRIPT: &str = r#"
tracepoint:syscalls:sys_enter_openat { @path[tid] = args->filename; }
tracepoint:syscalls:sys_exit_openat /@path[tid]/ {
  printf("open %d %s %s %d\n", pid, comm, str(@path[tid]), args->ret);
  delete(@path[tid]);
}
tracepoint:syscalls:sys_enter_execve { printf("exec %d %s %s\n", pid, comm, str(args->filename)); }
tracepoint:sched:sched_process_exec { printf("exec-done %d %s\n", pid, comm); }
tracepoint:syscalls:sys_enter_connect { printf("connect %d %s %d\n", pid, comm, args->fd); }
"#;

/// Two empty programs on the openat tracepoint pair: what any tracer of
/// openat costs before doing any work.
const FLOOR_SCRIPT: &str = r#"
tracepoint:syscalls:sys_enter_openat { }
tracepoint:syscalls:sys_exit_openat { }
"#;

/// What a run needs to start a monitor.
#[derive(Debug)]
pub struct Env<'a> {
    pub boxwatch: &'a Path,
    pub containerd_socket: &'a Path,
    pub scratch: &'a Path,
}

/// A started monitor. Dropping it stops it.
#[derive(Debug)]
pub struct Running {
    pub tool: Tool,
    pub daemon: Option<Daemon>,
    kids: Vec<(String, Child)>,
    progs_before: BTreeSet<u32>,
    /// For libbpf-tools: which connect tracer attached (tcpconnect needs kprobes).
    pub variant: String,
}

fn prog_ids() -> BTreeSet<u32> {
    all_programs().into_iter().map(|p| p.id).collect()
}

/// Wait until `n` more BPF programs than `before` are loaded and the count
/// has been stable for 300 ms (tools attach after load), or a child exits.
fn wait_attached(kids: &mut [(String, Child)], before: &BTreeSet<u32>, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        for (name, k) in kids.iter_mut() {
            if let Some(st) = k.try_wait()? {
                bail!("{name} exited ({st}) while attaching");
            }
        }
        let now = prog_ids().difference(before).count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        if now >= n && since.elapsed() >= Duration::from_millis(300) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("monitor did not attach within 30 s ({now} of {n} programs loaded)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(scratch: &Path, name: &str, cmd: &mut Command) -> Result<(String, Child)> {
    let out = File::create(scratch.join(format!("{name}.out")))?;
    let err = File::create(scratch.join(format!("{name}.err")))?;
    let child =
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().with_context(|| {
            format!("start {name} (install the peers with scripts/install-deps.sh --bench)")
        })?;
    Ok((name.to_string(), child))
}

fn stderr_of(scratch: &Path, name: &str) -> String {
    std::fs::read_to_string(scratch.join(format!("{name}.err"))).unwrap_or_default()
}

impl Running {
    pub fn start(tool: Tool, env: &Env, boxwatch_args: &[&str]) -> Result<Running> {
        let progs_before = prog_ids();
        let mut r = Running { tool, daemon: None, kids: Vec::new(), progs_before, variant: String::new() };
        match tool {
            Tool::None => {}
            Tool::Boxwatch => {
                let log_dir = env.scratch.join("boxwatch-logs");
                let _ = std::fs::remove_dir_all(&log_dir);
                r.daemon = Some(Daemon::start(env.boxwatch, &log_dir, env.containerd_socket, boxwatch_args)?);
            }
            Tool::LibbpfTools => {
                for t in ["opensnoop", "execsnoop"] {
                    r.kids.push(spawn(env.scratch, t, &mut Command::new(format!("/usr/sbin/{t}")))?);
                }
                // tcpconnect attaches kprobes (or fentry); kernels without either get
                // tcpstates, which sees connects on the sock:inet_sock_set_state tracepoint.
                let before = prog_ids();
                let mut tc =
                    vec![spawn(env.scratch, "tcpconnect", &mut Command::new("/usr/sbin/tcpconnect"))?];
                match wait_attached(&mut tc, &before, 1) {
                    Ok(()) => {
                        r.variant = "opensnoop+execsnoop+tcpconnect".into();
                        r.kids.append(&mut tc);
                    }
                    Err(_) => {
                        let why = stderr_of(env.scratch, "tcpconnect");
                        let why = why.lines().last().unwrap_or("exited").to_string();
                        r.variant = format!("opensnoop+execsnoop+tcpstates (tcpconnect: {why})");
                        r.kids.push(spawn(
                            env.scratch,
                            "tcpstates",
                            &mut Command::new("/usr/sbin/tcpstates"),
                        )?);
                    }
                }
                wait_attached(&mut r.kids, &r.progs_before, 3)?;
            }
            Tool::Bpftrace | Tool::Floor => {
                let (name, script, n) = if tool == Tool::Bpftrace {
                    ("bpftrace", BPFTRACE_SCRIPT, 5)
                } else {
                    ("floor", FLOOR_SCRIPT, 2)
                };
                let file = env.scratch.join(format!("{name}.bt"));
                std::fs::write(&file, script)?;
                r.kids.push(spawn(env.scratch, name, Command::new("bpftrace").arg(&file))?);
                wait_attached(&mut r.kids, &r.progs_before, n)
                    .with_context(|| format!("bpftrace: {}", stderr_of(env.scratch, name)))?;
            }
        }
        Ok(r)
    }

    /// Programs this monitor loaded, with their current run statistics.
    pub fn programs(&self) -> Vec<ProgStats> {
        all_programs().into_iter().filter(|p| !self.progs_before.contains(&p.id)).collect()
    }

    /// Stops the monitor; for boxwatch returns its final stats line.
    pub fn stop(mut self) -> Result<String> {
        let mut last = String::new();
        if let Some(d) = self.daemon.take() {
            last = d.stop()?;
        }
        self.kill_kids();
        Ok(last)
    }

    fn kill_kids(&mut self) {
        for (_, k) in &mut self.kids {
            // SAFETY: kill has no memory-safety preconditions. SIGINT: the tools detach cleanly.
            unsafe { libc::kill(k.id() as i32, libc::SIGINT) };
        }
        for (_, k) in &mut self.kids {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(k.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = k.kill();
            let _ = k.wait();
        }
        self.kids.clear();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_kids();
    }
}

/// Checks the peer tools are installed (the bench installs nothing itself;
/// `scripts/bench.sh` does).
pub fn check_peers() -> Result<()> {
    let missing: Vec<&str> =
        ["/usr/sbin/opensnoop", "/usr/sbin/execsnoop", "/usr/sbin/tcpconnect", "/usr/sbin/tcpstates"]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .chain(which("bpftrace").is_none().then_some("bpftrace"))
            .collect();
    if !missing.is_empty() {
        bail!(
            "peer tools missing: {} (Debian/Ubuntu: apt-get install -y libbpf-tools bpftrace, or scripts/install-deps.sh --bench)",
            missing.join(", ")
        );
    }
    Ok(())
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(cmd)).find(|p| p.exists())
}
