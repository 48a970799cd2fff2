//! Named constants that conditions may use instead of numbers (`evt.arg.flags contains O_CREAT`,
//! `ptrace.request in (PTRACE_ATTACH, PTRACE_POKETEXT)`), and errno names for `evt.res`.
//! Values are Linux's (x86_64 and the generic ABI; open flags that differ on arm64 follow the
//! target architecture).

pub(crate) type Table = &'static [(&'static str, u64)];

pub(crate) const OPEN_FLAGS: Table = &[
    ("O_RDONLY", 0),
    ("O_WRONLY", 0o1),
    ("O_RDWR", 0o2),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("O_SYNC", 0o4010000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("O_PATH", 0o10000000),
    #[cfg(not(target_arch = "aarch64"))]
    ("O_DIRECT", 0o40000),
    #[cfg(not(target_arch = "aarch64"))]
    ("O_LARGEFILE", 0o100000),
    #[cfg(not(target_arch = "aarch64"))]
    ("O_DIRECTORY", 0o200000),
    #[cfg(not(target_arch = "aarch64"))]
    ("O_NOFOLLOW", 0o400000),
    #[cfg(not(target_arch = "aarch64"))]
    ("O_TMPFILE", 0o20200000),
    #[cfg(target_arch = "aarch64")]
    ("O_DIRECTORY", 0o40000),
    #[cfg(target_arch = "aarch64")]
    ("O_NOFOLLOW", 0o100000),
    #[cfg(target_arch = "aarch64")]
    ("O_DIRECT", 0o200000),
    #[cfg(target_arch = "aarch64")]
    ("O_LARGEFILE", 0o400000),
    #[cfg(target_arch = "aarch64")]
    ("O_TMPFILE", 0o20040000),
];

pub(crate) const O_ACCMODE: u64 = 0o3;
pub(crate) const O_CREAT: u64 = 0o100;

pub(crate) const MODE_BITS: Table = &[
    ("S_ISUID", 0o4000),
    ("S_ISGID", 0o2000),
    ("S_ISVTX", 0o1000),
    ("S_IRWXU", 0o700),
    ("S_IRUSR", 0o400),
    ("S_IWUSR", 0o200),
    ("S_IXUSR", 0o100),
    ("S_IRWXG", 0o70),
    ("S_IRGRP", 0o40),
    ("S_IWGRP", 0o20),
    ("S_IXGRP", 0o10),
    ("S_IRWXO", 0o7),
    ("S_IROTH", 0o4),
    ("S_IWOTH", 0o2),
    ("S_IXOTH", 0o1),
];

macro_rules! caps {
    ($($name:literal = $bit:literal),* $(,)?) => { &[$(($name, 1u64 << $bit)),*] };
}

pub(crate) const CAPS: Table = caps![
    "CAP_CHOWN" = 0,
    "CAP_DAC_OVERRIDE" = 1,
    "CAP_DAC_READ_SEARCH" = 2,
    "CAP_FOWNER" = 3,
    "CAP_FSETID" = 4,
    "CAP_KILL" = 5,
    "CAP_SETGID" = 6,
    "CAP_SETUID" = 7,
    "CAP_SETPCAP" = 8,
    "CAP_LINUX_IMMUTABLE" = 9,
    "CAP_NET_BIND_SERVICE" = 10,
    "CAP_NET_BROADCAST" = 11,
    "CAP_NET_ADMIN" = 12,
    "CAP_NET_RAW" = 13,
    "CAP_IPC_LOCK" = 14,
    "CAP_IPC_OWNER" = 15,
    "CAP_SYS_MODULE" = 16,
    "CAP_SYS_RAWIO" = 17,
    "CAP_SYS_CHROOT" = 18,
    "CAP_SYS_PTRACE" = 19,
    "CAP_SYS_PACCT" = 20,
    "CAP_SYS_ADMIN" = 21,
    "CAP_SYS_BOOT" = 22,
    "CAP_SYS_NICE" = 23,
    "CAP_SYS_RESOURCE" = 24,
    "CAP_SYS_TIME" = 25,
    "CAP_SYS_TTY_CONFIG" = 26,
    "CAP_MKNOD" = 27,
    "CAP_LEASE" = 28,
    "CAP_AUDIT_WRITE" = 29,
    "CAP_AUDIT_CONTROL" = 30,
    "CAP_SETFCAP" = 31,
    "CAP_MAC_OVERRIDE" = 32,
    "CAP_MAC_ADMIN" = 33,
    "CAP_SYSLOG" = 34,
    "CAP_WAKE_ALARM" = 35,
    "CAP_BLOCK_SUSPEND" = 36,
    "CAP_AUDIT_READ" = 37,
    "CAP_PERFMON" = 38,
    "CAP_BPF" = 39,
    "CAP_CHECKPOINT_RESTORE" = 40,
];

pub(crate) const CLONE_FLAGS: Table = &[
    ("CLONE_NEWTIME", 0x80),
    ("CLONE_FS", 0x200),
    ("CLONE_FILES", 0x400),
    ("CLONE_NEWNS", 0x20000),
    ("CLONE_SYSVSEM", 0x40000),
    ("CLONE_NEWCGROUP", 0x0200_0000),
    ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000),
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
];

