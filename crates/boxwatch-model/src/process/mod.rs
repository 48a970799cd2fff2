//! The process tree: "which process chain did this?" for every event.
//!
//! [`ProcessTree`] keeps one [`ProcNode`] per process (thread group), keyed by [`ProcKey`] =
//! (tgid, start time): a pid alone is never a key, because pids are reused. It is fed every
//! decoded [`Event`] through [`ProcessTree::observe`] and, at start-up, the processes already
//! running through [`ProcessTree::seed`] (the caller reads `/proc`).
//!
//! **Invariants**
//! - Pure: no I/O and no clock; time is CLOCK_MONOTONIC ns passed in. No input panics.
//! - Deterministic: nodes live in a `BTreeMap`, so every listing is in (pid, start) order.
//! - Bounded: at most `max_processes` nodes after every `observe`, `seed` and `evict`.
//! - Threads never appear: events carry the tgid, and only the tgid is used.
//! - Container membership is the caller's `container_id` (from the event's cgroup), never
//!   inferred from the parent: a double-forked or reparented process stays in its container.
//!
//! **Parents.** `ppid`/`parent` are the kernel's current `real_parent` as last reported. A
//! change after the parent died is a reparenting (to a subreaper such as containerd-shim, or
//! pid 1): `reparented_at` is set and `ppid_at_start`/`real_parent_at_start` keep the birth
//! parent. Fork events come from the forker, but `clone(CLONE_PARENT)` (runc's nsexec uses it)
//! makes the child a sibling of its forker: when the child's first own event reports the
//! forker's parent, and the forker is alive or is a `runc:[…]` stage, the birth parent is
//! corrected instead.
//!
//! **Seeding.** `/proc` start times are boot-time clock ticks (10 ms): the caller converts them
//! to CLOCK_MONOTONIC ns, and a seeded node matches an event whose start time is within the
//! seed tolerance (default 50 ms) of its own. Seeded nodes keep their approximate key.

mod render;

pub use render::{TreeNode, entry_name};

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::event::{Detail, Event};

/// Default cap on stored processes, live and exited together.
pub const DEFAULT_MAX_PROCESSES: usize = 65_536;
/// Default time an exited process is kept after it was last observed: 30 s.
pub const DEFAULT_EXIT_GRACE_NS: u64 = 30_000_000_000;
/// Default tolerance when matching a seeded (tick-rounded) start time to a kernel one: 50 ms.
pub const DEFAULT_SEED_TOLERANCE_NS: u64 = 50_000_000;
/// Longest parent chain walked; also what stops a cycle in inconsistent input.
pub const MAX_DEPTH: usize = 64;

/// A process identity: tgid and group-leader start time (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcKey {
    pub pid: u32,
    pub start_ns: u64,
}

/// One program image of one process. `generation` counts the execs observed since the process
/// was first known (0: the image it was forked or seeded with). Displayed as
/// `"{pid}:{start_ns}:{generation}"`, unique and stable for the life of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecId {
    pub key: ProcKey,
    pub generation: u32,
}

/// Serialised as its display form, `pid:start_ns:generation` (as on events and alerts).
impl serde::Serialize for ExecId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for ExecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.key.pid, self.key.start_ns, self.generation)
    }
}

/// How a process came into its container (set once, at its first exec or arrival there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The container's init: pid 1 of its pid namespace, or the first live process of the
    /// container, its parent outside it (containerd-shim, runc, crun, conmon).
    ContainerInit,
    /// Joined a running container: `via` is "runc exec", "crun exec", "podman exec" (conmon
    /// parent), "ctr task exec" (containerd-shim parent), "nsenter", "setns" (the process itself
    /// called setns) or "unknown".
    ExecInto { via: &'static str },
}

