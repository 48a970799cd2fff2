//! boxwatch's HTTP side, on axum: `/metrics` (Prometheus text from one `prometheus-client`
//! registry), `/healthz` (readiness from the data path) and the versioned JSON API under
//! `/api/v1`. [`router`] builds the whole `Router` from a [`Web`] without binding anything, so
//! tests drive it with `tower::ServiceExt::oneshot`; [`server::Server`] runs it on its own thread
//! and Tokio runtime, so the event path never waits for HTTP.
//!
//! Handlers read only what the daemon publishes: the lock-free [`snapshot::SnapshotCell`], the
//! [`snapshot::DataPath`] heartbeats, the registry's collectors, and the [`AlertStore`] (on a
//! blocking thread). Bad input is a 400 with a JSON `{"error": …}` body, never a panic.

pub mod alerts;
pub mod server;
pub mod snapshot;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

pub use crate::alerts::{AlertQuery, AlertStore};
pub use crate::snapshot::{
    ContainerInfo, Counters, CoverageInfo, DataPath, HookInfo, PublishPolicy, Snapshot, SnapshotCell,
};
pub use prometheus_client;

/// Everything the HTTP side serves.
pub struct Web {
    /// The one registry `/metrics` encodes (the daemon registers its collectors here).
    pub registry: Registry,
    pub snapshots: Arc<SnapshotCell>,
    pub data_path: Arc<DataPath>,
    /// The alert history; `None` when the daemon keeps none (`/api/v1/alerts` says so).
    pub alerts: Option<Arc<dyn AlertStore>>,
    /// A data-path thread silent for longer than this makes `/healthz` fail.
    pub stall_after: Duration,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("alerts", &self.alerts.is_some())
            .field("stall_after", &self.stall_after)
            .finish()
    }
}

type Shared = Arc<Web>;

/// An API error: status and a one-line message, sent as `{"error": message, "status": code}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message, "status": self.status.as_u16()}))).into_response()
    }
}

/// The whole HTTP surface. Binds nothing.
pub fn router(web: Web) -> Router {
    let api = Router::new()
        .route("/health", get(api_health))
        .route("/containers", get(api_containers))
        .route("/containers/{id}/tree", get(api_tree))
        .route("/alerts", get(api_alerts))
        .fallback(api_not_found);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .fallback(not_found)
        .with_state(Arc::new(web))
}

async fn metrics(State(web): State<Shared>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut body, &web.registry) {
        Ok(()) => {
            ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], body)
                .into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed\n").into_response(),
    }
}

async fn healthz(State(web): State<Shared>) -> Response {
    match web.data_path.readiness(web.stall_after) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", why.join("; "))).into_response()
        }
    }
}

async fn not_found(uri: Uri) -> Response {
    (StatusCode::NOT_FOUND, format!("not found: {}: try /metrics, /healthz or /api/v1/health\n", uri.path()))
        .into_response()
}

async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such API route: {} (routes: /api/v1/health, /api/v1/containers, \
             /api/v1/containers/{{id}}/tree, /api/v1/alerts)",
            uri.path()
        ),
    )
}

fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

fn snapshot_json(web: &Web, s: &Snapshot) -> Value {
    json!({"seq": s.seq, "taken_unix_ns": s.taken_unix_ns, "age_ms": ms(web.snapshots.age())})
}

