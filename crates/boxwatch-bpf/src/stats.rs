//! Kernel-side run time of BPF programs (`BPF_ENABLE_STATS`, as `bpftool
//! prog` shows it): how many times each program ran and how long it took.

use std::os::fd::{FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys as sys;

/// Run-time statistics are collected while this is alive (and for nobody else's sake after).
#[derive(Debug)]
pub struct StatsGuard(#[allow(dead_code)] OwnedFd);

/// Turn on run-time accounting for every BPF program (root); off again when the guard drops.
pub fn enable() -> std::io::Result<StatsGuard> {
    // SAFETY: plain syscall wrapper; returns an fd or a negative errno.
    let fd = unsafe { sys::bpf_enable_stats(sys::BPF_STATS_RUN_TIME) };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    Ok(StatsGuard(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// One loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgStats {
    pub id: u32,
    /// Kernel name (at most 15 characters).
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// Every BPF program loaded on the system (needs root).
pub fn all_programs() -> Vec<ProgStats> {
    let mut out = Vec::new();
    let mut id = 0u32;
    loop {
        let mut next = 0u32;
        // SAFETY: next is a valid out-pointer.
        if unsafe { sys::bpf_prog_get_next_id(id, &mut next) } != 0 {
            break;
        }
        id = next;
        // SAFETY: plain syscall wrapper.
        let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
        if fd < 0 {
            continue;
        }
        // SAFETY: fd is a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: bpf_prog_info is plain old data; all-zero is a valid value.
        let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
        // SAFETY: info and len are valid for writes of `len` bytes.
        let rc = unsafe {
            sys::bpf_prog_get_info_by_fd(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut info, &mut len)
        };
        if rc != 0 {
            continue;
        }
        let name: Vec<u8> = info.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        out.push(ProgStats {
            id,
            name: String::from_utf8_lossy(&name).into_owned(),
            run_cnt: info.run_cnt,
            run_time_ns: info.run_time_ns,
        });
    }
    out
}
