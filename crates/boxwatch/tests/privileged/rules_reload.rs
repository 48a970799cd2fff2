//! Operator rules: a custom rules directory is loaded beside the default
//! pack, SIGHUP reloads it, and a broken file on reload is reported with
//! file:line:column while the rules in force keep working.

use std::time::Duration;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

const CUSTOM: &str = r#"
- rule: custom-marker-read
  name: Custom marker file read
  why: test rule
  class: other
  severity: critical
  condition: container.id != host and evt.type = openat and fd.name = /tmp/MARKER
  output: marker read (file=%fd.name)
"#;

fn sighup(d: &Daemon) {
    let pid = d.pid();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
}

#[test]
fn custom_rules_load_and_sighup_keeps_the_last_good_set() {
    let dir = std::env::temp_dir().join(format!("boxwatch-rules-{}", random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let marker1 = format!("/tmp/m1-{}", random_hex(4));
    std::fs::write(dir.join("custom.yaml"), CUSTOM.replace("/tmp/MARKER", &marker1)).unwrap();
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--rules", dir.to_str().unwrap()]);
    assert!(d.stderr_text().contains(" rules (compiled in"), "{}", d.stderr_text());

    let id = random_container_id();
    let cg = docker_cgroup(&id);
    let c = ctrd.run_detached(&id, &cg, &["sleep", "300"]);
    c.exec("e1", &["sh", "-c", &format!(": > {marker1}; cat {marker1}")], T).assert_success();
    d.wait_for("custom rule alert", T, |v| {
        v["rule"] == "Custom marker file read"
            && v["priority"] == "Critical"
            && v["output_fields"]["fd.name"] == marker1.as_str()
    });

    // A broken file: the reload fails with file:line:column, the old rules keep firing.
    std::fs::write(dir.join("custom.yaml"), CUSTOM.replace("fd.name = /tmp/MARKER", "fd.nmae = /tmp/x"))
        .unwrap();
    sighup(&d);
    let t0 = std::time::Instant::now();
    while !d.stderr_text().contains("rules reload failed") {
        assert!(t0.elapsed() < T, "no reload error reported:\n{}", d.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = d.stderr_text();
    let line =
        err.lines().skip_while(|l| !l.contains("rules reload failed")).nth(1).unwrap_or_default().to_string();
    assert!(
        line.contains("custom.yaml:7:") && line.contains("fd.nmae"),
        "error must name file:line:col and the field: {err}"
    );
    c.exec("e2", &["sh", "-c", &format!("cat {marker1}")], T).assert_success();
    let n = || d.container_alerts(&id).iter().filter(|v| v["rule"] == "Custom marker file read").count();
    let t0 = std::time::Instant::now();
    while n() < 2 {
        assert!(t0.elapsed() < T, "old rules stopped firing after a failed reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A good file again: the new rule replaces the old.
    let marker2 = format!("/tmp/m2-{}", random_hex(4));
    std::fs::write(dir.join("custom.yaml"), CUSTOM.replace("/tmp/MARKER", &marker2)).unwrap();
    sighup(&d);
    let t0 = std::time::Instant::now();
    while !d.stderr_text().contains("rules reloaded") {
        assert!(t0.elapsed() < T, "no reload reported:\n{}", d.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    c.exec("e3", &["sh", "-c", &format!(": > {marker2}; cat {marker2}")], T).assert_success();
    d.wait_for("alert from the reloaded rule", T, |v| {
        v["rule"] == "Custom marker file read" && v["output_fields"]["fd.name"] == marker2.as_str()
    });
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_rereads_the_config_file_rules_section() {
    let base = std::env::temp_dir().join(format!("boxwatch-cfg-{}", random_hex(6)));
    let (a, b) = (base.join("a"), base.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (ma, mb) = (format!("/tmp/ma-{}", random_hex(4)), format!("/tmp/mb-{}", random_hex(4)));
    std::fs::write(a.join("r.yaml"), CUSTOM.replace("/tmp/MARKER", &ma)).unwrap();
    std::fs::write(b.join("r.yaml"), CUSTOM.replace("/tmp/MARKER", &mb)).unwrap();
    let cfg = base.join("boxwatch.toml");
    std::fs::write(&cfg, format!("[rules]\npaths = [{:?}]\n", a.display().to_string())).unwrap();
    let ctrd = Containerd::start();
    let d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    let id = random_container_id();
    let c = ctrd.run_detached(&id, &docker_cgroup(&id), &["sleep", "300"]);
    let fired = |m: &str| {
        let m = m.to_string();
        move |v: &serde_json::Value| {
            v["rule"] == "Custom marker file read" && v["output_fields"]["fd.name"] == m.as_str()
        }
    };
    c.exec("e1", &["sh", "-c", &format!(": > {ma}; cat {ma}")], T).assert_success();
    d.wait_for("rule from directory a", T, fired(&ma));
    std::thread::sleep(Duration::from_millis(300));
    let a_before = d.container_alerts(&id).iter().filter(|v| fired(&ma)(v)).count();

    // A broken config: reported with file:line:column, nothing changes.
    std::fs::write(&cfg, "[rules]\npaths = [\"/x\"]\nbogus = 1\n").unwrap();
    sighup(&d);
    let t0 = std::time::Instant::now();
    while !d.stderr_text().contains("config reload failed") {
        assert!(t0.elapsed() < T, "{}", d.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.stderr_text().contains("boxwatch.toml:3:1: unknown field `bogus`"), "{}", d.stderr_text());

    // Point the config at directory b: its rule replaces a's.
    std::fs::write(&cfg, format!("[rules]\npaths = [{:?}]\n", b.display().to_string())).unwrap();
    sighup(&d);
    let t0 = std::time::Instant::now();
    while !d.stderr_text().contains("rules reloaded") {
        assert!(t0.elapsed() < T, "{}", d.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    c.exec("e2", &["sh", "-c", &format!(": > {mb}; cat {mb}; cat {ma}")], T).assert_success();
    d.wait_for("rule from directory b", T, fired(&mb));
    std::thread::sleep(Duration::from_millis(300));
    let a_hits = d.container_alerts(&id).iter().filter(|v| fired(&ma)(v)).count();
    assert_eq!(a_hits, a_before, "directory a's rule no longer loaded after the reload");
    drop(c);
    let _ = std::fs::remove_dir_all(&base);
}
