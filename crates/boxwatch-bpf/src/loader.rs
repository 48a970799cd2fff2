//! Open → configure rodata → decide per hook → load → attach each hook, and
//! the handles the daemon uses afterwards (maps, counters, ring buffer).
//!
//! Degradation policy: a hook whose tracepoint does not exist, or whose
//! program the kernel refuses, is disabled and reported in [`Coverage`];
//! only the core hooks (exec and exit: without them no process can be
//! attributed) are fatal.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use boxwatch_abi::{drop_cause, kind};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{AsRawLibbpf, Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};

use crate::skel::monitor::{MonitorSkel, MonitorSkelBuilder, OpenMonitorSkel};
use crate::{Error, libbpf_log, tracefs};

/// Programs without which the monitor refuses to start.
const CORE_PROGRAMS: [&str; 2] = ["handle_exec", "handle_exit"];
/// The raw_tp program that stands in for missing module/kexec tracepoints.
const FALLBACK_PROGRAM: &str = "fallback_sys_enter";
/// Tracepoints whose absence the fallback covers.
const FALLBACK_FOR: [&str; 3] =
    ["sys_enter_init_module", "sys_enter_finit_module", "sys_enter_delete_module"];

/// Where the entry half of a syscall leaves its state for the exit half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightStore {
    /// Task storage where the kernel has it (5.11+), else the hash.
    Auto,
    /// `BPF_MAP_TYPE_TASK_STORAGE`: one slot per task, found through the task itself.
    TaskStorage,
    /// `BPF_MAP_TYPE_HASH` keyed by tid (update at entry, lookup + delete at exit).
    Hash,
}

impl InflightStore {
    /// Debug override: `BOXWATCH_INFLIGHT_STORE=hash|task-storage|auto` (anything else: auto).
    /// Lets the whole daemon, and so the privileged tests, run on the fallback store.
    pub const ENV: &'static str = "BOXWATCH_INFLIGHT_STORE";

    fn from_env() -> Self {
        match std::env::var(Self::ENV).as_deref() {
            Ok("hash") => Self::Hash,
            Ok("task-storage") => Self::TaskStorage,
            _ => Self::Auto,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::TaskStorage => "task storage",
            Self::Hash => "hash by tid",
        }
    }
}

impl std::fmt::Display for InflightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Load-time knobs (become `const volatile` rodata in the BPF object).
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// This process: its own syscalls are never traced (writing alerts must not make events).
    pub self_tgid: u32,
    /// Filter in the kernel by the `cgroup_filter` map; false traces every task.
    pub filter_cgroups: bool,
    /// Kinds that still pass for processes in host cgroups.
    pub host_kind_mask: u64,
    /// Kinds that wake the consumer immediately instead of on the next poll.
    pub urgent_kind_mask: u64,
    /// Queued bytes at which the consumer is woken (batched wake-ups).
    pub wakeup_bytes: u64,
    /// Time bound on batching. A record wakes a reader parked in epoll when the
    /// last forced wake-up is older than this, so an isolated event is delivered
    /// at once. 0: only `wakeup_bytes` and urgent kinds wake the reader, and its
    /// poll timeout bounds latency.
    pub wakeup_interval_ns: u64,
    /// After a drain that found records, the [`RingReader`] naps about
    /// `wakeup_interval_ns` on its own timer instead of parking in epoll, so a
    /// busy ring is read about every interval without wake-ups from the traced
    /// tasks (each costs them a self-IPI and the reader's wake, ~8 µs in the test
    /// VM). false: the reader always parks and records wake it at most every
    /// interval.
    pub reader_naps: bool,
    /// Where syscall entry state is kept ([`InflightStore::Auto`] unless forced;
    /// the default honours [`InflightStore::ENV`]).
    pub inflight_store: InflightStore,
    /// Size of the ring buffer in bytes (power of two, multiple of the page size).
    /// It is mapped into the daemon, so it counts in its RSS (twice: the data
    /// pages are mapped twice for wrap-around).
    pub ringbuf_bytes: u32,
    /// Enable the raw_tp/sys_enter fallback when module tracepoints are missing.
    pub syscall_fallback: bool,
    /// Echo libbpf's own messages to stderr.
    pub libbpf_verbose: bool,
    /// Kernel BTF to relocate against instead of `/sys/kernel/btf/vmlinux`
    /// (libbpf's `btf_custom_path`), for kernels built without it (e.g. a file from BTFHub).
    pub btf_path: Option<PathBuf>,
    /// Test hook: make the kernel refuse this program (see [`REFUSE_PROGRAM_ENV`]).
    /// The default honours the environment variable.
    pub refuse_program: Option<String>,
}

