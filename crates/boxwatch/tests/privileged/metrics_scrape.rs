//! A real Prometheus server (Debian's `prometheus`) scrapes boxwatch's
//! /metrics: the target is up and the alert counters, drop counters and
//! process gauges are queryable through Prometheus' own API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

struct Prometheus {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_prometheus(target: &str) -> Prometheus {
    let bin = std::path::Path::new("/usr/bin/prometheus");
    assert!(
        bin.exists(),
        "prometheus is not installed: run `scripts/install-deps.sh --test` (Debian package prometheus)"
    );
    let dir = std::env::temp_dir().join(format!("boxwatch-prom-{}", random_hex(6)));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: boxwatch\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(bin)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus { child, addr, dir }
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    s.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Instant query through Prometheus' HTTP API; the result vector.
fn query(p: &Prometheus, q: &str) -> Vec<Value> {
    let enc: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let body = get(&p.addr, &format!("/api/v1/query?query={enc}")).unwrap_or_default();
    // Chunked transfer encoding: take the JSON object between the first '{' and the last '}'.
    let json = body.find('{').and_then(|a| body.rfind('}').map(|b| &body[a..=b])).unwrap_or("{}");
    serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn prometheus_scrapes_the_metrics_endpoint() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let text = d.stderr_text();
    let target = text
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address: {text}"))
        .to_string();
    let prom = start_prometheus(&target);
    let id = random_container_id();
    ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", "cat /etc/shadow >/dev/null"], T).assert_success();
    d.wait_for("the alert", T, |v| v["rule"] == "Sensitive file read in a container");

    let t0 = Instant::now();
    let rule_q = r#"boxwatch_alerts_total{rule="Sensitive file read in a container"}"#;
    loop {
        let up = query(&prom, r#"up{job="boxwatch"}"#);
        let alerts = query(&prom, rule_q);
        let drops = query(&prom, "boxwatch_drops_total");
        if up.first().is_some_and(|v| v["value"][1] == "1")
            && alerts
                .first()
                .is_some_and(|v| v["value"][1].as_str().and_then(|n| n.parse::<f64>().ok()) >= Some(1.0))
            && drops.len() >= 4
        {
            let causes: Vec<&str> = drops.iter().filter_map(|v| v["metric"]["cause"].as_str()).collect();
            for c in ["kernel_ringbuf_full", "userspace_queue_full", "decode_errors"] {
                assert!(causes.contains(&c), "{c} not scraped: {causes:?}");
            }
            let rss = query(&prom, "process_resident_memory_bytes");
            assert!(
                rss.first().and_then(|v| v["value"][1].as_str()?.parse::<f64>().ok()).unwrap_or(0.0) > 1e6
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "Prometheus did not scrape boxwatch: up={up:?} alerts={alerts:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
