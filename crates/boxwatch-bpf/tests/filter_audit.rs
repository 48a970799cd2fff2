//! The kernel filter is tamper-evident and self-healing (#14 item 3): a
//! process that opens boxwatch's `cgroup_filter` map by id — as a privileged
//! container can — and marks a container cgroup as HOST, adds an entry,
//! deletes one or rewinds `filter_gen`, is found by `audit_filter`, which puts
//! back what boxwatch wrote. Needs root (loads the real monitor); fails loudly
//! otherwise.

use boxwatch_abi::cgroup_class::{CONTAINER, HOST};
use boxwatch_bpf::{FilterTamper, Monitor, MonitorConfig};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

#[test]
fn a_foreign_write_to_the_filter_is_found_and_undone() {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "this test loads BPF programs: run it as root (scripts/test.sh)"
    );
    let monitor = Monitor::load(&MonitorConfig { syscall_fallback: false, ..MonitorConfig::default() })
        .expect("load the monitor");
    // Ids no real cgroup has, so this test's own entries cannot collide with others'.
    let (a, b, c) = (u64::MAX - 11, u64::MAX - 12, u64::MAX - 13);
    monitor.set_cgroup_class(a, CONTAINER).unwrap();
    monitor.set_cgroup_class(b, CONTAINER).unwrap();
    assert_eq!(monitor.audit_filter().unwrap(), vec![], "nothing foreign yet");

    // The attacker's side: its own fd to the map, from the id.
    let (filter_id, gen_id) = monitor.filter_map_ids();
    assert!(filter_id > 0 && gen_id > 0);
    let filter = MapHandle::from_map_id(filter_id).expect("open cgroup_filter by id");
    let generation = MapHandle::from_map_id(gen_id).expect("open filter_gen by id");
    filter.update(&a.to_ne_bytes(), &[HOST], MapFlags::ANY).unwrap();
    filter.delete(&b.to_ne_bytes()).unwrap();
    filter.update(&c.to_ne_bytes(), &[HOST], MapFlags::ANY).unwrap();
    generation.update(&0u32.to_ne_bytes(), &0u64.to_ne_bytes(), MapFlags::ANY).unwrap();

    let mut found = monitor.audit_filter().unwrap();
    found.sort_by_key(|t| t.cgroup_id());
    assert_eq!(
        found,
        vec![
            FilterTamper::Generation { expected: 2, found: 0 },
            FilterTamper::Added { cgroup_id: c, class: HOST },
            FilterTamper::Removed { cgroup_id: b, expected: CONTAINER },
            FilterTamper::Changed { cgroup_id: a, expected: CONTAINER, found: HOST },
        ]
    );
    // Healed: the kernel holds what boxwatch wrote, with a new generation.
    let class = |id: u64| filter.lookup(&id.to_ne_bytes(), MapFlags::ANY).unwrap().map(|v| v[0]);
    assert_eq!((class(a), class(b), class(c)), (Some(CONTAINER), Some(CONTAINER), None));
    let g = generation.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).unwrap().unwrap();
    assert!(u64::from_ne_bytes(g[..8].try_into().unwrap()) > 2, "generation moved past both values");
    assert_eq!(monitor.audit_filter().unwrap(), vec![], "a second audit finds nothing");
    monitor.forget_cgroup(a);
    monitor.forget_cgroup(b);
    assert_eq!(monitor.audit_filter().unwrap(), vec![]);
}