/// One process. Strings shared with the parent (fork) or the container are `Arc`s.
#[derive(Debug, Clone, Default)]
pub struct ProcNode {
    pub key: ProcKey,
    /// Execs observed; see [`ExecId`].
    pub exec_generation: u32,
    /// Current parent tgid, as last reported by the kernel.
    pub ppid: u32,
    /// Current parent, when known when `ppid` was last set.
    pub parent: Option<ProcKey>,
    pub ppid_at_start: u32,
    pub real_parent_at_start: Option<ProcKey>,
    /// Event time of the last reparenting (parent died, adopted by a subreaper or pid 1).
    pub reparented_at: Option<u64>,
    /// pid in its own pid namespace (1: a container init); 0 until known.
    pub vpid: u32,
    pub comm: Arc<str>,
    pub exe: Option<Arc<str>>,
    pub argv: Arc<[String]>,
    pub uid: u32,
    pub euid: u32,
    pub cgroup_id: u64,
    /// From the caller (cgroup → container); `None`: host.
    pub container_id: Option<Arc<str>>,
    pub entry: Option<Entry>,
    /// Kernel time of the exit; for an exit inferred from pid reuse, the reuser's start time.
    pub exited_at: Option<u64>,
    /// `None` with `exited_at` set: the exit was inferred, not seen.
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    /// Came from [`ProcessTree::seed`]: the start time is approximate.
    pub seeded: bool,
    /// `now_ns` of the latest observation: the grace period and LRU eviction count from it.
    pub last_seen_ns: u64,
    /// The forker's ppid at fork time, until the child's first own event (CLONE_PARENT check).
    fork_grandparent: u32,
    confirmed: bool,
    /// Forked by a process of the same container: it did not come in from outside.
    born_inside: bool,
    did_setns: bool,
}

impl ProcNode {
    pub fn exec_id(&self) -> ExecId {
        ExecId { key: self.key, generation: self.exec_generation }
    }
    pub fn is_live(&self) -> bool {
        self.exited_at.is_none()
    }
    pub fn container(&self) -> Option<&str> {
        self.container_id.as_deref()
    }
    fn in_container(&self, c: &str) -> bool {
        self.container() == Some(c)
    }
}

/// A process found in `/proc` at start-up (the caller reads it; `..Default::default()` for
/// unknown fields). `start_ns` must be converted to CLOCK_MONOTONIC ns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedProc {
    pub pid: u32,
    pub ppid: u32,
    pub start_ns: u64,
    /// Last `NSpid` of `/proc/<pid>/status`; 0 if unknown.
    pub vpid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub uid: u32,
    pub euid: u32,
    pub cgroup_id: u64,
    pub container_id: Option<String>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub live: usize,
    pub exited: usize,
    /// Exited processes dropped after their grace period.
    pub evicted_exited: u64,
    /// Processes (exited, then live) dropped to stay under the cap.
    pub evicted_over_cap: u64,
    /// Parent-chain walks that stopped at a parent pid not in the tree.
    pub unknown_parent_lookups: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct ProcessTree {
    nodes: BTreeMap<ProcKey, ProcNode>,
    /// Live processes per container; its keys also intern the container ids.
    live_in: BTreeMap<Arc<str>, usize>,
    max_processes: usize,
    exit_grace_ns: u64,
    seed_tolerance_ns: u64,
    now_hint: u64,
    evicted_exited: u64,
    evicted_over_cap: u64,
    unknown_parent_lookups: AtomicU64,
}

impl Default for ProcessTree {
    fn default() -> Self {
        Self::with_caps(DEFAULT_MAX_PROCESSES, DEFAULT_EXIT_GRACE_NS)
    }
}

impl ProcessTree {
    /// `max_processes` (≥ 1) bounds live and exited nodes; exited ones stay `exit_grace_ns`.
    pub fn with_caps(max_processes: usize, exit_grace_ns: u64) -> Self {
        ProcessTree {
            nodes: BTreeMap::new(),
            live_in: BTreeMap::new(),
            max_processes: max_processes.max(1),
            exit_grace_ns,
            seed_tolerance_ns: DEFAULT_SEED_TOLERANCE_NS,
            now_hint: 0,
            evicted_exited: 0,
            evicted_over_cap: 0,
            unknown_parent_lookups: AtomicU64::new(0),
        }
    }

