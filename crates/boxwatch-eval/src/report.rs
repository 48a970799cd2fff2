//! The seed's table, DETECTION.md and the JSON results.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Outcome;
use crate::corpus::CLASSES;

const TITLES: [&str; 4] = [
    "Container Escape Attempts",
    "Privilege Escalation",
    "Suspicious Network Activity",
    "File System Tampering",
];

fn pct(n: usize, d: usize) -> String {
    if d == 0 { "n/a".into() } else { format!("{:.0}%", 100.0 * n as f64 / d as f64) }
}

/// The seed's table: per class, attacks detected with an alert of that class (Warning+),
/// and benign workloads that raised a Warning+ alert of that class.
pub fn table(results: &[Outcome]) -> String {
    let benign: Vec<&Outcome> = results.iter().filter(|o| o.scenario.is_benign()).collect();
    let mut t = String::from(
        "| Threat Type | Detection Rate | False Positives | attacks detected | benign workloads alerted (this class) |\n|---|---|---|---|---|\n",
    );
    for (class, title) in CLASSES.iter().zip(TITLES) {
        let attacks: Vec<&Outcome> = results.iter().filter(|o| o.scenario.class == *class).collect();
        let det = attacks.iter().filter(|o| o.detected()).count();
        let fp = benign.iter().filter(|o| o.actionable().any(|a| a.1 == *class)).count();
        let _ = writeln!(
            t,
            "| {title} | {} | {} | {det}/{} | {fp}/{} |",
            pct(det, attacks.len()),
            pct(fp, benign.len()),
            attacks.len(),
            benign.len()
        );
    }
    let any_fp = benign.iter().filter(|o| o.false_positive()).count();
    let _ = writeln!(
        t,
        "\nBenign workloads with any Warning-or-above alert: {any_fp}/{} ({}).",
        benign.len(),
        pct(any_fp, benign.len())
    );
    let shell_notice = benign.iter().filter(|o| o.alerts.iter().any(|a| a.0 == "shell-in-container")).count();
    let _ = writeln!(
        t,
        "Benign workloads raising the `Shell spawned in a container` Notice (all of them run `sh -c` or shell scripts): {shell_notice}/{}.",
        benign.len()
    );
    t
}

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn alerts_cell(o: &Outcome) -> String {
    let mut v: Vec<String> = Vec::new();
    for a in &o.alerts {
        let s = format!("{} ({}, {})", a.0, a.1, a.2);
        if !v.contains(&s) {
            v.push(s);
        }
    }
    if v.is_empty() { "—".into() } else { v.join("<br>") }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(results: &[Outcome], table: &str, wall: Duration, binary: &Path, stats: &str) -> String {
    let mut m = String::new();
    let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let kernel = sh("uname", &["-r"]);
    let commit = sh("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = if sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (+ local changes)"
    };
    let attacks = results.iter().filter(|o| !o.scenario.is_benign()).count();
    let benign = results.len() - attacks;
    let _ = writeln!(m, "# boxwatch detection evaluation\n");
    let _ = writeln!(
        m,
        "Produced by `scripts/eval.sh` ({date}, kernel {kernel}, commit {commit}{dirty}, binary `{}`): \
         {attacks} attack scenarios and {benign} benign workloads from `eval/*.toml`, each run in its own \
         containerd + runc container while one `boxwatch run` watched; {:.0} s in all.\n",
        binary.display(),
        wall.as_secs_f64()
    );
    let _ = writeln!(
        m,
        "Counting rule: an attack is detected only by an alert of priority **Warning or above** whose \
         `boxwatch.rule.class` is the scenario's class; a benign workload is a false positive for a class \
         when it raised a Warning-or-above alert of that class. Notice and Informational alerts never count \
         either way (they are listed below).\n"
    );
    let _ = writeln!(m, "{table}");
    let _ = writeln!(
        m,
        "The daemon's own count of what it saw and lost during the run (a drop could hide an alert; \
         every scenario's result above is what was delivered):\n\n```\n{}\n```\n",
        stats.trim()
    );
    let misses: Vec<&Outcome> = results.iter().filter(|o| !o.scenario.is_benign() && !o.detected()).collect();
    let fps: Vec<&Outcome> = results.iter().filter(|o| o.false_positive()).collect();
    let _ = writeln!(m, "## Misses and false positives\n");
    if misses.is_empty() && fps.is_empty() {
        let _ = writeln!(m, "None in this run.\n");
    }
    for o in misses {
        let why = o.scenario.known_miss.as_deref().unwrap_or("not detected");
        let _ = writeln!(
            m,
            "- **miss** `{}` ({}): {} — {}",
            o.scenario.id, o.scenario.class, o.scenario.what, why
        );
    }
    for o in fps {
        let _ =
            writeln!(m, "- **false positive** `{}`: {} — {}", o.scenario.id, o.scenario.what, alerts_cell(o));
    }
    let known: Vec<&Outcome> = results.iter().filter(|o| o.scenario.known_miss.is_some()).collect();
    if !known.is_empty() {
        let _ = writeln!(m, "\n## Known gaps (kernel data boxwatch does not have yet)\n");
        for o in known {
            let _ = writeln!(
                m,
                "- `{}`: {} ({})",
                o.scenario.id,
                o.scenario.known_miss.as_deref().unwrap_or(""),
                if o.detected() { "still detected by another signal" } else { "missed" }
            );
        }
    }
    for (title, benign_part) in [("Attack scenarios", false), ("Benign workloads", true)] {
        let _ = writeln!(m, "\n## {title}\n");
        let _ = writeln!(
            m,
            "| id | class | what | source | result | alerts (rule, class, priority) |\n|---|---|---|---|---|---|"
        );
        for o in results.iter().filter(|o| o.scenario.is_benign() == benign_part) {
            let result = if benign_part {
                if o.false_positive() { "**FP**" } else { "quiet" }
            } else if o.detected() {
                if o.expected_fired() { "detected" } else { "detected (other rule)" }
            } else {
                "**missed**"
            };
            let _ = writeln!(
                m,
                "| `{}` | {} | {} | {} | {} | {} |",
                o.scenario.id,
                o.scenario.class,
                md_escape(&o.scenario.what),
                md_escape(&o.scenario.source),
                result,
                alerts_cell(o)
            );
        }
    }
    m
}

pub fn json(results: &[Outcome]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|o| {
                json!({
                    "id": o.scenario.id,
                    "class": o.scenario.class,
                    "detected": o.detected(),
                    "false_positive": o.false_positive(),
                    "expected_fired": o.expected_fired(),
                    "alerts": o.alerts.iter().map(|a| json!({"rule": a.0, "class": a.1, "priority": a.2})).collect::<Vec<_>>(),
                    "exit_status": o.exit_status,
                    "elapsed_ms": o.elapsed.as_millis() as u64,
                })
            })
            .collect(),
    )
}

/// A missed or noisy scenario, with its output and last events, on stderr.
pub fn print_debug(o: &Outcome) {
    eprintln!("  --- {} ({}) container {}", o.scenario.id, o.scenario.origin, &o.container[..12]);
    eprintln!("  output: {}", o.output_tail.trim().replace('\n', "\n          "));
    for a in &o.alerts {
        eprintln!("  alert: {} {} {}", a.0, a.1, a.2);
    }
    for e in o.events.iter().rev().take(30).collect::<Vec<_>>().into_iter().rev() {
        let p = &e["process"];
        let detail: Vec<String> = ["path", "argv", "addr", "from", "to", "flags", "stdio"]
            .iter()
            .filter(|k| !e[**k].is_null())
            .map(|k| format!("{k}={}", e[*k]))
            .collect();
        eprintln!(
            "  ev: {} {} ret={} {}",
            e["kind"].as_str().unwrap_or("?"),
            p["comm"],
            e["ret"],
            detail.join(" ")
        );
    }
}
