//! A program the kernel refuses degrades only itself: with one non-core
//! program made unloadable for real (`MonitorConfig::refuse_program`: loaded
//! as a socket filter, the verifier refuses its helpers and context accesses),
//! the monitor loads, reports that program as refused by the kernel, attaches
//! every other hook it attaches normally, and still delivers events. A refused
//! core program (exec) is fatal. Needs root (loads the real monitor); fails
//! loudly otherwise.

use std::cell::RefCell;
use std::ffi::CString;
use std::rc::Rc;
use std::time::{Duration, Instant};

use boxwatch_abi::{Record, c_bytes, kind};
use boxwatch_bpf::{Error, HookStatus, Monitor, MonitorConfig};

fn config(refuse: Option<&str>) -> MonitorConfig {
    MonitorConfig {
        // Trace this process, whatever its cgroup.
        self_tgid: 0,
        filter_cgroups: false,
        refuse_program: refuse.map(str::to_string),
        ..MonitorConfig::default()
    }
}

/// Whether an unlinkat of a unique missing path by this process is delivered.
fn unlink_is_traced(monitor: &Monitor) -> bool {
    let path = format!("/nonexistent-boxwatch-degrade-test-{}", std::process::id());
    let seen = Rc::new(RefCell::new(false));
    let reader = {
        let (seen, path) = (seen.clone(), path.clone());
        monitor
            .reader(move |data| {
                if let Ok(Record::Syscall(e)) = Record::parse(data)
                    && e.hdr.kind == kind::UNLINK
                    && c_bytes(&e.str0, usize::from(e.str_len[0])) == path.as_bytes()
                {
                    *seen.borrow_mut() = true;
                }
            })
            .expect("ring-buffer reader")
    };
    let c = CString::new(path).expect("no NUL");
    // SAFETY: c is a valid C string; the call fails with ENOENT and removes nothing.
    let rc = unsafe { libc::unlinkat(libc::AT_FDCWD, c.as_ptr(), 0) };
    assert_eq!(rc, -1);
    let t0 = Instant::now();
    while !*seen.borrow() && t0.elapsed() < Duration::from_secs(10) {
        reader.poll(Duration::from_millis(500)).expect("poll");
    }
    drop(reader);
    *seen.borrow()
}

#[test]
fn a_refused_program_degrades_only_itself() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test loads the real monitor: run it as root (scripts/test.sh)");
    }
    let baseline = {
        let m = Monitor::load(&config(None)).unwrap_or_else(|e| panic!("baseline load: {e}"));
        assert!(m.coverage().is_attached("enter_openat"), "enter_openat attaches normally here");
        m.coverage()
            .hooks
            .iter()
            .filter(|h| h.status == HookStatus::Attached)
            .map(|h| h.program.clone())
            .collect::<Vec<_>>()
    };

    let m = Monitor::load(&config(Some("enter_openat")))
        .unwrap_or_else(|e| panic!("a refused non-core program must not fail the load: {e}"));
    let cov = m.coverage();
    let refused = cov.hooks.iter().find(|h| h.program == "enter_openat").expect("enter_openat is a hook");
    match &refused.status {
        HookStatus::Degraded(why) => {
            assert!(why.starts_with("refused by the kernel: "), "reason: {why}");
            // The verifier's own complaint, not a made-up message.
            assert!(why.contains("verifier") || why.contains("invalid"), "reason: {why}");
        }
        other => panic!("enter_openat should be refused by the kernel, is {other:?}"),
    }
    let degraded: Vec<&str> = cov.degraded().map(|h| h.program.as_str()).collect();
    for name in &baseline {
        if name != "enter_openat" {
            assert!(cov.is_attached(name), "{name} attached without the refusal but not with it");
        }
    }
    assert_eq!(cov.attached(), baseline.len() - 1, "degraded: {degraded:?}");
    assert!(unlink_is_traced(&m), "the other hooks still deliver events");
    drop(m);

    match Monitor::load(&config(Some("handle_exec"))) {
        Err(Error::CoreHook { program, reason, .. }) => {
            assert_eq!(program, "handle_exec");
            assert!(reason.starts_with("refused by the kernel: "), "reason: {reason}");
        }
        Err(e) => panic!("a refused core program should be a CoreHook error, got: {e}"),
        Ok(m) => panic!("a refused core program must be fatal, loaded: {:?}", m.coverage()),
    }
}
