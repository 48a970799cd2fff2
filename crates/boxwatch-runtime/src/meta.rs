//! [`Metadata`] and how it is built from what the runtimes return: containerd's `Container`
//! (labels, image, OCI spec annotations) and Docker's `GET /containers/{id}/json`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::proto;

/// Container metadata from a runtime.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Metadata {
    /// Container name: the Kubernetes container name for CRI/dockershim containers, the Docker
    /// name (without the leading `/`), nerdctl's name, else the containerd container id.
    pub name: Option<String>,
    /// Image reference as the runtime recorded it (e.g. `docker.io/library/nginx:1.25`).
    pub image: Option<String>,
    /// containerd namespace the container was found in (`k8s.io`, `moby`, `default`, …); `None`
    /// for Docker.
    pub runtime_namespace: Option<String>,
    /// Kubernetes pod name, namespace and UID (CRI annotations or `io.kubernetes.*` labels).
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_uid: Option<String>,
    /// The container's labels (containerd container labels or Docker `Config.Labels`).
    pub labels: BTreeMap<String, String>,
    /// Which runtime answered: `"containerd"` or `"docker"`.
    pub source: &'static str,
}

/// Annotations the containerd CRI plugin puts into the OCI spec of every container it creates.
pub(crate) const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub(crate) const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub(crate) const CRI_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
pub(crate) const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
pub(crate) const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
/// Labels the kubelet's dockershim/cri-dockerd (Docker labels), containerd's CRI plugin
/// (containerd labels) and CRI-O (annotations) set.
pub(crate) const KUBE_POD_NAME: &str = "io.kubernetes.pod.name";
pub(crate) const KUBE_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub(crate) const KUBE_POD_UID: &str = "io.kubernetes.pod.uid";
pub(crate) const KUBE_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// nerdctl's container name label.
pub(crate) const NERDCTL_NAME: &str = "nerdctl/name";

