//! Falco's own rules files (the three official files, read from `../shared/falco/`, never
//! copied into the repository) load unchanged, fire with Falco's rule names and output, keep
//! the default pack's meaning when loaded beside it, and take a Falco user's customisations.

mod common;

use std::path::PathBuf;

use boxwatch_model::event::Namespaces;
use boxwatch_model::{ContainerRef, Detail, Event, ProcessInfo, Runtime};
use boxwatch_rules::{Alert, Input, RuleSet};
use common::{Line, recorded_stream, repo};

const FILES: [&str; 3] = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"];

fn falco_dir() -> PathBuf {
    repo().join("../shared/falco")
}

fn read(files: &[&str]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|f| {
            let p = falco_dir().join(f);
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
                panic!("{}: {e} (Falco's rules files are expected in ../shared/falco)", p.display())
            });
            (f.to_string(), text)
        })
        .collect()
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

fn default_pack() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("rules/default"))
        .expect("rules/default")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap())).collect()
}

fn load(user: &[(&str, &str)]) -> RuleSet {
    RuleSet::from_sources(user)
        .unwrap_or_else(|e| panic!("{}", e.iter().map(|x| format!("{x}\n")).collect::<String>()))
}

#[test]
fn the_stable_file_loads_whole() {
    let texts = read(&FILES[..1]);
    let rs = load(&refs(&texts));
    assert_eq!(rs.len(), 25);
    assert!(rs.rules().all(|r| r.enabled), "every stable rule is enabled");
    // The one stable rule boxwatch cannot fire yet: it needs the dup family of syscalls.
    let inert: Vec<(&str, &str)> = rs.inert().map(|(r, why)| (r.name.as_str(), why)).collect();
    assert_eq!(
        inert,
        [(
            "Redirect STDOUT/STDIN to Network Connection in Container",
            "its event types are not observed by boxwatch: dup, dup2, dup3"
        )]
    );
    let r = rs.rules().find(|r| r.name == "Read sensitive file untrusted").unwrap();
    assert_eq!(r.id, "Read sensitive file untrusted");
    assert_eq!(r.class.as_str(), "filesystem", "from its 'filesystem' tag");
    assert!(r.mitre.contains(&"T1555".to_string()), "{:?}", r.mitre);
    let esc = rs.rules().find(|r| r.name == "Detect release_agent File Container Escapes").unwrap();
    assert_eq!(esc.class.as_str(), "escape", "T1611 is an escape to the host");
    let net = rs.rules().find(|r| r.name == "Contact K8S API Server From Container").unwrap();
    assert_eq!(net.class.as_str(), "network");
}

#[test]
fn all_three_files_load_and_at_least_90_percent_are_active() {
    let texts = read(&FILES);
    let rs = load(&refs(&texts));
    assert_eq!(rs.len(), 93);
    let inert: Vec<(&str, &str)> = rs.inert().map(|(r, why)| (r.name.as_str(), why)).collect();
    let active = rs.len() - inert.len();
    assert!(active * 100 >= 90 * rs.len(), "{active} of {} active: {inert:?}", rs.len());
    for (name, why) in &inert {
        assert!(why.starts_with("its event types are not observed by boxwatch: "), "{name}: {why}");
    }
    // Loaded beside the default pack: both load, nothing is renamed away.
    let pack = default_pack();
    let both = RuleSet::with_pack(&refs(&pack), &refs(&texts)).unwrap_or_else(|e| panic!("{e:?}"));
    let alone = load(&refs(&pack));
    assert_eq!(both.len(), alone.len() + 93);
}

fn container() -> ContainerRef {
    ContainerRef {
        id: "c0ffee".repeat(10) + "c0ff",
        runtime: Runtime::Containerd,
        pod_uid: None,
        namespace: None,
        nested: false,
        cgroup_root: String::new(),
    }
}

fn open(comm: &str, path: &str) -> Event {
    Event {
        ktime_ns: 5_000_000_000,
        process: ProcessInfo {
            pid: 4242,
            tid: 4242,
            ppid: 4200,
            vpid: 7,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: comm.into(),
            start_ns: 1_000_000_000,
            cap_effective: 0,
        },
        ns: Namespaces { mnt: 1, pid: 1, net: 1 },
        cgroup_id: 9,
        ret: Some(3),
        flags: 0,
        detail: Detail::Open { path: path.into(), dirfd: -100, flags: 0, mode: 0, syscall: "openat" },
    }
}

fn fire(rs: &RuleSet, ev: &Event) -> Vec<Alert> {
    let c = container();
    let argv = vec![ev.process.comm.clone(), "x".to_string()];
    let input = Input {
        container: Some(&c),
        exe: Some("/usr/bin/x"),
        argv: &argv,
        ancestors: &["sh"],
        user_name: Some("root"),
        wall_ns: 1_700_000_000_123_456_789,
        hostname: "h",
        evt_num: 42,
        ..Input::new(ev)
    };
    let mut out = Vec::new();
    rs.evaluate(&input, &mut out);
    out
}

