//! Typed events: what the kernel saw, decoded from `boxwatch-abi` records
//! into owned Rust values. [`decode`] never panics and never allocates more
//! than the record's bounded strings.
//!
//! `Event` is serialisable: its JSON is the event-log contract.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use boxwatch_abi::{self as abi, Record, c_bytes, flags, kind, op};
use serde::{Deserialize, Serialize};

/// The process that caused an event, as the kernel saw it at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// pid inside the process's own pid namespace (1 for a container's init).
    pub vpid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub comm: String,
    /// Start time of the process (CLOCK_MONOTONIC ns): with pid, a unique key.
    pub start_ns: u64,
    pub cap_effective: u64,
}

/// Namespace inodes of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub mnt: u32,
    pub pid: u32,
    pub net: u32,
}

/// A socket address as passed to connect/bind/sendto or returned by accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum SockAddr {
    Inet {
        ip: IpAddr,
        port: u16,
    },
    Inet6 {
        ip: IpAddr,
        port: u16,
    },
    Unix {
        path: String,
        #[serde(rename = "abstract")]
        abstract_ns: bool,
    },
    Other {
        number: u16,
    },
}

impl SockAddr {
    /// Parse raw `struct sockaddr*` bytes; `None` if too short for its family.
    pub fn parse(b: &[u8]) -> Option<SockAddr> {
        let family = u16::from_ne_bytes(b.get(..2)?.try_into().ok()?);
        match i32::from(family) {
            libc_consts::AF_INET => {
                let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
                let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
                Some(SockAddr::Inet { ip: IpAddr::V4(Ipv4Addr::from(ip)), port })
            }
            libc_consts::AF_INET6 => {
                let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
                let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
                let v6 = Ipv6Addr::from(ip);
                let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
                Some(SockAddr::Inet6 { ip, port })
            }
            libc_consts::AF_UNIX => {
                let path = b.get(2..).unwrap_or_default();
                let abstract_ns = path.first() == Some(&0) && path.len() > 1;
                let name =
                    if abstract_ns { c_bytes(&path[1..], path.len() - 1) } else { c_bytes(path, path.len()) };
                Some(SockAddr::Unix { path: lossy(name), abstract_ns })
            }
            _ => Some(SockAddr::Other { number: family }),
        }
    }

    pub fn port(&self) -> Option<u16> {
        match self {
            SockAddr::Inet { port, .. } | SockAddr::Inet6 { port, .. } => Some(*port),
            _ => None,
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            SockAddr::Inet { ip, .. } | SockAddr::Inet6 { ip, .. } => Some(*ip),
            _ => None,
        }
    }
}

impl std::fmt::Display for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SockAddr::Inet { ip, port } => write!(f, "{ip}:{port}"),
            SockAddr::Inet6 { ip, port } => write!(f, "[{ip}]:{port}"),
            SockAddr::Unix { path, abstract_ns: true } => write!(f, "unix:@{path}"),
            SockAddr::Unix { path, .. } => write!(f, "unix:{path}"),
            SockAddr::Other { number } => write!(f, "family:{number}"),
        }
    }
}

/// The few libc constants the decoder needs, so this crate stays libc-free.
mod libc_consts {
    pub const AF_UNIX: i32 = 1;
    pub const AF_INET: i32 = 2;
    pub const AF_INET6: i32 = 10;
}

/// The type of an open file descriptor (from its inode mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdType {
    Closed,
    Fifo,
    Char,
    Dir,
    Block,
    File,
    Symlink,
    Socket,
    Other,
}

impl FdType {
    /// From `S_IFMT >> 12` (0 when the descriptor is not open).
    pub fn from_mode_bits(bits: u32) -> FdType {
        match bits & 0xF {
            0 => FdType::Closed,
            0x1 => FdType::Fifo,
            0x2 => FdType::Char,
            0x4 => FdType::Dir,
            0x6 => FdType::Block,
            0x8 => FdType::File,
            0xA => FdType::Symlink,
            0xC => FdType::Socket,
            _ => FdType::Other,
        }
    }
}