/// Test hook, `BOXWATCH_TEST_REFUSE_PROGRAM=<program>`: the program is loaded
/// with `BPF_F_SLEEPABLE`, which the kernel's verifier refuses for tracepoint
/// and raw-tracepoint programs, as an older kernel refuses a program using a
/// helper or a field it lacks. Proves that a refused program
/// degrades only itself (crates/boxwatch-bpf/tests/degrade.rs).
pub const REFUSE_PROGRAM_ENV: &str = "BOXWATCH_TEST_REFUSE_PROGRAM";

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            self_tgid: std::process::id(),
            filter_cgroups: true,
            host_kind_mask: kind::bit(kind::MODULE),
            urgent_kind_mask: [
                kind::MODULE,
                kind::PTRACE,
                kind::MOUNT,
                kind::UNSHARE,
                kind::SETNS,
                kind::BPF,
                kind::CAPSET,
                kind::SETID,
                kind::MEMFD,
            ]
            .iter()
            .fold(0, |m, &k| m | kind::bit(k)),
            wakeup_bytes: 256 * 1024,
            wakeup_interval_ns: 200_000,
            reader_naps: true,
            inflight_store: InflightStore::from_env(),
            ringbuf_bytes: 2 * 1024 * 1024,
            syscall_fallback: true,
            libbpf_verbose: false,
            btf_path: None,
            refuse_program: std::env::var(REFUSE_PROGRAM_ENV).ok().filter(|p| !p.is_empty()),
        }
    }
}

/// Whether one hook runs here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStatus {
    Attached,
    /// Not running, with the reason (missing tracepoint, refused by the verifier, …).
    Degraded(String),
    /// Deliberately not loaded (e.g. the fallback when nothing needs it).
    NotNeeded(String),
}

/// One BPF program and what became of it.
#[derive(Debug, Clone)]
pub struct HookReport {
    pub program: String,
    pub section: String,
    pub core: bool,
    pub status: HookStatus,
}

/// Which hooks run on this kernel.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub hooks: Vec<HookReport>,
    /// The syscall entry-state store in use ([`InflightStore::TaskStorage`] or [`InflightStore::Hash`]).
    pub inflight_store: InflightStore,
    /// Why that store (probed, or forced by configuration).
    pub inflight_store_reason: String,
}

impl Coverage {
    pub fn attached(&self) -> usize {
        self.hooks.iter().filter(|h| h.status == HookStatus::Attached).count()
    }
    pub fn degraded(&self) -> impl Iterator<Item = &HookReport> {
        self.hooks.iter().filter(|h| matches!(h.status, HookStatus::Degraded(_)))
    }
    pub fn is_attached(&self, program: &str) -> bool {
        self.hooks.iter().any(|h| h.program == program && h.status == HookStatus::Attached)
    }
}

/// A difference between the kernel filter and what boxwatch wrote to it
/// (see [`Monitor::audit_filter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterTamper {
    /// An entry boxwatch never wrote (e.g. a container cgroup marked HOST).
    Added { cgroup_id: u64, class: u8 },
    /// An entry whose class was changed.
    Changed { cgroup_id: u64, expected: u8, found: u8 },
    /// An entry boxwatch wrote that was deleted (the cgroup passes as unknown).
    Removed { cgroup_id: u64, expected: u8 },
    /// `filter_gen` was rewritten (e.g. set back, to revive stale cached answers).
    Generation { expected: u64, found: u64 },
}