    pub fn with_seed_tolerance(mut self, tolerance_ns: u64) -> Self {
        self.seed_tolerance_ns = tolerance_ns;
        self
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Update from one event. `container_id` is the container of the event's process (from
    /// its cgroup), `None` for the host. Fork creates the child (same container, image and
    /// credentials as its forker), exec bumps the exec generation, exit marks `exited_at`, and
    /// an event from an unknown process creates it from `ev.process`.
    pub fn observe(&mut self, ev: &Event, container_id: Option<&str>, now_ns: u64) {
        self.now_hint = self.now_hint.max(now_ns);
        let p = &ev.process;
        let was_nsenter = matches!(ev.detail, Detail::Exec { .. })
            && self.lookup(p.pid, p.start_ns).is_some_and(|n| {
                &*n.comm == "nsenter" || n.exe.as_deref().is_some_and(|e| e.ends_with("/nsenter"))
            });
        let Some(key) = self.upsert(ev, container_id, now_ns, was_nsenter) else { return };
        let mut protect = [key, key];
        match &ev.detail {
            Detail::Fork { child_pid, child_start_ns } => {
                let child = ProcKey { pid: *child_pid, start_ns: *child_start_ns };
                if let Some(ck) = self.on_fork(key, p.ppid, child, now_ns) {
                    protect[1] = ck;
                }
            }
            Detail::Exec { filename, argv, .. } if ev.succeeded() => {
                self.on_exec(key, p.vpid, filename, argv, was_nsenter);
            }
            Detail::Exit { code, signal } => {
                self.mark_exited(key, ev.ktime_ns, Some(*code), Some(*signal), now_ns);
            }
            Detail::Setns { .. } if ev.succeeded() => {
                if let Some(n) = self.nodes.get_mut(&key) {
                    n.did_setns = true;
                }
            }
            _ => {}
        }
        if self.nodes.len() > self.max_processes {
            // Hysteresis: evict 1/16 of the cap at once, so the sort is amortised over inserts.
            self.shrink_to(self.max_processes - self.max_processes / 16, &protect);
        }
    }

    /// Start-up seeding from `/proc`. A process already known (same pid, start within the
    /// tolerance) only gains a missing image. Parents are linked after all are inserted, so
    /// the input order does not matter; entries are derived as for events, "first" meaning the
    /// earliest-started live process of its container.
    pub fn seed(&mut self, procs: impl IntoIterator<Item = SeedProc>) {
        let now = self.now_hint;
        let mut added = Vec::new();
        for sp in procs {
            if sp.pid == 0 {
                continue;
            }
            if let Some(k) = self.find(sp.pid, sp.start_ns, true) {
                if let Some(n) = self.nodes.get_mut(&k)
                    && n.exe.is_none()
                {
                    n.exe = sp.exe.map(Arc::from);
                    n.argv = sp.argv.into();
                }
                continue;
            }
            let key = ProcKey { pid: sp.pid, start_ns: sp.start_ns };
            let container_id = sp.container_id.as_deref().map(|c| self.intern(c));
            let mut node = Self::blank(key, sp.ppid, None, now);
            node.vpid = sp.vpid;
            node.comm = sp.comm.into();
            node.exe = sp.exe.map(Arc::from);
            node.argv = sp.argv.into();
            (node.uid, node.euid, node.cgroup_id, node.container_id) =
                (sp.uid, sp.euid, sp.cgroup_id, container_id);
            node.seeded = true;
            self.insert(node, now);
            added.push(key);
        }
        for &k in &added {
            let Some(n) = self.nodes.get(&k) else { continue };
            let parent = self.resolve_parent(n.ppid, k);
            let inside = self.same_container(parent, n.container());
            if let Some(n) = self.nodes.get_mut(&k) {
                (n.parent, n.real_parent_at_start, n.born_inside) = (parent, parent, inside);
            }
        }
        let mut earliest: BTreeMap<Arc<str>, (u64, u32)> = BTreeMap::new();
        for n in self.nodes.values().filter(|n| n.is_live()) {
            if let Some(c) = &n.container_id {
                let e = earliest.entry(c.clone()).or_insert((u64::MAX, u32::MAX));
                *e = (*e).min((n.key.start_ns, n.key.pid));
            }
        }
        for k in added {
            let Some(n) = self.nodes.get(&k) else { continue };
            let first = n.container().and_then(|c| earliest.get(c)) == Some(&(k.start_ns, k.pid));
            self.enter(k, n.vpid, false, Some(first));
        }
        self.shrink_to(self.max_processes, &[]);
    }

    /// The newest process with this pid: live, or exited within its grace period.
    pub fn get(&self, pid: u32) -> Option<&ProcNode> {
        self.nodes.range(pid_range(pid)).next_back().map(|(_, n)| n)
    }

    /// The process an event names (exact key, or a seeded node within the tolerance).
    pub fn lookup(&self, pid: u32, start_ns: u64) -> Option<&ProcNode> {
        self.find(pid, start_ns, false).and_then(|k| self.nodes.get(&k))
    }

    /// All nodes, live and exited, in (pid, start) order.
    pub fn nodes(&self) -> impl Iterator<Item = &ProcNode> {
        self.nodes.values()
    }

    /// Current parent chain of [`get`](Self::get)`(pid)`, nearest first, up to pid 1 or the
    /// first unknown parent; at most [`MAX_DEPTH`] nodes, never a node twice.
    pub fn ancestors(&self, pid: u32) -> Vec<&ProcNode> {
        self.get(pid).map_or_else(Vec::new, |n| self.ancestors_of(n))
    }

    /// As [`ancestors`](Self::ancestors), from a node (e.g. from [`lookup`](Self::lookup)).
    pub fn ancestors_of<'a>(&'a self, node: &'a ProcNode) -> Vec<&'a ProcNode> {
        let mut out: Vec<&ProcNode> = Vec::new();
        let mut n = node;
        while out.len() < MAX_DEPTH {
            let Some(p) = self.parent_node(n) else { break };
            if p.key == node.key || out.iter().any(|a| a.key == p.key) {
                break;
            }
            out.push(p);
            n = p;
        }
        out
    }

    /// For a process in a container: the first ancestor-or-self inside the container (how the
    /// chain entered it) and that node's current host-side parent (containerd-shim, runc…).
    /// The walk follows current parents; a process born inside whose current parent is outside
    /// (orphaned, adopted by a host subreaper) is followed through its birth parent while that
    /// is still in the tree. `None` for host processes and unknown pids.
    pub fn container_entry(&self, pid: u32) -> Option<(&ProcNode, Option<&ProcNode>)> {
        self.container_entry_of(self.get(pid)?)
    }

    /// As [`container_entry`](Self::container_entry), from a node.
    pub fn container_entry_of<'a>(
        &'a self,
        node: &'a ProcNode,
    ) -> Option<(&'a ProcNode, Option<&'a ProcNode>)> {
        let c = node.container()?;
        let mut n = node;
        let mut seen = vec![n.key];
        for _ in 0..MAX_DEPTH {
            let current = self.parent_node(n);
            let next = match current {
                Some(p) if p.in_container(c) => Some(p),
                _ if n.entry.is_none() && n.born_inside => {
                    n.real_parent_at_start.and_then(|k| self.nodes.get(&k)).filter(|p| p.in_container(c))
                }
                _ => None,
            };
            match next {
                Some(p) if !seen.contains(&p.key) => {
                    seen.push(p.key);
                    n = p;
                }
                Some(_) => return Some((n, None)),
                None => return Some((n, current)),
            }
        }
        Some((n, None))
    }

