//! The host's cgroup v2 tree: where it is mounted and which directory has
//! which id (the id `bpf_get_current_cgroup_id()` reports is the inode).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The cgroup2 mount point (pure v2: /sys/fs/cgroup; hybrid: /sys/fs/cgroup/unified).
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").context("read /proc/self/mounts")?;
    mounts
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
            (fs == "cgroup2").then(|| PathBuf::from(dir))
        })
        .context("no cgroup2 filesystem is mounted: boxwatch identifies containers by their cgroup v2 id")
}

/// Every cgroup below `root` as (id, path relative to root starting with '/').
/// Directories that vanish during the walk are skipped.
pub fn scan(root: &Path) -> Result<Vec<(u64, String)>> {
    let meta = std::fs::metadata(root).with_context(|| format!("stat {}", root.display()))?;
    let mut out = vec![(meta.ino(), "/".to_string())];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let path = entry.path();
            let Ok(m) = entry.metadata() else { continue };
            if let Ok(rel) = path.strip_prefix(root) {
                out.push((m.ino(), format!("/{}", rel.display())));
            }
            stack.push(path);
        }
    }
    Ok(out)
}
