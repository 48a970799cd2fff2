//! Container identity from cgroup paths.
//!
//! [`parse_cgroup_path`] maps a cgroup path (the `<path>` of a `/proc/<pid>/cgroup` line, or a
//! path relative to a cgroup mount, always starting with `/`) to the container that owns it.
//! [`cgroup_path_from_proc`] picks the line to use from a whole `/proc/<pid>/cgroup` file, and
//! [`container_from_proc`] does both, falling back to the v1 lines on hybrid hosts.
//!
//! Layouts recognised (`<id>` is 64 hex digits, either case, reported in lowercase; `<uid>` is a
//! pod UID with `-` or, in systemd slices, `_`, or a 32-hex static-pod hash):
//!
//! | layout | example | runtime |
//! |---|---|---|
//! | docker, systemd driver (also cri-dockerd) | `/system.slice/docker-<id>.scope` | docker |
//! | docker, cgroupfs driver | `/docker/<id>` | docker |
//! | containerd CRI, systemd driver | `/kubepods.slice/…/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope` | cri-containerd |
//! | systemd-style path on cgroupfs | `/kubepods-<qos>-pod<uid>.slice:cri-containerd:<id>` (also `:crio:`, `:docker:`) | cri-containerd |
//! | kubelet cgroupfs driver | `/kubepods[/besteffort\|/burstable]/pod<uid>/<id>` | kubernetes (runtime unknown) |
//! | CRI-O | `…/crio-<id>.scope`, `/kubepods/…/pod<uid>/crio-<id>` | crio |
//! | podman | `/machine.slice/libpod-<id>.scope[/container]`, rootless `…/user@1000.service/user.slice/libpod-<id>.scope/container`, cgroupfs `/libpod_parent/libpod-<id>` | podman |
//! | containerd `ctr` | `/<namespace>/<id>`, or `/<ns>/<name>` for `ns` in default, moby, k8s.io, buildkit | containerd |
//! | LXC | `/lxc/<name>`, `/lxc.payload/<name>`, `/lxc.payload.<name>` | lxc |
//! | GitHub Actions | `/actions_job/<id>` | github-actions |
//!
//! Monitor processes are not containers: `crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`,
//! `/libpod_parent/conmon` and `lxc.monitor.<name>` all return `None`, as do host units, user
//! sessions, and pod slices without a container leaf.
//! A cgroup below a container's cgroup (`…/docker-<id>.scope/init`, `…/libpod-<id>.scope/container`)
//! belongs to that container, and [`ContainerRef::cgroup_root`] is the container's own cgroup.
//! When a container path lies inside another one (docker-in-docker, kind nodes), the outermost
//! container is reported with [`ContainerRef::nested`] set.
//!
//! Not recognised: runc/crun run without a `cgroupsPath` (`/<name>`), which carries no runtime
//! marker. The parser is a hand-written single pass over the path components: no regex, no
//! allocation until a match is built, and no panic on any input.

use std::fmt;

/// The container runtime (or orchestrator) a cgroup layout belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// Docker (systemd `docker-<id>.scope` or cgroupfs `/docker/<id>`), also cri-dockerd pods.
    Docker,
    /// Plain containerd driven by `ctr`/nerdctl: `/<namespace>/<id>`.
    Containerd,
    /// containerd's CRI plugin (Kubernetes): `cri-containerd-<id>.scope` or `:cri-containerd:<id>`.
    CriContainerd,
    /// CRI-O: `crio-<id>[.scope]`.
    Crio,
    /// Podman: `libpod-<id>[.scope]`.
    Podman,
    /// LXC/LXD: `/lxc/<name>`, `/lxc.payload/<name>`, `/lxc.payload.<name>`.
    Lxc,
    /// Docker on a GitHub Actions runner: `/actions_job/<id>`.
    GithubActions,
    /// The kubelet cgroupfs layout `…/pod<uid>/<id>`: a Kubernetes container, runtime unknown.
    Kubernetes,
}