/// What happened, per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    Exec {
        filename: String,
        argv: Vec<String>,
        truncated: bool,
        /// What fds 0, 1 and 2 were at exec: a shell with a socket here is a reverse shell.
        stdio: [FdType; 3],
    },
    Fork {
        child_pid: u32,
        child_start_ns: u64,
    },
    Exit {
        code: i32,
        signal: i32,
    },
    Open {
        path: String,
        dirfd: i32,
        flags: u64,
        mode: u32,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Chmod {
        path: Option<String>,
        fd: Option<i32>,
        mode: u32,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Chown {
        path: Option<String>,
        fd: Option<i32>,
        uid: i64,
        gid: i64,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Unlink {
        path: String,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Rename {
        from: String,
        to: String,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Link {
        from: String,
        to: String,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Symlink {
        target: String,
        link: String,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Memfd {
        name: String,
        flags: u32,
    },
    Connect {
        fd: i32,
        addr: Option<SockAddr>,
    },
    Bind {
        fd: i32,
        addr: Option<SockAddr>,
    },
    Sendto {
        fd: i32,
        addr: Option<SockAddr>,
    },
    Accept {
        fd: i32,
        peer: Option<SockAddr>,
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
    },
    Socket {
        domain: u32,
        sock_type: u32,
        protocol: u32,
    },
    Listen {
        fd: i32,
        backlog: i32,
    },
    SetId {
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
        ids: Vec<i64>,
    },
    Capset {
        pid: i32,
        effective: u64,
        permitted: u64,
        inheritable: u64,
    },
    Ptrace {
        request: i64,
        pid: i32,
    },
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: u64,
    },
    Umount {
        target: String,
        flags: u64,
    },
    Unshare {
        flags: u64,
    },
    Setns {
        fd: i32,
        nstype: u64,
        ns_inode: u64,
    },
    Module {
        #[serde(deserialize_with = "syscall_name")]
        syscall: SyscallName,
        name: String,
    },
    Bpf {
        cmd: u32,
        attr_type: u32,
    },
    CgroupMkdir {
        id: u64,
        level: u32,
        path: String,
    },
    CgroupRmdir {
        id: u64,
        level: u32,
        path: String,
    },
}

impl Detail {
    /// The ABI kind (`boxwatch_abi::kind`) this detail was decoded from.
    pub fn kind(&self) -> u32 {
        match self {
            Detail::Exec { .. } => kind::EXEC,
            Detail::Fork { .. } => kind::FORK,
            Detail::Exit { .. } => kind::EXIT,
            Detail::Open { .. } => kind::OPEN,
            Detail::Chmod { .. } => kind::CHMOD,
            Detail::Chown { .. } => kind::CHOWN,
            Detail::Unlink { .. } => kind::UNLINK,
            Detail::Rename { .. } => kind::RENAME,
            Detail::Link { .. } => kind::LINK,
            Detail::Symlink { .. } => kind::SYMLINK,
            Detail::Memfd { .. } => kind::MEMFD,
            Detail::Connect { .. } => kind::CONNECT,
            Detail::Socket { .. } => kind::SOCKET,
            Detail::Bind { .. } => kind::BIND,
            Detail::Listen { .. } => kind::LISTEN,
            Detail::Accept { .. } => kind::ACCEPT,
            Detail::Sendto { .. } => kind::SENDTO,
            Detail::SetId { .. } => kind::SETID,
            Detail::Capset { .. } => kind::CAPSET,
            Detail::Ptrace { .. } => kind::PTRACE,
            Detail::Mount { .. } => kind::MOUNT,
            Detail::Umount { .. } => kind::UMOUNT,
            Detail::Unshare { .. } => kind::UNSHARE,
            Detail::Setns { .. } => kind::SETNS,
            Detail::Module { .. } => kind::MODULE,
            Detail::Bpf { .. } => kind::BPF,
            Detail::CgroupMkdir { .. } => kind::CGROUP_MKDIR,
            Detail::CgroupRmdir { .. } => kind::CGROUP_RMDIR,
        }
    }

    /// Falco-style event type name (`evt.type`).
    pub fn name(&self) -> &'static str {
        match self {
            Detail::Exec { .. } => "execve",
            Detail::Fork { .. } => "fork",
            Detail::Exit { .. } => "exit",
            Detail::Open { syscall, .. }
            | Detail::Chmod { syscall, .. }
            | Detail::Chown { syscall, .. }
            | Detail::Unlink { syscall, .. }
            | Detail::Rename { syscall, .. }
            | Detail::Link { syscall, .. }
            | Detail::Symlink { syscall, .. }
            | Detail::Accept { syscall, .. }
            | Detail::SetId { syscall, .. }
            | Detail::Module { syscall, .. } => syscall,
            Detail::Memfd { .. } => "memfd_create",
            Detail::Connect { .. } => "connect",
            Detail::Bind { .. } => "bind",
            Detail::Sendto { .. } => "sendto",
            Detail::Socket { .. } => "socket",
            Detail::Listen { .. } => "listen",
            Detail::Capset { .. } => "capset",
            Detail::Ptrace { .. } => "ptrace",
            Detail::Mount { .. } => "mount",
            Detail::Umount { .. } => "umount2",
            Detail::Unshare { .. } => "unshare",
            Detail::Setns { .. } => "setns",
            Detail::Bpf { .. } => "bpf",
            Detail::CgroupMkdir { .. } => "cgroup_mkdir",
            Detail::CgroupRmdir { .. } => "cgroup_rmdir",
        }
    }
}

/// A syscall name from a fixed set. An alias, not `&'static str` written out, so
/// serde's derive does not try to borrow it from the input when deserialising.
pub type SyscallName = &'static str;

/// Every syscall name a `Detail` can carry.
const SYSCALL_NAMES: [&str; 40] = [
    "open",
    "creat",
    "openat",
    "openat2",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "accept",
    "accept4",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "execve",
    "connect",
    "bind",
    "sendto",
    "socket",
];

/// Reads a syscall name back from JSON (event logs replayed by tools and tests).
fn syscall_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    SYSCALL_NAMES
        .iter()
        .find(|n| **n == s)
        .copied()
        .ok_or_else(|| serde::de::Error::custom(format!("unknown syscall name {s:?}")))
}

/// One decoded kernel event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// CLOCK_MONOTONIC ns at the hook.
    pub ktime_ns: u64,
    pub process: ProcessInfo,
    pub ns: Namespaces,
    pub cgroup_id: u64,
    /// Syscall return value; `None` when emitted at entry or not a syscall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// `boxwatch_abi::flags` bits (host, truncated or faulted strings…).
    #[serde(rename = "record_flags")]
    pub flags: u32,
    #[serde(flatten)]
    pub detail: Detail,
}

impl Event {
    pub fn name(&self) -> &'static str {
        self.detail.name()
    }
    /// The syscall succeeded (or is not a syscall).
    pub fn succeeded(&self) -> bool {
        self.ret.is_none_or(|r| r >= 0)
    }
}

/// Why a record could not become an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Abi(#[from] abi::AbiError),
    #[error("event kind {kind} with unknown operation {op}")]
    UnknownOp { kind: u32, op: u32 },
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn str_at(e: &abi::SyscallEvent, slot: usize) -> String {
    let len = usize::from(e.str_len[slot]);
    match slot {
        0 => lossy(c_bytes(&e.str0, len)),
        1 => lossy(c_bytes(&e.str1, len)),
        _ => lossy(c_bytes(&e.aux, len)),
    }
}

fn header(h: &abi::EventHeader) -> (ProcessInfo, Namespaces) {
    (
        ProcessInfo {
            pid: h.tgid,
            tid: h.tid,
            ppid: h.ppid,
            vpid: h.vpid,
            uid: h.uid,
            gid: h.gid,
            euid: h.euid,
            egid: h.egid,
            comm: lossy(c_bytes(&h.comm, h.comm.len())),
            start_ns: h.start_ns,
            cap_effective: h.cap_eff,
        },
        Namespaces { mnt: h.mntns, pid: h.pidns, net: h.netns },
    )
}

/// Decode one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    match Record::parse(bytes)? {
        Record::Exec(e) => {
            let (process, ns) = header(&e.hdr);
            let argv_bytes = &e.argv[..(e.argv_len as usize).min(e.argv.len())];
            let argv = argv_bytes.split(|&c| c == 0).filter(|a| !a.is_empty()).map(lossy).collect();
            Ok(Event {
                ktime_ns: e.hdr.ktime_ns,
                process,
                ns,
                cgroup_id: e.hdr.cgroup_id,
                ret: None,
                flags: e.hdr.flags,
                detail: Detail::Exec {
                    filename: lossy(c_bytes(&e.filename, e.filename_len as usize)),
                    argv,
                    truncated: e.hdr.flags & (flags::TRUNC_STR0 | flags::TRUNC_STR1) != 0,
                    stdio: [0, 4, 8].map(|shift| FdType::from_mode_bits(e.stdio >> shift)),
                },
            })
        }
        Record::Syscall(e) => {
            let (process, ns) = header(&e.hdr);
            let no_ret = e.hdr.flags & flags::NO_RET != 0;
            let syscall_like =
                !matches!(e.hdr.kind, kind::FORK | kind::EXIT | kind::CGROUP_MKDIR | kind::CGROUP_RMDIR);
            Ok(Event {
                ktime_ns: e.hdr.ktime_ns,
                process,
                ns,
                cgroup_id: e.hdr.cgroup_id,
                ret: (syscall_like && !no_ret).then_some(e.ret),
                flags: e.hdr.flags,
                detail: detail(e)?,
            })
        }
    }
}