fn names(a: &[Alert]) -> Vec<&str> {
    a.iter().map(|a| a.rule.as_str()).collect()
}

#[test]
fn a_falco_rule_fires_with_falcos_name_and_output() {
    let texts = read(&FILES[..1]);
    let rs = load(&refs(&texts));
    let a = fire(&rs, &open("cat", "/etc/shadow"));
    assert_eq!(names(&a), ["Read sensitive file untrusted"]);
    let a = &a[0];
    assert!(
        a.output.starts_with("22:13:20.123456789: Warning Sensitive file opened for reading by non-trusted program | file=/etc/shadow"),
        "{}",
        a.output
    );
    assert!(a.output.contains("user=root user_uid=0 user_loginuid=<NA> process=cat"), "{}", a.output);
    assert_eq!(a.output_fields["evt.time"], 1_700_000_000_123_456_789u64);
    assert_eq!(a.output_fields["user.name"], "root");
    assert_eq!(a.tags.first().map(String::as_str), Some("maturity_stable"));
    // Near misses: a file that is not sensitive; a trusted program (Falco's own exception).
    assert!(fire(&rs, &open("cat", "/etc/hostname")).is_empty());
    assert!(fire(&rs, &open("sshd", "/etc/shadow")).is_empty());
}

const CUSTOM: &str = r#"
- list: sensitive_file_names
  items: [/etc/bw-secret]
  append: true
- macro: user_known_read_sensitive_files_activities
  condition: (proc.name = trusted-readr)
  override:
    condition: replace
- rule: Read sensitive file untrusted
  exceptions:
    - name: our_backup_agent
      fields: [proc.name, fd.name]
      comps: [=, startswith]
      values:
        - [backup-agent, /etc/]
  override:
    exceptions: append
- rule: Clear Log Activities
  enabled: false
"#;

#[test]
fn falco_users_customisations_take_effect() {
    let mut texts = read(&FILES[..1]);
    let rs = load(&refs(&texts));
    assert!(fire(&rs, &open("cat", "/etc/bw-secret")).is_empty());
    assert_eq!(names(&fire(&rs, &open("trusted-readr", "/etc/shadow"))), ["Read sensitive file untrusted"]);
    assert_eq!(names(&fire(&rs, &open("backup-agent", "/etc/shadow"))), ["Read sensitive file untrusted"]);

    texts.push(("custom.yaml".into(), CUSTOM.into()));
    let rs = load(&refs(&texts));
    // The appended list item is sensitive now; the overridden macro and the appended exception
    // silence their processes; everything else still fires.
    assert_eq!(names(&fire(&rs, &open("cat", "/etc/bw-secret"))), ["Read sensitive file untrusted"]);
    assert!(fire(&rs, &open("trusted-readr", "/etc/shadow")).is_empty());
    assert!(fire(&rs, &open("backup-agent", "/etc/shadow")).is_empty());
    assert_eq!(names(&fire(&rs, &open("cat", "/etc/shadow"))), ["Read sensitive file untrusted"]);
    assert!(!rs.rules().find(|r| r.name == "Clear Log Activities").unwrap().enabled);

    // Appending to a list nobody defined is an error with its position.
    let bad = [("b.yaml", "- list: nope\n  items: [x]\n  append: true\n")];
    let e = RuleSet::from_sources(&bad).unwrap_err();
    assert_eq!(e[0].to_string(), "b.yaml:1:9: list 'nope' appends to a list not defined before it");
}

/// The default pack's rules raise exactly the same alerts on the recorded stream whether or not
/// Falco's files (which redefine six of its lists and macros) are loaded beside it.
#[test]
fn loading_falcos_files_does_not_change_the_default_packs_meaning() {
    let pack = default_pack();
    let texts = read(&FILES);
    let alone = load(&refs(&pack));
    let both = RuleSet::with_pack(&refs(&pack), &refs(&texts)).unwrap();
    let own: std::collections::HashSet<String> = alone.rules().map(|r| r.name.clone()).collect();
    let lines: Vec<Line> = recorded_stream();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for l in &lines {
        let input = Input { container: l.container.as_ref(), ancestors: &["sh"], ..Input::new(&l.event) };
        alone.evaluate(&input, &mut a);
        let mut x = Vec::new();
        both.evaluate(&input, &mut x);
        b.extend(x.into_iter().filter(|al| own.contains(&al.rule)));
    }
    assert!(!a.is_empty());
    assert_eq!(names(&a), names(&b));
    assert_eq!(a, b);
}
