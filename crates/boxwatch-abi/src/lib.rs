//! Rust mirror of `bpf/include/boxwatch_abi.h`, the only kernel↔user ABI of
//! boxwatch.
//!
//! Every type here is `#[repr(C)]` with the C field names in Rust case and
//! explicit padding; sizes and key offsets are pinned with const asserts
//! below, and `boxwatch-bpf` additionally checks each type against the BTF of
//! the compiled BPF object at build time. Decoding ([`Record::parse`]) is
//! safe (zerocopy) and never panics: a short buffer or an unknown kind is an
//! [`AbiError`] that the caller counts.
//!
//! This crate has no libbpf dependency, so the pure crates and fuzzers can
//! use it without a BPF toolchain.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// Must equal `BW_ABI_VERSION` in the header and the object's `abi_version` rodata.
pub const ABI_VERSION: u32 = 1;
pub const COMM_LEN: usize = 16;
pub const PATH_LEN: usize = 256;
pub const AUX_LEN: usize = 64;
pub const ARGV_LEN: usize = 1024;

/// Event kinds (`BW_EV_*`). Stable ids, never reused, all below 64.
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const OPEN: u32 = 4;
    pub const CHMOD: u32 = 5;
    pub const CHOWN: u32 = 6;
    pub const UNLINK: u32 = 7;
    pub const RENAME: u32 = 8;
    pub const LINK: u32 = 9;
    pub const SYMLINK: u32 = 10;
    pub const MEMFD: u32 = 11;
    pub const CONNECT: u32 = 12;
    pub const SOCKET: u32 = 13;
    pub const BIND: u32 = 14;
    pub const LISTEN: u32 = 15;
    pub const ACCEPT: u32 = 16;
    pub const SENDTO: u32 = 17;
    pub const SETID: u32 = 18;
    pub const CAPSET: u32 = 19;
    pub const PTRACE: u32 = 20;
    pub const MOUNT: u32 = 21;
    pub const UMOUNT: u32 = 22;
    pub const UNSHARE: u32 = 23;
    pub const SETNS: u32 = 24;
    pub const MODULE: u32 = 25;
    pub const BPF: u32 = 26;
    pub const CGROUP_MKDIR: u32 = 27;
    pub const CGROUP_RMDIR: u32 = 28;
    /// One past the largest kind.
    pub const MAX: u32 = 29;

    /// Metric and log name of each kind, indexed by id (0 is unused).
    pub const NAMES: [&str; MAX as usize] = [
        "none",
        "exec",
        "fork",
        "exit",
        "open",
        "chmod",
        "chown",
        "unlink",
        "rename",
        "link",
        "symlink",
        "memfd",
        "connect",
        "socket",
        "bind",
        "listen",
        "accept",
        "sendto",
        "setid",
        "capset",
        "ptrace",
        "mount",
        "umount",
        "unshare",
        "setns",
        "module",
        "bpf",
        "cgroup_mkdir",
        "cgroup_rmdir",
    ];

    /// Bit of `kind` in a `host_kind_mask` / `urgent_kind_mask`.
    pub const fn bit(kind: u32) -> u64 {
        1u64 << (kind & 63)
    }
}

