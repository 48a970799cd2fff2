//! Both syscall entry-state stores (task storage and the tid hash) load on
//! this kernel and deliver complete syscall events, and an isolated event
//! reaches the reader without waiting for the poll timeout
//! (`wakeup_interval_ns`). Needs root (loads the real monitor); fails loudly
//! otherwise.

use std::cell::RefCell;
use std::ffi::CString;
use std::rc::Rc;
use std::time::{Duration, Instant};

use boxwatch_abi::{Record, c_bytes, drop_cause, kind, op};
use boxwatch_bpf::{InflightStore, Monitor, MonitorConfig};

/// (ret, args[2], op, tgid, tid) of an OPEN event.
type Seen = (i64, u64, u32, u32, u32);

fn open_is_traced(store: InflightStore) {
    let cfg = MonitorConfig {
        // Trace this process, whatever its cgroup.
        self_tgid: 0,
        filter_cgroups: false,
        syscall_fallback: false,
        inflight_store: store,
        ..MonitorConfig::default()
    };
    let monitor = Monitor::load(&cfg).unwrap_or_else(|e| panic!("load with the {store} store: {e}"));
    assert_eq!(monitor.coverage().inflight_store, store);
    let path = format!("/nonexistent-boxwatch-store-test-{}-{}", std::process::id(), store.name());
    let seen: Rc<RefCell<Option<Seen>>> = Rc::default();
    let reader = {
        let (seen, path) = (seen.clone(), path.clone());
        monitor
            .reader(move |data| {
                if let Ok(Record::Syscall(e)) = Record::parse(data)
                    && e.hdr.kind == kind::OPEN
                    && c_bytes(&e.str0, usize::from(e.str_len[0])) == path.as_bytes()
                {
                    *seen.borrow_mut() = Some((e.ret, e.args[2], e.op, e.hdr.tgid, e.hdr.tid));
                }
            })
            .expect("ring-buffer reader")
    };
    // Let the attach settle and drain what is queued, so the open below is isolated.
    reader.poll(Duration::from_millis(50)).expect("poll");
    let c = CString::new(path.clone()).expect("no NUL");
    let t0 = Instant::now();
    // SAFETY: c is a valid C string; the call fails with ENOENT and opens nothing.
    let fd = unsafe { libc::openat(libc::AT_FDCWD, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert_eq!(fd, -1);
    while seen.borrow().is_none() && t0.elapsed() < Duration::from_secs(10) {
        reader.poll(Duration::from_secs(5)).expect("poll");
    }
    let latency = t0.elapsed();
    let (ret, flags, o, tgid, tid) =
        seen.borrow().unwrap_or_else(|| panic!("no OPEN event for {path} with the {store} store"));
    assert_eq!(ret, -i64::from(libc::ENOENT), "{store}");
    assert_eq!(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as u64, "{store}");
    assert_eq!(o, op::OPENAT, "{store}");
    assert_eq!(tgid, std::process::id(), "{store}");
    // SAFETY: gettid has no preconditions.
    assert_eq!(tid, unsafe { libc::gettid() } as u32, "{store}");
    // The consumer was woken by the event itself, not by the 5 s poll timeout.
    assert!(latency < Duration::from_secs(2), "{store}: delivered after {latency:?}");
    assert_eq!(monitor.kernel_drops()[drop_cause::INFLIGHT_FULL as usize], 0, "{store}");
}

#[test]
fn both_inflight_stores_deliver_syscall_events() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test loads the real monitor: run it as root (scripts/test.sh)");
    }
    if boxwatch_bpf::probe::task_storage() {
        open_is_traced(InflightStore::TaskStorage);
    } else {
        eprintln!("task storage is not available on this kernel: only the hash store is tested");
    }
    open_is_traced(InflightStore::Hash);
}
