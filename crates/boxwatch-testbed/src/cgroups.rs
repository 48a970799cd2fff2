//! Cgroup hierarchy discovery and bookkeeping of the directories the tests
//! make runc create (so teardown removes them, and only them).

use std::path::{Path, PathBuf};

/// Mount points of every cgroup hierarchy (v1 `cgroup` and `cgroup2`), from
/// /proc/self/mountinfo, deduplicated, in mountinfo order. On this machine:
/// `/sys/fs/cgroup/{cpu,cpuacct,...,systemd,unified}`.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let mut out: Vec<PathBuf> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = post.split(' ').next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(mnt) = pre.split(' ').nth(4) else {
            continue;
        };
        let mnt = PathBuf::from(unescape_mountinfo(mnt));
        if !out.contains(&mnt) {
            out.push(mnt);
        }
    }
    out
}

/// Mount point of the cgroup2 (unified) hierarchy: `/sys/fs/cgroup/unified`
/// in hybrid mode, `/sys/fs/cgroup` on a pure cgroup2 host. Panics if none.
pub fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let mut found: Vec<PathBuf> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split(' ').next() != Some("cgroup2") {
            continue;
        }
        if let Some(mnt) = pre.split(' ').nth(4) {
            found.push(PathBuf::from(unescape_mountinfo(mnt)));
        }
    }
    // Prefer the canonical locations if the hierarchy is mounted more than once.
    for canon in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if let Some(p) = found.iter().find(|p| p.as_path() == Path::new(canon)) {
            return p.clone();
        }
    }
    found.into_iter().next().unwrap_or_else(|| {
        panic!(
            "no cgroup2 hierarchy is mounted (looked in /proc/self/mountinfo); boxwatch needs \
             cgroup2 (hybrid /sys/fs/cgroup/unified or pure /sys/fs/cgroup) for cgroup ids"
        )
    })
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks an absolute cgroupfs-style path (`/a/b/c`): no `.`/`..`, no empty
/// components. Panics otherwise.
pub(crate) fn validate_cgroup_path(p: &str) {
    let ok = p.starts_with('/')
        && p.len() > 1
        && p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    assert!(
        ok,
        "cgroup path must be absolute cgroupfs-style like /system.slice/docker-<id>.scope, got {p:?}"
    );
}

/// `rel` (an absolute cgroup path) under hierarchy mount `mnt`.
pub(crate) fn join(mnt: &Path, rel: &str) -> PathBuf {
    mnt.join(rel.trim_start_matches('/'))
}

/// The directories (in every hierarchy, shallowest first) that do not exist
/// yet along `cgroup_path`, i.e. that runc will create for it.
pub(crate) fn missing_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for mnt in cgroup_hierarchies() {
        let mut cur = mnt.clone();
        for comp in cgroup_path.trim_start_matches('/').split('/') {
            cur.push(comp);
            if !cur.exists() {
                out.push(cur.clone());
            }
        }
    }
    out
}

/// rmdir (never recursive: only empty cgroups go away) every path, deepest
/// first. Errors are ignored.
pub(crate) fn rmdir_all(paths: &[PathBuf]) {
    let mut v: Vec<&PathBuf> = paths.iter().collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    for p in v {
        let _ = std::fs::remove_dir(p);
    }
}

/// rmdir the leaf `cgroup_path` in every hierarchy (runc normally removes it
/// itself on delete). Errors are ignored.
pub(crate) fn rmdir_leaf(cgroup_path: &str) {
    for mnt in cgroup_hierarchies() {
        let _ = std::fs::remove_dir(join(&mnt, cgroup_path));
    }
}
