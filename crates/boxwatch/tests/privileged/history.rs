//! Alert history: `boxwatch run --history DB` keeps every alert in SQLite and
//! `boxwatch alerts --db DB` answers with filters (container prefix, rule name or
//! id, since), newest first; `--json` prints exactly the alerts.jsonl lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::*;

const T: Duration = Duration::from_secs(20);
const READ: &str = "Sensitive file read in a container";
const WRITE: &str = "Write below /etc in a container";

/// A scratch directory that outlives the daemon (its own log directory does not).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn alerts(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boxwatch"))
        .arg("alerts")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run boxwatch alerts")
}

/// stdout lines of a successful `boxwatch alerts` run.
fn alert_lines(db: &Path, args: &[&str]) -> Vec<String> {
    let out = alerts(db, args);
    assert!(
        out.status.success(),
        "boxwatch alerts {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output").lines().map(str::to_string).collect()
}

fn full_id(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    v["output_fields"]["boxwatch.container.full_id"].as_str().unwrap_or_default().to_string()
}

fn field(line: &str, key: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    v[key].clone()
}

/// The lines (of `boxwatch alerts --json` or alerts.jsonl) that belong to `ids`, sorted.
fn only(lines: &[String], ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().filter(|l| ids.contains(&full_id(l).as_str())).cloned().collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Newest first: RFC 3339 UTC times of one fixed width compare as strings.
fn assert_newest_first(lines: &[String]) {
    let times: Vec<String> = lines.iter().map(|l| field(l, "time").as_str().unwrap().to_string()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first: {times:?}");
}

#[test]
fn history_keeps_alerts_and_alerts_command_filters_them() {
    let ctrd = Containerd::start();
    let scratch = Scratch(std::env::temp_dir().join(format!("boxwatch-history-{}", random_hex(6))));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let db = scratch.0.join("alerts.db");
    let log_dir = scratch.0.join("log");
    // A later --log-dir overrides the harness's, so alerts.jsonl survives the daemon.
    let d = Daemon::start(&["--log-dir", log_dir.to_str().unwrap(), "--history", db.to_str().unwrap()]);

    let script = ["sh", "-c", "cat /etc/shadow >/dev/null; touch /etc/x"];
    let wait_both = |d: &Daemon, id: &str| {
        for rule in [READ, WRITE] {
            d.wait_for(&format!("{rule} alert for {id}"), T, |v| {
                v["rule"] == rule && v["output_fields"]["boxwatch.container.full_id"] == id
            });
        }
    };
    let id1 = random_container_id();
    ctrd.run(&id1, &docker_cgroup(&id1), &script, T).assert_success();
    wait_both(&d, &id1);
    // A clear gap between the two containers' alerts for --since.
    std::thread::sleep(Duration::from_millis(1500));
    let mid_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mid = boxwatch_rules::time::rfc3339_ns(mid_ns);
    std::thread::sleep(Duration::from_millis(500));
    let id2 = random_container_id();
    let (i1, i2) = (id1.as_str(), id2.as_str());
    ctrd.run(&id2, &docker_cgroup(&id2), &script, T).assert_success();
    wait_both(&d, &id2);
    let stats = d.stop();
    assert!(!stats.is_empty(), "no stats line at exit");
    assert!(db.exists(), "--history did not create {}", db.display());

    // What alerts.jsonl holds for the two containers (other tests' containers may be there too).
    let jsonl: Vec<String> = std::fs::read_to_string(log_dir.join("alerts.jsonl"))
        .expect("read alerts.jsonl")
        .lines()
        .map(str::to_string)
        .collect();
    let logged1 = only(&jsonl, &[i1]);
    let logged2 = only(&jsonl, &[i2]);
    for (id, logged) in [(&id1, &logged1), (&id2, &logged2)] {
        for rule in [READ, WRITE] {
            assert!(logged.iter().any(|l| field(l, "rule") == rule), "no {rule} for {id} in alerts.jsonl");
        }
    }

    // Everything, newest first; the two containers' alerts are exactly the alerts.jsonl lines.
    let all = alert_lines(&db, &["--json"]);
    assert_newest_first(&all);
    assert_eq!(only(&all, &[i1]), logged1);
    assert_eq!(only(&all, &[i2]), logged2);

    // --container: a 12-hex prefix and the full id.
    let c1 = alert_lines(&db, &["--json", "--container", &id1[..12]]);
    assert_newest_first(&c1);
    assert_eq!(sorted(c1.clone()), logged1, "--container {}", &id1[..12]);
    assert_eq!(sorted(alert_lines(&db, &["--json", "--container", &id2])), logged2);

    // --rule: by name and by id, only that rule.
    let logged_reads: Vec<String> =
        only(&jsonl, &[i1, i2]).into_iter().filter(|l| field(l, "rule") == READ).collect();
    assert_eq!(logged_reads.len(), 2, "{logged_reads:?}");
    for r in [READ, "read-sensitive-file"] {
        let rows = alert_lines(&db, &["--json", "--rule", r]);
        assert!(rows.iter().all(|l| field(l, "rule") == READ), "--rule {r}: {rows:?}");
        assert_eq!(only(&rows, &[i1, i2]), logged_reads, "--rule {r}");
    }

    // Filters combine.
    let w2 = alert_lines(&db, &["--json", "--container", &id2[..12], "--rule", WRITE]);
    assert_eq!(w2.len(), logged2.iter().filter(|l| field(l, "rule") == WRITE).count());
    assert!(w2.iter().all(|l| field(l, "output_fields")["fd.name"] == "/etc/x"), "{w2:?}");

    // --since: an RFC 3339 time between the containers, and a relative duration.
    let after = alert_lines(&db, &["--json", "--since", &mid]);
    assert_eq!(only(&after, &[i1]), Vec::<String>::new(), "--since {mid} returned container 1's alerts");
    assert_eq!(only(&after, &[i2]), logged2, "--since {mid}");
    let recent = alert_lines(&db, &["--json", "--since", "10m"]);
    assert_eq!(only(&recent, &[i1, i2]), only(&jsonl, &[i1, i2]), "--since 10m");

    // --limit: the newest only.
    let newest1 = logged1.iter().max_by_key(|l| field(l, "time").as_str().unwrap().to_string()).unwrap();
    let one = alert_lines(&db, &["--json", "--container", &id1, "--limit", "1"]);
    assert_eq!(one, vec![newest1.clone()]);

    // Human lines: TIME PRIORITY RULE container=<12> proc=<name> output.
    let human = alert_lines(&db, &["--container", &id1[..12]]);
    assert_eq!(human.len(), logged1.len(), "{human:?}");
    let short = format!("container={}", &id1[..12]);
    assert!(human.iter().all(|l| l.contains(&short)), "{human:?}");
    assert!(human.iter().any(|l| l.contains(READ) && l.contains("proc=cat")), "{human:?}");
    assert!(human.iter().any(|l| l.contains(WRITE) && l.contains("proc=touch")), "{human:?}");
    assert!(human.iter().all(|l| !l.starts_with('{')), "human output is not JSON: {human:?}");

    // Errors name what is wrong.
    let missing = scratch.0.join("missing.db");
    let out = alerts(&missing, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&missing.display().to_string()), "{err}");
    assert!(!missing.exists(), "the query command must not create a database");
    let not_db = log_dir.join("alerts.jsonl");
    let out = alerts(&not_db, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&not_db.display().to_string()), "{err}");
    let out = alerts(&db, &["--since", "yesterday"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--since"), "{err}");
}
