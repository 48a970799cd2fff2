//! Read-only snapshots the daemon's processor publishes for the HTTP side, and the data-path
//! heartbeats `/healthz` is computed from.
//!
//! The processor owns the container table and the process tree and never shares them: every
//! so often (at most every `interval`, sooner never) it builds a [`Snapshot`] — plain data — and
//! swaps it into a [`SnapshotCell`]. HTTP handlers load the current `Arc<Snapshot>` without a
//! lock (`arc-swap`), so a slow client or a scrape never makes the event path wait.
//!
//! Heartbeats ([`DataPath`]) are relaxed atomics the reader and processor threads store at most
//! once per poll/flush, so readiness comes from the data path itself, not from the HTTP thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use boxwatch_model::TreeNode;
use serde::Serialize;

/// One container as the API shows it: identity from the cgroup path, metadata from the runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Full id (64 hex digits for most runtimes).
    pub id: String,
    pub short_id: String,
    pub runtime: String,
    pub pod_uid: Option<String>,
    pub namespace: Option<String>,
    pub nested: bool,
    pub cgroup_root: String,
    pub name: Option<String>,
    pub image: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// `complete (containerd)`, `pending: …` or `unavailable: …` (as on alerts).
    pub metadata: String,
    /// Live processes of the container in the process tree.
    pub processes: usize,
    /// Alerts delivered for this container since boxwatch started.
    pub alerts: u64,
}

/// One BPF program and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookInfo {
    pub program: String,
    /// `attached`, `degraded` or `not_needed`.
    pub status: String,
    pub reason: Option<String>,
}

/// Which hooks run on this kernel (fixed after start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CoverageInfo {
    pub attached: usize,
    /// Programs that should run and do not, with the reason.
    pub degraded: Vec<HookInfo>,
    pub hooks: Vec<HookInfo>,
    /// `task_storage` or `hash`: where syscall entry state lives.
    pub inflight_store: String,
}

/// Counters copied at publish time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Records read from the ring buffer.
    pub received: u64,
    /// Events the processor handled (received minus what was dropped before it).
    pub processed: u64,
    /// Events written to the outputs.
    pub events_out: u64,
    pub alerts: u64,
    /// Records the kernel emitted.
    pub kernel_emitted: u64,
    /// Events per second read from the ring buffer, over the last publish interval.
    pub events_per_sec: f64,
    /// Every lost event by cause (kernel and userspace), as in `boxwatch_drops_total`.
    pub drops: BTreeMap<String, u64>,
    /// Ring buffer: bytes queued at the last submit, high-water mark, size.
    pub ring_queued_bytes: u64,
    pub ring_queued_max_bytes: u64,
    pub ring_size_bytes: u64,
    pub containers: usize,
    pub cgroups: usize,
    pub processes_live: usize,
    pub processes_exited: usize,
}

/// What the processor publishes. Pure data; cheap to share (`Arc`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Increases with every publish (0: nothing published yet).
    pub seq: u64,
    /// Unix time of the publish, ns.
    pub taken_unix_ns: u64,
    /// Sorted by id.
    pub containers: Vec<ContainerInfo>,
    /// Container id → its process tree from the host-side runtime processes down. Built only
    /// while someone asks for trees ([`SnapshotCell::want_trees`]), and not more often than its
    /// cost allows (see [`PublishPolicy`]); shared between snapshots until rebuilt.
    #[serde(skip)]
    pub trees: Arc<HashMap<Arc<str>, Vec<TreeNode>>>,
    /// Unix time the trees were built, ns (0: not built).
    pub trees_taken_unix_ns: u64,
    pub coverage: Arc<CoverageInfo>,
    pub counters: Counters,
}

/// The current snapshot; the processor stores, handlers load. Never blocks either side.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    published_at: ArcSwap<Option<Instant>>,
    epoch: Instant,
    /// When a handler last asked for process trees (ns since `epoch`, plus one; 0: never).
    trees_wanted: AtomicU64,
}

impl Default for SnapshotCell {
    fn default() -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(Snapshot::default()),
            published_at: ArcSwap::from_pointee(None),
            epoch: Instant::now(),
            trees_wanted: AtomicU64::new(0),
        }
    }
}

