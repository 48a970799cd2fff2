//! The workloads, run as `boxwatch-bench worker …` either on the host or
//! inside a container (the binary is bind-mounted there). Each prints one
//! JSON object on stdout.

use std::ffi::CString;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// openat(/etc/hostname) + close.
    Open,
    /// fork + execve(/bin/true) + waitpid.
    Exec,
    /// socket + connect to a listener on 127.0.0.1 (same thread) + accept + close both.
    Connect,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Open, Op::Exec, Op::Connect];

    pub fn name(self) -> &'static str {
        match self {
            Op::Open => "openat+close",
            Op::Exec => "fork+exec /bin/true",
            Op::Connect => "TCP connect (loopback)",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Exec => "exec",
            Op::Connect => "connect",
        }
    }
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(subcommand)]
    pub job: Job,
}

#[derive(Debug, clap::Subcommand)]
pub enum Job {
    /// Time `iterations` operations (after a 10 % warm-up); prints `{"ns_per_op": …}`.
    Time {
        #[arg(long, value_enum)]
        op: Op,
        #[arg(long)]
        iterations: u64,
    },
    /// openat+close at `rate` per second (0: as fast as possible) for `seconds`,
    /// on `threads` threads; prints `{"ops": …, "seconds": …}`.
    Load {
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 1)]
        threads: u64,
    },
    /// `count` times: note CLOCK_REALTIME, open `path` read-only, close; sleep
    /// `interval_ms`. Prints `{"pid": …, "times_ns": […]}`.
    Trigger {
        #[arg(long)]
        path: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Fork `count` children that wait; hold them `seconds`, then kill them.
    Spawn {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        seconds: f64,
    },
}

pub fn run(args: WorkerArgs) -> Result<()> {
    let out = match args.job {
        Job::Time { op, iterations } => {
            let ns = time_op(op, iterations)?;
            serde_json::json!({ "ns_per_op": ns })
        }
        Job::Load { rate, seconds, threads } => {
            let (ops, secs) = load(rate, seconds, threads.max(1))?;
            serde_json::json!({ "ops": ops, "seconds": secs })
        }
        Job::Trigger { path, count, interval_ms } => {
            let times = trigger(&path, count, Duration::from_millis(interval_ms))?;
            serde_json::json!({ "pid": std::process::id(), "times_ns": times })
        }
        Job::Spawn { count, seconds } => {
            let n = spawn(count, Duration::from_secs_f64(seconds))?;
            serde_json::json!({ "spawned": n })
        }
    };
    println!("{out}");
    Ok(())
}

/// CLOCK_REALTIME in ns (what alert timestamps and the bench's receive times use).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct OpenOp {
    path: CString,
}

impl OpenOp {
    fn new(path: &str) -> Result<OpenOp> {
        Ok(OpenOp { path: CString::new(path).context("path with NUL")? })
    }

    fn once(&self) {
        // SAFETY: path is a valid C string; the fd is closed right away.
        unsafe {
            let fd = libc::openat(libc::AT_FDCWD, self.path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }
}

struct ExecOp {
    path: CString,
    argv: [*const libc::c_char; 2],
}

impl ExecOp {
    fn new() -> ExecOp {
        let path = CString::new("/bin/true").expect("no NUL");
        let argv = [path.as_ptr(), std::ptr::null()];
        ExecOp { path, argv }
    }

    fn once(&self) -> Result<()> {
        // SAFETY: the child only calls async-signal-safe execv/_exit; argv
        // points into self.path, alive for the call.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe {
                libc::execv(self.path.as_ptr(), self.argv.as_ptr());
                libc::_exit(127);
            }
        }
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!("/bin/true exited with status {status:#x}");
        }
        Ok(())
    }
}

/// Client and server in one thread: connect (the loopback handshake
/// completes in the kernel), accept, close both. No second thread, so no
/// accept backlog to overflow and no SYN retransmit to wait for.
struct ConnectOp {
    addr: libc::sockaddr_in,
    listener: TcpListener,
}

