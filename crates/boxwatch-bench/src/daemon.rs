//! The real `boxwatch run` daemon under test: started with the benchmark's
//! flags, read through what users read (its stdout, /metrics, /proc).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::worker::realtime_ns;

/// An alert line from the daemon's stdout and when the bench read it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at_ns: u64,
    pub alert: Value,
}

#[derive(Debug)]
pub struct Daemon {
    child: Child,
    metrics_addr: String,
    alerts: Arc<Mutex<Vec<Received>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `boxwatch run` with alerts as JSON lines on stdout, a private log dir
    /// and /metrics on a free port, plus `extra` flags. Returns once ready.
    pub fn start(
        boxwatch: &Path,
        log_dir: &Path,
        containerd_socket: &Path,
        extra: &[&str],
    ) -> Result<Daemon> {
        let mut child = Command::new(boxwatch)
            .args([
                "run",
                "--output",
                "json",
                "--stdout",
                "alerts",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-dir",
            ])
            .arg(log_dir)
            .arg("--containerd-socket")
            .arg(containerd_socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {} run", boxwatch.display()))?;
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().context("daemon stdout")?;
        let a = Arc::clone(&alerts);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let at_ns = realtime_ns();
                if let Ok(alert) = serde_json::from_str::<Value>(&line) {
                    a.lock().unwrap_or_else(|e| e.into_inner()).push(Received { at_ns, alert });
                }
            }
        });
        let err = child.stderr.take().context("daemon stderr")?;
        let e = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let metrics_addr = loop {
            let text = stderr.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
            if let Some(rest) = text.split("metrics on http://").nth(1)
                && text.contains("boxwatch: ready")
            {
                break rest.split('/').next().unwrap_or_default().to_string();
            }
            if let Some(st) = child.try_wait()? {
                bail!("boxwatch run exited ({st}) before it was ready:\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("boxwatch run not ready after 60 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Daemon { child, metrics_addr, alerts, stderr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Alerts read from stdout so far.
    pub fn alerts(&self) -> Vec<Received> {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The daemon's /metrics, as `name{labels}` → value.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let mut c = std::net::TcpStream::connect(&self.metrics_addr)
            .with_context(|| format!("connect to /metrics at {}", self.metrics_addr))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(c, "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.metrics_addr)?;
        let mut body = String::new();
        c.read_to_string(&mut body).context("read /metrics")?;
        Ok(parse_metrics(&body))
    }

    /// Sum of every `boxwatch_drops_total{cause=…}`, by cause.
    pub fn drops(&self) -> Result<BTreeMap<String, f64>> {
        Ok(self
            .metrics()?
            .into_iter()
            .filter_map(|(k, v)| {
                let cause = k.strip_prefix("boxwatch_drops_total{cause=\"")?.strip_suffix("\"}")?;
                Some((cause.to_string(), v))
            })
            .collect())
    }

    /// User + system CPU time of the daemon (all threads), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised comm: state is field 3; utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("parse /proc/pid/stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        ensure!(f.len() > 13, "short /proc/pid/stat");
        let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz)
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// RSS split as the kernel counts it: (anonymous, file-backed, shared memory) KiB.
    /// The ring buffer's pages are mapped twice and count twice in VmRSS.
    pub fn rss_split_kib(&self) -> (u64, u64, u64) {
        (self.status_kib("RssAnon:"), self.status_kib("RssFile:"), self.status_kib("RssShmem:"))
    }

    fn status_kib(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM and wait; returns the daemon's last stats line.
    pub fn stop(mut self) -> Result<String> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait()?;
        std::thread::sleep(Duration::from_millis(50)); // let the stderr reader finish
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ensure!(st.success(), "boxwatch run exited with {st}:\n{}", lines.join("\n"));
        Ok(lines.iter().rev().find(|l| l.contains("boxwatch: stats")).cloned().unwrap_or_default())
    }
}

/// Prometheus text → `name{labels}` → value (boxwatch's own series only).
pub fn parse_metrics(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| l.starts_with("boxwatch_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_parses_to_series() {
        let body = "HTTP/1.1 200 OK\r\n\r\n# HELP boxwatch_drops_total Events lost.\n# TYPE boxwatch_drops_total counter\n\
                    boxwatch_drops_total{cause=\"ringbuf_full\"} 3\nboxwatch_processes_live 12\nother_metric 1\nboxwatch_bad x\n";
        let m = parse_metrics(body);
        assert_eq!(m.get("boxwatch_drops_total{cause=\"ringbuf_full\"}"), Some(&3.0));
        assert_eq!(m.get("boxwatch_processes_live"), Some(&12.0));
        assert_eq!(m.len(), 2, "{m:?}");
    }
}
