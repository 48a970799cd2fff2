//! Container metadata for alerts: asks the runtime (`boxwatch-runtime`)
//! once per container, off the event path, and holds back alerts of a
//! container whose lookup is still running so they ship complete. An alert
//! never ships with silently missing metadata: if the lookup fails or takes
//! longer than the hold time, it ships with `boxwatch.container.metadata`
//! saying why.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use boxwatch_model::ContainerRef;
use boxwatch_outputs::Raised;
use boxwatch_runtime::{Enricher, EnricherConfig, Metadata};
use serde_json::json;

/// How long an alert may wait for its container's metadata.
const HOLD: Duration = Duration::from_secs(3);
/// Alerts held at most; beyond that they ship at once, marked pending.
const MAX_HELD: usize = 10_000;

#[derive(Debug)]
enum State {
    Pending,
    Known(Metadata),
    Unavailable(String),
}

#[derive(Debug)]
struct Held {
    container_id: String,
    alert: Raised,
    since: Instant,
}

pub struct Enrichment {
    enricher: Option<Enricher>,
    state: HashMap<String, State>,
    held: VecDeque<Held>,
}

impl std::fmt::Debug for Enrichment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrichment")
            .field("containers", &self.state.len())
            .field("held", &self.held.len())
            .finish()
    }
}

/// The containerd namespace, when the cgroup path names it (`/<namespace>/<id>`).
/// Otherwise the lookup searches every namespace: a docker-style cgroup name does
/// not mean the container lives in `moby`.
fn namespace_hint(c: &ContainerRef) -> Option<&str> {
    c.namespace.as_deref()
}

impl Enrichment {
    /// `None` config: enrichment disabled (alerts say so).
    pub fn start(cfg: Option<EnricherConfig>) -> Enrichment {
        Enrichment { enricher: cfg.map(Enricher::start), state: HashMap::new(), held: VecDeque::new() }
    }

    /// Counters of the runtime lookups (`None`: lookups are off).
    pub fn stats(&self) -> Option<boxwatch_runtime::EnricherStats> {
        self.enricher.as_ref().map(Enricher::stats)
    }

    /// A container appeared: start its lookup.
    pub fn container_seen(&mut self, c: &ContainerRef) {
        if self.state.contains_key(&c.id) {
            return;
        }
        let state = match &self.enricher {
            None => State::Unavailable("runtime lookups disabled".into()),
            Some(e) if e.request(&c.id, namespace_hint(c)) => State::Pending,
            Some(_) => State::Unavailable("lookup queue full".into()),
        };
        self.state.insert(c.id.clone(), state);
    }

    /// The container is gone: forget it once no held alert needs it.
    pub fn container_gone(&mut self, id: &str) {
        if !self.held.iter().any(|h| h.container_id == id) {
            self.state.remove(id);
        }
    }

    /// Metadata of a container, when known.
    pub fn metadata(&self, id: &str) -> Option<&Metadata> {
        match self.state.get(id) {
            Some(State::Known(m)) => Some(m),
            _ => None,
        }
    }

    /// What alerts of this container say in `boxwatch.container.metadata` (for the HTTP API).
    pub fn status(&self, id: &str) -> String {
        match self.state.get(id) {
            Some(State::Known(m)) => format!("complete ({})", m.source),
            Some(State::Pending) => "pending: runtime lookup running".to_string(),
            Some(State::Unavailable(why)) => format!("unavailable: {why}"),
            None => "unavailable: container not known to the runtime lookup".to_string(),
        }
    }