fn sockaddr(e: &abi::SyscallEvent) -> Option<SockAddr> {
    let n = usize::from(e.str_len[0]).min(e.str0.len());
    if n == 0 { None } else { SockAddr::parse(&e.str0[..n]) }
}

fn detail(e: &abi::SyscallEvent) -> Result<Detail, DecodeError> {
    let a = &e.args;
    let unknown = || DecodeError::UnknownOp { kind: e.hdr.kind, op: e.op };
    let fd = |i: usize| a[i] as i32;
    Ok(match e.hdr.kind {
        kind::FORK => Detail::Fork { child_pid: a[0] as u32, child_start_ns: a[1] },
        kind::EXIT => Detail::Exit { code: ((a[0] >> 8) & 0xff) as i32, signal: (a[0] & 0x7f) as i32 },
        kind::OPEN => {
            const AT_FDCWD: i32 = -100;
            const CREAT_FLAGS: u64 = 0o1101; // O_WRONLY | O_CREAT | O_TRUNC
            let (syscall, dirfd, flags, mode) = match e.op {
                op::OPENAT => ("openat", fd(0), a[2], a[3]),
                op::OPENAT2 => ("openat2", fd(0), a[2], a[3]),
                op::OPEN => ("open", AT_FDCWD, a[1], a[2]),
                op::CREAT => ("creat", AT_FDCWD, CREAT_FLAGS, a[1]),
                _ => return Err(unknown()),
            };
            Detail::Open { path: str_at(e, 0), dirfd, flags, mode: mode as u32, syscall }
        }
        kind::CHMOD => {
            let (syscall, has_path, mode) = match e.op {
                op::CHMOD => ("chmod", true, a[1]),
                op::FCHMOD => ("fchmod", false, a[1]),
                op::FCHMODAT => ("fchmodat", true, a[2]),
                _ => return Err(unknown()),
            };
            Detail::Chmod {
                path: has_path.then(|| str_at(e, 0)),
                fd: (!has_path).then(|| fd(0)),
                mode: mode as u32,
                syscall,
            }
        }
        kind::CHOWN => {
            let (syscall, has_path, o) = match e.op {
                op::CHOWN => ("chown", true, 1),
                op::LCHOWN => ("lchown", true, 1),
                op::FCHOWN => ("fchown", false, 1),
                op::FCHOWNAT => ("fchownat", true, 2),
                _ => return Err(unknown()),
            };
            Detail::Chown {
                path: has_path.then(|| str_at(e, 0)),
                fd: (!has_path).then(|| fd(0)),
                uid: i64::from(a[o] as i32),
                gid: i64::from(a[o + 1] as i32),
                syscall,
            }
        }
        kind::UNLINK => Detail::Unlink {
            path: str_at(e, 0),
            syscall: match e.op {
                op::UNLINK => "unlink",
                op::UNLINKAT => "unlinkat",
                _ => return Err(unknown()),
            },
        },
        kind::RENAME => Detail::Rename {
            from: str_at(e, 0),
            to: str_at(e, 1),
            syscall: match e.op {
                op::RENAME => "rename",
                op::RENAMEAT => "renameat",
                op::RENAMEAT2 => "renameat2",
                _ => return Err(unknown()),
            },
        },
        kind::LINK => Detail::Link {
            from: str_at(e, 0),
            to: str_at(e, 1),
            syscall: match e.op {
                op::LINK => "link",
                op::LINKAT => "linkat",
                _ => return Err(unknown()),
            },
        },
        kind::SYMLINK => Detail::Symlink {
            target: str_at(e, 0),
            link: str_at(e, 1),
            syscall: match e.op {
                op::SYMLINK => "symlink",
                op::SYMLINKAT => "symlinkat",
                _ => return Err(unknown()),
            },
        },
        kind::MEMFD => Detail::Memfd { name: str_at(e, 0), flags: a[1] as u32 },
        kind::CONNECT => Detail::Connect { fd: fd(0), addr: sockaddr(e) },
        kind::BIND => Detail::Bind { fd: fd(0), addr: sockaddr(e) },
        kind::SENDTO => Detail::Sendto { fd: fd(0), addr: sockaddr(e) },
        kind::ACCEPT => Detail::Accept {
            fd: fd(0),
            peer: sockaddr(e),
            syscall: if e.op == op::ACCEPT4 { "accept4" } else { "accept" },
        },
        kind::SOCKET => Detail::Socket { domain: a[0] as u32, sock_type: a[1] as u32, protocol: a[2] as u32 },
        kind::LISTEN => Detail::Listen { fd: fd(0), backlog: a[1] as i32 },
        kind::SETID => {
            let (syscall, n) = match e.op {
                op::SETUID => ("setuid", 1),
                op::SETGID => ("setgid", 1),
                op::SETREUID => ("setreuid", 2),
                op::SETREGID => ("setregid", 2),
                op::SETRESUID => ("setresuid", 3),
                op::SETRESGID => ("setresgid", 3),
                op::SETFSUID => ("setfsuid", 1),
                op::SETFSGID => ("setfsgid", 1),
                _ => return Err(unknown()),
            };
            Detail::SetId { syscall, ids: a[..n].iter().map(|&v| i64::from(v as i32)).collect() }
        }
        kind::CAPSET => {
            // aux: struct __user_cap_data_struct[2] = {effective, permitted, inheritable} x 2
            let w = |i: usize| -> u64 {
                e.aux
                    .get(i * 4..i * 4 + 4)
                    .map_or(0, |b| u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])))
            };
            let have = e.str_len[2] >= 24;
            let pair = |lo: usize| if have { w(lo) | (w(lo + 3) << 32) } else { 0 };
            Detail::Capset { pid: a[2] as i32, effective: pair(0), permitted: pair(1), inheritable: pair(2) }
        }
        kind::PTRACE => Detail::Ptrace { request: a[0] as i64, pid: a[1] as i32 },
        kind::MOUNT => {
            Detail::Mount { source: str_at(e, 0), target: str_at(e, 1), fstype: str_at(e, 2), flags: a[3] }
        }
        kind::UMOUNT => Detail::Umount { target: str_at(e, 0), flags: a[1] },
        kind::UNSHARE => Detail::Unshare { flags: a[0] },
        kind::SETNS => Detail::Setns { fd: fd(0), nstype: a[1], ns_inode: a[2] },
        kind::MODULE => Detail::Module {
            syscall: match e.op {
                op::INIT_MODULE => "init_module",
                op::FINIT_MODULE => "finit_module",
                op::DELETE_MODULE => "delete_module",
                op::KEXEC_LOAD => "kexec_load",
                op::KEXEC_FILE_LOAD => "kexec_file_load",
                _ => return Err(unknown()),
            },
            name: str_at(e, 0),
        },
        kind::BPF => Detail::Bpf { cmd: a[0] as u32, attr_type: a[3] as u32 },
        kind::CGROUP_MKDIR => Detail::CgroupMkdir { id: a[0], level: a[1] as u32, path: str_at(e, 0) },
        kind::CGROUP_RMDIR => Detail::CgroupRmdir { id: a[0], level: a[1] as u32, path: str_at(e, 0) },
        k => return Err(DecodeError::Abi(abi::AbiError::UnknownKind(k))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, op: u32, args: [u64; 6], s0: &[u8], s1: &[u8], ret: i64) -> Vec<u8> {
        let mut b = vec![0u8; std::mem::size_of::<abi::SyscallEvent>()];
        b[0..4].copy_from_slice(&kind.to_ne_bytes());
        b[16..20].copy_from_slice(&77u32.to_ne_bytes());
        b[88..92].copy_from_slice(b"cat\0");
        b[104..112].copy_from_slice(&ret.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            b[112 + i * 8..120 + i * 8].copy_from_slice(&a.to_ne_bytes());
        }
        b[160..164].copy_from_slice(&op.to_ne_bytes());
        b[164..166].copy_from_slice(&(s0.len() as u16).to_ne_bytes());
        b[166..168].copy_from_slice(&(s1.len() as u16).to_ne_bytes());
        b[172..172 + s0.len()].copy_from_slice(s0);
        b[428..428 + s1.len()].copy_from_slice(s1);
        b
    }

    #[test]
    fn decodes_open() {
        let b = record(kind::OPEN, op::OPENAT, [(-100i64) as u64, 0, 0o101, 0o644, 0, 0], b"/etc/x", b"", 3);
        let e = decode(&b).unwrap();
        assert_eq!(e.process.pid, 77);
        assert_eq!(e.process.comm, "cat");
        assert_eq!(e.ret, Some(3));
        assert_eq!(
            e.detail,
            Detail::Open { path: "/etc/x".into(), dirfd: -100, flags: 0o101, mode: 0o644, syscall: "openat" }
        );
    }

    #[test]
    fn decodes_inet_and_unix_sockaddrs() {
        let mut sin = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
        sin.extend([0u8; 8]);
        assert_eq!(
            SockAddr::parse(&sin),
            Some(SockAddr::Inet { ip: "127.0.0.1".parse().unwrap(), port: 8080 })
        );
        let mut sun = vec![1u8, 0];
        sun.extend(b"/run/containerd/containerd.sock\0");
        assert_eq!(SockAddr::parse(&sun).unwrap().to_string(), "unix:/run/containerd/containerd.sock");
        let mut sin6 = vec![10u8, 0, 0, 53, 0, 0, 0, 0];
        sin6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(SockAddr::parse(&sin6).unwrap().to_string(), "[::1]:53");
        assert_eq!(SockAddr::parse(&[2]), None);
    }

    #[test]
    fn decodes_exit_status_and_setid() {
        let e = decode(&record(kind::EXIT, 0, [(3 << 8) as u64, 0, 0, 0, 0, 0], b"", b"", 0)).unwrap();
        assert_eq!(e.detail, Detail::Exit { code: 3, signal: 0 });
        assert_eq!(e.ret, None);
        let e = decode(&record(kind::SETID, op::SETRESUID, [0, 0, u32::MAX as u64, 0, 0, 0], b"", b"", 0))
            .unwrap();
        assert_eq!(e.detail, Detail::SetId { syscall: "setresuid", ids: vec![0, 0, -1] });
    }

    #[test]
    fn every_decodable_record_round_trips_through_json() {
        let mut n = 0;
        for kind in 1..boxwatch_abi::kind::MAX {
            for op in 0..100 {
                let Ok(e) = decode(&record(kind, op, [2, 1, 0, 0, 0, 0], b"/p", b"/q", 0)) else { continue };
                let text = serde_json::to_string(&e).unwrap();
                let back: Event = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
                assert_eq!(back, e);
                n += 1;
            }
        }
        assert!(n > 40, "only {n} records decoded");
    }

    #[test]
    fn unknown_op_is_an_error_not_a_panic() {
        let e = decode(&record(kind::OPEN, 999, [0; 6], b"", b"", 0));
        assert_eq!(e, Err(DecodeError::UnknownOp { kind: kind::OPEN, op: 999 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in [0usize, 1, 50, 104, 200, 752, 1400, 2000] {
            for _ in 0..300 {
                let mut b: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                if len >= 4 {
                    b[0..4].copy_from_slice(&((x % 32) as u32).to_ne_bytes());
                }
                if len >= 170 {
                    b[164..170].copy_from_slice(&[0xff; 6]);
                }
                let _ = decode(&b);
            }
        }
    }
}