impl Runtime {
    /// The stable lowercase name, identical to the serde form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriContainerd => "cri-containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::GithubActions => "github-actions",
            Runtime::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container identified from a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerRef {
    /// Full id: 64 lowercase hex digits for docker, CRI, CRI-O, podman and GitHub Actions; for
    /// `ctr` names and LXC the name exactly as it appears in the path.
    pub id: String,
    /// Which layout matched.
    pub runtime: Runtime,
    /// Kubernetes pod UID, lowercase, with `-` (systemd slices escape `-` as `_`).
    pub pod_uid: Option<String>,
    /// containerd namespace for the `/<ns>/<id>` layout.
    pub namespace: Option<String>,
    /// Another container cgroup was found below this one; this is the outermost.
    pub nested: bool,
    /// The container's own cgroup, a prefix of the parsed path (e.g.
    /// `/system.slice/docker-<id>.scope`); every cgroup below it belongs to the container.
    /// It is relative to the hierarchy the path came from.
    pub cgroup_root: String,
}

impl ContainerRef {
    /// The first 12 characters of the id (the whole id if shorter), as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        match self.id.char_indices().nth(12) {
            Some((end, _)) => &self.id[..end],
            None => &self.id,
        }
    }

    /// Whether `path` is the container's own cgroup or a cgroup below it.
    pub fn owns_cgroup(&self, path: &str) -> bool {
        match path.strip_prefix(self.cgroup_root.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Parse a cgroup v2 path (as in `/proc/<pid>/cgroup` `0::<path>`, or relative to the cgroup2
/// mount, always starting with `/`) into a container. A v1 controller path works the same way.
///
/// Returns `None` for host cgroups, monitor processes (conmon), malformed paths (no leading `/`,
/// empty components, trailing `/`) and unknown layouts. Never panics.
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || rest.ends_with('/') || rest.contains("//") {
        return None;
    }
    let mut first = "";
    let mut parent: Option<&str> = None;
    // Nearest pod slice/directory above the current component (raw, not normalised yet).
    let mut pod: Option<&str> = None;
    let mut found: Option<(Hit<'_>, usize)> = None;
    // Byte offset in `path` of the current component.
    let mut start = 1;
    for (index, comp) in rest.split('/').enumerate() {
        let end = start + comp.len();
        if index == 0 {
            first = comp;
        }
        // The `/<namespace>/<id>` layout is anchored at the root: only the second component,
        // and only when the first one is not a container itself.
        let ctr_namespace = (index == 1 && found.is_none()).then_some(first);
        if let Some(hit) = match_component(comp, parent, ctr_namespace) {
            match found {
                Some((outer, root_end)) => return Some(outer.build(path, root_end, pod, true)),
                None => found = Some((hit, end)),
            }
        } else if found.is_none()
            && let Some(uid) = pod_uid_raw(comp)
        {
            pod = Some(uid);
        }
        parent = Some(comp);
        start = end + 1;
    }
    found.map(|(hit, root_end)| hit.build(path, root_end, pod, false))
}

/// From the full text of `/proc/<pid>/cgroup`, pick the cgroup2 line's (`0::<path>`) path; if
/// there is none (pure cgroup v1), the path of the memory, else pids, else cpuset controller.
pub fn cgroup_path_from_proc(content: &str) -> Option<&str> {
    let (v2, v1) = proc_paths(content);
    v2.or_else(|| v1.into_iter().flatten().next())
}

/// The container of a process from the full text of `/proc/<pid>/cgroup`.
///
/// Tries the cgroup2 path first, then the memory, pids and cpuset v1 paths. The fallback
/// matters on hybrid hosts where the runtime placed the process in v1 hierarchies only and the
/// cgroup2 line names a host unit (e.g. `0::/system.slice/containerd.service`).
pub fn container_from_proc(content: &str) -> Option<ContainerRef> {
    let (v2, v1) = proc_paths(content);
    std::iter::once(v2).chain(v1).flatten().find_map(parse_cgroup_path)
}

/// v1 controllers in order of preference when there is no cgroup2 line (as Tetragon does).
const V1_PREFERENCE: [&str; 3] = ["memory", "pids", "cpuset"];

/// The first cgroup2 path, and the first path of each controller in [`V1_PREFERENCE`].
fn proc_paths(content: &str) -> (Option<&str>, [Option<&str>; 3]) {
    let mut v2 = None;
    let mut v1 = [None; 3];
    for (hierarchy, controllers, path) in content.lines().filter_map(split_proc_line) {
        if hierarchy == "0" && controllers.is_empty() {
            v2 = v2.or(Some(path));
            continue;
        }
        for (slot, name) in v1.iter_mut().zip(V1_PREFERENCE) {
            if slot.is_none() && controllers.split(',').any(|c| c == name) {
                *slot = Some(path);
            }
        }
    }
    (v2, v1)
}

/// Split `hierarchy-id:controller-list:path`; the path may itself contain `:`.
fn split_proc_line(line: &str) -> Option<(&str, &str, &str)> {
    let (hierarchy, rest) = line.split_once(':')?;
    let (controllers, path) = rest.split_once(':')?;
    Some((hierarchy, controllers, path))
}

/// A matched container component, borrowing from the path.
#[derive(Debug, Clone, Copy)]
struct Hit<'a> {
    runtime: Runtime,
    id: &'a str,
    /// The id is a 64-hex id, to be lowercased.
    hex: bool,
    namespace: Option<&'a str>,
    /// Pod UID carried by the component itself (the `:cri-containerd:` layout).
    pod: Option<&'a str>,
}

impl<'a> Hit<'a> {
    fn hex(runtime: Runtime, id: &'a str) -> Self {
        Hit { runtime, id, hex: true, namespace: None, pod: None }
    }

    fn name(runtime: Runtime, id: &'a str) -> Self {
        Hit { hex: false, ..Hit::hex(runtime, id) }
    }

    fn build(self, path: &str, root_end: usize, pod: Option<&str>, nested: bool) -> ContainerRef {
        let id = if self.hex { self.id.to_ascii_lowercase() } else { self.id.to_owned() };
        ContainerRef {
            id,
            runtime: self.runtime,
            pod_uid: self.pod.or(pod).map(normalise_uid),
            namespace: self.namespace.map(str::to_owned),
            nested,
            cgroup_root: path.get(..root_end).unwrap_or(path).to_owned(),
        }
    }
}

/// `<prefix><id>.scope` leaves, and whether the bare `<prefix><id>` (cgroupfs) form exists too.
/// `crio-conmon-<id>` and `libpod-conmon-<id>` fail the hex check after the prefix.
const SCOPED: [(&str, Runtime, bool); 4] = [
    ("docker-", Runtime::Docker, false),
    ("cri-containerd-", Runtime::CriContainerd, false),
    ("crio-", Runtime::Crio, true),
    ("libpod-", Runtime::Podman, true),
];

/// containerd namespaces under which `ctr` container names need not be 64-hex.
const KNOWN_NAMESPACES: [&str; 4] = ["default", "moby", "k8s.io", "buildkit"];

/// Does this single component (given its parent) name a container cgroup?
/// `ctr_namespace` is the first path component when `comp` is the second one.
fn match_component<'a>(
    comp: &'a str,
    parent: Option<&'a str>,
    ctr_namespace: Option<&'a str>,
) -> Option<Hit<'a>> {
    for (prefix, runtime, bare_ok) in SCOPED {
        if let Some(rest) = comp.strip_prefix(prefix) {
            let id = match rest.strip_suffix(".scope") {
                Some(id) => id,
                None if bare_ok => rest,
                None => continue,
            };
            if is_hex64(id) {
                return Some(Hit::hex(runtime, id));
            }
        }
    }

    // `<parent-slice>:<prefix>:<id>`: a systemd-style cgroupsPath used with the cgroupfs driver.
    if let Some((head, id)) = comp.rsplit_once(':')
        && is_hex64(id)
    {
        let (slice, kind) = head.rsplit_once(':')?;
        let runtime = match kind {
            "cri-containerd" => Runtime::CriContainerd,
            "crio" => Runtime::Crio,
            "docker" => Runtime::Docker,
            _ => return None,
        };
        return Some(Hit { pod: pod_uid_raw(slice), ..Hit::hex(runtime, id) });
    }

    if is_hex64(comp) {
        match parent {
            Some("docker") => return Some(Hit::hex(Runtime::Docker, comp)),
            Some("actions_job") => return Some(Hit::hex(Runtime::GithubActions, comp)),
            Some(p) if pod_uid_raw(p).is_some() => {
                return Some(Hit::hex(Runtime::Kubernetes, comp));
            }
            _ => {}
        }
    }

    if matches!(parent, Some("lxc" | "lxc.payload")) && is_name(comp) {
        return Some(Hit::name(Runtime::Lxc, comp));
    }
    if let Some(name) = comp.strip_prefix("lxc.payload.")
        && is_name(name)
    {
        return Some(Hit::name(Runtime::Lxc, name));
    }

    if let Some(ns) = ctr_namespace
        && is_namespace(ns)
        && (is_hex64(comp) || (KNOWN_NAMESPACES.contains(&ns) && is_name(comp)))
    {
        return Some(Hit {
            namespace: Some(ns),
            hex: is_hex64(comp),
            ..Hit::name(Runtime::Containerd, comp)
        });
    }
    None
}