/// Sub-operations (`BW_OP_*`): which syscall of a family produced the event.
pub mod op {
    pub const NONE: u32 = 0;
    pub const OPENAT: u32 = 1;
    pub const OPENAT2: u32 = 2;
    pub const OPEN: u32 = 3;
    pub const CREAT: u32 = 4;
    pub const CHMOD: u32 = 10;
    pub const FCHMOD: u32 = 11;
    pub const FCHMODAT: u32 = 12;
    pub const CHOWN: u32 = 20;
    pub const FCHOWN: u32 = 21;
    pub const LCHOWN: u32 = 22;
    pub const FCHOWNAT: u32 = 23;
    pub const UNLINK: u32 = 30;
    pub const UNLINKAT: u32 = 31;
    pub const RENAME: u32 = 40;
    pub const RENAMEAT: u32 = 41;
    pub const RENAMEAT2: u32 = 42;
    pub const LINK: u32 = 50;
    pub const LINKAT: u32 = 51;
    pub const SYMLINK: u32 = 60;
    pub const SYMLINKAT: u32 = 61;
    pub const ACCEPT: u32 = 70;
    pub const ACCEPT4: u32 = 71;
    pub const SETUID: u32 = 80;
    pub const SETGID: u32 = 81;
    pub const SETREUID: u32 = 82;
    pub const SETREGID: u32 = 83;
    pub const SETRESUID: u32 = 84;
    pub const SETRESGID: u32 = 85;
    pub const SETFSUID: u32 = 86;
    pub const SETFSGID: u32 = 87;
    pub const INIT_MODULE: u32 = 90;
    pub const FINIT_MODULE: u32 = 91;
    pub const DELETE_MODULE: u32 = 92;
    pub const KEXEC_LOAD: u32 = 93;
    pub const KEXEC_FILE_LOAD: u32 = 94;
}

/// `bw_event_header.flags` bits (`BW_F_*`).
pub mod flags {
    pub const HOST: u32 = 1 << 0;
    pub const CGROUP_UNKNOWN: u32 = 1 << 1;
    pub const NO_RET: u32 = 1 << 2;
    pub const TRUNC_STR0: u32 = 1 << 3;
    pub const TRUNC_STR1: u32 = 1 << 4;
    pub const FAULT_STR0: u32 = 1 << 5;
    pub const FAULT_STR1: u32 = 1 << 6;
}

/// Values of the `cgroup_filter` map (`BW_CG_*`).
pub mod cgroup_class {
    pub const CONTAINER: u8 = 1;
    pub const HOST: u8 = 2;
}

/// Indexes of the per-CPU `drops` array (`BW_DROP_*`).
pub mod drop_cause {
    pub const RINGBUF_FULL: u32 = 0;
    pub const INFLIGHT_FULL: u32 = 1;
    pub const MAX: u32 = 2;
    /// Names used in metrics and logs, indexed by cause.
    pub const NAMES: [&str; MAX as usize] = ["kernel_ringbuf_full", "kernel_inflight_full"];
}

/// `struct bw_event_header`: common header of every record.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, KnownLayout, Immutable)]
pub struct EventHeader {
    pub kind: u32,
    pub flags: u32,
    /// CLOCK_MONOTONIC ns.
    pub ktime_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// tgid inside the task's own pid namespace.
    pub vpid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// cgroup v2 id (inode of the cgroup2 directory).
    pub cgroup_id: u64,
    /// Group leader start time, CLOCK_MONOTONIC ns: with tgid, the process key.
    pub start_ns: u64,
    pub cap_eff: u64,
    pub mntns: u32,
    pub pidns: u32,
    pub netns: u32,
    pub _pad0: u32,
    pub comm: [u8; COMM_LEN],
}

/// `struct bw_syscall_event`: syscall, fork, exit and cgroup records.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, KnownLayout, Immutable)]
pub struct SyscallEvent {
    pub hdr: EventHeader,
    pub ret: i64,
    pub args: [u64; 6],
    pub op: u32,
    pub str_len: [u16; 3],
    pub _pad1: u16,
    pub str0: [u8; PATH_LEN],
    pub str1: [u8; PATH_LEN],
    pub aux: [u8; AUX_LEN],
    pub _pad2: u32,
}

/// `struct bw_exec_event`: a successful exec.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, KnownLayout, Immutable)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    pub filename_len: u32,
    pub argv_len: u32,
    /// File type (`S_IFMT >> 12`) of fds 0, 1, 2 in bits 0-3, 4-7, 8-11; 0: not open.
    pub stdio: u32,
    pub _pad1: u32,
    pub filename: [u8; PATH_LEN],
    pub argv: [u8; ARGV_LEN],
}

/// `struct bw_inflight`: syscall entry state (map value, never in the ring buffer).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, KnownLayout, Immutable)]
pub struct Inflight {
    pub args: [u64; 6],
    pub kind: u32,
    pub op: u32,
    /// `flags` classification decided at entry.
    pub flags: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<EventHeader>() == 104);