pub(crate) const CLONE_NEWNS: u64 = 0x20000;
pub(crate) const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub(crate) const CLONE_NEWUSER: u64 = 0x1000_0000;

pub(crate) const PTRACE_REQUESTS: Table = &[
    ("PTRACE_TRACEME", 0),
    ("PTRACE_PEEKTEXT", 1),
    ("PTRACE_PEEKDATA", 2),
    ("PTRACE_PEEKUSER", 3),
    ("PTRACE_POKETEXT", 4),
    ("PTRACE_POKEDATA", 5),
    ("PTRACE_POKEUSER", 6),
    ("PTRACE_CONT", 7),
    ("PTRACE_KILL", 8),
    ("PTRACE_SINGLESTEP", 9),
    ("PTRACE_GETREGS", 12),
    ("PTRACE_SETREGS", 13),
    ("PTRACE_ATTACH", 16),
    ("PTRACE_DETACH", 17),
    ("PTRACE_SYSCALL", 24),
    ("PTRACE_SETOPTIONS", 0x4200),
    ("PTRACE_GETEVENTMSG", 0x4201),
    ("PTRACE_GETREGSET", 0x4204),
    ("PTRACE_SETREGSET", 0x4205),
    ("PTRACE_SEIZE", 0x4206),
    ("PTRACE_INTERRUPT", 0x4207),
];

pub(crate) const ADDRESS_FAMILIES: Table = &[
    ("AF_UNIX", 1),
    ("AF_LOCAL", 1),
    ("AF_INET", 2),
    ("AF_INET6", 10),
    ("AF_NETLINK", 16),
    ("AF_PACKET", 17),
    ("AF_ALG", 38),
    ("AF_VSOCK", 40),
    ("AF_XDP", 44),
];

pub(crate) const SOCK_TYPES: Table = &[
    ("SOCK_STREAM", 1),
    ("SOCK_DGRAM", 2),
    ("SOCK_RAW", 3),
    ("SOCK_RDM", 4),
    ("SOCK_SEQPACKET", 5),
    ("SOCK_PACKET", 10),
];

pub(crate) const MOUNT_FLAGS: Table = &[
    ("MS_RDONLY", 1),
    ("MS_NOSUID", 2),
    ("MS_NODEV", 4),
    ("MS_NOEXEC", 8),
    ("MS_SYNCHRONOUS", 16),
    ("MS_REMOUNT", 32),
    ("MS_MANDLOCK", 64),
    ("MS_DIRSYNC", 128),
    ("MS_NOSYMFOLLOW", 256),
    ("MS_NOATIME", 1024),
    ("MS_NODIRATIME", 2048),
    ("MS_BIND", 4096),
    ("MS_MOVE", 8192),
    ("MS_REC", 16384),
    ("MS_SILENT", 32768),
    ("MS_UNBINDABLE", 1 << 17),
    ("MS_PRIVATE", 1 << 18),
    ("MS_SLAVE", 1 << 19),
    ("MS_SHARED", 1 << 20),
    ("MS_RELATIME", 1 << 21),
    ("MS_STRICTATIME", 1 << 24),
    ("MS_LAZYTIME", 1 << 25),
];

pub(crate) const UMOUNT_FLAGS: Table =
    &[("MNT_FORCE", 1), ("MNT_DETACH", 2), ("MNT_EXPIRE", 4), ("UMOUNT_NOFOLLOW", 8)];

pub(crate) const BPF_CMDS: Table = &[
    ("BPF_MAP_CREATE", 0),
    ("BPF_MAP_LOOKUP_ELEM", 1),
    ("BPF_MAP_UPDATE_ELEM", 2),
    ("BPF_MAP_DELETE_ELEM", 3),
    ("BPF_MAP_GET_NEXT_KEY", 4),
    ("BPF_PROG_LOAD", 5),
    ("BPF_OBJ_PIN", 6),
    ("BPF_OBJ_GET", 7),
    ("BPF_PROG_ATTACH", 8),
    ("BPF_PROG_DETACH", 9),
    ("BPF_PROG_TEST_RUN", 10),
    ("BPF_PROG_GET_NEXT_ID", 11),
    ("BPF_MAP_GET_NEXT_ID", 12),
    ("BPF_PROG_GET_FD_BY_ID", 13),
    ("BPF_MAP_GET_FD_BY_ID", 14),
    ("BPF_OBJ_GET_INFO_BY_FD", 15),
    ("BPF_PROG_QUERY", 16),
    ("BPF_RAW_TRACEPOINT_OPEN", 17),
    ("BPF_BTF_LOAD", 18),
    ("BPF_BTF_GET_FD_BY_ID", 19),
    ("BPF_TASK_FD_QUERY", 20),
    ("BPF_MAP_LOOKUP_AND_DELETE_ELEM", 21),
    ("BPF_MAP_FREEZE", 22),
    ("BPF_BTF_GET_NEXT_ID", 23),
    ("BPF_LINK_CREATE", 28),
    ("BPF_LINK_UPDATE", 29),
    ("BPF_LINK_GET_FD_BY_ID", 30),
    ("BPF_LINK_GET_NEXT_ID", 31),
    ("BPF_ENABLE_STATS", 32),
    ("BPF_ITER_CREATE", 33),
    ("BPF_LINK_DETACH", 34),
    ("BPF_PROG_BIND_MAP", 35),
    ("BPF_TOKEN_CREATE", 36),
];

