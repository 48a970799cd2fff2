//! Runs the real `boxwatch run` binary (JSON lines on stdout) and collects
//! what it prints, so tests assert on exactly what users get.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `boxwatch run` daemon and the JSON lines it printed so far.
pub struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<Value>>>,
    /// Every stdout line as printed (human output is not JSON).
    raw: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub log_dir: PathBuf,
}

impl Daemon {
    /// Start `boxwatch run --output json` with `extra` args; returns once it printed "ready".
    pub fn start(extra: &[&str]) -> Daemon {
        Daemon::spawn(extra, true)
    }

    /// Start `boxwatch run --output human` with `extra` args: stdout lines are kept as
    /// printed ([`Daemon::raw_lines`]), not parsed.
    pub fn start_human(extra: &[&str]) -> Daemon {
        let mut args = vec!["--output", "human"];
        args.extend_from_slice(extra);
        Daemon::spawn(&args, false)
    }

    fn spawn(extra: &[&str], json: bool) -> Daemon {
        assert!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0,
            "privileged tests need root (they load BPF programs): run scripts/test.sh as root"
        );
        let log_dir = std::env::temp_dir().join(format!("boxwatch-test-{}", super::random_hex(6)));
        let mut child = Command::new(env!("CARGO_BIN_EXE_boxwatch"))
            // Port 0: tests run daemons in parallel; the ready line names the bound address.
            // Tests assert on individual alerts: folding is off unless a test asks for it
            // (a later `--aggregate-window` in `extra` overrides this one).
            .args([
                "run",
                "--output",
                "json",
                "--metrics-addr",
                "127.0.0.1:0",
                "--aggregate-window",
                "0",
                "--log-dir",
            ])
            .arg(&log_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn boxwatch run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let (l2, r2) = (Arc::clone(&lines), Arc::clone(&raw));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if json {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("boxwatch printed a line that is not JSON ({e}): {line}"));
                    l2.lock().unwrap().push(v);
                }
                r2.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let e2 = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e2.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon { child: Some(child), lines, raw, stderr, log_dir };
        let t0 = Instant::now();
        while !d.stderr_text().contains("boxwatch: ready") {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                std::thread::sleep(Duration::from_millis(100)); // let the stderr thread catch up
                panic!("boxwatch exited ({st}) before it was ready:\n{}", d.stderr_text());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "boxwatch did not become ready:\n{}",
                d.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// The address of the daemon's HTTP endpoint (from its ready line).
    pub fn http_addr(&self) -> String {
        let text = self.stderr_text();
        text.split("metrics on http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no metrics address in the ready line:\n{text}"))
            .to_string()
    }

    /// GET `path` from the daemon's HTTP endpoint: the whole response (status line, headers, body).
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.http_addr();
        let mut c = std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        c.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send request");
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap_or_else(|e| panic!("read response to GET {path}: {e}"));
        body
    }

    /// GET `path`: the status code and the body parsed as JSON (panics if it is not JSON).
    pub fn http_json(&self, path: &str) -> (u16, Value) {
        let r = self.http_get(path);
        let status =
            r.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("GET {path}: {r}"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap_or_else(|| panic!("GET {path}: {r}"));
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "GET {path}: {r}");
        (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}")))
    }

    /// Process id of the daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Every stdout line so far, as printed.
    pub fn raw_lines(&self) -> Vec<String> {
        self.raw.lock().unwrap().clone()
    }

    /// All JSON lines so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Event lines (`"type": "event"`) whose container id is `id`.
    pub fn container_events(&self, id: &str) -> Vec<Value> {
        self.lines().into_iter().filter(|v| v["type"] == "event" && v["container"]["id"] == id).collect()
    }

    /// Alert lines (Falco shape) for container `id`.
    pub fn container_alerts(&self, id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v.get("rule").is_some() && v["output_fields"]["boxwatch.container.full_id"] == id)
            .collect()
    }

    /// Wait until a line matching `pred` appears; panics with context after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some(v) = self.lines().into_iter().find(|v| pred(v)) {
                return v;
            }
            if t0.elapsed() > timeout {
                let lines = self.lines();
                let tail: Vec<String> = lines.iter().rev().take(40).rev().map(|v| v.to_string()).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {} lines seen, last ones:\n{}\nstderr:\n{}",
                    lines.len(),
                    tail.join("\n"),
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait, and return the final stats line from stderr.
    pub fn stop(mut self) -> String {
        self.terminate()
    }

    /// Like [`Daemon::stop`], but the log directory is left for the caller to inspect (and remove).
    pub fn stop_keep_logs(mut self) -> String {
        let stats = self.terminate();
        self.log_dir = PathBuf::new();
        stats
    }

    fn terminate(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let st = c.wait().expect("wait for boxwatch");
            std::thread::sleep(Duration::from_millis(50));
            assert!(st.success(), "boxwatch exited with {st}:\n{}", self.stderr_text());
        }
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l.contains("boxwatch: stats"))
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.log_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}