impl FilterTamper {
    /// The cgroup whose filtering was changed, if one was.
    pub fn cgroup_id(&self) -> Option<u64> {
        match *self {
            FilterTamper::Added { cgroup_id, .. }
            | FilterTamper::Changed { cgroup_id, .. }
            | FilterTamper::Removed { cgroup_id, .. } => Some(cgroup_id),
            FilterTamper::Generation { .. } => None,
        }
    }
}

impl std::fmt::Display for FilterTamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = |c: u8| match c {
            boxwatch_abi::cgroup_class::CONTAINER => "CONTAINER".to_string(),
            boxwatch_abi::cgroup_class::HOST => "HOST".to_string(),
            other => format!("class {other}"),
        };
        match *self {
            FilterTamper::Added { cgroup_id, class: c } => {
                write!(f, "cgroup {cgroup_id} added as {}", class(c))
            }
            FilterTamper::Changed { cgroup_id, expected, found } => {
                write!(f, "cgroup {cgroup_id} changed from {} to {}", class(expected), class(found))
            }
            FilterTamper::Removed { cgroup_id, expected } => {
                write!(f, "cgroup {cgroup_id} ({}) removed", class(expected))
            }
            FilterTamper::Generation { expected, found } => {
                write!(f, "filter generation set to {found} (boxwatch wrote {expected})")
            }
        }
    }
}

/// The loaded and attached monitor.
pub struct Monitor {
    skel: MonitorSkel<'static>,
    links: Vec<Link>,
    coverage: Coverage,
    /// Last generation written to the kernel's `filter_gen` (see `bump_filter_gen`).
    filter_gen: AtomicU64,
    /// What boxwatch wrote to `cgroup_filter`: the kernel's copy is audited
    /// against it ([`Monitor::audit_filter`]). Held across each map change, so
    /// an audit never sees a change half made.
    filter_shadow: Mutex<HashMap<u64, u8>>,
    /// The kernel's `reader_state` in its mmap'd data section (see [`RingReader`]).
    reader_state: Option<NonNull<u32>>,
    /// How long the reader naps after a drain that found records (`reader_naps`).
    nap: Option<Duration>,
}

/// Detaching a tracepoint link waits for an RCU grace period (~75 ms here),
/// so closing 90 links one after another takes ~7 s. Closing them from
/// parallel threads lets the waits overlap.
impl Drop for Monitor {
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.links);
        let per_thread = links.len().div_ceil(32).max(1);
        let mut chunks: Vec<Vec<SendLink>> = Vec::new();
        for (i, l) in links.into_iter().enumerate() {
            if i % per_thread == 0 {
                chunks.push(Vec::new());
            }
            if let Some(c) = chunks.last_mut() {
                c.push(SendLink(l));
            }
        }
        std::thread::scope(|s| {
            for chunk in chunks {
                s.spawn(move || drop(chunk));
            }
        });
    }
}

/// A link handed to another thread only to be dropped there.
struct SendLink(#[allow(dead_code)] Link);
// SAFETY: a libbpf link is a heap object with an fd; destroying it from another
// thread is fine as long as nothing else uses it, and nothing does: it is moved.
unsafe impl Send for SendLink {}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").field("coverage", &self.coverage).finish_non_exhaustive()
    }
}

// SAFETY: the skeleton is Send + Sync (libbpf-cargo asserts it); the links are
// only held to keep the programs attached and are never used concurrently.
unsafe impl Sync for Monitor {}
// SAFETY: as above; libbpf objects are not tied to the thread that created them.
unsafe impl Send for Monitor {}

/// A plan for one program, decided before load.
struct Plan {
    program: String,
    section: String,
    enabled: bool,
    status: Option<HookStatus>,
}

/// The store to use: the configured one, or task storage if this kernel has it.
fn resolve_store(cfg: &MonitorConfig) -> (InflightStore, String) {
    match cfg.inflight_store {
        InflightStore::Auto if crate::probe::task_storage() => {
            (InflightStore::TaskStorage, "task storage is available".into())
        }
        InflightStore::Auto => {
            (InflightStore::Hash, "task storage is not available on this kernel (5.11+)".into())
        }
        forced => (forced, format!("forced by configuration or {}", InflightStore::ENV)),
    }
}