    /// Drop exited processes not observed for the grace period, then, over the cap, the least
    /// recently observed exited processes and after them the least recently observed live
    /// ones. Returns how many were dropped.
    pub fn evict(&mut self, now_ns: u64) -> usize {
        self.now_hint = self.now_hint.max(now_ns);
        let (before, grace) = (self.nodes.len(), self.exit_grace_ns);
        // Only exited nodes go here: no live count changes.
        self.nodes.retain(|_, n| n.is_live() || now_ns.saturating_sub(n.last_seen_ns) < grace);
        let expired = before - self.nodes.len();
        self.evicted_exited += expired as u64;
        expired + self.shrink_to(self.max_processes, &[])
    }

    /// Live processes of container `c` (kept up to date by every observe; O(log n)).
    pub fn live_in(&self, c: &str) -> usize {
        self.live_in.get(c).copied().unwrap_or(0)
    }

    pub fn stats(&self) -> TreeStats {
        let live = self.nodes.values().filter(|n| n.is_live()).count();
        TreeStats {
            live,
            exited: self.nodes.len() - live,
            evicted_exited: self.evicted_exited,
            evicted_over_cap: self.evicted_over_cap,
            unknown_parent_lookups: self.unknown_parent_lookups.load(Relaxed),
        }
    }

