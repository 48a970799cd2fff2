//! One `boxwatch run` watching every scenario; its JSON stdout is sorted by container.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, Default)]
struct Seen {
    /// Alerts by full container id.
    alerts: HashMap<String, Vec<Value>>,
    /// Containers whose "exited" line was printed.
    exited: std::collections::HashSet<String>,
    /// The last events of each container (for failure reports), bounded.
    events: HashMap<String, Vec<Value>>,
    bad_lines: u64,
}

/// The monitor under evaluation.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    seen: Arc<(Mutex<Seen>, Condvar)>,
    stderr: Arc<Mutex<Vec<String>>>,
    log_dir: PathBuf,
}

const KEEP_EVENTS: usize = 400;

impl Daemon {
    pub fn start(binary: &Path, log_dir: PathBuf) -> anyhow::Result<Daemon> {
        let mut child = Command::new(binary)
            .args([
                "run",
                "--output",
                "json",
                "--stdout",
                "all",
                "--no-runtime-lookup",
                "--no-metrics",
                "--no-event-log",
                "--aggregate-window",
                "0",
                "--log-dir",
            ])
            .arg(&log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {} run", binary.display()))?;
        let seen: Arc<(Mutex<Seen>, Condvar)> = Arc::default();
        let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = child.stdout.take().context("daemon stdout")?;
        let s2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let (m, cv) = &*s2;
                let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => absorb(&mut s, v),
                    Err(_) => s.bad_lines += 1,
                }
                cv.notify_all();
            }
        });
        let err = child.stderr.take().context("daemon stderr")?;
        let e2 = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e2.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut d = Daemon { child: Some(child), seen, stderr, log_dir };
        let t0 = Instant::now();
        while !d.stderr_text().contains("boxwatch: ready") {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                std::thread::sleep(Duration::from_millis(100));
                bail!("boxwatch exited ({st}) before it was ready:\n{}", d.stderr_text());
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("boxwatch did not become ready in 60 s:\n{}", d.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }

    /// The ready line (hooks, rules, kernel features).
    pub fn ready_line(&self) -> String {
        self.stderr_text().lines().find(|l| l.contains("boxwatch: ready")).unwrap_or("").to_string()
    }

    /// Wait for the container's "exited" line (every event of it is then processed), then
    /// return its alerts and its last events.
    pub fn collect(&self, id: &str, timeout: Duration) -> (Vec<Value>, Vec<Value>, bool) {
        let (m, cv) = &*self.seen;
        let deadline = Instant::now() + timeout;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        while !s.exited.contains(id) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = cv.wait_timeout(s, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let exited = s.exited.remove(id);
        let alerts = s.alerts.remove(id).unwrap_or_default();
        let events = s.events.remove(id).unwrap_or_default();
        (alerts, events, exited)
    }

    pub fn stop(mut self) -> String {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stderr_text().lines().rev().find(|l| l.contains("boxwatch: stats")).unwrap_or("").to_string()
    }
}

fn absorb(s: &mut Seen, v: Value) {
    if v.get("rule").is_some() {
        if let Some(id) = v["output_fields"]["boxwatch.container.full_id"].as_str() {
            s.alerts.entry(id.to_string()).or_default().push(v);
        }
    } else if v["type"] == "container" {
        if v["action"] == "exited"
            && let Some(id) = v["container"]["id"].as_str()
        {
            s.exited.insert(id.to_string());
        }
    } else if v["type"] == "event"
        && let Some(id) = v["container"]["id"].as_str()
    {
        if matches!(v["kind"].as_str(), Some("fork" | "exit")) {
            return;
        }
        let e = s.events.entry(id.to_string()).or_default();
        if e.len() >= KEEP_EVENTS {
            e.remove(0);
        }
        e.push(v);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}
