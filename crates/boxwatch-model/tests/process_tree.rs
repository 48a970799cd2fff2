//! Process-tree fixtures from realistic event sequences: containerd-shim → runc → runc:[2:INIT]
//! → sh → cat, `ctr task exec`, setns/nsenter, double fork, pid reuse, grace and eviction.
//! A small kernel simulator ([`Sim`]) keeps the kernel's view (real parent, cgroup, vpid) and
//! emits the events `boxwatch-bpf` would: fork from the forker, exec/exit/syscalls from the
//! process, `ppid` = real parent tgid at the time of the event.

use std::collections::BTreeMap;

use boxwatch_model::event::{Detail, Event, Namespaces, ProcessInfo};
use boxwatch_model::process::{Entry, ProcessTree, SeedProc, TreeStats};

const C: &str = "4be7496d1c7a4f2fb2b7c3c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1";
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const GRACE: u64 = 30 * SEC;
const SHIM: u32 = 812;

#[derive(Debug, Clone)]
struct Proc {
    start: u64,
    ppid: u32,
    vpid: u32,
    comm: String,
    container: Option<String>,
}

struct Sim {
    t: ProcessTree,
    now: u64,
    procs: BTreeMap<u32, Proc>,
}

fn comm_of(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).chars().take(15).collect()
}

