//! Cleanup of private containerd instances: state directories of dead or
//! stopping instances, their runc containers, shims, mounts, and the cgroup
//! directories runc created (shared parents go only with the last live
//! instance, under a file lock), plus the small process helpers they use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cgroups;
use crate::containerd::{DEAD_SUFFIX, STATE_BASE};
use crate::process::quick;

/// Start time (clock ticks since boot) of a live process, to tell it apart
/// from a later process that reused its pid.
pub(super) fn proc_starttime(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    // Fields after comm start at field 3 (state); starttime is field 22.
    after_comm.split(' ').nth(22 - 3)?.parse().ok()
}

pub(super) fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!(
        "{}-{:x}-{}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed),
        &crate::random_hex(2)
    )
}

pub(super) fn tail(path: &Path, lines: usize) -> String {
    let s =
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// SIGKILL every process (but us) whose command line mentions `dir`: the
/// daemon (`--config <dir>/config.toml`) and its shims (`-address <dir>/containerd.sock`).
pub(super) fn kill_processes_mentioning(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && cmdline.windows(needle.len()).any(|w| w == needle)
        {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// Lazily unmount everything mounted under `dir` (e.g. a container rootfs
/// left by a killed shim), deepest first.
pub(super) fn umount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut mnts: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    mnts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mnts {
        if let Ok(c) = std::ffi::CString::new(m) {
            // SAFETY: c is a valid NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// Removes everything a (dead or stopping) private containerd left in `dir`:
/// runc containers (killed and deleted by runc itself), shims and daemon,
/// cgroup dirs recorded in `cgroups-created`, mounts, and the directory.
pub(super) fn cleanup_state_dir(dir: &Path, runc: Option<&Path>, extra_cgroups: &[PathBuf]) {
    let runc_root = dir.join("runc");
    if let (Some(runc), Ok(nss)) = (runc, std::fs::read_dir(&runc_root)) {
        for ns in nss.flatten() {
            let Ok(ids) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for id in ids.flatten() {
                quick(
                    Command::new(runc)
                        .arg("--root")
                        .arg(ns.path())
                        .args(["delete", "--force"])
                        .arg(id.file_name()),
                );
            }
        }
    }
    kill_processes_mentioning(dir);
    let mut cg: Vec<PathBuf> = extra_cgroups.to_vec();
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroups-created")) {
        cg.extend(s.lines().filter(|l| !l.is_empty()).map(PathBuf::from));
    }
    // Parent cgroups (system.slice, kubepods.slice/…) are shared with other live
    // instances, which may be about to create a container below them: removing one
    // now makes their runc fail ("mkdir …: no such file or directory"). Only the
    // last instance removes them (global_cgroup_cleanup, under the registry lock).
    {
        let _lock = RegistryLock::take();
        if other_live_instances(Some(dir)) == 0 {
            cgroups::rmdir_all(&cg);
        }
    }
    umount_under(dir);
    // Rename first (atomic): a half-deleted dir without its owner file must
    // not look like an instance being created.
    let mut dead = dir.as_os_str().to_owned();
    dead.push(DEAD_SUFFIX);
    let dead = PathBuf::from(dead);
    let doomed = if dir.as_os_str().to_string_lossy().ends_with(DEAD_SUFFIX) {
        dir
    } else if std::fs::rename(dir, &dead).is_ok() {
        &dead
    } else {
        dir
    };
    let _ = std::fs::remove_dir_all(doomed);
}

/// Whether the test process owning state dir `dir` is still alive (a dir
/// without an owner file counts as alive for a minute: it is being created).
pub(super) fn owner_alive(dir: &Path) -> bool {
    let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
    let v: Vec<&str> = owner.split_whitespace().collect();
    match (v.first().map(|s| s.parse::<u32>()), v.get(1).map(|s| s.parse::<u64>())) {
        (Some(Ok(pid)), Some(Ok(start))) => proc_starttime(pid) == Some(start),
        // No owner file yet, or one being written (seen empty between its creation and
        // its contents): the directory is being created by a live harness, unless old.
        _ => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(60))
            .unwrap_or(false),
    }
}

/// State dirs under [`STATE_BASE`] (other than `except`) whose owner lives.
pub(super) fn other_live_instances(except: Option<&Path>) -> usize {
    let Ok(rd) = std::fs::read_dir(STATE_BASE) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(DEAD_SUFFIX))
        .filter(|p| Some(p.as_path()) != except && owner_alive(p))
        .count()
}

/// Clean up state dirs of private containerds whose owning test process is gone.
pub(super) fn sweep_stale(runc: &Path) {
    let Ok(rd) = std::fs::read_dir(STATE_BASE) else {
        return;
    };
    for e in rd.flatten() {
        let dir = e.path();
        let is_dead = dir.to_string_lossy().ends_with(DEAD_SUFFIX);
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) || (!is_dead && owner_alive(&dir)) {
            continue;
        }
        eprintln!("[support] removing stale containerd state {}", dir.display());
        cleanup_state_dir(&dir, Some(runc), &[]);
    }
}

/// Exclusive flock on `STATE_BASE/lock`, serializing cgroup bookkeeping
/// between harness instances (threads or processes). Released on drop.
pub(super) struct RegistryLock {
    /// Holding the open file holds the lock.
    _file: std::fs::File,
}

impl RegistryLock {
    pub(super) fn take() -> Option<RegistryLock> {
        std::fs::create_dir_all(STATE_BASE).ok()?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Path::new(STATE_BASE).join("lock"))
            .ok()?;
        // SAFETY: flock on a valid open fd; blocks until granted.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        (rc == 0).then_some(RegistryLock { _file: f })
    }
}

/// Global list of cgroup dirs that some harness instance made runc create
/// (they did not exist before). Several instances may share a parent such
/// as /system.slice; an instance's own cleanup can't remove it while another
/// still has a container below, so the last instance standing (and the next
/// `start()`) removes whatever is empty.
pub(super) fn registry_path() -> PathBuf {
    Path::new(STATE_BASE).join("cgroups-created")
}

pub(super) fn global_cgroup_cleanup(except: Option<&Path>) {
    let Some(_lock) = RegistryLock::take() else {
        return;
    };
    if other_live_instances(except) > 0 {
        return;
    }
    let Ok(s) = std::fs::read_to_string(registry_path()) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = s.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect();
    cgroups::rmdir_all(&dirs);
    dirs.retain(|d| d.exists());
    dirs.sort();
    dirs.dedup();
    let mut out = String::new();
    for d in &dirs {
        out.push_str(&format!("{}\n", d.display()));
    }
    let _ = std::fs::write(registry_path(), out);
}