/// Exactly 64 ASCII hex digits, either case.
fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Ends like a systemd unit, i.e. a host cgroup rather than a container name.
fn is_unit(s: &str) -> bool {
    s.ends_with(".service") || s.ends_with(".slice") || s.ends_with(".scope")
}

/// A container name: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 255 bytes, not a systemd unit.
fn is_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !is_unit(s)
}

/// A containerd namespace: `[A-Za-z0-9]+([._-][A-Za-z0-9]+)*`, not a systemd unit and not
/// `kubepods` (the kubelet cgroupfs root).
fn is_namespace(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut prev_sep = true; // forbids a leading separator
    for &b in bytes {
        let sep = matches!(b, b'.' | b'_' | b'-');
        if !(sep || b.is_ascii_alphanumeric()) || (sep && prev_sep) {
            return false;
        }
        prev_sep = sep;
    }
    !bytes.is_empty() && bytes.len() <= 76 && !prev_sep && !is_unit(s) && s != "kubepods"
}

/// The raw pod UID of a pod cgroup: `pod<uid>` (cgroupfs) or `…-pod<uid>.slice` (systemd),
/// where `<uid>` is a UUID with `-` or `_` separators, or a 32-hex static-pod hash.
fn pod_uid_raw(comp: &str) -> Option<&str> {
    let s = comp.strip_suffix(".slice").unwrap_or(comp);
    [36, 32].into_iter().find_map(|len| {
        let split = s.len().checked_sub(len)?;
        let uid = s.get(split..)?;
        let before = s.get(..split)?.strip_suffix("pod")?;
        let anchored = before.is_empty() || before.ends_with('-');
        (anchored && is_uid(uid)).then_some(uid)
    })
}