fn open(cfg: &MonitorConfig, store: InflightStore) -> Result<OpenMonitorSkel<'static>, Error> {
    // The skeleton borrows its object storage for its whole life; the monitor
    // lives as long as the process, so the (small) storage is leaked.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let builder = MonitorSkelBuilder::default();
    let opened = match &cfg.btf_path {
        None => builder.open(storage),
        Some(path) => {
            let c_path = CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::BtfPath { path: path.clone(), reason: "contains a NUL byte".into() })?;
            if !path.is_file() {
                return Err(Error::BtfPath { path: path.clone(), reason: "not a readable file".into() });
            }
            let opts = libbpf_rs::libbpf_sys::bpf_object_open_opts {
                sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_object_open_opts>() as _,
                // libbpf copies the path at open; it must live until then.
                btf_custom_path: c_path.as_ptr(),
                ..Default::default()
            };
            builder.open_opts(opts, storage)
        }
    };
    let mut open =
        opened.map_err(|source| Error::Open { object: "monitor", source, log: libbpf_log::take() })?;
    open.maps.rb.set_max_entries(cfg.ringbuf_bytes).map_err(|source| Error::Map {
        map: "rb",
        op: "set_max_entries",
        source,
    })?;
    let ro = open.maps.rodata_data.as_deref_mut().ok_or(Error::NoRodata { object: "monitor" })?;
    ro.self_tgid = cfg.self_tgid;
    ro.filter_cgroups = u32::from(cfg.filter_cgroups);
    ro.host_kind_mask = cfg.host_kind_mask;
    ro.urgent_kind_mask = cfg.urgent_kind_mask;
    ro.wakeup_bytes = cfg.wakeup_bytes.min(u64::from(cfg.ringbuf_bytes) / 4);
    ro.wakeup_interval_ns = cfg.wakeup_interval_ns;
    let task_storage = store == InflightStore::TaskStorage;
    ro.use_task_storage = u32::from(task_storage);
    // The map not used is not created; libbpf poisons its references, which the
    // verifier never reaches (dead code on the rodata constant above).
    open.maps.inflight_ts.set_autocreate(task_storage).map_err(|source| Error::Map {
        map: "inflight_ts",
        op: "set_autocreate",
        source,
    })?;
    open.maps.inflight.set_autocreate(!task_storage).map_err(|source| Error::Map {
        map: "inflight",
        op: "set_autocreate",
        source,
    })?;
    Ok(open)
}

fn plan(open: &mut OpenMonitorSkel<'static>, cfg: &MonitorConfig, tracefs: &Path) -> Vec<Plan> {
    let missing_tp = |name: &str| !tracefs::tracepoint_exists(tracefs, "syscalls", name);
    let fallback_needed: Vec<&str> = FALLBACK_FOR.iter().copied().filter(|n| missing_tp(n)).collect();
    let mut plans = Vec::new();
    for prog in open.open_object_mut().progs_mut() {
        let program = prog.name().to_string_lossy().into_owned();
        let section = prog.section().to_string_lossy().into_owned();
        let mut status = None;
        if let Some(tp) = section.strip_prefix("tp/").or_else(|| section.strip_prefix("tracepoint/")) {
            let (cat, name) = tp.split_once('/').unwrap_or((tp, ""));
            if !tracefs::tracepoint_exists(tracefs, cat, name) {
                status = Some(HookStatus::Degraded(format!(
                    "tracepoint {cat}/{name} does not exist on this kernel"
                )));
            }
        }
        if program == FALLBACK_PROGRAM {
            status = if fallback_needed.is_empty() {
                Some(HookStatus::NotNeeded("module syscall tracepoints exist".into()))
            } else if !cfg.syscall_fallback {
                Some(HookStatus::Degraded(format!(
                    "fallback disabled by configuration; {} not observed",
                    fallback_needed.join(", ")
                )))
            } else {
                None
            };
        }
        plans.push(Plan { program, section, enabled: status.is_none(), status });
    }
    plans
}

