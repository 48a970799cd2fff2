//! The event-log contract: how an event becomes a JSON line (`"type": "event"`), and a
//! container lifecycle change a `"type": "container"` line. [`EventLineWriter`] is the
//! hot path: it writes exactly what serde would for [`EventLine`], faster, serialising
//! each container's part once (tested byte for byte).

use boxwatch_model::{ContainerRef, Event};
use boxwatch_rules::time::rfc3339_ns;
use boxwatch_runtime::Metadata;
use serde::Serialize;

/// The shape of an event line (the event-log contract). [`EventLineWriter`] writes
/// exactly this, faster; the tests hold it to that.
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub time: String,
    pub container: Option<&'a ContainerRef>,
    /// Runtime metadata of the container (name, image, pod, labels), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_meta: Option<&'a Metadata>,
    /// Stable id of the process image (pid:start_ns:exec generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_exec_id: Option<&'a str>,
    #[serde(flatten)]
    pub event: &'a Event,
}

#[derive(Serialize)]
struct ContainerLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    time: String,
    action: &'a str,
    container: &'a ContainerRef,
}

/// A container lifecycle line.
pub fn container_line(wall_ns: u64, action: &str, c: &ContainerRef) -> String {
    serde_json::to_string(&ContainerLine { ty: "container", time: rfc3339_ns(wall_ns), action, container: c })
        .unwrap_or_default()
}

/// Writes [`EventLine`]s, serialising each container's part once: every event of a
/// container repeats its `"container"` and `"container_meta"` verbatim, and labels of
/// Kubernetes pods make that the larger half of a line.
#[derive(Debug, Default)]
pub struct EventLineWriter {
    /// Container id → (metadata known?, `"container":{…}[,"container_meta":{…}]`).
    containers: std::collections::HashMap<String, (bool, String)>,
}

/// Containers whose serialised part is kept; past this the cache starts over.
const CONTAINER_JSON_CAP: usize = 4096;

impl EventLineWriter {
    pub fn line(
        &mut self,
        wall_ns: u64,
        ev: &Event,
        container: Option<&ContainerRef>,
        meta: Option<&Metadata>,
        exec_id: Option<&str>,
        parent_exec_id: Option<&str>,
    ) -> String {
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        buf.extend_from_slice(b"{\"type\":\"event\",\"time\":\"");
        buf.extend_from_slice(rfc3339_ns(wall_ns).as_bytes());
        buf.extend_from_slice(b"\",");
        match container {
            None => buf.extend_from_slice(b"\"container\":null"),
            Some(c) => {
                let fresh =
                    self.containers.get(&c.id).is_none_or(|(had_meta, _)| *had_meta != meta.is_some());
                if fresh {
                    if self.containers.len() >= CONTAINER_JSON_CAP {
                        self.containers.clear();
                    }
                    let mut part = String::from("\"container\":");
                    part.push_str(&serde_json::to_string(c).unwrap_or_else(|_| "null".into()));
                    if let Some(m) = meta {
                        part.push_str(",\"container_meta\":");
                        part.push_str(&serde_json::to_string(m).unwrap_or_else(|_| "null".into()));
                    }
                    self.containers.insert(c.id.clone(), (meta.is_some(), part));
                }
                if let Some((_, part)) = self.containers.get(&c.id) {
                    buf.extend_from_slice(part.as_bytes());
                }
            }
        }
        for (key, v) in [(&b",\"exec_id\":"[..], exec_id), (&b",\"parent_exec_id\":"[..], parent_exec_id)] {
            if let Some(v) = v {
                buf.extend_from_slice(key);
                let _ = serde_json::to_writer(&mut buf, v);
            }
        }
        // The event's own fields follow: its object's `{` becomes the separating `,`.
        let start = buf.len();
        if serde_json::to_writer(&mut buf, ev).is_ok()
            && buf.get(start) == Some(&b'{')
            && buf.len() > start + 2
        {
            buf[start] = b',';
        } else {
            buf.truncate(start);
            buf.push(b'}');
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The container exited: drop its cached part.
    pub fn forget(&mut self, container_id: &str) {
        self.containers.remove(container_id);
    }

    /// Containers whose part is cached.
    pub fn cached(&self) -> usize {
        self.containers.len()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// An openat event as the daemon decoded it (fields of a real line).
    const EVENT: &str = r#"{"cgroup_id": 78191, "dirfd": -100, "flags": 524288, "kind": "open", "ktime_ns": 9812740507445, "mode": 0, "ns": {"mnt": 4026532177, "net": 4026532181, "pid": 4026532180}, "path": "/usr/local/lib/python3.11/dist-packages/_sandboxing_egress_ca.pth", "process": {"cap_effective": 2818844155, "comm": "python3", "egid": 0, "euid": 0, "gid": 0, "pid": 14894, "ppid": 14870, "start_ns": 9812698912882, "tid": 14894, "uid": 0, "vpid": 1}, "record_flags": 0, "ret": 3, "syscall": "openat"}"#;

    fn container() -> ContainerRef {
        serde_json::from_str(
            r#"{"id":"6ed032e4f2f1d33a5def5baecb515bb4d2625606a543d735ce2d74b6cf2963f0","runtime":"docker","pod_uid":null,"namespace":null,"nested":false,"cgroup_root":"/system.slice/docker-6ed032e4f2f1d33a5def5baecb515bb4d2625606a543d735ce2d74b6cf2963f0.scope"}"#,
        )
        .expect("container")
    }

    fn meta() -> Metadata {
        Metadata {
            name: Some("web \"1\"".into()),
            image: Some("docker.io/library/nginx:1.25".into()),
            runtime_namespace: Some("k8s.io".into()),
            pod_name: Some("web-0".into()),
            pod_namespace: Some("prod".into()),
            pod_uid: None,
            labels: [("app".to_string(), "web".to_string())].into_iter().collect(),
            source: "containerd",
        }
    }

    #[test]
    fn event_lines_are_exactly_the_serde_shape() {
        let ev: Event = serde_json::from_str(EVENT).expect("event");
        let (c, m) = (container(), meta());
        let mut w = EventLineWriter::default();
        type Case<'a> = (Option<&'a ContainerRef>, Option<&'a Metadata>, Option<&'a str>, Option<&'a str>);
        let cases: [Case; 5] = [
            (None, None, None, None),
            (None, None, Some("1:2:0"), Some("3:4:1")),
            (Some(&c), None, Some("1:2:0"), None),
            (Some(&c), Some(&m), Some("1:2:0"), Some("3:4:1")),
            // Cached part reused, then rebuilt once metadata disappears.
            (Some(&c), None, None, Some("3:4:1")),
        ];
        for _ in 0..2 {
            for (container, container_meta, exec_id, parent_exec_id) in cases {
                let want = serde_json::to_string(&EventLine {
                    ty: "event",
                    time: rfc3339_ns(1_764_032_000_123_456_789),
                    container,
                    container_meta,
                    exec_id,
                    parent_exec_id,
                    event: &ev,
                })
                .expect("serialise");
                let got = w.line(
                    1_764_032_000_123_456_789,
                    &ev,
                    container,
                    container_meta,
                    exec_id,
                    parent_exec_id,
                );
                assert_eq!(got, want);
            }
        }
        w.forget(&c.id);
        assert_eq!(w.cached(), 0);
    }
}