fn is_uid(uid: &str) -> bool {
    let bytes = uid.as_bytes();
    match bytes.len() {
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        36 => bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => matches!(b, b'-' | b'_'),
            _ => b.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// Lowercase, with systemd's `_` escaping turned back into `-`.
fn normalise_uid(uid: &str) -> String {
    uid.chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4be7496d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a4f";
    const UID: &str = "bba0bf52_cd32_4976_9fd7_194c518461bb";
    const UID_DASHED: &str = "bba0bf52-cd32-4976-9fd7-194c518461bb";

    fn parse(path: &str) -> ContainerRef {
        parse_cgroup_path(path).unwrap_or_else(|| panic!("no container in {path:?}"))
    }

    #[test]
    fn docker_systemd_and_sub_cgroup() {
        let root = format!("/system.slice/docker-{ID}.scope");
        let c = parse(&format!("{root}/init"));
        assert_eq!((c.runtime, c.id.as_str(), c.nested), (Runtime::Docker, ID, false));
        assert_eq!(c.cgroup_root, root);
        assert_eq!(c.short_id(), &ID[..12]);
        assert!(c.owns_cgroup(&root) && c.owns_cgroup(&format!("{root}/a/b")));
        assert!(!c.owns_cgroup(&format!("{root}.bak")));
    }

    #[test]
    fn uppercase_hex_is_lowercased() {
        let c = parse(&format!("/docker/{}", ID.to_ascii_uppercase()));
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Docker, ID));
    }

    #[test]
    fn cri_containerd_pod_uid_normalised() {
        let c = parse(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID}.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(c.runtime, Runtime::CriContainerd);
        assert_eq!(c.pod_uid.as_deref(), Some(UID_DASHED));
        let colon = parse(&format!("/kubepods-besteffort-pod{UID}.slice:cri-containerd:{ID}"));
        assert_eq!(colon.runtime, Runtime::CriContainerd);
        assert_eq!(colon.pod_uid.as_deref(), Some(UID_DASHED));
        assert_eq!(colon.cgroup_root, format!("/kubepods-besteffort-pod{UID}.slice:cri-containerd:{ID}"));
    }

    #[test]
    fn kubelet_cgroupfs_qos_classes() {
        for qos in ["/besteffort", "/burstable", ""] {
            let c = parse(&format!("/kubepods{qos}/pod{UID_DASHED}/{ID}"));
            assert_eq!(c.runtime, Runtime::Kubernetes, "{qos}");
            assert_eq!(c.pod_uid.as_deref(), Some(UID_DASHED));
        }
        let crio = parse(&format!("/kubepods/burstable/pod{UID_DASHED}/crio-{ID}"));
        assert_eq!(crio.runtime, Runtime::Crio);
    }

    #[test]
    fn podman_layouts() {
        for path in [
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"),
            format!("/libpod_parent/libpod-{ID}"),
        ] {
            let c = parse(&path);
            assert_eq!((c.runtime, c.id.as_str(), c.nested), (Runtime::Podman, ID, false));
            assert!(!c.cgroup_root.ends_with("/container"), "{path}");
        }
    }

    #[test]
    fn ctr_namespaces() {
        let c = parse("/default/c1");
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Containerd, "c1"));
        assert_eq!(c.namespace.as_deref(), Some("default"));
        let c = parse(&format!("/tenant-a/{ID}"));
        assert_eq!(c.namespace.as_deref(), Some("tenant-a"));
        assert_eq!(parse_cgroup_path("/tenant-a/c1"), None);
        assert_eq!(parse_cgroup_path("/default/foo.service"), None);
        assert_eq!(parse_cgroup_path("/default/.hidden"), None);
        assert_eq!(parse_cgroup_path(&format!("/kubepods/{ID}")), None);
        // Only anchored at the root.
        assert_eq!(parse_cgroup_path("/x/default/c1"), None);
    }

    #[test]
    fn lxc_layouts() {
        for path in ["/lxc/web01", "/lxc.payload/web01", "/lxc.payload.web01", "/lxc.payload.web01/init"] {
            let c = parse(path);
            assert_eq!((c.runtime, c.id.as_str()), (Runtime::Lxc, "web01"), "{path}");
        }
        assert_eq!(parse_cgroup_path("/lxc.monitor.web01"), None);
        assert_eq!(parse_cgroup_path("/lxc.payload."), None);
    }

    #[test]
    fn nested_reports_outermost() {
        let inner = ID.replace('4', "5");
        let c = parse(&format!("/docker/{ID}/docker/{inner}"));
        assert_eq!((c.id.as_str(), c.nested), (ID, true));
        assert_eq!(c.cgroup_root, format!("/docker/{ID}"));
        let kind = parse(&format!(
            "/system.slice/docker-{ID}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort-pod{UID}.slice/cri-containerd-{inner}.scope"
        ));
        assert_eq!((kind.runtime, kind.nested, kind.pod_uid), (Runtime::Docker, true, None));
    }

    #[test]
    fn pod_uid_forms() {
        assert_eq!(pod_uid_raw(&format!("pod{UID_DASHED}")), Some(UID_DASHED));
        assert_eq!(pod_uid_raw(&format!("kubepods-pod{UID}.slice")), Some(UID));
        assert_eq!(pod_uid_raw(&format!("xpod{UID_DASHED}")), None);
        assert_eq!(
            pod_uid_raw("pod3e1c8c2bd9a8e4e2fa1b0cb1e9c4a17b"),
            Some("3e1c8c2bd9a8e4e2fa1b0cb1e9c4a17b")
        );
        assert_eq!(pod_uid_raw("pod"), None);
        assert_eq!(normalise_uid("AB_cd"), "ab-cd");
    }

    #[test]
    fn proc_line_selection() {
        let hybrid = "12:pids:/p\n4:memory:/m\n0::/v2\n";
        assert_eq!(cgroup_path_from_proc(hybrid), Some("/v2"));
        assert_eq!(cgroup_path_from_proc("3:cpuset:/c\n2:pids:/p\n4:memory:/m\n"), Some("/m"));
        assert_eq!(cgroup_path_from_proc("3:cpuset:/c\n2:pids:/p\n"), Some("/p"));
        assert_eq!(cgroup_path_from_proc("1:cpu,cpuset:/c\n9:name=systemd:/s"), Some("/c"));
        assert_eq!(cgroup_path_from_proc("0::/a:b:c"), Some("/a:b:c"));
        assert_eq!(cgroup_path_from_proc("garbage\n\n9:name=systemd:/s"), None);
        assert_eq!(cgroup_path_from_proc(""), None);
    }

    #[test]
    fn proc_falls_back_to_v1_when_v2_is_a_host_unit() {
        let text = format!("4:memory:/docker/{ID}\n0::/system.slice/containerd.service\n");
        assert_eq!(cgroup_path_from_proc(&text), Some("/system.slice/containerd.service"));
        let c = container_from_proc(&text).expect("container");
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Docker, ID));
    }
}