fn apply(open: &mut OpenMonitorSkel<'static>, plans: &[Plan], refuse: Option<&str>) {
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        let enabled = plans.iter().find(|p| p.program == name).is_some_and(|p| p.enabled);
        prog.set_autoload(enabled);
        if refuse == Some(name.as_str()) {
            // Only fentry/fexit, LSM, iterators, uprobes and struct_ops may sleep:
            // the verifier refuses any boxwatch hook flagged sleepable.
            prog.set_flags(libbpf_rs::libbpf_sys::BPF_F_SLEEPABLE);
        }
    }
}

/// The program whose load failed, from libbpf's messages of that load
/// (`prog '<name>': BPF program load failed`, `... failed to load`, CO-RE
/// relocation errors): the last program named in a failure line.
fn failing_program<'a>(log: &str, plans: &'a [Plan]) -> Option<&'a Plan> {
    log.lines()
        .rev()
        .filter_map(|l| {
            let rest = &l[l.find("prog '")? + 6..];
            let name = &rest[..rest.find('\'')?];
            let tail = &rest[name.len()..];
            (tail.contains("fail") || tail.contains("relo") || tail.contains("error")).then_some(name)
        })
        .find_map(|name| plans.iter().find(|p| p.enabled && p.program == name))
}

/// One line that says why the kernel refused a program: the verifier's last
/// complaint (the line before `processed N insns`), a CO-RE relocation error,
/// or libbpf's error.
fn refusal_summary(log: &str, err: &libbpf_rs::Error) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    if let Some(l) = lines.iter().find(|l| l.contains("failed to resolve CO-RE relocation")) {
        return l.to_string();
    }
    if let Some(i) = lines.iter().position(|l| l.starts_with("processed ") && l.contains(" insns"))
        && let Some(prev) = lines[..i].iter().rev().find(|l| !l.is_empty())
    {
        return format!("verifier: {prev}");
    }
    err.to_string()
}