impl Sim {
    /// A host with init (1), containerd (800) and a containerd-shim (812) seeded from /proc.
    fn host(t: ProcessTree) -> Sim {
        let mut s = Sim { t, now: 10 * SEC, procs: BTreeMap::new() };
        let shim_argv = ["containerd-shim-runc-v2", "-namespace", "moby", "-id", C];
        for (pid, ppid, comm, exe, argv) in [
            (1, 0, "init", "/sbin/init", vec!["/sbin/init"]),
            (800, 1, "containerd", "/usr/bin/containerd", vec!["containerd"]),
            (SHIM, 1, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", shim_argv.to_vec()),
        ] {
            let start = u64::from(pid) * 10 * MS;
            s.procs.insert(pid, Proc { start, ppid, vpid: pid, comm: comm.into(), container: None });
            s.t.seed([SeedProc {
                pid,
                ppid,
                start_ns: start,
                vpid: pid,
                comm: comm.into(),
                exe: Some(exe.into()),
                argv: argv.iter().map(|a| a.to_string()).collect(),
                cgroup_id: 1,
                ..Default::default()
            }]);
        }
        s
    }

    fn event(&self, pid: u32, detail: Detail) -> Event {
        let p = &self.procs[&pid];
        let process = ProcessInfo {
            pid,
            tid: pid,
            ppid: p.ppid,
            vpid: p.vpid,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: p.comm.clone(),
            start_ns: p.start,
            cap_effective: 0,
        };
        let cgroup_id = if p.container.is_some() { 253 } else { 1 };
        let ns = Namespaces { mnt: 1, pid: 1, net: 1 };
        Event { ktime_ns: self.now, process, ns, cgroup_id, ret: Some(0), flags: 0, detail }
    }

    fn feed(&mut self, ev: &Event, container: Option<&str>) {
        self.now += MS;
        self.t.observe(ev, container, self.now);
        if self.t.len() < 200 {
            self.t.check_invariants().unwrap();
        }
    }

    fn emit(&mut self, pid: u32, detail: Detail) {
        let ev = self.event(pid, detail);
        let c = self.procs[&pid].container.clone();
        self.feed(&ev, c.as_deref());
    }

    /// A syscall with no tree meaning (the process is simply seen).
    fn touch(&mut self, pid: u32) {
        self.emit(pid, Detail::Listen { fd: 3, backlog: 1 });
    }

    fn fork_as(&mut self, forker: u32, child: u32, real_parent: u32, vpid: u32) {
        let mut p = self.procs[&forker].clone();
        (p.start, p.ppid, p.vpid) = (self.now, real_parent, vpid);
        self.procs.insert(child, p);
        self.emit(forker, Detail::Fork { child_pid: child, child_start_ns: self.now });
    }

    fn fork(&mut self, parent: u32, child: u32) {
        let vpid = if self.procs[&parent].vpid == parent { child } else { self.procs[&parent].vpid + 1 };
        self.fork_as(parent, child, parent, vpid);
    }

    /// clone(CLONE_PARENT), as runc's nsexec does: the child is the forker's sibling.
    fn clone_parent(&mut self, forker: u32, child: u32, vpid: u32) {
        let grandparent = self.procs[&forker].ppid;
        self.fork_as(forker, child, grandparent, vpid);
    }

    fn exec(&mut self, pid: u32, path: &str, argv: &[&str]) {
        self.procs.get_mut(&pid).unwrap().comm = comm_of(path);
        let argv = argv.iter().map(|a| a.to_string()).collect();
        self.emit(
            pid,
            Detail::Exec {
                filename: path.into(),
                argv,
                truncated: false,
                stdio: [boxwatch_model::FdType::Closed; 3],
            },
        );
    }

    fn set_comm(&mut self, pid: u32, comm: &str) {
        self.procs.get_mut(&pid).unwrap().comm = comm.into();
        self.touch(pid);
    }

    /// Written into a cgroup by someone else: the next event of `pid` carries it.
    fn move_to(&mut self, pid: u32, container: Option<&str>) {
        self.procs.get_mut(&pid).unwrap().container = container.map(str::to_owned);
    }

    fn setns(&mut self, pid: u32) {
        self.emit(pid, Detail::Setns { fd: 3, nstype: 0, ns_inode: 4026532000 });
    }

    /// Exit; the kernel reparents the children to `reaper`.
    fn exit(&mut self, pid: u32, code: i32, reaper: u32) {
        self.emit(pid, Detail::Exit { code, signal: 0 });
        self.procs.remove(&pid);
        for p in self.procs.values_mut().filter(|p| p.ppid == pid) {
            p.ppid = reaper;
        }
    }

    fn pids(&self, nodes: &[&boxwatch_model::ProcNode]) -> Vec<u32> {
        nodes.iter().map(|n| n.key.pid).collect()
    }

    /// `ctr run` with containerd + runc: shim → runc create → runc init (0:PARENT) →
    /// CLONE_PARENT 1:CHILD → CLONE_PARENT 2:INIT (vpid 1); runc exits, the shim adopts the
    /// init, which execs `sh -c 'cat /etc/hostname'`; sh forks cat (left running).
    fn containerd_run(&mut self) {
        self.fork(SHIM, 900);
        self.exec(900, "/usr/bin/runc", &["runc", "--root", "/run/containerd/runc/moby", "create", C]);
        self.fork(900, 901);
        self.exec(901, "/proc/self/exe", &["runc", "init"]);
        self.set_comm(901, "runc:[0:PARENT]");
        self.move_to(901, Some(C));
        self.touch(901);
        self.clone_parent(901, 902, 902);
        self.set_comm(902, "runc:[1:CHILD]");
        self.clone_parent(902, 903, 1);
        self.set_comm(903, "runc:[2:INIT]");
        self.exit(902, 0, 1);
        self.exit(901, 0, 1);
        self.exit(900, 0, SHIM);
        self.exec(903, "/bin/sh", &["sh", "-c", "cat /etc/hostname"]);
        self.fork(903, 904);
        self.exec(904, "/bin/cat", &["cat", "/etc/hostname"]);
    }

    /// `ctr task exec`: shim → runc exec → runc init → … → 953 (vpid 7) execs `sh -c id`.
    /// The 2:INIT stage is first seen at its exec, after 1:CHILD exited.
    fn ctr_exec(&mut self) {
        self.fork(SHIM, 950);
        self.exec(950, "/usr/bin/runc", &["runc", "exec", "--process", "/tmp/runc-process1", "--detach", C]);
        self.fork(950, 951);
        self.exec(951, "/proc/self/exe", &["runc", "init"]);
        self.set_comm(951, "runc:[0:PARENT]");
        self.move_to(951, Some(C));
        self.touch(951);
        self.clone_parent(951, 952, 952);
        self.set_comm(952, "runc:[1:CHILD]");
        self.setns(952);
        self.clone_parent(952, 953, 7);
        self.procs.get_mut(&953).unwrap().comm = "runc:[2:INIT]".into();
        self.exit(952, 0, 1);
        self.exit(951, 0, 1);
        self.exec(953, "/bin/sh", &["sh", "-c", "id"]);
    }
}

#[test]
fn containerd_shim_runc_init_sh_cat() {
    let mut s = Sim::host(ProcessTree::default());
    s.containerd_run();
    let t = &s.t;
    let init = t.get(903).unwrap();
    assert_eq!(init.entry, Some(Entry::ContainerInit));
    assert_eq!(init.container(), Some(C));
    assert_eq!((init.ppid, init.ppid_at_start), (SHIM, 900), "CLONE_PARENT: born a child of runc");
    assert_eq!(init.real_parent_at_start.unwrap().pid, 900);
    assert!(init.reparented_at.is_some(), "adopted by the shim (subreaper) when runc exited");
    assert_eq!(init.exec_id().generation, 1);
    let cat = t.get(904).unwrap();
    assert_eq!((cat.entry, cat.exe.as_deref(), cat.exec_generation), (None, Some("/bin/cat"), 1));
    assert_eq!(s.pids(&t.ancestors(904)), [903, SHIM, 1]);
    let (entry, host) = t.container_entry(904).unwrap();
    assert_eq!((entry.key.pid, host.unwrap().key.pid), (903, SHIM));
    assert_eq!(t.container_entry(SHIM).map(|(n, _)| n.key.pid), None, "host process");
    let expected = format!(
        "1 init /sbin/init /sbin/init  [host]\n\
         \x20 812 containerd-shim /usr/bin/containerd-shim-runc-v2 containerd-shim-runc-v2 -namespace moby -id {C}  [host]\n\
         \x20   903 sh /bin/sh sh -c 'cat /etc/hostname'  [init]\n\
         \x20     904 cat /bin/cat cat /etc/hostname\n"
    );
    assert_eq!(t.render_container(C), expected);
    let by = t.by_container();
    assert_eq!(by.keys().copied().collect::<Vec<_>>(), [C]);
    assert_eq!(s.pids(&by[C]), [903, 904], "runc stages exited; only live processes listed");
    assert_eq!(t.render_container("no-such-container"), "");
    // The structured tree (what the HTTP API serves) is the same listing.
    let nodes = t.container_tree(C);
    type Row<'a> = (u32, Option<u32>, usize, Option<&'a str>, Option<&'a str>);
    let rows: Vec<Row> = nodes
        .iter()
        .map(|n| (n.pid, n.parent_pid, n.depth, n.container_id.as_deref(), n.entry.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            (1, None, 0, None, None),
            (SHIM, Some(1), 1, None, None),
            (903, Some(SHIM), 2, Some(C), Some("container_init")),
            (904, Some(903), 3, Some(C), None),
        ]
    );
    assert!(nodes.iter().all(|n| n.live));
    assert_eq!(nodes[3].exec_id, t.get(904).unwrap().exec_id());
    assert_eq!(
        serde_json::to_value(&nodes[3]).unwrap()["exec_id"],
        t.get(904).unwrap().exec_id().to_string(),
        "serialised as on events"
    );
    let all = t.container_trees();
    assert_eq!(all.len(), 1);
    assert_eq!(all[C], nodes, "one pass over every container gives the same trees");
    assert!(t.container_tree("no-such-container").is_empty());
}

#[test]
fn ctr_task_exec_is_exec_into_via_runc_then_adopted_by_the_shim() {
    let mut s = Sim::host(ProcessTree::default());
    s.containerd_run();
    s.ctr_exec();
    let n = s.t.get(953).unwrap();
    assert_eq!(n.entry, Some(Entry::ExecInto { via: "runc exec" }));
    assert_eq!((n.ppid, n.real_parent_at_start.unwrap().pid), (950, 950));
    let (entry, host) = s.t.container_entry(953).unwrap();
    assert_eq!((entry.key.pid, host.unwrap().comm.as_ref()), (953, "runc"));
    s.exit(950, 0, SHIM);
    s.touch(953);
    s.exec(953, "/usr/bin/id", &["id"]);
    let n = s.t.get(953).unwrap();
    assert_eq!((n.ppid, n.ppid_at_start, n.exec_generation), (SHIM, 950, 2));
    assert_eq!(n.entry, Some(Entry::ExecInto { via: "runc exec" }), "the entry is kept");
    let (entry, host) = s.t.container_entry(953).unwrap();
    assert_eq!((entry.key.pid, host.unwrap().key.pid), (953, SHIM));
    assert!(s.t.render_container(C).contains("  [exec: runc exec]\n"));
}

#[test]
fn runtime_parents_give_init_then_exec_into() {
    for (parent, via) in [
        ("runc", "runc exec"),
        ("crun", "crun exec"),
        ("conmon", "podman exec"),
        ("containerd-shim", "ctr task exec"),
    ] {
        let mut s = Sim::host(ProcessTree::default());
        s.fork(1, 600);
        s.set_comm(600, parent);
        for child in [601, 602] {
            s.fork(600, child);
            s.move_to(child, Some(C));
            s.exec(child, "/bin/sh", &["sh"]);
        }
        assert_eq!(s.t.get(601).unwrap().entry, Some(Entry::ContainerInit), "{parent}");
        assert_eq!(s.t.get(602).unwrap().entry, Some(Entry::ExecInto { via }), "{parent}");
    }
}

#[test]
fn setns_and_nsenter_from_the_host() {
    let mut s = Sim::host(ProcessTree::default());
    s.containerd_run();
    s.fork(1, 500);
    s.exec(500, "/bin/bash", &["bash"]);
    // a host tool: setns, joins the cgroup, execs
    s.fork(500, 510);
    s.setns(510);
    s.move_to(510, Some(C));
    s.exec(510, "/bin/sh", &["sh"]);
    assert_eq!(s.t.get(510).unwrap().entry, Some(Entry::ExecInto { via: "setns" }));
    // nsenter without --pid: the nsenter process itself execs the shell
    s.fork(500, 520);
    s.exec(520, "/usr/bin/nsenter", &["nsenter", "-t", "903", "-a"]);
    s.setns(520);
    s.move_to(520, Some(C));
    s.exec(520, "/bin/sh", &["sh"]);
    assert_eq!(s.t.get(520).unwrap().entry, Some(Entry::ExecInto { via: "nsenter" }));
    // nsenter --pid: forks, the child execs
    s.fork(500, 530);
    s.exec(530, "/usr/bin/nsenter", &["nsenter", "-t", "903", "-p"]);
    s.setns(530);
    s.fork(530, 531);
    s.move_to(531, Some(C));
    s.exec(531, "/bin/sh", &["sh"]);
    assert_eq!(s.t.get(531).unwrap().entry, Some(Entry::ExecInto { via: "nsenter" }));
    let (entry, host) = s.t.container_entry(531).unwrap();
    assert_eq!((entry.key.pid, host.unwrap().key.pid), (531, 530));
    // setns on the host, exec on the host: no entry
    s.fork(500, 540);
    s.setns(540);
    s.exec(540, "/bin/true", &["true"]);
    assert_eq!(s.t.get(540).unwrap().entry, None);
}

#[test]
fn double_fork_stays_in_its_container() {
    let mut s = Sim::host(ProcessTree::default());
    s.containerd_run();
    s.fork(903, 960);
    s.fork(960, 961);
    s.exit(960, 0, SHIM); // no pid namespace of its own: the shim subreaper adopts
    s.exec(961, "/usr/bin/sleep", &["sleep", "1000"]);
    s.fork(903, 970);
    s.fork(970, 971);
    s.exit(970, 0, 1); // or pid 1 adopts
    s.touch(971);
    let n = s.t.get(961).unwrap();
    assert_eq!(
        (n.container(), n.entry, n.ppid, n.real_parent_at_start.unwrap().pid),
        (Some(C), None, SHIM, 960)
    );
    assert_eq!(s.pids(&s.t.ancestors(961)), [SHIM, 1]);
    assert_eq!(s.pids(&s.t.ancestors(971)), [1]);
    for pid in [961, 971] {
        let (entry, host) = s.t.container_entry(pid).unwrap();
        assert_eq!((entry.key.pid, host.unwrap().key.pid), (903, SHIM), "through the exited birth parent");
    }
    assert!(s.pids(&s.t.by_container()[C]).contains(&971));
    s.t.evict(s.now + GRACE);
    assert!(s.t.get(960).is_none());
    let (entry, host) = s.t.container_entry(961).unwrap();
    assert_eq!((entry.key.pid, host.unwrap().key.pid), (961, SHIM), "birth parent evicted");
    assert_eq!(s.t.get(961).unwrap().container(), Some(C));
}

#[test]
fn pid_reuse_makes_a_new_process_and_keeps_the_old_as_exited() {
    let mut s = Sim::host(ProcessTree::default());
    s.fork(1, 700);
    s.exec(700, "/bin/old", &["old"]);
    let old = s.procs[&700].start;
    let late = s.event(700, Detail::Listen { fd: 1, backlog: 1 });
    s.exit(700, 3, 1);
    s.fork(800, 700);
    s.exec(700, "/bin/new", &["new"]);
    let n = s.t.get(700).unwrap();
    assert_eq!((n.exe.as_deref(), n.ppid, n.is_live()), (Some("/bin/new"), 800, true));
    let o = s.t.lookup(700, old).unwrap();
    assert_eq!((o.exe.as_deref(), o.exit_code, o.is_live()), (Some("/bin/old"), Some(3), false));
    s.feed(&late, None); // a straggler of the old process: resolves to it, does not resurrect it
    assert!(!s.t.lookup(700, old).unwrap().is_live());
    assert_eq!(s.t.get(700).unwrap().exe.as_deref(), Some("/bin/new"));
    assert_eq!(s.t.evict(s.now + 1), 0);
    assert_eq!(s.t.evict(s.now + GRACE + 1), 1);
    assert!(s.t.lookup(700, old).is_none());
    // exit event lost: the reuse itself proves the old process dead
    s.fork(1, 710);
    let lost = s.procs[&710].start;
    s.procs.remove(&710);
    s.fork(1, 710);
    let o = s.t.lookup(710, lost).unwrap();
    assert_eq!((o.is_live(), o.exit_code, o.exited_at), (false, None, Some(s.procs[&710].start)));
    assert_eq!(s.t.stats().live, 5);
}

#[test]
fn threads_never_appear() {
    let mut s = Sim::host(ProcessTree::default());
    s.fork(1, 720);
    for tid in [720, 721, 722] {
        let mut ev = s.event(720, Detail::Listen { fd: 3, backlog: 1 });
        ev.process.tid = tid;
        s.feed(&ev, None);
    }
    let mut ev = s.event(
        720,
        Detail::Exec {
            filename: "/bin/x".into(),
            argv: vec![],
            truncated: false,
            stdio: [boxwatch_model::FdType::Closed; 3],
        },
    );
    ev.process.tid = 722; // exec from a non-leader thread keeps the tgid and start time
    s.feed(&ev, None);
    assert_eq!(s.t.len(), 4);
    assert!(s.t.get(721).is_none() && s.t.get(722).is_none());
    assert_eq!(s.t.get(720).unwrap().exec_generation, 1);
}

#[test]
fn late_seen_processes_resolve_and_unknown_parents_are_counted() {
    let mut s = Sim::host(ProcessTree::default());
    s.containerd_run();
    s.procs.insert(
        1234,
        Proc { start: s.now, ppid: 903, vpid: 9, comm: "wget".into(), container: Some(C.into()) },
    );
    s.touch(1234); // fork event lost
    assert_eq!(s.pids(&s.t.ancestors(1234)), [903, SHIM, 1]);
    assert_eq!(s.t.get(1234).unwrap().entry, None, "parent inside: not an entry");
    let before = s.t.stats().unknown_parent_lookups;
    s.procs.insert(1300, Proc { start: s.now, ppid: 4321, vpid: 1300, comm: "x".into(), container: None });
    s.touch(1300);
    assert!(s.t.ancestors(1300).is_empty());
    assert_eq!(s.t.stats().unknown_parent_lookups, before + 1);
    assert!(s.t.ancestors(1).is_empty(), "pid 1: ppid 0 is not an unknown parent");
    assert_eq!(s.t.stats().unknown_parent_lookups, before + 1);
}

#[test]
fn exited_processes_resolve_until_the_grace_period_ends() {
    let mut s = Sim::host(ProcessTree::with_caps(1000, GRACE));
    s.containerd_run();
    s.fork(904, 905);
    let late = s.event(905, Detail::Listen { fd: 3, backlog: 1 });
    s.exit(904, 0, 903);
    let cat = s.t.get(904).unwrap();
    assert_eq!((cat.is_live(), cat.exit_code), (false, Some(0)));
    s.feed(&late, Some(C)); // an event queued before the reparenting
    assert_eq!(s.pids(&s.t.ancestors(905)), [904, 903, SHIM, 1]);
    let exited_seen = s.t.get(904).unwrap().last_seen_ns;
    let runc_stages = s.t.evict(exited_seen + GRACE - 1);
    assert_eq!(runc_stages, 3, "runc, runc:[0:PARENT], runc:[1:CHILD] exited earlier");
    assert!(s.t.get(904).is_some_and(|n| !n.is_live()));
    assert_eq!(s.t.evict(exited_seen + GRACE), 1);
    assert!(s.t.get(904).is_none());
    let st = s.t.stats();
    assert_eq!((st.evicted_exited, st.exited, st.evicted_over_cap), (4, 0, 0));
}

#[test]
fn over_the_cap_exited_go_first_then_least_recently_seen_live() {
    let cap = 100;
    let mut s = Sim::host(ProcessTree::with_caps(cap, 3600 * SEC));
    for pid in 2000..2060 {
        s.fork(1, pid);
    }
    for pid in 2000..2040 {
        s.exit(pid, 0, 1);
    }
    s.touch(2059); // most recently seen of the old ones
    for pid in 3000..3080 {
        s.fork(1, pid);
        assert!(s.t.len() <= cap);
    }
    let st = s.t.stats();
    assert!(st.evicted_over_cap > 0);
    assert_eq!(st.exited, 0, "every exited node went before any live one");
    assert!((3000..3080).all(|p| s.t.get(p).is_some()), "recent processes kept");
    assert!(s.t.get(2059).is_some() && s.t.get(2040).is_none(), "least recently seen live evicted");
    assert_eq!(st.live + st.exited, s.t.len());
    let mut small = ProcessTree::with_caps(10, GRACE);
    small.seed((1..=30).map(|pid| SeedProc { pid, ppid: 1, start_ns: u64::from(pid), ..Default::default() }));
    assert_eq!((small.len(), small.stats().evicted_over_cap), (10, 20));
    small.check_invariants().unwrap();
}

#[test]
fn seeding_from_proc_matches_later_events_and_derives_entries() {
    let tick = |ns: u64| ns / (10 * MS) * (10 * MS); // /proc precision
    let mut live = Sim::host(ProcessTree::default());
    live.containerd_run();
    live.ctr_exec();
    live.exit(950, 0, SHIM);
    let procs: Vec<SeedProc> = live
        .procs
        .iter()
        .map(|(pid, p)| SeedProc {
            pid: *pid,
            ppid: p.ppid,
            start_ns: tick(p.start),
            vpid: p.vpid,
            comm: p.comm.clone(),
            exe: Some(format!("/bin/{}", p.comm)),
            container_id: p.container.clone(),
            ..Default::default()
        })
        .collect();
    let mut a = ProcessTree::default();
    a.seed(procs.clone());
    let mut b = ProcessTree::default();
    b.seed(procs.into_iter().rev());
    assert_eq!(a.render_container(C), b.render_container(C), "input order does not matter");
    assert_eq!(a.get(903).unwrap().entry, Some(Entry::ContainerInit));
    assert_eq!(a.get(953).unwrap().entry, Some(Entry::ExecInto { via: "ctr task exec" }));
    assert_eq!(a.get(904).unwrap().entry, None);
    let len = a.len();
    live.t = a;
    live.touch(903); // exact kernel start time: matches the tick-rounded seeded node
    live.exec(904, "/bin/cat", &["cat", "/etc/os-release"]);
    assert_eq!(live.t.len(), len);
    assert_eq!(live.pids(&live.t.ancestors(904)), [903, SHIM, 1]);
    assert!(live.t.get(904).unwrap().seeded);
}

#[test]
fn ten_thousand_processes_sanity() {
    let started = std::time::Instant::now();
    let mut s = Sim::host(ProcessTree::default());
    let containers: Vec<String> = (0..10).map(|i| format!("{i:064x}")).collect();
    for (i, c) in containers.iter().enumerate() {
        let init = 100_000 + i as u32;
        s.fork(SHIM, init);
        s.move_to(init, Some(c));
        s.procs.get_mut(&init).unwrap().vpid = 1;
        s.exec(init, "/bin/sh", &["sh"]);
    }
    for n in 0..10_000u32 {
        let parent = 100_000 + n % 10;
        let pid = 200_000 + n;
        s.fork(parent, pid);
        s.exec(pid, "/usr/bin/worker", &["worker", &n.to_string()]);
        if (n / 10) % 2 == 0 {
            s.exit(pid, 0, parent);
        }
    }
    let st = s.t.stats();
    assert_eq!((st.live, st.exited), (3 + 10 + 5_000, 5_000));
    let by = s.t.by_container();
    assert_eq!(by.len(), 10);
    assert!(by.values().all(|v| v.len() == 501));
    assert_eq!(s.t.ancestors(209_999).len(), 3);
    s.t.evict(s.now + GRACE);
    assert_eq!(s.t.stats().exited, 0);
    s.t.check_invariants().unwrap();
    eprintln!("10k processes: {:?} (informational only, not asserted)", started.elapsed());
}

#[test]
fn exec_ids_are_stable_per_image() {
    let mut s = Sim::host(ProcessTree::default());
    s.fork(1, 42);
    let start = s.procs[&42].start;
    let forked = s.t.get(42).unwrap().exec_id();
    assert_eq!(forked.to_string(), format!("42:{start}:0"));
    s.exec(42, "/bin/sh", &["sh"]);
    s.touch(42);
    let id = s.t.get(42).unwrap().exec_id();
    assert_eq!((id.to_string(), id > forked), (format!("42:{start}:1"), true));
}

#[test]
fn deep_chains_render_bounded() {
    let mut s = Sim::host(ProcessTree::default());
    s.fork(SHIM, 5000);
    s.move_to(5000, Some(C));
    s.touch(5000);
    for pid in 5001..5500 {
        s.fork(pid - 1, pid);
    }
    let text = s.t.render_container(C);
    assert_eq!(text.lines().count(), 500 + 2);
    assert!(text.lines().all(|l| l.len() < 2 * 64 + 200), "indentation is capped");
    assert_eq!(s.t.ancestors(5499).len(), 64);
    let (entry, host) = s.t.container_entry(5499).unwrap();
    assert_eq!((entry.key.pid, host.map(|h| h.key.pid)), (5435, None), "walk bounded at 64 hops");
}

#[test]
fn bytes_per_node() {
    let size = std::mem::size_of::<boxwatch_model::ProcNode>();
    println!("size_of::<ProcNode>() = {size} bytes, plus its key in the map and unshared strings");
    assert!(size > 0);
}

#[test]
fn arbitrary_event_streams_never_panic_and_stay_bounded() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut t = ProcessTree::with_caps(40, 50);
    let cids = [None, Some("a"), Some("b")];
    let starts = [0, 1, 2, 3, u64::MAX];
    for i in 0..20_000u64 {
        let pid = [0, 1, 2, 3, u32::MAX][rnd(5) as usize].max(rnd(30) as u32);
        let start = starts[rnd(5) as usize];
        let detail = match rnd(6) {
            0 => Detail::Fork { child_pid: rnd(30) as u32, child_start_ns: starts[rnd(5) as usize] },
            1 => Detail::Exec {
                filename: "/bin/\u{1b}x".into(),
                argv: vec!["a b".into()],
                truncated: false,
                stdio: [boxwatch_model::FdType::Closed; 3],
            },
            2 => Detail::Exit { code: 1, signal: 9 },
            3 => Detail::Setns { fd: 0, nstype: 0, ns_inode: 0 },
            _ => Detail::Listen { fd: 0, backlog: 0 },
        };
        let process = ProcessInfo {
            pid,
            tid: pid,
            ppid: rnd(30) as u32,
            vpid: rnd(3) as u32,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: ["runc", "runc:[1:CHILD]", "nsenter", "conmon", "sh"][rnd(5) as usize].into(),
            start_ns: start,
            cap_effective: 0,
        };
        let ns = Namespaces { mnt: 0, pid: 0, net: 0 };
        let ev = Event { ktime_ns: i, process, ns, cgroup_id: 0, ret: None, flags: 0, detail };
        t.observe(&ev, cids[rnd(3) as usize], i);
        assert!(t.len() <= 40);
        let q = rnd(30) as u32;
        let _ = (t.ancestors(q), t.container_entry(q), t.get(q).map(|n| n.exec_id().to_string()));
        if i % 500 == 0 {
            t.evict(i);
            t.check_invariants().unwrap();
            for c in ["a", "b"] {
                assert!(!t.render_container(c).contains('\u{1b}'));
            }
        }
    }
    let TreeStats { live, exited, .. } = t.stats();
    assert_eq!(live + exited, t.len());
}