    /// Live processes per container, each list in (pid, start) order.
    pub fn by_container(&self) -> BTreeMap<&str, Vec<&ProcNode>> {
        let mut m: BTreeMap<&str, Vec<&ProcNode>> = BTreeMap::new();
        for n in self.nodes.values().filter(|n| n.is_live()) {
            if let Some(c) = n.container() {
                m.entry(c).or_default().push(n);
            }
        }
        m
    }

    /// Internal consistency, for tests: keys match nodes, per-container live counts match.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (k, n) in &self.nodes {
            if *k != n.key || n.parent == Some(n.key) {
                return Err(format!("node {:?} under key {k:?}, parent {:?}", n.key, n.parent));
            }
            if let (true, Some(c)) = (n.is_live(), n.container()) {
                *counts.entry(c).or_default() += 1;
            }
        }
        let table: BTreeMap<&str, usize> = self.live_in.iter().map(|(c, v)| (&**c, *v)).collect();
        if counts != table {
            return Err(format!("live per container {table:?}, recounted {counts:?}"));
        }
        Ok(())
    }

    // ---- internals ---------------------------------------------------------------------

    /// Stored key for an event's (pid, start): exact, else the closest node within the seed
    /// tolerance that is seeded (or any node, when `any`).
    fn find(&self, pid: u32, start_ns: u64, any: bool) -> Option<ProcKey> {
        let exact = ProcKey { pid, start_ns };
        if self.nodes.contains_key(&exact) {
            return Some(exact);
        }
        let lo = ProcKey { pid, start_ns: start_ns.saturating_sub(self.seed_tolerance_ns) };
        let hi = ProcKey { pid, start_ns: start_ns.saturating_add(self.seed_tolerance_ns) };
        let near = self.nodes.range(lo..=hi).filter(|(_, n)| any || n.seeded);
        near.min_by_key(|(k, _)| k.start_ns.abs_diff(start_ns)).map(|(k, _)| *k)
    }

    /// The process `ppid` that can be the parent of `child`: the newest started no later than
    /// the child, else one started within the seed tolerance after it (rounded start times).
    fn resolve_parent(&self, ppid: u32, child: ProcKey) -> Option<ProcKey> {
        if ppid == 0 {
            return None;
        }
        let at = ProcKey { pid: ppid, start_ns: child.start_ns };
        let late = ProcKey { pid: ppid, start_ns: child.start_ns.saturating_add(self.seed_tolerance_ns) };
        let older = self.nodes.range(ProcKey { pid: ppid, start_ns: 0 }..=at).next_back();
        let found = older.or_else(|| self.nodes.range((Excluded(at), Included(late))).next());
        found.map(|(k, _)| *k).filter(|k| *k != child)
    }

    /// Parent node for walks: the stored link, else resolved from `ppid` now.
    fn parent_node(&self, n: &ProcNode) -> Option<&ProcNode> {
        if let Some(p) = n.parent.and_then(|k| self.nodes.get(&k)) {
            return Some(p);
        }
        let p = self.resolve_parent(n.ppid, n.key).and_then(|k| self.nodes.get(&k));
        if p.is_none() && n.ppid != 0 {
            self.unknown_parent_lookups.fetch_add(1, Relaxed);
        }
        p
    }

    fn same_container(&self, parent: Option<ProcKey>, c: Option<&str>) -> bool {
        c.is_some() && parent.and_then(|k| self.nodes.get(&k)).is_some_and(|p| p.container() == c)
    }

    fn intern(&self, c: &str) -> Arc<str> {
        self.live_in.get_key_value(c).map_or_else(|| Arc::from(c), |(k, _)| k.clone())
    }

    /// One more (`up`) or one fewer live process in container `c`.
    fn count(&mut self, c: Option<&str>, up: bool) {
        let Some(c) = c else { return };
        if up {
            *self.live_in.entry(self.intern(c)).or_insert(0) += 1;
        } else if let Some(v) = self.live_in.get_mut(c) {
            *v = v.saturating_sub(1);
            if *v == 0 {
                self.live_in.remove(c);
            }
        }
    }

    fn blank(key: ProcKey, ppid: u32, parent: Option<ProcKey>, now: u64) -> ProcNode {
        let (ppid_at_start, real_parent_at_start) = (ppid, parent);
        ProcNode {
            key,
            ppid,
            parent,
            ppid_at_start,
            real_parent_at_start,
            last_seen_ns: now,
            confirmed: true,
            ..Default::default()
        }
    }

    /// Insert a new node. Pid reuse: older live nodes with its pid must be dead, and if a newer
    /// one exists, this one is.
    fn insert(&mut self, mut node: ProcNode, now: u64) {
        let key = node.key;
        self.remove(key);
        let older: Vec<ProcKey> = self
            .nodes
            .range(ProcKey { pid: key.pid, start_ns: 0 }..key)
            .filter(|(_, n)| n.is_live())
            .map(|(k, _)| *k)
            .collect();
        for k in older {
            self.mark_exited(k, key.start_ns, None, None, now);
        }
        let newer = (Excluded(key), Included(ProcKey { pid: key.pid, start_ns: u64::MAX }));
        if let Some((k, _)) = self.nodes.range(newer).next() {
            node.exited_at = Some(k.start_ns);
        }
        if node.is_live() {
            self.count(node.container(), true);
        }
        self.nodes.insert(key, node);
    }

    fn remove(&mut self, key: ProcKey) {
        if let Some(n) = self.nodes.remove(&key)
            && n.is_live()
        {
            self.count(n.container(), false);
        }
    }

    fn mark_exited(&mut self, key: ProcKey, at: u64, code: Option<i32>, signal: Option<i32>, now: u64) {
        let Some(n) = self.nodes.get_mut(&key) else { return };
        if !n.is_live() {
            return;
        }
        (n.exited_at, n.exit_code, n.exit_signal) = (Some(at), code, signal);
        n.last_seen_ns = n.last_seen_ns.max(now);
        let c = n.container_id.clone();
        self.count(c.as_deref(), false);
    }

    /// Set the container; true when the process arrived in a container (from host or another).
    fn set_container(&mut self, key: ProcKey, cid: Option<&str>) -> bool {
        let Some(n) = self.nodes.get(&key) else { return false };
        if n.container() == cid {
            return false;
        }
        let (old, live) = (n.container_id.clone(), n.is_live());
        let new = cid.map(|c| self.intern(c));
        if live {
            self.count(old.as_deref(), false);
            self.count(cid, true);
        }
        if let Some(n) = self.nodes.get_mut(&key) {
            n.container_id = new;
        }
        cid.is_some()
    }

    /// Find or create the event's own process and refresh it from `ev.process`.
    fn upsert(&mut self, ev: &Event, cid: Option<&str>, now: u64, was_nsenter: bool) -> Option<ProcKey> {
        let p = &ev.process;
        if p.pid == 0 {
            return None;
        }
        let Some(key) = self.find(p.pid, p.start_ns, false) else {
            return Some(self.create_from_event(ev, cid, now));
        };
        let n = self.nodes.get(&key)?;
        if !n.is_live() {
            self.nodes.get_mut(&key)?.last_seen_ns = now;
            return Some(key);
        }
        let mut new_parent = None;
        if p.ppid != n.ppid {
            let forker = n.real_parent_at_start.and_then(|k| self.nodes.get(&k));
            let clone_parent = !n.confirmed
                && n.fork_grandparent != 0
                && p.ppid == n.fork_grandparent
                && forker.is_some_and(|f| f.is_live() || f.comm.starts_with("runc:["));
            new_parent = Some((self.resolve_parent(p.ppid, key), clone_parent));
        }
        let arrival = self.set_container(key, cid);
        let inside = self.same_container(new_parent.and_then(|(k, _)| k), cid);
        let n = self.nodes.get_mut(&key)?;
        if let Some((pk, clone_parent)) = new_parent {
            (n.ppid, n.parent) = (p.ppid, pk);
            if clone_parent {
                (n.ppid_at_start, n.real_parent_at_start, n.born_inside) = (p.ppid, pk, inside);
            } else {
                n.reparented_at = Some(ev.ktime_ns);
            }
        }
        (n.confirmed, n.fork_grandparent, n.last_seen_ns) = (true, 0, now);
        if *n.comm != *p.comm {
            n.comm = Arc::from(p.comm.as_str());
        }
        (n.vpid, n.uid, n.euid, n.cgroup_id) = (p.vpid, p.uid, p.euid, ev.cgroup_id);
        if arrival {
            self.enter(key, p.vpid, was_nsenter, None);
        }
        Some(key)
    }

    /// A process first seen through one of its own events (start-up race, lost fork).
    fn create_from_event(&mut self, ev: &Event, cid: Option<&str>, now: u64) -> ProcKey {
        let p = &ev.process;
        let key = ProcKey { pid: p.pid, start_ns: p.start_ns };
        let parent = self.resolve_parent(p.ppid, key);
        let mut node = Self::blank(key, p.ppid, parent, now);
        node.born_inside = self.same_container(parent, cid);
        node.container_id = cid.map(|c| self.intern(c));
        node.comm = Arc::from(p.comm.as_str());
        (node.vpid, node.uid, node.euid, node.cgroup_id) = (p.vpid, p.uid, p.euid, ev.cgroup_id);
        self.insert(node, now);
        self.enter(key, p.vpid, false, None);
        key
    }

    fn on_fork(&mut self, forker: ProcKey, forker_ppid: u32, child: ProcKey, now: u64) -> Option<ProcKey> {
        if child.pid == 0 {
            return None;
        }
        if let Some(ck) = self.find(child.pid, child.start_ns, false) {
            let n = self.nodes.get_mut(&ck).filter(|_| ck != forker)?;
            if n.real_parent_at_start.is_none() {
                (n.real_parent_at_start, n.ppid_at_start) = (Some(forker), forker.pid);
            }
            return Some(ck);
        }
        let f = self.nodes.get(&forker)?;
        let mut node = Self::blank(child, forker.pid, Some(forker), now);
        node.comm = f.comm.clone();
        (node.exe, node.argv) = (f.exe.clone(), f.argv.clone());
        (node.uid, node.euid, node.cgroup_id) = (f.uid, f.euid, f.cgroup_id);
        node.container_id = f.container_id.clone();
        (node.born_inside, node.did_setns) = (f.container_id.is_some(), f.did_setns);
        (node.fork_grandparent, node.confirmed) = (forker_ppid, false);
        self.insert(node, now);
        Some(child)
    }

    fn on_exec(&mut self, key: ProcKey, vpid: u32, filename: &str, argv: &[String], was_nsenter: bool) {
        let Some(n) = self.nodes.get_mut(&key).filter(|n| n.is_live()) else { return };
        n.exec_generation = n.exec_generation.saturating_add(1);
        n.exe = (!filename.is_empty()).then(|| Arc::from(filename));
        n.argv = Arc::from(argv);
        self.enter(key, vpid, was_nsenter, None);
    }

    /// Set the entry of a live process that has none, if it came into its container.
    fn enter(&mut self, key: ProcKey, vpid: u32, was_nsenter: bool, first: Option<bool>) {
        let fresh = self.nodes.get(&key).is_some_and(|n| n.is_live() && n.entry.is_none());
        let entry = if fresh { self.classify(key, vpid, was_nsenter, first) } else { None };
        if let Some(n) = self.nodes.get_mut(&key).filter(|_| entry.is_some()) {
            n.entry = entry;
        }
    }

    /// How a process in a container got there; `None` if it did not come from outside.
    /// `first`: it is the container's first live process (`None`: count now).
    fn classify(&self, key: ProcKey, vpid: u32, was_nsenter: bool, first: Option<bool>) -> Option<Entry> {
        let n = self.nodes.get(&key)?;
        let c = n.container()?;
        if vpid == 1 {
            return Some(Entry::ContainerInit);
        }
        let parent = n.parent.and_then(|k| self.nodes.get(&k));
        let nsenter = was_nsenter || parent.is_some_and(|p| &*p.comm == "nsenter");
        let setns = if nsenter { Some("nsenter") } else { n.did_setns.then_some("setns") };
        let Some(parent) = parent else { return setns.map(|via| Entry::ExecInto { via }) };
        if parent.in_container(c) || (n.born_inside && setns.is_none()) {
            return None;
        }
        let first =
            first.unwrap_or_else(|| self.live_in.get(c).copied().unwrap_or(0) <= usize::from(n.is_live()));
        Some(match (nsenter, runtime_via(&parent.comm), setns) {
            (true, _, _) => Entry::ExecInto { via: "nsenter" },
            (_, Some(_), _) if first => Entry::ContainerInit,
            (_, Some(via), _) | (_, None, Some(via)) => Entry::ExecInto { via },
            _ if first => Entry::ContainerInit,
            _ => Entry::ExecInto { via: "unknown" },
        })
    }

    /// Evict down to `target` nodes: exited before live, least recently observed first.
    fn shrink_to(&mut self, target: usize, protect: &[ProcKey]) -> usize {
        let Some(excess) = self.nodes.len().checked_sub(target).filter(|e| *e > 0) else { return 0 };
        let mut order: Vec<(bool, u64, ProcKey)> = self
            .nodes
            .values()
            .filter(|n| !protect.contains(&n.key))
            .map(|n| (n.is_live(), n.last_seen_ns, n.key))
            .collect();
        order.sort_unstable();
        order.truncate(excess);
        for (_, _, k) in &order {
            self.remove(*k);
        }
        self.evicted_over_cap += order.len() as u64;
        order.len()
    }
}