impl Monitor {
    /// Load and attach the monitor, degrading per hook. Fails only if the
    /// object cannot load at all or a core hook cannot run.
    pub fn load(cfg: &MonitorConfig) -> Result<Monitor, Error> {
        libbpf_log::install(cfg.libbpf_verbose);
        let tracefs = tracefs::ensure()?;
        let (store, store_reason) = resolve_store(cfg);
        let mut o = open(cfg, store)?;
        let mut plans = plan(&mut o, cfg, &tracefs);
        let refuse = cfg.refuse_program.as_deref();
        // libbpf loads the whole object at once and stops at the first program
        // the kernel refuses (a CO-RE relocation it cannot resolve, the verifier,
        // a missing helper): find that program in libbpf's messages, disable it
        // and load again, until the rest loads. Each round disables one program,
        // so this ends; a core program refused is fatal.
        let skel = loop {
            apply(&mut o, &plans, refuse);
            let err = match o.load() {
                Ok(skel) => break skel,
                Err(e) => e,
            };
            let log = libbpf_log::take();
            let Some(p) = failing_program(&log, &plans) else {
                return Err(Error::Load { object: "monitor", source: err, log });
            };
            let reason = format!("refused by the kernel: {}\n{err}{log}", refusal_summary(&log, &err));
            if CORE_PROGRAMS.contains(&p.program.as_str()) {
                return Err(Error::CoreHook {
                    program: p.program.clone(),
                    section: p.section.clone(),
                    reason,
                });
            }
            let name = p.program.clone();
            if let Some(p) = plans.iter_mut().find(|p| p.program == name) {
                p.enabled = false;
                p.status = Some(HookStatus::Degraded(reason));
            }
            o = open(cfg, store)?;
        };
        let mut links = Vec::new();
        for prog in skel.object().progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            let Some(p) = plans.iter_mut().find(|p| p.program == name) else { continue };
            if !p.enabled {
                continue;
            }
            match prog.attach() {
                Ok(link) => {
                    links.push(link);
                    p.status = Some(HookStatus::Attached);
                }
                Err(e) => {
                    p.status =
                        Some(HookStatus::Degraded(format!("attach failed: {e}{}", libbpf_log::take())));
                }
            }
        }
        let coverage = Coverage {
            hooks: plans
                .into_iter()
                .map(|p| HookReport {
                    core: CORE_PROGRAMS.contains(&p.program.as_str()),
                    status: p.status.unwrap_or_else(|| HookStatus::Degraded("not loaded".into())),
                    program: p.program,
                    section: p.section,
                })
                .collect(),
            inflight_store: store,
            inflight_store_reason: store_reason,
        };
        if let Some(h) = coverage.hooks.iter().find(|h| h.core && h.status != HookStatus::Attached) {
            let reason = match &h.status {
                HookStatus::Degraded(r) | HookStatus::NotNeeded(r) => r.clone(),
                HookStatus::Attached => unreachable!("filtered above"),
            };
            return Err(Error::CoreHook { program: h.program.clone(), section: h.section.clone(), reason });
        }
        let mut skel = skel;
        // The kernel reads the state; the reader writes it through this pointer, which stays
        // valid as long as the skeleton (and its mmap) lives, i.e. as long as the Monitor.
        let reader_state =
            skel.maps.data_consumer_data.as_deref_mut().map(|d| NonNull::from(&mut d.reader_state));
        let nap = (cfg.reader_naps && cfg.wakeup_interval_ns > 0)
            .then(|| Duration::from_nanos(cfg.wakeup_interval_ns));
        Ok(Monitor {
            skel,
            links,
            coverage,
            filter_gen: AtomicU64::new(0),
            filter_shadow: Mutex::new(HashMap::new()),
            reader_state,
            nap,
        })
    }

    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// Classify a cgroup for the in-kernel filter (`boxwatch_abi::cgroup_class`).
    pub fn set_cgroup_class(&self, cgroup_id: u64, class: u8) -> Result<(), Error> {
        let mut shadow = self.filter_shadow.lock().unwrap_or_else(|p| p.into_inner());
        self.skel
            .maps
            .cgroup_filter
            .update(&cgroup_id.to_ne_bytes(), &[class], MapFlags::ANY)
            .map_err(|source| Error::Map { map: "cgroup_filter", op: "update", source })?;
        shadow.insert(cgroup_id, class);
        self.bump_filter_gen()
    }

    /// Forget a removed cgroup.
    pub fn forget_cgroup(&self, cgroup_id: u64) {
        let mut shadow = self.filter_shadow.lock().unwrap_or_else(|p| p.into_inner());
        shadow.remove(&cgroup_id);
        // Absent already is fine: the cgroup may never have been classified.
        let _ = self.skel.maps.cgroup_filter.delete(&cgroup_id.to_ne_bytes());
        // A failure leaves at most a stale answer for an id that no task uses any more.
        let _ = self.bump_filter_gen();
    }

    /// Compare the kernel's `cgroup_filter` and `filter_gen` with what boxwatch
    /// wrote, put back what differs, and say what was found. Anything found was
    /// written by someone else: a process that opened the map by id (a
    /// privileged container can) to hide its cgroup from the monitor.
    pub fn audit_filter(&self) -> Result<Vec<FilterTamper>, Error> {
        let shadow = self.filter_shadow.lock().unwrap_or_else(|p| p.into_inner());
        let map = &self.skel.maps.cgroup_filter;
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for key in map.keys() {
            let Some(id) = key.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes) else {
                continue;
            };
            let value = map.lookup(&key, MapFlags::ANY).map_err(|source| Error::Map {
                map: "cgroup_filter",
                op: "lookup",
                source,
            })?;
            let Some(class) = value.and_then(|v| v.first().copied()) else { continue };
            seen.insert(id);
            match shadow.get(&id) {
                None => found.push(FilterTamper::Added { cgroup_id: id, class }),
                Some(&want) if want != class => {
                    found.push(FilterTamper::Changed { cgroup_id: id, expected: want, found: class })
                }
                Some(_) => {}
            }
        }
        for (&id, &want) in shadow.iter() {
            if !seen.contains(&id) {
                found.push(FilterTamper::Removed { cgroup_id: id, expected: want });
            }
        }
        let ours = self.filter_gen.load(Ordering::SeqCst);
        let kernel_gen = self
            .skel
            .maps
            .data_filter_gen
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Map { map: "filter_gen", op: "lookup", source })?
            .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes));
        if let Some(g) = kernel_gen
            && g != ours
        {
            found.push(FilterTamper::Generation { expected: ours, found: g });
            // Past both values, so no per-CPU cache entry filled at either stays valid.
            self.filter_gen.store(ours.max(g), Ordering::SeqCst);
        }
        for t in &found {
            let r = match *t {
                FilterTamper::Added { cgroup_id, .. } => map.delete(&cgroup_id.to_ne_bytes()),
                FilterTamper::Changed { cgroup_id, expected, .. }
                | FilterTamper::Removed { cgroup_id, expected } => {
                    map.update(&cgroup_id.to_ne_bytes(), &[expected], MapFlags::ANY)
                }
                FilterTamper::Generation { .. } => Ok(()),
            };
            r.map_err(|source| Error::Map { map: "cgroup_filter", op: "restore", source })?;
        }
        if !found.is_empty() {
            self.bump_filter_gen()?;
        }
        Ok(found)
    }

    /// The ids of boxwatch's own filter maps, as `bpftool map show id N` names them
    /// (for alerts about them).
    pub fn filter_map_ids(&self) -> (u32, u32) {
        let id = |m: &dyn MapCore| m.info().map(|i| i.info.id).unwrap_or(0);
        (id(&self.skel.maps.cgroup_filter), id(&self.skel.maps.data_filter_gen))
    }

    /// Invalidate the kernel's per-CPU cache of `cgroup_filter` answers: called after
    /// every change to the map (the kernel reads the generation before the map).
    fn bump_filter_gen(&self) -> Result<(), Error> {
        let generation = self.filter_gen.fetch_add(1, Ordering::SeqCst) + 1;
        self.skel
            .maps
            .data_filter_gen
            .update(&0u32.to_ne_bytes(), &generation.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Map { map: "filter_gen", op: "update", source })
    }

    fn percpu_sum(map: &dyn MapCore, idx: u32) -> u64 {
        match map.lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY) {
            Ok(Some(per_cpu)) => per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum(),
            _ => 0,
        }
    }

    /// Kernel-side drop counters, indexed by `boxwatch_abi::drop_cause`.
    pub fn kernel_drops(&self) -> [u64; drop_cause::MAX as usize] {
        std::array::from_fn(|i| Self::percpu_sum(&self.skel.maps.drops, i as u32))
    }

    /// Records emitted by the kernel, indexed by kind.
    pub fn kernel_emitted(&self) -> Vec<u64> {
        (0..kind::MAX).map(|k| Self::percpu_sum(&self.skel.maps.emitted, k)).collect()
    }

    /// Bytes queued in the ring buffer at the last submit, its high-water mark, and its size.
    pub fn ringbuf_fill(&self) -> (u64, u64, u64) {
        let size = u64::from(self.skel.maps.rb.max_entries());
        match self.skel.maps.bss_data.as_deref() {
            // SAFETY: the fields are aligned u64s in the mmap'd .bss that the kernel updates
            // concurrently; volatile loads read the current value without assuming it is stable.
            Some(b) => unsafe {
                (
                    std::ptr::read_volatile(&b.ringbuf_queued),
                    std::ptr::read_volatile(&b.ringbuf_queued_max),
                    size,
                )
            },
            None => (0, 0, size),
        }
    }

    /// A reader of the ring buffer that hands every record to `on_record`.
    /// The callback must not block or panic (a panic would cross libbpf's C frame).
    pub fn reader<'a, F>(&'a self, mut on_record: F) -> Result<RingReader<'a>, Error>
    where
        F: FnMut(&[u8]) + 'a,
    {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.rb, move |data: &[u8]| {
            on_record(data);
            0
        })
        .map_err(Error::RingBuf)?;
        // SAFETY: the pointer is into the skeleton's mmap of `.data.consumer`, valid and
        // 4-byte aligned for as long as `self` (hence 'a); the kernel and this reader only
        // ever access it atomically (single aligned 32-bit loads and stores).
        let state = self.reader_state.map(|p| unsafe { AtomicU32::from_ptr(p.as_ptr()) });
        Ok(RingReader { rb: b.build().map_err(Error::RingBuf)?, state, nap: self.nap, last: Cell::new(0) })
    }
}

