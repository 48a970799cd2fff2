//! Container metadata from runtime sockets; asynchronous, never blocks the caller.
//!
//! boxwatch identifies containers from cgroup paths (runtime, id, pod UID, containerd
//! namespace). This crate adds what only the runtime knows — container name, image, labels,
//! Kubernetes pod name/namespace/UID — by asking, in the background:
//!
//! * **containerd** over its gRPC API (`Namespaces/List`, then `Containers/Get` with the
//!   `containerd-namespace` header): image, labels, and from the OCI spec annotations the CRI
//!   pod fields (`io.kubernetes.cri.sandbox-{name,namespace,uid}`,
//!   `io.kubernetes.cri.container-name`). Several sockets can be configured; the defaults
//!   cover stock containerd, k3s/RKE2, microk8s and Docker's private containerd.
//! * **Docker** over the Engine API (`GET /containers/{id}/json`): name, image, labels, and the
//!   `io.kubernetes.*` labels of dockershim/cri-dockerd pods.
//!
//! [`Enricher::request`] only enqueues (bounded queue, `false` and a counted drop when full);
//! a worker thread with its own single-threaded tokio runtime does the lookups concurrently,
//! each attempt bounded by [`EnricherConfig::timeout`], retrying with exponential backoff when
//! the container is not (yet) known — a lookup right at cgroup creation may race the runtime —
//! or the runtime is briefly unreachable. [`Enricher::try_results`] collects finished lookups.
//! Concurrent requests for an id already being looked up are coalesced into one lookup.
//!
//! ```no_run
//! use boxwatch_runtime::{Enricher, EnricherConfig};
//! let enricher = Enricher::start(EnricherConfig::default());
//! enricher.request("4f1c…", Some("k8s.io"));
//! // later, from the event loop:
//! for (id, result) in enricher.try_results() {
//!     match result {
//!         Ok(meta) => println!("{id}: {:?} {:?}", meta.name, meta.image),
//!         Err(e) => eprintln!("{id}: {e}"),
//!     }
//! }
//! ```
//!
//! For a one-off lookup outside an event loop (a CLI), [`lookup_blocking`] does the same work
//! synchronously.

mod containerd;
mod docker;
mod error;
mod grpc;
mod meta;
mod proto;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

pub use error::LookupError;
pub use meta::Metadata;

use containerd::{Containerd, Found};

/// containerd sockets tried by default, in order: stock containerd, k3s/RKE2, microk8s, and
/// the containerd Docker starts itself when not using the system one. Missing ones are skipped
/// at no cost (one `stat`).
pub const DEFAULT_CONTAINERD_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/var/snap/microk8s/common/run/containerd.sock",
    "/run/docker/containerd/containerd.sock",
];
/// Docker Engine socket used by default.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Lookups running at once in the worker; further requests wait in the queue.
const MAX_CONCURRENT: usize = 32;
/// First retry delay; doubled per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where and how to look containers up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnricherConfig {
    /// containerd gRPC sockets, tried in order (default: [`DEFAULT_CONTAINERD_SOCKETS`]).
    pub containerd_sockets: Vec<PathBuf>,
    /// Docker Engine socket (default: [`DEFAULT_DOCKER_SOCKET`]); `None` disables Docker.
    pub docker_socket: Option<PathBuf>,
    /// Bound on one attempt against one socket (connect + every call). Default 2 s.
    pub timeout: Duration,
    /// Further attempts after a retryable failure (not found yet, timeout, runtime
    /// unreachable), with backoff 50 ms, 100 ms, 200 ms, … (max 2 s). Default 4 (~0.75 s of
    /// waiting in all).
    pub retries: u32,
    /// Capacity of the request queue (at least 1). Default 1024.
    pub queue: usize,
}