fn pid_range(pid: u32) -> std::ops::RangeInclusive<ProcKey> {
    ProcKey { pid, start_ns: 0 }..=ProcKey { pid, start_ns: u64::MAX }
}

/// The exec path implied by a host-side parent that is a container runtime.
fn runtime_via(parent_comm: &str) -> Option<&'static str> {
    match parent_comm {
        c if c.starts_with("runc") => Some("runc exec"),
        c if c.starts_with("crun") => Some("crun exec"),
        "conmon" => Some("podman exec"),
        c if c.starts_with("containerd-shim") => Some("ctr task exec"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pid: u32, start_ns: u64, seeded: bool) -> ProcNode {
        ProcNode { key: ProcKey { pid, start_ns }, seeded, ..Default::default() }
    }

    fn tree(nodes: impl IntoIterator<Item = ProcNode>) -> ProcessTree {
        let mut t = ProcessTree::default();
        t.nodes.extend(nodes.into_iter().map(|n| (n.key, n)));
        t
    }

    #[test]
    fn find_is_exact_except_for_seeded_nodes() {
        let t = tree([node(5, 1_000_000_000, true), node(6, 2_000_000_000, false)]);
        assert_eq!(t.find(5, 1_004_000_000, false).map(|k| k.start_ns), Some(1_000_000_000));
        assert_eq!(t.find(5, 1_060_000_000, false), None, "beyond the tolerance");
        assert_eq!(t.find(6, 2_004_000_000, false), None, "an event-created node matches exactly");
        assert_eq!(t.find(6, 2_004_000_000, true).map(|k| k.start_ns), Some(2_000_000_000));
        assert_eq!(t.find(7, u64::MAX, true), None);
    }

    #[test]
    fn resolve_parent_picks_the_newest_started_before_the_child() {
        let t = tree([node(7, 100, false), node(7, 300, false), node(8, 500_000_000, true)]);
        let child = |start_ns| ProcKey { pid: 9, start_ns };
        assert_eq!(t.resolve_parent(7, child(200)).map(|k| k.start_ns), Some(100));
        assert_eq!(t.resolve_parent(7, child(400)).map(|k| k.start_ns), Some(300));
        let rounded = t.resolve_parent(8, child(490_000_000)).map(|k| k.start_ns);
        assert_eq!(rounded, Some(500_000_000), "a start rounded up by /proc, within the tolerance");
        assert_eq!(t.resolve_parent(8, child(400)), None, "started well after the child");
        assert_eq!(t.resolve_parent(0, child(400)), None);
        assert_eq!(t.resolve_parent(9, child(400)), None, "never its own parent");
    }

    #[test]
    fn runtime_parents_name_the_exec_path() {
        assert_eq!(runtime_via("runc:[2:INIT]"), Some("runc exec"));
        assert_eq!(runtime_via("containerd-shim"), Some("ctr task exec"));
        assert_eq!(runtime_via("conmon"), Some("podman exec"));
        assert_eq!(runtime_via("bash"), None);
    }
}