impl ConnectOp {
    fn new() -> Result<ConnectOp> {
        let listener =
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        };
        Ok(ConnectOp { addr, listener })
    }

    fn once(&self) -> Result<()> {
        // SAFETY: plain socket calls on a descriptor we own and close; the
        // sockaddr and linger structs outlive the calls.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                bail!("socket: {}", std::io::Error::last_os_error());
            }
            // RST on close: no TIME_WAIT, so the ephemeral ports never run out.
            let lg = libc::linger { l_onoff: 1, l_linger: 0 };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&lg as *const libc::linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            );
            let rc = libc::connect(
                fd,
                (&self.addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            let err = std::io::Error::last_os_error();
            if rc != 0 {
                libc::close(fd);
                bail!("connect 127.0.0.1: {err}");
            }
            let server = self.listener.accept().context("accept");
            libc::close(fd);
            drop(server?);
        }
        Ok(())
    }
}

/// Runs `once` `warm` times untimed, then `iterations` times timed.
fn timed(warm: u64, iterations: u64, mut once: impl FnMut() -> Result<()>) -> Result<Duration> {
    for _ in 0..warm {
        once()?;
    }
    let t = Instant::now();
    for _ in 0..iterations {
        once()?;
    }
    Ok(t.elapsed())
}

fn time_op(op: Op, iterations: u64) -> Result<f64> {
    let warm = iterations / 10 + 1;
    let t = match op {
        Op::Open => {
            let o = OpenOp::new("/etc/hostname")?;
            timed(warm, iterations, || {
                o.once();
                Ok(())
            })?
        }
        Op::Exec => {
            let o = ExecOp::new();
            timed(warm, iterations, || o.once())?
        }
        Op::Connect => {
            let o = ConnectOp::new()?;
            timed(warm, iterations, || o.once())?
        }
    };
    Ok(t.as_nanos() as f64 / iterations.max(1) as f64)
}

/// Paced openat+close: every thread keeps its share of `rate` over wall time
/// (checked every 64 ops, sleeping when ahead). Returns (ops, seconds).
fn load(rate: u64, seconds: f64, threads: u64) -> Result<(u64, f64)> {
    let start = Instant::now();
    let dur = Duration::from_secs_f64(seconds);
    let per_thread = rate as f64 / threads as f64;
    let total: u64 = std::thread::scope(|s| -> Result<u64> {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || -> Result<u64> {
                    let o = OpenOp::new("/etc/hostname")?;
                    let mut n = 0u64;
                    loop {
                        for _ in 0..64 {
                            o.once();
                        }
                        n += 64;
                        let el = start.elapsed();
                        if el >= dur {
                            return Ok(n);
                        }
                        if per_thread > 0.0 {
                            let due = Duration::from_secs_f64(n as f64 / per_thread);
                            if due > el {
                                std::thread::sleep((due - el).min(dur - el));
                            }
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("load thread panicked"))?).sum()
    })?;
    Ok((total, start.elapsed().as_secs_f64()))
}

fn trigger(path: &str, count: u64, interval: Duration) -> Result<Vec<u64>> {
    let o = OpenOp::new(path)?;
    let mut times = Vec::with_capacity(count as usize);
    for _ in 0..count {
        times.push(realtime_ns());
        o.once();
        std::thread::sleep(interval);
    }
    Ok(times)
}

fn spawn(count: u64, hold: Duration) -> Result<u64> {
    let mut kids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        // SAFETY: the child only calls pause/_exit (async-signal-safe).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe {
                libc::pause();
                libc::_exit(0);
            }
        }
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            kill_all(&kids);
            bail!("fork #{}: {e}", kids.len() + 1);
        }
        kids.push(pid);
    }
    std::thread::sleep(hold);
    kill_all(&kids);
    Ok(kids.len() as u64)
}

fn kill_all(kids: &[libc::pid_t]) {
    for &k in kids {
        // SAFETY: signalling and reaping our own children.
        unsafe { libc::kill(k, libc::SIGKILL) };
    }
    for &k in kids {
        // SAFETY: as above.
        unsafe { libc::waitpid(k, std::ptr::null_mut(), 0) };
    }
}