/// First non-empty value among `keys`, looked up in each map in turn (per key).
fn pick(keys: &[&str], maps: &[&BTreeMap<String, String>]) -> Option<String> {
    keys.iter().flat_map(|k| maps.iter().filter_map(move |m| m.get(*k))).find(|v| !v.is_empty()).cloned()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The subset of the OCI runtime spec read here.
#[derive(Debug, Default, Deserialize)]
struct OciSpec {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// OCI spec annotations from containerd's `spec` Any, which holds the spec as JSON. Anything
/// else (another type, invalid JSON) yields no annotations: they are an optional extra.
pub(crate) fn spec_annotations(type_url: &str, spec: &[u8]) -> BTreeMap<String, String> {
    if spec.is_empty() || !(type_url.is_empty() || type_url.contains("runtime-spec")) {
        return BTreeMap::new();
    }
    serde_json::from_slice::<OciSpec>(spec).ok().and_then(|s| s.annotations).unwrap_or_default()
}

/// Metadata from a containerd container found in namespace `namespace`.
pub(crate) fn from_containerd(c: proto::Container, namespace: &str) -> Metadata {
    let annotations = spec_annotations(&c.spec_type_url, &c.spec);
    let (l, a) = (&c.labels, &annotations);
    let name = pick(&[CRI_CONTAINER_NAME, KUBE_CONTAINER_NAME, NERDCTL_NAME], &[a, l])
        .or_else(|| non_empty(c.id.clone()));
    let image = non_empty(c.image.clone()).or_else(|| pick(&[CRI_IMAGE_NAME], &[a, l]));
    Metadata {
        name,
        image,
        runtime_namespace: non_empty(namespace.to_string()),
        pod_name: pick(&[CRI_SANDBOX_NAME, KUBE_POD_NAME], &[a, l]),
        pod_namespace: pick(&[CRI_SANDBOX_NAMESPACE, KUBE_POD_NAMESPACE], &[a, l]),
        pod_uid: pick(&[CRI_SANDBOX_UID, KUBE_POD_UID], &[a, l]),
        labels: c.labels,
        source: "containerd",
    }
}

/// The subset of Docker's `ContainerInspectResponse` read here.
#[derive(Debug, Deserialize)]
struct DockerInspect {
    /// Always present in a real answer: its absence means this is not an inspect document.
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    /// The image id (`sha256:…`): used only when `Config.Image` is missing.
    #[serde(rename = "Image", default)]
    image_id: String,
    #[serde(rename = "Config", default)]
    config: Option<DockerConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(rename = "Image", default)]
    image: Option<String>,
    /// `null` when the container has no labels.
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Metadata from the body of Docker's `GET /containers/{id}/json`.
pub(crate) fn from_docker_json(body: &[u8]) -> Result<Metadata, String> {
    let d: DockerInspect =
        serde_json::from_slice(body).map_err(|e| format!("invalid container inspect JSON: {e}"))?;
    if d.id.is_empty() {
        return Err("invalid container inspect JSON: empty Id".into());
    }
    let config = d.config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let docker_name = d.name.trim_start_matches('/').to_string();
    let name = pick(&[KUBE_CONTAINER_NAME], &[&labels])
        .or_else(|| non_empty(docker_name))
        .or_else(|| non_empty(d.id.clone()));
    Ok(Metadata {
        name,
        image: config.image.and_then(non_empty).or_else(|| non_empty(d.image_id)),
        runtime_namespace: None,
        pod_name: pick(&[KUBE_POD_NAME], &[&labels]),
        pod_namespace: pick(&[KUBE_POD_NAMESPACE], &[&labels]),
        pod_uid: pick(&[KUBE_POD_UID], &[&labels]),
        labels,
        source: "docker",
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SPEC_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn cri_container_from_annotations() {
        // Shaped like what containerd's CRI plugin stores: CRI labels on the container,
        // sandbox annotations in the spec.
        let spec = serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"args": ["nginx"]},
            "annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": "web",
                "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25",
                "io.kubernetes.cri.sandbox-id": "f00d",
                "io.kubernetes.cri.sandbox-name": "web-7d9f-abcde",
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-uid": "0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
            }
        });
        let c = proto::Container {
            id: "a".repeat(64),
            labels: map(&[("io.cri-containerd.kind", "container"), ("app", "web")]),
            image: String::new(),
            runtime: "io.containerd.runc.v2".into(),
            spec_type_url: SPEC_URL.into(),
            spec: serde_json::to_vec(&spec).unwrap(),
            sandbox: String::new(),
        };
        let m = from_containerd(c, "k8s.io");
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(
            m.image.as_deref(),
            Some("docker.io/library/nginx:1.25"),
            "image falls back to annotation"
        );
        assert_eq!(m.runtime_namespace.as_deref(), Some("k8s.io"));
        assert_eq!(m.pod_name.as_deref(), Some("web-7d9f-abcde"));
        assert_eq!(m.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(m.pod_uid.as_deref(), Some("0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert_eq!(m.labels, map(&[("io.cri-containerd.kind", "container"), ("app", "web")]));
        assert_eq!(m.source, "containerd");
    }

    #[test]
    fn cri_labels_without_annotations() {
        let c = proto::Container {
            id: "b".repeat(64),
            labels: map(&[
                ("io.kubernetes.pod.name", "p"),
                ("io.kubernetes.pod.namespace", "ns"),
                ("io.kubernetes.pod.uid", "u"),
                ("io.kubernetes.container.name", "c"),
            ]),
            image: "img".into(),
            spec_type_url: SPEC_URL.into(),
            spec: b"{\"ociVersion\":\"1.0.2\"}".to_vec(),
            ..Default::default()
        };
        let m = from_containerd(c, "k8s.io");
        assert_eq!(
            (m.name.as_deref(), m.pod_name.as_deref(), m.pod_namespace.as_deref(), m.pod_uid.as_deref()),
            (Some("c"), Some("p"), Some("ns"), Some("u"))
        );
        assert_eq!(m.image.as_deref(), Some("img"));
    }

    #[test]
    fn plain_ctr_container_is_named_by_its_id() {
        let c = proto::Container {
            id: "myctr".into(),
            labels: map(&[("tier", "db")]),
            image: "docker.io/library/redis:7".into(),
            spec_type_url: SPEC_URL.into(),
            spec: b"{\"annotations\":null}".to_vec(),
            ..Default::default()
        };
        let m = from_containerd(c, "default");
        assert_eq!(m.name.as_deref(), Some("myctr"));
        assert_eq!((m.pod_name, m.pod_namespace, m.pod_uid), (None, None, None));
        assert_eq!(m.labels, map(&[("tier", "db")]));
    }

    #[test]
    fn nerdctl_name_and_empty_values() {
        let c = proto::Container {
            id: "x".into(),
            labels: map(&[("nerdctl/name", "db1"), ("io.kubernetes.pod.name", "")]),
            ..Default::default()
        };
        let m = from_containerd(c, "");
        assert_eq!(m.name.as_deref(), Some("db1"));
        assert_eq!(m.pod_name, None, "empty label values do not count");
        assert_eq!(m.image, None);
        assert_eq!(m.runtime_namespace, None);
    }

    #[test]
    fn bad_or_foreign_spec_is_ignored() {
        assert!(spec_annotations(SPEC_URL, b"not json").is_empty());
        assert!(spec_annotations(SPEC_URL, b"[1,2]").is_empty());
        assert!(spec_annotations(SPEC_URL, b"{\"annotations\":{\"a\":1}}").is_empty());
        assert!(spec_annotations("types.example/Other", b"{\"annotations\":{\"a\":\"b\"}}").is_empty());
        assert_eq!(spec_annotations("", b"{\"annotations\":{\"a\":\"b\"}}"), map(&[("a", "b")]));
    }

    /// Shaped like Docker Engine API v1.43 `GET /containers/{id}/json` for a dockershim-style
    /// Kubernetes container (trimmed of fields not read here but keeping their neighbours).
    pub(crate) const DOCKER_INSPECT_K8S: &str = r#"{
  "Id": "6b1e3a1b4d4c2f0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f",
  "Created": "2024-05-02T09:12:44.123456789Z",
  "Path": "/docker-entrypoint.sh",
  "Args": ["nginx", "-g", "daemon off;"],
  "State": {"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0},
  "Image": "sha256:4f67c83422ec747235357c04556616234e66fc3fa39cb4f40b2d4441ddd8f100",
  "Name": "/k8s_web_web-7d9f-abcde_shop_0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b_0",
  "RestartCount": 0,
  "Driver": "overlay2",
  "HostConfig": {"CgroupParent": "/kubepods/besteffort/pod0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"},
  "Config": {
    "Hostname": "web-7d9f-abcde",
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Image": "nginx@sha256:32da30332506740a2f7c34d5dc70467b7f14ec67d912703568daff790ab3f755",
    "Labels": {
      "annotation.io.kubernetes.container.hash": "7f3c1a2b",
      "io.kubernetes.container.logpath": "/var/log/pods/shop_web-7d9f-abcde_0b4e0f6a/web/0.log",
      "io.kubernetes.container.name": "web",
      "io.kubernetes.docker.type": "container",
      "io.kubernetes.pod.name": "web-7d9f-abcde",
      "io.kubernetes.pod.namespace": "shop",
      "io.kubernetes.pod.uid": "0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
      "io.kubernetes.sandbox.id": "9d8c7b6a"
    }
  },
  "NetworkSettings": {"Networks": {}}
}"#;

    #[test]
    fn docker_dockershim_pod() {
        let m = from_docker_json(DOCKER_INSPECT_K8S.as_bytes()).unwrap();
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(
            m.image.as_deref(),
            Some("nginx@sha256:32da30332506740a2f7c34d5dc70467b7f14ec67d912703568daff790ab3f755")
        );
        assert_eq!(m.pod_name.as_deref(), Some("web-7d9f-abcde"));
        assert_eq!(m.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(m.pod_uid.as_deref(), Some("0b4e0f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert_eq!(m.runtime_namespace, None);
        assert_eq!(m.labels.len(), 8);
        assert_eq!(m.source, "docker");
    }

    #[test]
    fn docker_plain_container() {
        let body = br#"{"Id":"abc","Name":"/happy_turing","Image":"sha256:1","Config":{"Image":"alpine:3.19","Labels":null}}"#;
        let m = from_docker_json(body).unwrap();
        assert_eq!(m.name.as_deref(), Some("happy_turing"));
        assert_eq!(m.image.as_deref(), Some("alpine:3.19"));
        assert!(m.labels.is_empty());
        assert_eq!((m.pod_name, m.pod_namespace, m.pod_uid), (None, None, None));

        let m = from_docker_json(br#"{"Id":"abc","Image":"sha256:1"}"#).unwrap();
        assert_eq!(m.name.as_deref(), Some("abc"));
        assert_eq!(m.image.as_deref(), Some("sha256:1"));
    }

    #[test]
    fn docker_bad_json_is_an_error() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            b"{}",
            b"{\"Id\":\"\"}",
            b"{\"Id\":\"a\",\"Config\":{\"Labels\":{\"a\":1}}}",
            b"\xff",
        ] {
            let e = from_docker_json(body).unwrap_err();
            assert!(e.contains("invalid container inspect JSON"), "{e}");
        }
    }
}