impl Default for EnricherConfig {
    fn default() -> Self {
        EnricherConfig {
            containerd_sockets: DEFAULT_CONTAINERD_SOCKETS.iter().map(PathBuf::from).collect(),
            docker_socket: Some(PathBuf::from(DEFAULT_DOCKER_SOCKET)),
            timeout: Duration::from_secs(2),
            retries: 4,
            queue: 1024,
        }
    }
}

/// Counters since [`Enricher::start`]. `requested = coalesced + succeeded + failed + (in
/// progress)`; `dropped_queue_full` requests are not in `requested`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnricherStats {
    /// Requests accepted into the queue.
    pub requested: u64,
    /// Requests for an id whose lookup was already running (answered by that lookup).
    pub coalesced: u64,
    /// Lookups that produced metadata.
    pub succeeded: u64,
    /// Lookups that ended with a [`LookupError`].
    pub failed: u64,
    /// Requests refused because the queue was full.
    pub dropped_queue_full: u64,
    /// Attempts repeated after a retryable failure (container not registered yet, timeout,
    /// runtime unreachable).
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requested: AtomicU64,
    coalesced: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    dropped_queue_full: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

type LookupResult = (String, Result<Metadata, LookupError>);

#[derive(Debug)]
struct Request {
    id: String,
    namespace: Option<String>,
}

/// Background container-metadata lookups. Dropping it stops the worker at once, abandoning
/// lookups in progress.
#[derive(Debug)]
pub struct Enricher {
    /// `None` when the worker could not be started: requests are then answered at once with
    /// [`LookupError::Unavailable`].
    tx: Option<mpsc::Sender<Request>>,
    unavailable: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    results_tx: std::sync::mpsc::Sender<LookupResult>,
    results: Mutex<std::sync::mpsc::Receiver<LookupResult>>,
    counters: Arc<Counters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Enricher {
    /// Starts the worker thread (named `bw-enricher`). Never fails: if the thread or its
    /// runtime cannot be created, every request is answered with [`LookupError::Unavailable`].
    pub fn start(cfg: EnricherConfig) -> Enricher {
        let (results_tx, results_rx) = std::sync::mpsc::channel();
        let counters = Arc::new(Counters::default());
        let mut e = Enricher {
            tx: None,
            unavailable: None,
            stop: None,
            results_tx: results_tx.clone(),
            results: Mutex::new(results_rx),
            counters: Arc::clone(&counters),
            thread: None,
        };
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
            Ok(rt) => rt,
            Err(err) => {
                e.unavailable = Some(format!("cannot create the lookup runtime: {err}"));
                return e;
            }
        };
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let worker = Worker {
            sources: Sources::new(&cfg, Arc::clone(&counters)),
            in_flight: Mutex::new(HashSet::new()),
            results: results_tx,
            counters,
        };
        let spawned = std::thread::Builder::new()
            .name("bw-enricher".into())
            .spawn(move || runtime.block_on(worker.run(rx, stop_rx)));
        match spawned {
            Ok(handle) => {
                e.tx = Some(tx);
                e.stop = Some(stop_tx);
                e.thread = Some(handle);
            }
            Err(err) => e.unavailable = Some(format!("cannot start the lookup thread: {err}")),
        }
        e
    }

    /// Non-blocking: enqueues a lookup of `container_id`, in containerd namespace
    /// `namespace_hint` if given (e.g. from a `/<ns>/<id>` cgroup path, or `k8s.io` for CRI,
    /// `moby` for Docker), else in every namespace. Returns `false` (and counts a drop) if the
    /// queue is full. An invalid id or namespace is answered at once with an error result. A
    /// request for an id whose lookup is already running is coalesced into it (one result,
    /// whatever the hint).
    pub fn request(&self, container_id: &str, namespace_hint: Option<&str>) -> bool {
        let early = if let Some(why) = &self.unavailable {
            Some(LookupError::Unavailable(why.clone()))
        } else {
            validate(container_id, namespace_hint).err()
        };
        if let Some(err) = early {
            Counters::bump(&self.counters.requested);
            Counters::bump(&self.counters.failed);
            let _ = self.results_tx.send((container_id.to_string(), Err(err)));
            return true;
        }
        let Some(tx) = &self.tx else {
            return false;
        };
        let req = Request { id: container_id.to_string(), namespace: namespace_hint.map(str::to_string) };
        match tx.try_send(req) {
            Ok(()) => {
                Counters::bump(&self.counters.requested);
                true
            }
            Err(_) => {
                // Full (or, after a worker panic, closed): either way nothing will answer it.
                Counters::bump(&self.counters.dropped_queue_full);
                false
            }
        }
    }