impl SnapshotCell {
    pub fn publish(&self, s: Snapshot) {
        self.current.store(Arc::new(s));
        self.published_at.store(Arc::new(Some(Instant::now())));
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Time since the last publish (`None`: never published).
    pub fn age(&self) -> Option<Duration> {
        (*self.published_at.load_full()).map(|t| t.elapsed())
    }

    /// A client wants process trees: the processor builds them while requests keep coming.
    pub fn want_trees(&self) {
        self.trees_wanted.store(since_epoch(self.epoch), Relaxed);
    }

    /// Whether trees were asked for within `d`.
    pub fn trees_wanted_within(&self, d: Duration) -> bool {
        age(self.epoch, self.trees_wanted.load(Relaxed)).is_some_and(|a| a <= d)
    }
}

/// When the processor publishes: when something changed and `interval` has passed since the
/// last publish, and every `max_quiet` anyway (counters and ages stay fresh when idle).
///
/// Process trees cost the processor time in proportion to the processes tracked (a few µs
/// each), so they are built only while clients asked for one within `tree_interest`, and again
/// only once `tree_cost_factor` times the last build's duration has passed: the processor spends
/// at most 1/`tree_cost_factor` of its time on them, however large the tree.
#[derive(Debug, Clone, Copy)]
pub struct PublishPolicy {
    pub interval: Duration,
    pub max_quiet: Duration,
    pub tree_interest: Duration,
    pub tree_cost_factor: u32,
}

impl Default for PublishPolicy {
    fn default() -> Self {
        PublishPolicy {
            interval: Duration::from_millis(500),
            max_quiet: Duration::from_secs(5),
            tree_interest: Duration::from_secs(60),
            tree_cost_factor: 20,
        }
    }
}

impl PublishPolicy {
    /// Whether to publish now, `since_last` after the previous publish.
    pub fn due(&self, changed: bool, since_last: Duration) -> bool {
        since_last >= self.max_quiet || (changed && since_last >= self.interval)
    }