pub(crate) const MEMFD_FLAGS: Table = &[
    ("MFD_CLOEXEC", 1),
    ("MFD_ALLOW_SEALING", 2),
    ("MFD_HUGETLB", 4),
    ("MFD_NOEXEC_SEAL", 8),
    ("MFD_EXEC", 0x10),
];

pub(crate) const ERRNOS: &[(&str, i64)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ETXTBSY", 26),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("EMLINK", 31),
    ("EPIPE", 32),
    ("ERANGE", 34),
    ("ENAMETOOLONG", 36),
    ("ENOSYS", 38),
    ("ENOTEMPTY", 39),
    ("ELOOP", 40),
    ("ENOTSOCK", 88),
    ("EPROTONOSUPPORT", 93),
    ("EOPNOTSUPP", 95),
    ("EAFNOSUPPORT", 97),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENETUNREACH", 101),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("EISCONN", 106),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
    ("EHOSTUNREACH", 113),
    ("EALREADY", 114),
    ("EINPROGRESS", 115),
];

/// `evt.res` spelling of a return value: `SUCCESS`, an errno name, or `EUNKNOWN`.
pub(crate) fn res_name(ret: i64) -> &'static str {
    if ret >= 0 {
        return "SUCCESS";
    }
    let e = ret.checked_neg().unwrap_or(0);
    ERRNOS.iter().find(|(_, n)| *n == e).map_or("EUNKNOWN", |(name, _)| name)
}

pub(crate) fn lookup(table: Table, name: &str) -> Option<u64> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// `A|B|0x10` over a table; `None` names the first part that is neither a symbol nor a number.
pub(crate) fn parse_flags(table: Table, text: &str) -> Result<u64, String> {
    let mut v = 0u64;
    for part in text.split('|') {
        let part = part.trim();
        v |= match lookup(table, part) {
            Some(x) => x,
            None => parse_int(part).map(|n| n as u64).ok_or_else(|| part.to_string())?,
        };
    }
    Ok(v)
}

/// Decimal (optionally negative), `0x…`, `0o…` or `0b…`. A leading zero is refused rather
/// than silently read as decimal or octal.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let t = t.replace('_', "");
    let (digits, radix) = match t.get(..2) {
        Some("0x" | "0X") => (&t[2..], 16),
        Some("0o" | "0O") => (&t[2..], 8),
        Some("0b" | "0B") => (&t[2..], 2),
        _ if t.len() > 1 && t.starts_with('0') => return None,
        _ => (&t[..], 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = u64::from_str_radix(digits, radix).ok()?;
    if neg { 0i64.checked_sub_unsigned(v) } else { i64::try_from(v).ok().or(Some(v as i64)) }
}

/// `O_WRONLY|O_CREAT` style rendering for output; the remainder, if any, in hex.
pub(crate) fn render_flags(table: Table, v: u64) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = v;
    for (name, bit) in table {
        if *bit != 0 && bit.count_ones() == 1 && v & bit == *bit {
            parts.push(name);
            rest &= !bit;
        }
    }
    let mut s = parts.join("|");
    if rest != 0 || s.is_empty() {
        if !s.is_empty() {
            s.push('|');
        }
        s.push_str(&format!("{rest:#x}"));
    }
    s
}

/// Open flags: access mode by name, then the single-bit flags.
pub(crate) fn render_open_flags(v: u64) -> String {
    let mode = match v & O_ACCMODE {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = v & !O_ACCMODE;
    if rest == 0 { mode.to_string() } else { format!("{mode}|{}", render_flags(OPEN_FLAGS, rest)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_flags() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-13"), Some(-13));
        assert_eq!(parse_int("0x1f"), Some(31));
        assert_eq!(parse_int("0o4000"), Some(0o4000));
        assert_eq!(parse_int("04000"), None);
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("x"), None);
        assert_eq!(parse_int("-"), None);
        assert_eq!(parse_int("99999999999999999999999"), None);
        assert_eq!(parse_int("0xffffffffffffffff"), Some(-1));
        assert_eq!(parse_flags(OPEN_FLAGS, "O_WRONLY|O_CREAT"), Ok(0o101));
        assert_eq!(parse_flags(OPEN_FLAGS, "O_BOGUS"), Err("O_BOGUS".into()));
        assert_eq!(render_open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(render_flags(MODE_BITS, 0o4000), "S_ISUID");
        assert_eq!(res_name(-2), "ENOENT");
        assert_eq!(res_name(i64::MIN), "EUNKNOWN");
        assert_eq!(res_name(3), "SUCCESS");
    }
}