    /// Non-blocking: lookups completed since the last call, as (container id, result).
    /// Results wait (unbounded, one entry per finished lookup) until collected, so call this
    /// regularly. Returns nothing while another thread is inside [`Enricher::wait_results`].
    pub fn try_results(&self) -> Vec<(String, Result<Metadata, LookupError>)> {
        let rx = match self.results.try_lock() {
            Ok(rx) => rx,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
        };
        rx.try_iter().collect()
    }

    /// Blocking (not for the event path): waits up to `timeout` for at least one completed
    /// lookup, then returns everything completed so far (empty on timeout).
    pub fn wait_results(&self, timeout: Duration) -> Vec<(String, Result<Metadata, LookupError>)> {
        let rx = self.results.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        if let Ok(first) = rx.recv_timeout(timeout) {
            out.push(first);
            out.extend(rx.try_iter());
        }
        out
    }

    pub fn stats(&self) -> EnricherStats {
        let c = &self.counters;
        EnricherStats {
            requested: c.requested.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Enricher {
    fn drop(&mut self) {
        // The worker stops at its next await point; its runtime is then dropped, which cancels
        // every lookup in progress, so joining is quick.
        self.stop.take();
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One synchronous lookup with the same sources, timeout and retries as the [`Enricher`]
/// (blocks the calling thread for up to `(retries + 1) × timeout` plus backoff). For CLIs and
/// tests, not the event path; from inside an async runtime it returns
/// [`LookupError::Unavailable`] (a nested runtime cannot block there).
pub fn lookup_blocking(
    cfg: &EnricherConfig,
    container_id: &str,
    namespace_hint: Option<&str>,
) -> Result<Metadata, LookupError> {
    validate(container_id, namespace_hint)?;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(LookupError::Unavailable(
            "lookup_blocking was called from inside an async runtime; use Enricher instead".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| LookupError::Unavailable(format!("cannot create the lookup runtime: {e}")))?;
    let sources = Sources::new(cfg, Arc::default());
    rt.block_on(sources.lookup(container_id, namespace_hint))
}

fn validate(id: &str, namespace: Option<&str>) -> Result<(), LookupError> {
    if !error::valid_identifier(id) {
        return Err(LookupError::InvalidId(id.to_string()));
    }
    match namespace {
        Some(ns) if !error::valid_identifier(ns) => Err(LookupError::InvalidNamespace(ns.to_string())),
        _ => Ok(()),
    }
}

/// The configured runtimes, with their connections.
#[derive(Debug)]
struct Sources {
    containerd: Vec<Containerd>,
    docker: Option<PathBuf>,
    timeout: Duration,
    retries: u32,
    counters: Arc<Counters>,
}

impl Sources {
    fn new(cfg: &EnricherConfig, counters: Arc<Counters>) -> Self {
        Sources {
            counters,
            containerd: cfg.containerd_sockets.iter().cloned().map(Containerd::new).collect(),
            docker: cfg.docker_socket.clone(),
            timeout: cfg.timeout,
            retries: cfg.retries,
        }
    }

    /// Attempts with retries and exponential backoff.
    async fn lookup(&self, id: &str, namespace: Option<&str>) -> Result<Metadata, LookupError> {
        let mut attempt: u32 = 0;
        loop {
            match self.attempt(id, namespace).await {
                Err(e) if e.is_retryable() && attempt < self.retries => {
                    let delay = FIRST_BACKOFF.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
                    Counters::bump(&self.counters.retries);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One pass over the sockets. Docker goes first when it can know the container (no
    /// namespace hint, or `moby`): its answer is richer than containerd's `moby` record. The
    /// first source that knows the container wins; otherwise the first real error (timeout,
    /// connection or protocol failure) is reported, else "not found", else "no socket".
    async fn attempt(&self, id: &str, namespace: Option<&str>) -> Result<Metadata, LookupError> {
        let mut missing: Vec<PathBuf> = Vec::new();
        let mut searched: Vec<String> = Vec::new();
        let mut first_error: Option<LookupError> = None;
        let mut note = |e: LookupError, missing: &mut Vec<PathBuf>| match e {
            LookupError::NoSocket { sockets } => missing.extend(sockets),
            e => {
                first_error.get_or_insert(e);
            }
        };

        let docker = self.docker.as_deref().filter(|_| matches!(namespace, None | Some("moby")));
        if let Some(socket) = docker {
            match self.bounded(socket, docker::lookup(socket, id)).await {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => searched.push(format!("docker {}", socket.display())),
                Err(e) => note(e, &mut missing),
            }
        }
        for c in &self.containerd {
            match self.bounded(c.socket(), c.lookup(id, namespace)).await {
                Ok(Found::Yes(m)) => return Ok(*m),
                Ok(Found::No(namespaces)) => searched.push(format!(
                    "containerd {} namespaces [{}]",
                    c.socket().display(),
                    namespaces.join(", ")
                )),
                Err(e) => note(e, &mut missing),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if !searched.is_empty() {
            return Err(LookupError::NotFound { id: id.to_string(), searched: searched.join("; ") });
        }
        Err(LookupError::NoSocket { sockets: missing })
    }

    /// Runs `f` against `socket` if it exists, within the timeout.
    async fn bounded<T>(
        &self,
        socket: &Path,
        f: impl Future<Output = Result<T, LookupError>>,
    ) -> Result<T, LookupError> {
        // A missing socket is the common case on a host without that runtime: no connect, no
        // retry, and it is named in the error if no runtime answers at all.
        if !matches!(socket.try_exists(), Ok(true)) {
            return Err(LookupError::NoSocket { sockets: vec![socket.to_path_buf()] });
        }
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(LookupError::Timeout { socket: socket.to_path_buf(), after: self.timeout }),
        }
    }
}

/// State of the worker thread.
struct Worker {
    sources: Sources,
    in_flight: Mutex<HashSet<String>>,
    results: std::sync::mpsc::Sender<LookupResult>,
    counters: Arc<Counters>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Request>, mut stop: oneshot::Receiver<()>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
        loop {
            let Some(Ok(slot)) = until_stopped(&mut stop, Arc::clone(&slots).acquire_owned()).await else {
                return;
            };
            let Some(Some(req)) = until_stopped(&mut stop, rx.recv()).await else {
                return;
            };
            let fresh = this.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(req.id.clone());
            if !fresh {
                Counters::bump(&this.counters.coalesced);
                continue;
            }
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                // Removes the id from `in_flight` however the task ends (even by a panic, which
                // tokio contains), so later requests for it are never coalesced into nothing.
                let guard = InFlight { worker: &this, id: &req.id };
                let result = this.sources.lookup(&req.id, req.namespace.as_deref()).await;
                drop(guard);
                Counters::bump(if result.is_ok() { &this.counters.succeeded } else { &this.counters.failed });
                let _ = this.results.send((req.id, result));
                drop(slot);
            });
        }
    }
}

struct InFlight<'a> {
    worker: &'a Worker,
    id: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.worker.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(self.id);
    }
}

/// `fut`'s output, or `None` as soon as `stop` fires or its sender is dropped.
async fn until_stopped<F: Future>(stop: &mut oneshot::Receiver<()>, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if Pin::new(&mut *stop).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}