    /// Whether to rebuild the trees, `since_built` after the last build (`None`: never built)
    /// which took `last_cost`.
    pub fn trees_due(&self, since_built: Option<Duration>, last_cost: Duration) -> bool {
        since_built.is_none_or(|s| s >= self.interval.max(last_cost * self.tree_cost_factor))
    }
}

/// Heartbeats of the data path, stored by the reader and processor threads (relaxed, at most once
/// per poll or flush) and read by `/healthz` and `/api/v1/health`.
#[derive(Debug)]
pub struct DataPath {
    epoch: Instant,
    /// The reader thread is running (set at start, cleared when it ends for any reason).
    pub reader_alive: AtomicBool,
    reader_beat_ns: AtomicU64,
    processor_beat_ns: AtomicU64,
    last_event_ns: AtomicU64,
    /// Events the processor has taken off the queue.
    pub processed: AtomicU64,
    /// Records the reader accepted into the queue.
    pub enqueued: AtomicU64,
}

impl Default for DataPath {
    fn default() -> Self {
        DataPath {
            epoch: Instant::now(),
            reader_alive: AtomicBool::new(false),
            reader_beat_ns: AtomicU64::new(0),
            processor_beat_ns: AtomicU64::new(0),
            last_event_ns: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
        }
    }
}

/// 0 means "never"; real beats are stored as ns since the epoch plus one.
fn since_epoch(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

fn age(epoch: Instant, stored: u64) -> Option<Duration> {
    (stored != 0).then(|| Duration::from_nanos(since_epoch(epoch).saturating_sub(stored)))
}

impl DataPath {
    /// The reader finished a poll.
    pub fn reader_beat(&self) {
        self.reader_beat_ns.store(since_epoch(self.epoch), Relaxed);
    }

    /// The processor is alive at its flush point; `events_since_last` were handled since the
    /// previous beat (so "last event processed" moves only when events did).
    pub fn processor_beat(&self, events_since_last: bool) {
        let now = since_epoch(self.epoch);
        self.processor_beat_ns.store(now, Relaxed);
        if events_since_last {
            self.last_event_ns.store(now, Relaxed);
        }
    }

    pub fn reader_age(&self) -> Option<Duration> {
        age(self.epoch, self.reader_beat_ns.load(Relaxed))
    }

    pub fn processor_age(&self) -> Option<Duration> {
        age(self.epoch, self.processor_beat_ns.load(Relaxed))
    }

    /// Time since the processor last handled an event (`None`: none yet).
    pub fn last_event_age(&self) -> Option<Duration> {
        age(self.epoch, self.last_event_ns.load(Relaxed))
    }

    /// Events accepted into the queue and not yet taken by the processor.
    pub fn queue_depth(&self) -> u64 {
        self.enqueued.load(Relaxed).saturating_sub(self.processed.load(Relaxed))
    }

    /// Ready = the reader runs and both threads beat within `stall_after`. `Err` says why not.
    pub fn readiness(&self, stall_after: Duration) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if !self.reader_alive.load(Relaxed) {
            why.push("ring-buffer reader is not running".to_string());
        }
        match self.reader_age() {
            None => why.push("ring-buffer reader has not polled yet".to_string()),
            Some(a) if a > stall_after => {
                why.push(format!("ring-buffer reader last polled {} ms ago", a.as_millis()))
            }
            Some(_) => {}
        }
        match self.processor_age() {
            None => why.push("processor has not run yet".to_string()),
            Some(a) if a > stall_after => why.push(format!(
                "processor stalled: last heartbeat {} ms ago, {} events queued",
                a.as_millis(),
                self.queue_depth()
            )),
            Some(_) => {}
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_policy_waits_for_interval_and_refreshes_when_quiet() {
        let p = PublishPolicy::default();
        assert!(!p.due(true, Duration::from_millis(100)), "at most every interval");
        assert!(p.due(true, Duration::from_millis(500)));
        assert!(!p.due(false, Duration::from_secs(1)), "nothing changed");
        assert!(p.due(false, Duration::from_secs(5)), "refresh counters when idle");
    }

    #[test]
    fn trees_are_rebuilt_within_their_cost_budget() {
        let p = PublishPolicy::default();
        assert!(p.trees_due(None, Duration::ZERO), "never built");
        assert!(!p.trees_due(Some(Duration::from_millis(100)), Duration::from_millis(1)));
        assert!(p.trees_due(Some(Duration::from_millis(500)), Duration::from_millis(1)));
        // A 100 ms build: not again before 2 s (5 % of the processor's time).
        assert!(!p.trees_due(Some(Duration::from_millis(1900)), Duration::from_millis(100)));
        assert!(p.trees_due(Some(Duration::from_secs(2)), Duration::from_millis(100)));
    }

    #[test]
    fn tree_interest_expires() {
        let c = SnapshotCell::default();
        assert!(!c.trees_wanted_within(Duration::from_secs(60)));
        c.want_trees();
        assert!(c.trees_wanted_within(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!c.trees_wanted_within(Duration::from_millis(10)));
    }

    #[test]
    fn readiness_follows_heartbeats() {
        let d = DataPath::default();
        let why = d.readiness(Duration::from_secs(5)).unwrap_err();
        assert_eq!(why.len(), 3, "{why:?}");
        d.reader_alive.store(true, Relaxed);
        d.reader_beat();
        d.processor_beat(false);
        assert_eq!(d.readiness(Duration::from_secs(5)), Ok(()));
        assert_eq!(d.last_event_age(), None, "no event yet");
        d.processor_beat(true);
        assert!(d.last_event_age().unwrap() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(30));
        let why = d.readiness(Duration::from_millis(10)).unwrap_err();
        assert!(why.iter().any(|w| w.starts_with("processor stalled")), "{why:?}");
        d.reader_alive.store(false, Relaxed);
        assert!(d.readiness(Duration::from_secs(5)).unwrap_err()[0].contains("not running"));
    }

    #[test]
    fn queue_depth_is_enqueued_minus_processed() {
        let d = DataPath::default();
        d.enqueued.store(10, Relaxed);
        d.processed.store(7, Relaxed);
        assert_eq!(d.queue_depth(), 3);
        d.processed.store(12, Relaxed); // read in another order than written: never underflows
        assert_eq!(d.queue_depth(), 0);
    }
}
