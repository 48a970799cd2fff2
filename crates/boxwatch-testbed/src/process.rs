//! Running host commands with a hard (SIGKILL) timeout and captured output.

use std::fmt;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Result of a command run to completion (or killed on timeout).
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code. A process killed by signal N reports 128+N (as a shell
    /// would; `ctr` itself reports 137 for a container killed by SIGKILL).
    /// -1 if the run timed out.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// True if the timeout expired and the run was killed.
    pub timed_out: bool,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status == 0 && !self.timed_out
    }

    /// Panics with the full output unless the run exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status={}{} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            if self.timed_out { " (TIMED OUT, killed)" } else { "" },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

pub(crate) fn exit_code(st: ExitStatus) -> i32 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` with stdin = /dev/null and stdout/stderr captured. If it is
/// still running after `timeout`, calls `on_timeout` (e.g. `ctr task kill -s
/// KILL`), then SIGKILLs the process (`timeout -s KILL` semantics: `ctr`
/// forwards SIGTERM to a container init that ignores it).
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration, on_timeout: impl FnOnce()) -> RunOutput {
    try_run_with_timeout(cmd, timeout, on_timeout).unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

fn try_run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
    on_timeout: impl FnOnce(),
) -> std::io::Result<RunOutput> {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let out_rx = reader(child.stdout.take().unwrap());
    let err_rx = reader(child.stderr.take().unwrap());
    let deadline = start + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            timed_out = true;
            on_timeout();
            let _ = child.kill();
            break child.wait()?;
        }
        // Poll fast at first: most commands here take 5-200 ms.
        let waited = start.elapsed();
        std::thread::sleep(if waited < Duration::from_millis(300) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        });
    };
    let elapsed = start.elapsed();
    // A grandchild could keep a pipe open; don't hang on it.
    let grace = Duration::from_secs(2);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    Ok(RunOutput {
        status: if timed_out { -1 } else { exit_code(status) },
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
        elapsed,
    })
}

/// Runs a short host command (ctr against a live socket, runc, ...) with a
/// 60 s safety timeout. Never panics: a command that cannot be spawned
/// reports status -1 and the error in `stderr` (fit for use in `Drop`).
pub(crate) fn quick(cmd: &mut Command) -> RunOutput {
    try_run_with_timeout(cmd, Duration::from_secs(60), || {}).unwrap_or_else(|e| RunOutput {
        status: -1,
        stdout: String::new(),
        stderr: format!("spawn {cmd:?}: {e}"),
        timed_out: false,
        elapsed: Duration::ZERO,
    })
}
