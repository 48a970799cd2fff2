//! Rule engine errors: exact `file:line:column` positions for broken files, many errors
//! collected at once, and no panic on garbage (deterministic fuzzing).

use boxwatch_model::event::Namespaces;
use boxwatch_model::{Detail, Event, FdType, ProcessInfo};
use boxwatch_rules::engine::{Input, RuleSet};

fn errors(name: &str, text: &str) -> Vec<String> {
    match RuleSet::from_str(name, text) {
        Ok(_) => panic!("{name} loaded"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

const HEAD: &str = "  name: R\n  why: w\n  class: other\n  severity: notice\n  output: o\n";

#[test]
fn condition_errors_point_inside_folded_and_plain_scalars() {
    let text = "\
- macro: in_etc
  condition: fd.name startswith /etc/
- rule: bad-field
  name: Bad field
  why: w
  class: filesystem
  severity: warning
  condition: >
    evt.type = openat and
      proc.nmae = cat
  output: x
- rule: bad-macro
  name: Bad macro
  why: w
  class: filesystem
  severity: warning
  condition: in_etc and shell_procs
  output: x
";
    assert_eq!(
        errors("bad.yaml", text),
        [
            "bad.yaml:10:7: unknown field 'proc.nmae' (did you mean 'proc.name'?)",
            "bad.yaml:17:25: unknown macro or field 'shell_procs'",
        ]
    );
}

#[test]
fn operator_and_type_errors() {
    let text = format!(
        "- rule: a\n{HEAD}  condition: proc.name startwith sh\n\
         - rule: b\n{HEAD}  condition: \"proc.pid = abc\"\n\
         - rule: c\n{HEAD}  condition: proc.pid startswith 1\n\
         - rule: d\n{HEAD}  condition: evt.type in (openat, opne)\n\
         - rule: e\n{HEAD}  condition: 'proc.name = (a, b)'\n\
         - rule: f\n{HEAD}  condition: proc.name = sh and\n\
         - rule: g\n{HEAD}  condition: user.uid = 0755\n\
         - rule: h\n{HEAD}  condition: evt.type = execve and evt.type = openat\n\
         - rule: i\n{HEAD}  condition: evt.type in (execveat, vfork) and proc.name = x\n"
    );
    assert_eq!(
        errors("ops.yaml", &text),
        [
            "ops.yaml:7:24: unknown operator 'startwith' (did you mean 'startswith'?)",
            "ops.yaml:14:26: expected a number for 'proc.pid', found 'abc'",
            "ops.yaml:21:23: operator 'startswith' cannot be used with integer field 'proc.pid'",
            "ops.yaml:28:35: unknown event type 'opne'",
            "ops.yaml:35:27: operator '=' takes a single value; use 'in' for a list",
            "ops.yaml:42:32: expected a condition, found the end",
            "ops.yaml:49:25: ambiguous number '0755': write 0o755 for octal",
            "ops.yaml:56:14: rule 'h' can never match: its evt.type constraints exclude every event type",
            // Rule i names only syscalls boxwatch does not report: it loads, inert (tests/falco.rs).
        ]
    );
}

#[test]
fn structure_errors_are_all_collected() {
    let text = "\
- list: shell_binaries
  items: [sh, bash]
- macro: loop_a
  condition: loop_b
- macro: loop_b
  condition: loop_a
- rule: Not-Kebab
  name: R
  why: w
  class: escapee
  severity: loud
  mitre: [T12]
  condition: proc.name in (shell_binares, shell_binaries) and proc.name in (shell)
  output: o %proc.nam
  colour: red
- rule: dup
  name: R
  why: w
  class: other
  severity: notice
  condition: proc.name in (shelx)
  output: o
- rule: dup
  name: R2
  why: w
  class: other
  severity: notice
  condition: loop_a
  output: o
- rule: exc
  name: R
  why: w
  class: other
  severity: notice
  condition: proc.name = x
  output: o
  exceptions:
    - name: e1
      fields: [proc.name, fd.nam]
      values: [[a, b]]
    - name: e2
      fields: [proc.name, fd.name]
      comps: [=, like]
      values: [[a, b]]
    - name: e3
      fields: [proc.name, fd.name]
      values: [[a]]
    - name: e4
      fields: [proc.pid]
      comps: [startswith]
      values: [[1]]
- rule: missing
  name: R
";
    let got = errors("s.yaml", text);
    let want = [
        // The cycle is reported where it closes.
        "s.yaml:6:14: macro 'loop_a' refers to itself (loop_a -> loop_b -> loop_a)",
        "s.yaml:7:9: rule id 'Not-Kebab' must be kebab-case (a-z, 0-9, '-')",
        "s.yaml:10:10: unknown class 'escapee' (expected escape, privilege_escalation, network, filesystem or other)",
        "s.yaml:11:13: unknown severity 'loud' (expected emergency, alert, critical, error, warning, notice, informational or debug)",
        "s.yaml:12:11: 'T12' is not a MITRE ATT&CK id (T1234, T1234.001 or TA0001)",
        // A misspelled list name is reported; `shell` (not near a list with '_') is a value.
        "s.yaml:13:28: unknown list 'shell_binares' (did you mean 'shell_binaries'? quote the value if it is meant literally)",
        "s.yaml:14:13: unknown field 'proc.nam' (did you mean 'proc.name'?)",
        "s.yaml:15:3: unknown key 'colour' in rule (expected one of: id, name, description, why, class, severity, priority, mitre, tags, condition, exceptions, output, enabled, examples, override)",
        "s.yaml:23:9: duplicate rule id 'dup' (first defined at s.yaml:16)",
        "s.yaml:39:27: unknown field 'fd.nam' (did you mean 'fd.name'?)",
        "s.yaml:43:18: unknown comparison 'like' in exception",
        "s.yaml:47:16: each exception value must be a list of 2 items, one per field",
        "s.yaml:50:15: operator 'startswith' cannot be used with integer field 'proc.pid'",
        "s.yaml:52:3: rule 'missing' is missing 'why'",
        "s.yaml:52:3: rule 'missing' is missing 'class'",
        "s.yaml:52:3: rule 'missing' is missing 'severity'",
        "s.yaml:52:3: rule 'missing' is missing 'condition'",
        "s.yaml:52:3: rule 'missing' is missing 'output'",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn yaml_and_file_errors() {
    assert_eq!(
        errors("y.yaml", "- rule: a\n  name: [x\n- rule: b\n"),
        ["y.yaml:3:7: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence"]
    );
    assert_eq!(
        errors("m.yaml", "rule: a\n"),
        ["m.yaml:1:1: a rules file must be a list of 'list', 'macro' and 'rule' items"]
    );
    assert_eq!(errors("k.yaml", "- rules: a\n"), ["k.yaml:1:3: item has no 'list', 'macro' or 'rule' key"]);
    assert_eq!(
        errors("t.yaml", "- 42\n"),
        ["t.yaml:1:3: expected a 'list', 'macro' or 'rule' item, found a scalar"]
    );
    assert_eq!(
        errors("a.yaml", "- list: a\n  items: &x [1]\n- list: b\n  items: *x\n"),
        ["a.yaml:4:10: YAML aliases are not supported in rules files"]
    );
    assert!(RuleSet::from_str("empty.yaml", "").unwrap().is_empty());
    assert!(RuleSet::from_str("c.yaml", "# only comments\n[]\n").unwrap().is_empty());
    let e = RuleSet::load_files(&["/nonexistent/boxwatch.yaml".into()]).unwrap_err();
    assert!(e[0].to_string().starts_with("/nonexistent/boxwatch.yaml: cannot read:"), "{}", e[0]);
    // Errors in several files come in file order.
    let a = format!("- rule: x\n{HEAD}  condition: proc.bogus_field = 1\n");
    let e = RuleSet::from_sources(&[("a.yaml", &a), ("b.yaml", &a)]).unwrap_err();
    let e: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(e[0], "a.yaml:7:14: unknown field 'proc.bogus_field'");
    assert_eq!(e[1], "b.yaml:1:9: duplicate rule id 'x' (first defined at a.yaml:1)");
    assert_eq!(e[2], "b.yaml:7:14: unknown field 'proc.bogus_field'");
}

#[test]
fn output_and_example_errors() {
    let text = "\
- rule: a
  name: R
  why: w
  class: other
  severity: notice
  condition: proc.name = x
  output: \"file %fd.nme by %proc.name\"
  examples:
    - event: {type: opne}
      expect: alert
    - event: {type: openat, flags: O_NOPE, colour: red}
      expect: maybe
";
    assert_eq!(
        errors("o.yaml", text),
        [
            "o.yaml:7:17: unknown field 'fd.nme' (did you mean 'fd.name'?)",
            "o.yaml:9:21: unknown event type 'opne'",
            "o.yaml:11:36: 'flags' must be a number or a known constant",
            "o.yaml:11:44: unknown or misplaced key 'colour' in a openat event spec",
            "o.yaml:12:15: 'expect' must be alert or no_alert",
        ]
    );
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const VALID: &str = "
- list: shells
  items: [sh, bash, more]
- list: more
  items: [zsh]
- macro: spawned
  condition: evt.type = execve
- rule: shell
  name: Shell
  why: w
  class: other
  severity: notice
  condition: >
    spawned and proc.name in (shells) and not proc.pname in (runc)
    and fd.name glob '/tmp/*' or evt.arg.flags contains O_CREAT|O_WRONLY
  exceptions:
    - name: e
      fields: [proc.name, fd.name]
      comps: [in, pmatch]
      values: [[shells, [/etc, /usr]]]
  output: shell %proc.name %fd.name %evt.arg.flags %proc.aname[2]
  examples:
    - event: {type: execve, exe: /bin/sh, container: true, ancestors: [a, b]}
      expect: alert
";

const TOKENS: &[&str] = &[
    "proc.name",
    "fd.name",
    "evt.type",
    "proc.pid",
    "fd.sip",
    "proc.aname",
    "proc.aname[2]",
    "evt.arg.flags",
    "container.privileged",
    "setid.ids",
    "=",
    "!=",
    "<",
    ">=",
    "in",
    "intersects",
    "startswith",
    "endswith",
    "contains",
    "icontains",
    "glob",
    "pmatch",
    "exists",
    "and",
    "or",
    "not",
    "(",
    ")",
    ",",
    "'q'",
    "\"x\\\"\"",
    "sh",
    "/etc",
    "O_CREAT",
    "10.0.0.0/8",
    "execve",
    "openat",
    "shells",
    "spawned",
    "-1",
    "0x",
    "99999999999999999999",
    "[",
    "*",
    "é",
    "!",
    "'",
    "%",
    "\\",
    "0o7",
    "true",
];

fn sample_events() -> Vec<Event> {
    let p = ProcessInfo {
        pid: 1,
        tid: 1,
        ppid: 0,
        vpid: 1,
        uid: 0,
        gid: 0,
        euid: 0,
        egid: 0,
        comm: "sh".into(),
        start_ns: 0,
        cap_effective: u64::MAX,
    };
    let mk = |detail, ret| Event {
        ktime_ns: 0,
        process: p.clone(),
        ns: Namespaces { mnt: 0, pid: 0, net: 0 },
        cgroup_id: 0,
        ret,
        flags: 0,
        detail,
    };
    vec![
        mk(
            Detail::Exec {
                filename: "/bin/sh".into(),
                argv: vec![],
                truncated: true,
                stdio: [FdType::Socket; 3],
            },
            None,
        ),
        mk(
            Detail::Open {
                path: "/tmp/x".into(),
                dirfd: 0,
                flags: u64::MAX,
                mode: u32::MAX,
                syscall: "openat",
            },
            Some(i64::MIN),
        ),
        mk(Detail::SetId { syscall: "setuid", ids: vec![i64::MIN, i64::MAX] }, Some(-1)),
        mk(Detail::Connect { fd: -1, addr: None }, Some(0)),
        mk(Detail::Open { path: String::new(), dirfd: 0, flags: 0, mode: 0, syscall: "openat2" }, None),
    ]
}

fn exercise(text: &str) {
    if let Ok(rs) = RuleSet::from_str("fuzz.yaml", text) {
        let _ = rs.run_examples();
        let mut out = Vec::new();
        for ev in sample_events() {
            let anc = ["a", "b"];
            rs.evaluate(&Input { ancestors: &anc, ..Input::new(&ev) }, &mut out);
        }
    }
}

const PUNCT: &str = "- :[]{}&*!|>'\"#\n %@`,?ab1";

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Random bytes (as lossy UTF-8) and random YAML-ish punctuation.
    for _ in 0..400 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&String::from_utf8_lossy(&bytes));
        let s: String = (0..len).map(|_| PUNCT.as_bytes()[rng.below(PUNCT.len())] as char).collect();
        exercise(&s);
    }
    // Mutations of a valid file: delete, duplicate or replace spans.
    assert!(RuleSet::from_str("v.yaml", VALID).is_ok());
    for _ in 0..1500 {
        let mut t: Vec<char> = VALID.chars().collect();
        for _ in 0..=rng.below(4) {
            let at = rng.below(t.len());
            let n = rng.below(8).min(t.len() - at);
            match rng.below(3) {
                0 => {
                    t.drain(at..at + n);
                }
                1 => {
                    let chunk: Vec<char> = t[at..at + n].to_vec();
                    t.splice(at..at, chunk);
                }
                _ => {
                    let tok: Vec<char> = rng.pick(TOKENS).chars().collect();
                    t.splice(at..at + n, tok);
                }
            }
            if t.is_empty() {
                break;
            }
        }
        exercise(&t.iter().collect::<String>());
    }
    // Random conditions from a token soup, in a valid file.
    let mut loaded = 0;
    for _ in 0..3000 {
        let cond: Vec<&str> = (0..1 + rng.below(14)).map(|_| rng.pick(TOKENS)).collect();
        let text = VALID.replace("spawned and proc.name in (shells) and", &cond.join(" "));
        if RuleSet::from_str("c.yaml", &text).is_ok() {
            loaded += 1;
        }
        exercise(&text);
    }
    assert!(loaded > 0);
    // Pathological nesting and sizes.
    exercise(&format!("- rule: a\n{HEAD}  condition: {}x{}\n", "(".repeat(5000), ")".repeat(5000)));
    exercise(&format!("- rule: a\n{HEAD}  condition: {}proc.name = x\n", "not ".repeat(5000)));
    exercise(&"[".repeat(100_000));
    exercise(&"- a:\n".repeat(2000));
    let mut macros = String::from("- macro: m0\n  condition: proc.name = x\n");
    for i in 1..64 {
        macros += &format!("- macro: m{i}\n  condition: m{} and m{}\n", i - 1, i - 1);
    }
    let e = errors("big.yaml", &format!("{macros}- rule: a\n{HEAD}  condition: m30\n"));
    assert_eq!(e, ["big.yaml:36:14: condition has over 100000 checks once macros are expanded"]);
    // Long chains of macros and lists are refused, not recursed into: macros using later
    // ones (compile recursion), earlier ones (predicate depth), and lists naming lists.
    let mut chain = String::from("- macro: d0\n  condition: proc.name = x\n");
    for i in 1..3000 {
        chain += &format!("- macro: c{i}\n  condition: c{}\n", i + 1);
        chain +=
            &format!("- macro: d{i}\n  condition: not d{}\n- list: l{i}\n  items: [l{}]\n", i - 1, i + 1);
    }
    chain += "- macro: c3000\n  condition: proc.pid = 1\n- list: l3000\n  items: [b]\n";
    let e = errors("chain.yaml", &chain).join("\n");
    assert!(e.contains("lists nested deeper than 32"), "{e}");
    assert!(e.contains("macros nested deeper than 32"), "{e}");
    assert!(e.contains("condition nested deeper than 256 levels once macros are expanded"), "{e}");
}
