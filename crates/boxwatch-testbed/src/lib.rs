//! Real containers for boxwatch's privileged tests and its benchmarks: a
//! private containerd + runc, driven by `ctr`.
//!
//! See `shared/design/containers.md` for why this setup (cgroupfs driver with
//! docker/kubepods-style names, the "hostusr" image with the host's `/usr`
//! bind-mounted read-only, never feeding `ctr` stdin, SIGKILL on timeouts).
//!
//! ```text
//! let ctrd = Containerd::start();                      // ~0.4 s: containerd + image import
//! let id = random_container_id();
//! let out = ctrd.run(&id, &docker_cgroup(&id), &["cat", "/proc/self/cgroup"], Duration::from_secs(20));
//! out.assert_success();
//! let c = ctrd.run_detached(&id2, &docker_cgroup(&id2), &["sleep", "300"]);
//! let (pid, cgid) = (c.pid(), c.cgroup_id());
//! c.exec("e1", &["id", "-u"], Duration::from_secs(10)).assert_success();
//! // drop(c) kills and removes the container, drop(ctrd) stops containerd.
//! ```
//!
//! Everything panics loudly (never skips) when the machine lacks something:
//! run `scripts/install-deps.sh --test` as root first.
//!
//! Dependency: `libc` only. Test-harness style on purpose: it panics with
//! the failing command, its output and the containerd log tail.

pub mod cgroups;
mod cleanup;
mod containerd;
mod process;

pub use cgroups::{cgroup_hierarchies, cgroup2_mount};
pub use containerd::{Container, Containerd, DEFAULT_NAMESPACE, IMAGE_NAME, STATE_BASE};
pub use process::RunOutput;

use std::io::Read;

/// `n` random bytes from the kernel, hex-encoded (lowercase).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("read /dev/urandom");
    let mut s = String::with_capacity(2 * n);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A docker/containerd-style container id: 64 lowercase hex characters.
pub fn random_container_id() -> String {
    random_hex(32)
}

/// A Kubernetes-style pod UID (random UUID v4, lowercase, with dashes).
pub fn random_pod_uid() -> String {
    let h = random_hex(16).into_bytes();
    let mut h: Vec<char> = h.into_iter().map(char::from).collect();
    h[12] = '4';
    h[16] = ['8', '9', 'a', 'b'][(h[16].to_digit(16).unwrap() & 3) as usize];
    let s: String = h.into_iter().collect();
    format!("{}-{}-{}-{}-{}", &s[0..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

/// Docker (systemd driver) cgroup name: `/system.slice/docker-<id>.scope`.
pub fn docker_cgroup(id: &str) -> String {
    format!("/system.slice/docker-{id}.scope")
}

/// Kubernetes, systemd cgroup driver, BestEffort QoS, containerd CRI:
/// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid with '-' -> '_'>.slice/cri-containerd-<id>.scope`.
pub fn kubepods_systemd_cgroup(pod_uid: &str, id: &str) -> String {
    let uid = pod_uid.replace('-', "_");
    format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/cri-containerd-{id}.scope"
    )
}

/// Kubernetes, cgroupfs driver, BestEffort QoS: `/kubepods/besteffort/pod<uid>/<id>`.
pub fn kubepods_cgroupfs_cgroup(pod_uid: &str, id: &str) -> String {
    format!("/kubepods/besteffort/pod{pod_uid}/{id}")
}
