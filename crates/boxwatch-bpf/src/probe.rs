//! Preflight: what this kernel and this process allow. Used by
//! `boxwatch check` and logged at daemon start.
//!
//! Every answer comes from trying the real thing (loading and attaching an
//! empty program of each attach type from `bpf/progs/probe.bpf.c`), not
//! from version tables.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use libbpf_rs::OpenObject;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use crate::skel::probe::ProbeSkelBuilder;
use crate::{libbpf_log, tracefs};

/// One attach type and whether it works here.
#[derive(Debug, Clone)]
pub struct AttachProbe {
    /// Attach type as users know it (`fentry`, `lsm`, `kprobe`, …).
    pub kind: &'static str,
    /// `Ok(())` if a program of this type loaded and attached, else why not.
    pub result: Result<(), String>,
    /// What boxwatch loses (or does instead) when this type is unavailable.
    pub without_it: &'static str,
    /// What this type makes possible here, when it works.
    pub with_it: &'static str,
}

/// Everything `boxwatch check` reports.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub kernel_release: String,
    /// (major, minor) parsed from the release.
    pub kernel_version: Option<(u32, u32)>,
    /// The kernel exposes its own BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF).
    pub btf: bool,
    /// External BTF given with `--btf`: used for CO-RE relocations instead of the kernel's.
    pub btf_file: Option<PathBuf>,
    pub tracefs: Result<PathBuf, String>,
    pub euid: u32,
    /// Capabilities boxwatch needs that the effective set lacks (names).
    pub missing_caps: Vec<&'static str>,
    pub attach: Vec<AttachProbe>,
    /// cgroup v2 mount point, if any.
    pub cgroup2: Option<PathBuf>,
}

/// Minimum kernel: every hook reads the current task through
/// `bpf_get_current_task_btf` (5.11) with direct BTF loads; the ring buffer is
/// 5.8. The README's requirements table lists every feature and its version.
pub const MIN_KERNEL: (u32, u32) = (5, 11);

/// Where the kernel exposes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// (program, attach type, without it, with it).
const PROBES: [(&str, &str, &str, &str); 7] = [
    ("probe_tracepoint", "tracepoint", "nothing works: every core hook is a tracepoint", "every core hook"),
    (
        "probe_raw_tp",
        "raw_tp",
        "module/kexec syscalls go unseen where their tracepoints are missing",
        "the module/kexec fallback where those tracepoints are missing",
    ),
    (
        "probe_tp_btf",
        "tp_btf",
        "fork events are lost; the process tree is rebuilt from exec and /proc",
        "fork events",
    ),
    (
        "probe_fentry",
        "fentry",
        "none today: every boxwatch hook is a tracepoint (fentry would only be an optimisation)",
        "cheaper kernel-function hooks than tracepoints (not used yet)",
    ),
    (
        "probe_lsm",
        "lsm",
        "no in-kernel blocking of file opens; response uses bpf_send_signal and cgroup/connect instead",
        "in-kernel enforcement (deny file opens / execs) for the response feature (not used yet)",
    ),
    (
        "probe_kprobe",
        "kprobe",
        "none today: no boxwatch hook needs kprobes",
        "hooks on kernel functions without a tracepoint (not used yet)",
    ),
    (
        "probe_cgroup_connect4",
        "cgroup/connect4",
        "the network-deny response action is unavailable",
        "the network-deny response action",
    ),
];

fn try_attach(program: &str) -> Result<(), String> {
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = ProbeSkelBuilder::default().open(storage).map_err(|e| format!("open: {e}"))?;
    for mut p in open.open_object_mut().progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        p.set_autoload(name == program);
    }
    let skel = open.load().map_err(|e| format!("load: {e}{}", libbpf_log::take()))?;
    for p in skel.object().progs_mut() {
        if p.name() != program {
            continue;
        }
        // cgroup programs need a cgroup to attach to; loading proves the type is allowed,
        // and the attach itself is exercised by the response feature's own tests.
        if program == "probe_cgroup_connect4" {
            return Ok(());
        }
        return p.attach().map(drop).map_err(|e| format!("attach: {e}{}", libbpf_log::take()));
    }
    Err(format!("program {program} not found in probe object"))
}

/// Whether task storage can hold syscall entry state here: the map type exists
/// and tracepoint programs may call `bpf_task_storage_get` (both 5.11+). Asks
/// the kernel (libbpf loads a tiny map and program), not a version table.
pub fn task_storage() -> bool {
    use libbpf_rs::libbpf_sys as sys;
    // SAFETY: plain probes; NULL opts is allowed and both return 1, 0 or a negative errno.
    unsafe {
        sys::libbpf_probe_bpf_map_type(sys::BPF_MAP_TYPE_TASK_STORAGE, std::ptr::null()) == 1
            && sys::libbpf_probe_bpf_helper(
                sys::BPF_PROG_TYPE_TRACEPOINT,
                sys::BPF_FUNC_task_storage_get,
                std::ptr::null(),
            ) == 1
    }
}

fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Effective capability mask of this process, from /proc/self/status.
fn cap_eff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
        (fs == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// Run every check. Attach probes run only when privileged (they would all
/// fail with EPERM otherwise, which says nothing about the kernel).
pub fn run(btf_file: Option<&Path>) -> ProbeReport {
    libbpf_log::install(false);
    let kernel_release = kernel_release();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let caps = cap_eff();
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let mut missing_caps = Vec::new();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !has(CAP_SYS_ADMIN) {
        missing_caps.push("CAP_SYS_ADMIN");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing_caps.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing_caps.push("CAP_PERFMON");
    }
    let privileged = missing_caps.is_empty();
    let tracefs = if privileged {
        tracefs::ensure().map_err(|e| e.to_string())
    } else {
        tracefs::find().ok_or_else(|| {
            "not mounted, or not readable by this user (mounting and reading need root)".to_string()
        })
    };
    let attach = PROBES
        .iter()
        .map(|&(prog, kind, without_it, with_it)| AttachProbe {
            kind,
            result: if privileged { try_attach(prog) } else { Err("not tried: not privileged".into()) },
            without_it,
            with_it,
        })
        .collect();
    ProbeReport {
        kernel_version: parse_version(&kernel_release),
        kernel_release,
        btf: Path::new(KERNEL_BTF).exists(),
        btf_file: btf_file.map(Path::to_path_buf),
        tracefs,
        euid,
        missing_caps,
        attach,
        cgroup2: cgroup2_mount(),
    }
}

impl ProbeReport {
    pub fn kernel_ok(&self) -> bool {
        self.kernel_version.is_some_and(|v| v >= MIN_KERNEL)
    }
    /// BTF to relocate against: the kernel's, or a readable `--btf` file.
    pub fn btf_ok(&self) -> bool {
        match &self.btf_file {
            Some(f) => f.is_file(),
            None => self.btf,
        }
    }
    /// Ready to run the monitor: kernel, BTF, tracefs, privileges, tracepoints.
    pub fn ready(&self) -> bool {
        self.kernel_ok()
            && self.btf_ok()
            && self.tracefs.is_ok()
            && self.missing_caps.is_empty()
            && self.cgroup2.is_some()
            && self.attach.iter().find(|a| a.kind == "tracepoint").is_some_and(|a| a.result.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn parses_kernel_versions() {
        assert_eq!(parse_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_version("5.4.0-100-generic"), Some((5, 4)));
        assert_eq!(parse_version("garbage"), None);
    }
}