/// `reader_state` values (the kernel's `READER_*`).
const READER_RUNNING: u32 = 0;
const READER_PARKED: u32 = 1;
/// A drain of this many records means a busy ring: the next nap is four intervals.
const BUSY_RECORDS: i32 = 32;

/// Polls the ring buffer. Wake-ups are batched in the kernel, so every poll
/// also drains what is queued: the poll timeout bounds latency.
///
/// With a wake-up interval, a drain that found records is followed by a nap of
/// the interval on the reader's own timer, not by a sleep in epoll: records
/// then need not wake the reader (`reader_state` running), which keeps the
/// wake-up cost (a self-IPI and the reader's wake, several µs in a VM) off the
/// traced tasks while latency stays within about the interval. After a drain of
/// [`BUSY_RECORDS`] or more the nap is four intervals: a busy ring is read in
/// larger batches, with fewer wake-ups competing with the processing thread. A
/// drain that found nothing parks the reader in epoll, and the next record
/// wakes it.
pub struct RingReader<'a> {
    rb: RingBuffer<'a>,
    state: Option<&'a AtomicU32>,
    nap: Option<Duration>,
    /// Records found by the last drain.
    last: Cell<i32>,
}

impl Drop for RingReader<'_> {
    fn drop(&mut self) {
        // No reader naps any more: let records wake whoever reads next.
        if let Some(p) = self.state {
            p.store(READER_PARKED, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for RingReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingReader")
    }
}

impl RingReader<'_> {
    /// Wait up to `timeout` (or nap, see the type), then consume everything queued.
    pub fn poll(&self, timeout: Duration) -> Result<(), Error> {
        let last = self.last.get();
        let mut n = 0;
        match self.nap {
            Some(nap) if last > 0 && !timeout.is_zero() => {
                let nap = if last >= BUSY_RECORDS { nap.saturating_mul(4) } else { nap };
                std::thread::sleep(nap.min(timeout))
            }
            _ => n = self.park(timeout)?,
        }
        self.last.set(n.saturating_add(self.consume()?));
        Ok(())
    }

    fn consume(&self) -> Result<i32, Error> {
        let n = self.rb.consume_raw();
        if n < 0 {
            return Err(Error::RingBuf(std::io::Error::from_raw_os_error(-n).into()));
        }
        Ok(n)
    }

    /// Bytes reserved in the ring and not consumed (committed or not yet).
    fn pending(&self) -> usize {
        // SAFETY: the ring_buffer pointer is valid while self.rb lives and has ring 0 (the one
        // map added in `Monitor::reader`); both calls only read it.
        unsafe {
            let r = libbpf_rs::libbpf_sys::ring_buffer__ring(self.rb.as_libbpf_object().as_ptr(), 0);
            if r.is_null() { 0 } else { libbpf_rs::libbpf_sys::ring__avail_data_size(r) as usize }
        }
    }

    /// Sleep in epoll until a record wakes us or `timeout` passes; returns the records
    /// consumed before sleeping.
    fn park(&self, timeout: Duration) -> Result<i32, Error> {
        // A record submitted while the state still said "running" did not wake us, and
        // epoll would not see it: drain after publishing the state, and sleep only if
        // the ring is empty (a record reserved but not yet committed counts as pending).
        if let Some(p) = self.state {
            p.store(READER_PARKED, Ordering::SeqCst);
        }
        let n = self.consume()?;
        if n == 0 && self.pending() == 0 {
            let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: the epoll fd belongs to self.rb and stays open; ev is valid for one event.
            let rc = unsafe { libc::epoll_wait(self.rb.epoll_fd(), &mut ev, 1, ms) };
            let err = std::io::Error::last_os_error();
            // EINTR (a signal) is not an error for a poll loop.
            if rc < 0 && err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::RingBuf(err.into()));
            }
        }
        if let Some(p) = self.state {
            p.store(READER_RUNNING, Ordering::SeqCst);
        }
        Ok(n)
    }
}
