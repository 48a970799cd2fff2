//! The detector seam through the public API only: a toy detector added next to the rule set
//! and the stateful detections sees every event, raises its own alerts and reports its stats;
//! a reloaded rule set replaces the old one in place.

use boxwatch_model::event::Namespaces;
use boxwatch_model::{ContainerRef, Detail, Event, FdType, ProcessInfo, Runtime};
use boxwatch_rules::alert::{Alert, Priority};
use boxwatch_rules::{Class, Detector, Detectors, Input, RuleInfo, RuleSet, Stateful, StatefulConfig};

/// Alerts on the third exec of the same program: state no single rule holds.
#[derive(Debug, Default)]
struct ThirdExec {
    seen: Vec<(String, u32)>,
    events: u64,
}

impl Detector for ThirdExec {
    fn name(&self) -> &str {
        "third-exec"
    }

    fn observe(&mut self, input: &Input<'_>, out: &mut Vec<Alert>) {
        self.events += 1;
        let Detail::Exec { filename, .. } = &input.event.detail else { return };
        let n = match self.seen.iter_mut().find(|(f, _)| f == filename) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.seen.push((filename.clone(), 1));
                1
            }
        };
        if n == 3 {
            out.push(Alert {
                time: boxwatch_rules::time::rfc3339_ns(input.wall_ns),
                rule: "Third exec".into(),
                priority: Priority::Notice,
                output: format!("{filename} ran a third time"),
                output_fields: Default::default(),
                tags: vec!["toy".into()],
                source: "syscall",
                hostname: input.hostname.into(),
            });
        }
    }

    fn rules(&self) -> Vec<RuleInfo> {
        vec![RuleInfo {
            id: "third-exec".into(),
            name: "Third exec".into(),
            description: String::new(),
            why: "toy".into(),
            class: Class::Other,
            severity: Priority::Notice,
            mitre: Vec::new(),
            tags: vec!["toy".into()],
            enabled: true,
            origin: "test".into(),
            inert: None,
        }]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("third_exec_events", self.events)]
    }
}

fn exec(pid: u32, path: &str) -> Event {
    Event {
        ktime_ns: u64::from(pid) * 1000,
        process: ProcessInfo {
            pid,
            tid: pid,
            ppid: 1,
            vpid: 2,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: path.rsplit('/').next().unwrap_or(path).into(),
            start_ns: u64::from(pid),
            cap_effective: 0,
        },
        ns: Namespaces { mnt: 1, pid: 1, net: 1 },
        cgroup_id: 7,
        ret: None,
        flags: 0,
        detail: Detail::Exec {
            filename: path.into(),
            argv: vec![path.into()],
            truncated: false,
            stdio: [FdType::Char; 3],
        },
    }
}

const RULES: &str = "
- rule: sh-in-container
  name: Shell in container
  why: test
  class: other
  severity: notice
  condition: evt.type = execve and container.id != host and proc.name = sh
  output: shell %proc.name
";

#[test]
fn a_toy_detector_runs_beside_the_rules_and_the_stateful_detections() {
    let c = ContainerRef {
        id: "ab".repeat(32),
        runtime: Runtime::Docker,
        pod_uid: None,
        namespace: None,
        nested: false,
        cgroup_root: String::new(),
    };
    let mut d = Detectors::new();
    d.push(Box::new(RuleSet::from_str("t.yaml", RULES).unwrap()));
    d.push(Box::new(Stateful::new(StatefulConfig::default())));
    d.push(Box::new(ThirdExec::default()));
    let names: Vec<&str> = d.iter().map(|x| x.name()).collect();
    assert_eq!(names, ["rules", "stateful", "third-exec"]);

    let mut fired = Vec::new();
    for (i, path) in ["/bin/sh", "/bin/ls", "/bin/sh", "/bin/sh"].into_iter().enumerate() {
        let ev = exec(100 + i as u32, path);
        let input = Input { container: Some(&c), wall_ns: 1_700_000_000_000_000_000, ..Input::new(&ev) };
        let mut out = Vec::new();
        d.observe(&input, &mut out);
        fired.push(out.iter().map(|a| a.rule.clone()).collect::<Vec<_>>());
    }
    assert_eq!(fired[0], ["Shell in container"]);
    assert!(fired[1].is_empty());
    assert_eq!(fired[2], ["Shell in container"]);
    assert_eq!(fired[3], ["Shell in container", "Third exec"]);

    let toy = d.get("third-exec").unwrap();
    assert_eq!(toy.stats(), [("third_exec_events", 4)]);
    let ids: Vec<String> = d.rules().into_iter().map(|r| r.id).collect();
    assert!(ids.contains(&"sh-in-container".into()) && ids.contains(&"third-exec".into()), "{ids:?}");
    assert!(ids.contains(&"drift".into()) || ids.iter().any(|i| i.contains("drift")), "{ids:?}");

    // A reload puts the new rule set where the old one was; the others keep their state.
    let old = d.replace(Box::new(RuleSet::from_str("t.yaml", "[]").unwrap())).unwrap();
    assert_eq!(old.rules().len(), 1);
    let names: Vec<&str> = d.iter().map(|x| x.name()).collect();
    assert_eq!(names, ["rules", "stateful", "third-exec"]);
    let ev = exec(200, "/bin/sh");
    let input = Input { container: Some(&c), ..Input::new(&ev) };
    let mut out = Vec::new();
    d.observe(&input, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(d.get("third-exec").unwrap().stats(), [("third_exec_events", 5)]);
}
