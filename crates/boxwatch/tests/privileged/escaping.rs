//! Untrusted strings reach the operator's terminal escaped: a file name with an ANSI
//! escape sequence and a newline, created in a real container, is printed as
//! `\u{1b}…\u{a}…` by `boxwatch run --output human` and by `boxwatch alerts`, and stays
//! intact (as JSON escapes) in alerts.jsonl and `boxwatch alerts --json`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const T: Duration = Duration::from_secs(20);
const NAME: &str = "/etc/bw-\x1b[31mred\nline";
const ESCAPED: &str = "/etc/bw-\\u{1b}[31mred\\u{a}line";

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn alerts_cmd(db: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_boxwatch"))
        .arg("alerts")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run boxwatch alerts");
    assert!(out.status.success(), "boxwatch alerts {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn a_hostile_file_name_is_escaped_on_terminals_and_intact_in_json() {
    let scratch = Scratch(std::env::temp_dir().join(format!("boxwatch-escaping-{}", random_hex(6))));
    let db = scratch.0.join("alerts.db");
    let ctrd = Containerd::start();
    let d = Daemon::start_human(&["--history", db.to_str().unwrap()]);
    let id = random_container_id();
    ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", "touch \"/etc/bw-$(printf '\\033[31mred\\nline')\""], T)
        .assert_success();

    // Human stdout: the alert line names the file escaped, on one line.
    let short = &id[..12];
    let t0 = Instant::now();
    let line = loop {
        let found = d.raw_lines().into_iter().find(|l| {
            l.starts_with("ALERT Notice [Write below /etc in a container]")
                && l.contains(short)
                && l.contains("bw-")
        });
        if let Some(l) = found {
            break l;
        }
        assert!(t0.elapsed() < T, "no human alert line for {short}:\n{}", d.raw_lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(line.contains(&format!("file={ESCAPED} ")), "{line}");
    // The event lines of that container show the name escaped too.
    let t0 = Instant::now();
    while !d.raw_lines().iter().any(|l| l.contains(short) && l.contains(" openat ") && l.contains(ESCAPED)) {
        assert!(t0.elapsed() < T, "no human openat line for {short}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for l in d.raw_lines() {
        assert!(!l.contains('\x1b'), "a raw escape character reached stdout: {l:?}");
        assert!(!l.starts_with("line"), "a newline from a file name split a line: {l:?}");
    }

    // alerts.jsonl: the JSON line has the name with JSON escapes, and it parses back intact.
    let log = std::fs::read_to_string(d.log_dir.join("alerts.jsonl")).unwrap();
    let mine: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
    let write = mine
        .iter()
        .find(|l| l.contains("Write below /etc"))
        .unwrap_or_else(|| panic!("no alerts.jsonl line: {mine:?}"));
    assert!(write.contains(r#""fd.name":"/etc/bw-\u001b[31mred\nline""#), "{write}");
    let v: Value = serde_json::from_str(write).unwrap();
    assert_eq!(v["output_fields"]["fd.name"], NAME);

    // `boxwatch alerts` (the history is written by its own thread: wait for it).
    let t0 = Instant::now();
    let json = loop {
        let j = alerts_cmd(&db, &["--json", "--container", &id]);
        if j.contains("Write below /etc") {
            break j;
        }
        assert!(t0.elapsed() < T, "the alert never reached the history");
        std::thread::sleep(Duration::from_millis(100));
    };
    let stored: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(stored.iter().any(|v| v["output_fields"]["fd.name"] == NAME), "{json}");
    let human = alerts_cmd(&db, &["--container", &id]);
    assert!(!human.contains('\x1b'), "{human:?}");
    assert_eq!(human.lines().count(), stored.len(), "one line per alert: {human:?}");
    assert!(human.lines().any(|l| l.contains("Write below /etc") && l.contains(ESCAPED)), "{human}");
    d.stop();
}