    /// Complete `alert` now, or hold it until its container's lookup ends.
    pub fn complete_or_hold(&mut self, mut alert: Raised, container_id: Option<&str>, out: &mut Vec<Raised>) {
        let Some(id) = container_id else {
            out.push(alert);
            return;
        };
        match self.state.get(id) {
            Some(State::Pending) if self.held.len() < MAX_HELD => {
                self.held.push_back(Held { container_id: id.to_string(), alert, since: Instant::now() });
            }
            Some(State::Pending) => {
                mark(&mut alert, "pending: too many alerts waiting for runtime metadata");
                out.push(alert);
            }
            Some(State::Known(m)) => {
                fill(&mut alert, m);
                out.push(alert);
            }
            Some(State::Unavailable(why)) => {
                mark(&mut alert, &format!("unavailable: {why}"));
                out.push(alert);
            }
            None => {
                mark(&mut alert, "unavailable: container not known to the runtime lookup");
                out.push(alert);
            }
        }
    }

    /// Take finished lookups, and release held alerts that are complete or waited too long.
    pub fn poll(&mut self, out: &mut Vec<Raised>) {
        if let Some(e) = &self.enricher {
            for (id, result) in e.try_results() {
                let s = match result {
                    Ok(m) => State::Known(m),
                    Err(err) => State::Unavailable(err.to_string()),
                };
                self.state.insert(id, s);
            }
        }
        let now = Instant::now();
        let mut keep = VecDeque::with_capacity(self.held.len());
        while let Some(mut h) = self.held.pop_front() {
            match self.state.get(&h.container_id) {
                Some(State::Known(m)) => {
                    fill(&mut h.alert, m);
                    out.push(h.alert);
                }
                Some(State::Unavailable(why)) => {
                    mark(&mut h.alert, &format!("unavailable: {why}"));
                    out.push(h.alert);
                }
                _ if now.duration_since(h.since) >= HOLD => {
                    mark(
                        &mut h.alert,
                        &format!("pending: the runtime did not answer within {} s", HOLD.as_secs()),
                    );
                    out.push(h.alert);
                }
                _ => keep.push_back(h),
            }
        }
        self.held = keep;
    }

    /// Shutdown: release everything held, marked as such.
    pub fn drain(&mut self, out: &mut Vec<Raised>) {
        self.poll(out);
        for mut h in self.held.drain(..) {
            mark(&mut h.alert, "pending: boxwatch stopped before the runtime answered");
            out.push(h.alert);
        }
    }
}

fn mark(r: &mut Raised, status: &str) {
    r.alert.output_fields.insert("boxwatch.container.metadata", json!(status));
}

/// Falco's container and k8s fields from runtime metadata.
fn fill(r: &mut Raised, m: &Metadata) {
    let f = &mut r.alert.output_fields;
    f.insert("boxwatch.container.metadata", json!(format!("complete ({})", m.source)));
    f.insert("container.name", json!(m.name));
    if let Some(image) = &m.image {
        let (repo, tag) = split_image(image);
        f.insert("container.image", json!(image));
        f.insert("container.image.repository", json!(repo));
        f.insert("container.image.tag", json!(tag));
    }
    f.insert("k8s.pod.name", json!(m.pod_name));
    f.insert("k8s.ns.name", json!(m.pod_namespace));
    if m.pod_uid.is_some() {
        f.insert("k8s.pod.uid", json!(m.pod_uid));
    }
    f.insert("boxwatch.container.namespace", json!(m.runtime_namespace));
    f.insert("container.labels", json!(m.labels));
}

/// `registry/repo:tag@digest` → (`registry/repo`, `tag`); the tag is empty when absent.
fn split_image(image: &str) -> (&str, &str) {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => (&no_digest[..i], &no_digest[i + 1..]),
        _ => (no_digest, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn splits_image_references() {
        assert_eq!(split_image("docker.io/library/nginx:1.25"), ("docker.io/library/nginx", "1.25"));
        assert_eq!(split_image("localhost:5000/app"), ("localhost:5000/app", ""));
        assert_eq!(split_image("localhost:5000/app:v1@sha256:abc"), ("localhost:5000/app", "v1"));
        assert_eq!(split_image("busybox"), ("busybox", ""));
    }
}
