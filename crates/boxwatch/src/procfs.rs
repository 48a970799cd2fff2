//! Reading processes from /proc, to seed the process tree at start-up (so a
//! restart has no blind spot) and to resolve a parent that started before
//! us. Start times are converted to CLOCK_MONOTONIC, the clock of the
//! kernel's `task->start_time` that every event carries.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use boxwatch_model::container::cgroup_path_from_proc;
use boxwatch_model::process::SeedProc;

use crate::clock::monotonic_ns;

/// Converts /proc start times (clock ticks since boot, CLOCK_BOOTTIME) to monotonic ns.
#[derive(Debug, Clone, Copy)]
pub struct StartClock {
    ns_per_tick: u64,
    boot_minus_mono_ns: u64,
}

impl StartClock {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as u64 } else { 100 };
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: ts is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let boot = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        StartClock {
            ns_per_tick: 1_000_000_000 / hz,
            boot_minus_mono_ns: boot.saturating_sub(monotonic_ns()),
        }
    }

    fn to_monotonic(self, ticks: u64) -> u64 {
        (ticks * self.ns_per_tick).saturating_sub(self.boot_minus_mono_ns)
    }
}

/// Caches cgroup path → cgroup id (inode of the cgroup2 directory).
#[derive(Debug)]
pub struct CgroupIds {
    root: PathBuf,
    ids: HashMap<String, u64>,
}

impl CgroupIds {
    pub fn new(root: &Path) -> Self {
        CgroupIds { root: root.to_path_buf(), ids: HashMap::new() }
    }

    fn id(&mut self, path: &str) -> u64 {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        let id =
            std::fs::metadata(self.root.join(path.trim_start_matches('/'))).map(|m| m.ino()).unwrap_or(0);
        self.ids.insert(path.to_string(), id);
        id
    }
}

/// (ppid, start ticks, comm) from the text of /proc/<pid>/stat; comm may hold spaces and ')'.
fn parse_stat(stat: &str) -> Option<(u32, u64, String)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
    Some((rest.get(1)?.parse().ok()?, rest.get(19)?.parse().ok()?, comm))
}

/// (uid, euid, vpid) from /proc/<pid>/status.
fn parse_status(status: &str) -> (u32, u32, u32) {
    let mut ids = (0, 0, 0);
    for l in status.lines() {
        if let Some(v) = l.strip_prefix("Uid:") {
            let mut f = v.split_whitespace().map(|x| x.parse().unwrap_or(0));
            ids.0 = f.next().unwrap_or(0);
            ids.1 = f.next().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("NSpid:") {
            ids.2 = v.split_whitespace().last().and_then(|x| x.parse().ok()).unwrap_or(0);
        }
    }
    ids
}

/// One process from /proc; `None` if it vanished or is a kernel thread.
/// `container_of` maps a cgroup id to its container id.
pub fn read_process(
    pid: u32,
    clock: StartClock,
    cgroups: &mut CgroupIds,
    container_of: &dyn Fn(u64) -> Option<String>,
) -> Option<SeedProc> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let (ppid, ticks, comm) = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    if cmdline.is_empty() && (pid == 2 || ppid == 2) {
        return None; // kernel thread
    }
    let argv =
        cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned());
    let (uid, euid, vpid) = parse_status(&std::fs::read_to_string(dir.join("status")).unwrap_or_default());
    let cgroup_text = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
    let cgroup_id = cgroup_path_from_proc(&cgroup_text).map_or(0, |p| cgroups.id(p));
    Some(SeedProc {
        pid,
        ppid,
        start_ns: clock.to_monotonic(ticks),
        vpid,
        comm,
        exe: std::fs::read_link(dir.join("exe")).ok().map(|p| p.to_string_lossy().into_owned()),
        argv: argv.collect(),
        uid,
        euid,
        cgroup_id,
        container_id: container_of(cgroup_id),
    })
}

/// Every process in /proc.
pub fn scan(cgroup_root: &Path, container_of: &dyn Fn(u64) -> Option<String>) -> Vec<SeedProc> {
    let clock = StartClock::new();
    let mut cgroups = CgroupIds::new(cgroup_root);
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_process(pid, clock, &mut cgroups, container_of))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_stat, parse_status};

    #[test]
    fn parses_stat_with_hostile_comm() {
        let stat = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 0";
        assert_eq!(parse_stat(stat), Some((17, 98765, "a) b (c)".to_string())));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x"), None);
    }

    #[test]
    fn parses_status_ids() {
        let status = "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\nNSpid:\t5123\t7\n";
        assert_eq!(parse_status(status), (1000, 0, 7));
        assert_eq!(parse_status(""), (0, 0, 0));
    }
}