const _: () = assert!(size_of::<SyscallEvent>() == 752);
const _: () = assert!(size_of::<ExecEvent>() == 1400);
const _: () = assert!(size_of::<Inflight>() == 64);
const _: () = assert!(offset_of!(EventHeader, cgroup_id) == 48);
const _: () = assert!(offset_of!(EventHeader, comm) == 88);
const _: () = assert!(offset_of!(SyscallEvent, ret) == 104);
const _: () = assert!(offset_of!(SyscallEvent, op) == 160);
const _: () = assert!(offset_of!(SyscallEvent, str0) == 172);
const _: () = assert!(offset_of!(ExecEvent, filename) == 120);
const _: () = assert!(kind::MAX < 64);

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    #[error("record of {len} bytes is shorter than the {need}-byte layout of its kind")]
    Short { len: usize, need: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

/// A decoded, borrowed view of one ring-buffer record.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Exec(&'a ExecEvent),
    Syscall(&'a SyscallEvent),
}

impl<'a> Record<'a> {
    /// Decode a record; never panics, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AbiError> {
        let (hdr, _) = EventHeader::ref_from_prefix(bytes)
            .map_err(|_| AbiError::Short { len: bytes.len(), need: size_of::<EventHeader>() })?;
        match hdr.kind {
            kind::EXEC => ExecEvent::ref_from_prefix(bytes)
                .map(|(e, _)| Record::Exec(e))
                .map_err(|_| AbiError::Short { len: bytes.len(), need: size_of::<ExecEvent>() }),
            k if k > 0 && k < kind::MAX => SyscallEvent::ref_from_prefix(bytes)
                .map(|(e, _)| Record::Syscall(e))
                .map_err(|_| AbiError::Short { len: bytes.len(), need: size_of::<SyscallEvent>() }),
            k => Err(AbiError::UnknownKind(k)),
        }
    }

    pub fn header(&self) -> &'a EventHeader {
        match self {
            Record::Exec(e) => &e.hdr,
            Record::Syscall(e) => &e.hdr,
        }
    }
}

/// The bytes of a fixed-size C string buffer up to `len` (clamped) or the first NUL.
pub fn c_bytes(buf: &[u8], len: usize) -> &[u8] {
    let b = &buf[..len.min(buf.len())];
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn bytes_of<T: zerocopy::IntoBytes + zerocopy::Immutable>(t: &T) -> &[u8] {
        t.as_bytes()
    }

    #[test]
    fn parse_rejects_short_and_unknown() {
        assert!(matches!(Record::parse(&[0u8; 10]), Err(AbiError::Short { len: 10, .. })));
        let mut b = vec![0u8; 752];
        b[0] = 99;
        assert_eq!(Record::parse(&b).unwrap_err(), AbiError::UnknownKind(99));
        b[0] = kind::EXEC as u8;
        assert!(matches!(Record::parse(&b), Err(AbiError::Short { need: 1400, .. })));
    }

    #[test]
    fn parse_syscall_record_fields() {
        let mut b = vec![0u8; size_of::<SyscallEvent>()];
        b[0..4].copy_from_slice(&kind::OPEN.to_ne_bytes());
        b[48..56].copy_from_slice(&4242u64.to_ne_bytes());
        b[104..112].copy_from_slice(&(-2i64).to_ne_bytes());
        b[172..182].copy_from_slice(b"/etc/hosts");
        let Record::Syscall(e) = Record::parse(&b).unwrap() else { panic!("wrong variant") };
        assert_eq!(e.hdr.cgroup_id, 4242);
        assert_eq!(e.ret, -2);
        assert_eq!(c_bytes(&e.str0, 256), b"/etc/hosts");
    }

    #[test]
    fn c_bytes_clamps_and_stops_at_nul() {
        assert_eq!(c_bytes(b"abc\0def", 7), b"abc");
        assert_eq!(c_bytes(b"abcdef", 3), b"abc");
        assert_eq!(c_bytes(b"ab", 100), b"ab");
        let _ = bytes_of::<u32>(&0);
        let _ = Inflight::new_zeroed();
    }
}
