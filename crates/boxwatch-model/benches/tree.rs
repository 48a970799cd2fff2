//! Process-tree and container-table cost: bytes per tracked process (counted
//! by a wrapping global allocator, not estimated) and ns per operation.
//! Prints numbers; asserts nothing. Run: `cargo bench -p boxwatch-model`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use boxwatch_model::event::Namespaces;
use boxwatch_model::process::ProcessTree;
use boxwatch_model::{ContainerTable, Detail, Event, ProcessInfo};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const CONTAINER: &str = "c8922b5d8df1217fd3870214a1855b64d139ecc51826152e1ae777590dce0328";

fn ev(pid: u32, ppid: u32, start: u64, detail: Detail) -> Event {
    Event {
        ktime_ns: start + 1,
        process: ProcessInfo {
            pid,
            tid: pid,
            ppid,
            vpid: pid,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: "worker".into(),
            start_ns: start,
            cap_effective: 0,
        },
        ns: Namespaces { mnt: 1, pid: 2, net: 3 },
        cgroup_id: 7,
        ret: None,
        flags: 0,
        detail,
    }
}

fn main() {
    const N: u32 = 100_000;
    let before = LIVE.load(Ordering::Relaxed);
    let mut tree = ProcessTree::with_caps(200_000, 30_000_000_000);
    let t = Instant::now();
    // A shell (pid 10) forks N children; each execs /usr/bin/worker with two arguments.
    for i in 0..N {
        let pid = 1000 + i;
        let start = 1_000 + u64::from(i) * 10;
        tree.observe(
            &ev(10, 1, 1, Detail::Fork { child_pid: pid, child_start_ns: start }),
            Some(CONTAINER),
            start,
        );
        tree.observe(
            &ev(
                pid,
                10,
                start,
                Detail::Exec {
                    filename: "/usr/bin/worker".into(),
                    argv: vec!["worker".into(), "--id".into(), i.to_string()],
                    truncated: false,
                    stdio: [boxwatch_model::FdType::Closed; 3],
                },
            ),
            Some(CONTAINER),
            start,
        );
    }
    let build = t.elapsed();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let t = Instant::now();
    let mut found = 0usize;
    for r in 0..5 {
        for i in 0..N {
            let pid = 1000 + (i * 7919 + r) % N;
            found += usize::from(black_box(tree.get(pid)).is_some());
        }
    }
    let lookup = t.elapsed();
    let t = Instant::now();
    let mut depth = 0usize;
    for i in 0..N {
        depth += black_box(tree.ancestors(1000 + i)).len();
    }
    let anc = t.elapsed();
    println!("process tree, {N} processes (fork + exec each), in one container:");
    println!(
        "  memory: {:.0} bytes per tracked process (allocator-counted, includes argv)",
        bytes as f64 / f64::from(N)
    );
    println!("  observe: {:.0} ns per event (fork or exec)", build.as_nanos() as f64 / f64::from(2 * N));
    println!("  lookup by pid: {:.0} ns ({found} found)", lookup.as_nanos() as f64 / f64::from(5 * N));
    println!(
        "  ancestors: {:.0} ns per call (mean depth {:.1})",
        anc.as_nanos() as f64 / f64::from(N),
        depth as f64 / f64::from(N)
    );

    // What the daemon pays per HTTP snapshot (at most every 500 ms): every container's tree.
    let t = Instant::now();
    let trees = black_box(tree.container_trees());
    let snap = t.elapsed();
    println!(
        "  container_trees (the API snapshot): {:.1} ms for {} processes ({:.0} ns per process)",
        snap.as_secs_f64() * 1e3,
        trees.values().map(Vec::len).sum::<usize>(),
        snap.as_nanos() as f64 / f64::from(N)
    );
    drop(trees);

    let mut table = ContainerTable::new();
    for i in 0..10_000u64 {
        table.learn(i, &format!("/system.slice/docker-{:064x}.scope", i * 0x9e37_79b9));
    }
    let t = Instant::now();
    let mut hits = 0usize;
    for r in 0..100u64 {
        for i in 0..10_000u64 {
            hits += usize::from(black_box(table.lookup((i * 31 + r) % 10_000)).is_some());
        }
    }
    println!(
        "container table, 10000 cgroups: lookup {:.0} ns ({hits} hits)",
        t.elapsed().as_nanos() as f64 / 1_000_000.0
    );
}