async fn api_health(State(web): State<Shared>) -> Json<Value> {
    let s = web.snapshots.load();
    let c = &s.counters;
    let d = &web.data_path;
    let readiness = d.readiness(web.stall_after);
    let ratio = |a: u64| if c.ring_size_bytes == 0 { 0.0 } else { a as f64 / c.ring_size_bytes as f64 };
    Json(json!({
        "ready": readiness.is_ok(),
        "reasons": readiness.err().unwrap_or_default(),
        "hooks": {
            "attached": s.coverage.attached,
            "degraded": s.coverage.degraded,
            "inflight_store": s.coverage.inflight_store,
        },
        "events_per_sec": c.events_per_sec,
        "drops": c.drops,
        "drops_total": c.drops.values().sum::<u64>(),
        "ring": {
            "queued_bytes": c.ring_queued_bytes,
            "queued_max_bytes": c.ring_queued_max_bytes,
            "size_bytes": c.ring_size_bytes,
            "fill": ratio(c.ring_queued_bytes),
            "max_fill": ratio(c.ring_queued_max_bytes),
        },
        "queue_depth": d.queue_depth(),
        "last_event_age_ms": ms(d.last_event_age()),
        "processor_heartbeat_age_ms": ms(d.processor_age()),
        "reader_heartbeat_age_ms": ms(d.reader_age()),
        "reader_alive": d.reader_alive.load(std::sync::atomic::Ordering::Relaxed),
        "counters": c,
        "snapshot": snapshot_json(&web, &s),
    }))
}

async fn api_containers(State(web): State<Shared>) -> Json<Value> {
    let s = web.snapshots.load();
    Json(json!({"containers": s.containers, "snapshot": snapshot_json(&web, &s)}))
}

/// An id or unique id prefix of a known container.
fn find_container<'s>(s: &'s Snapshot, id: &str) -> Result<&'s ContainerInfo, ApiError> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(ApiError::bad_request(format!(
            "container id: expected an id or id prefix ([A-Za-z0-9-_.:], at most 128), got {id:?}"
        )));
    }
    if let Some(c) = s.containers.iter().find(|c| c.id == id) {
        return Ok(c);
    }
    let mut found = s.containers.iter().filter(|c| c.id.starts_with(id));
    match (found.next(), found.next()) {
        (Some(c), None) => Ok(c),
        (None, _) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no container whose id starts with {id:?}")))
        }
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "container id prefix {id:?} is ambiguous: give more characters"
        ))),
    }
}

/// Trees older than this when asked for are waited for (up to [`TREE_WAIT`]).
const TREE_MAX_AGE_NS: u64 = 5_000_000_000;
const TREE_WAIT: Duration = Duration::from_secs(2);

fn now_unix_ns() -> u64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

async fn api_tree(
    State(web): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(format!("container id: {}", e.body_text())))?;
    // Trees are built while they are asked for: after a quiet spell, wait (briefly) for one.
    web.snapshots.want_trees();
    let asked = now_unix_ns();
    let t0 = tokio::time::Instant::now();
    let mut s = web.snapshots.load();
    while s.trees_taken_unix_ns.saturating_add(TREE_MAX_AGE_NS) < asked && t0.elapsed() < TREE_WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = web.snapshots.load();
    }
    let c = find_container(&s, &id)?;
    let processes = s.trees.get(c.id.as_str()).map_or(&[][..], Vec::as_slice);
    let trees_age_ms =
        (s.trees_taken_unix_ns > 0).then(|| now_unix_ns().saturating_sub(s.trees_taken_unix_ns) / 1_000_000);
    Ok(Json(json!({
        "container": c,
        "processes": processes,
        "trees_age_ms": trees_age_ms,
        "snapshot": snapshot_json(&web, &s),
    })))
}

async fn api_alerts(
    State(web): State<Shared>,
    q: Result<Query<alerts::RawAlertParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(raw) = q.map_err(|e| {
        ApiError::bad_request(format!(
            "{} (parameters: since, container, rule, priority, limit)",
            e.body_text().trim_start_matches("Failed to deserialize query string: ")
        ))
    })?;
    let q = raw.validate(SystemTime::now()).map_err(ApiError::bad_request)?;
    let Some(store) = web.alerts.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert history is off: start boxwatch run with --history PATH",
        ));
    };
    let limit = q.limit;
    let rows = tokio::task::spawn_blocking(move || store.query(&q))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("alert query failed: {e}")))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("alert query failed: {e}")))?;
    Ok(Json(json!({"alerts": rows, "count": rows.len(), "limit": limit})))
}
