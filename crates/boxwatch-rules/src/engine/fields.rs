//! The fields a condition or output template may name: their ids, types, documentation, and
//! extraction from an [`Input`] without allocating (except `proc.cmdline`/`proc.args`, joined
//! once per event on first use).

use super::symbols::{self as sym, Table};

/// Every `evt.type` boxwatch reports, sorted (binary-searched). Index = type id.
pub(crate) const EVT_TYPES: [&str; 53] = [
    "accept",
    "accept4",
    "bind",
    "bpf",
    "capset",
    "cgroup_mkdir",
    "cgroup_rmdir",
    "chmod",
    "chown",
    "connect",
    "creat",
    "delete_module",
    "execve",
    "exit",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "finit_module",
    "fork",
    "init_module",
    "kexec_file_load",
    "kexec_load",
    "lchown",
    "link",
    "linkat",
    "listen",
    "memfd_create",
    "mount",
    "open",
    "openat",
    "openat2",
    "ptrace",
    "rename",
    "renameat",
    "renameat2",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setns",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setuid",
    "socket",
    "symlink",
    "symlinkat",
    "umount2",
    "unlink",
    "unlinkat",
    "unshare",
];

/// Syscalls Falco rules name that boxwatch does not report (or reports under another name:
/// `execveat` arrives as `execve`). Conditions may name them, as in `evt.type in (open,
/// openat)`; they match nothing, and a rule that can only match them is loaded *inert* with a
/// warning naming them. Their type ids are `UNREPORTED_BASE + index`.
pub(crate) const UNREPORTED_TYPES: &[&str] = &[
    "chdir",
    "chroot",
    "clone",
    "clone3",
    "close",
    "dup",
    "dup2",
    "dup3",
    "execveat",
    "fchdir",
    "ftruncate",
    "io_uring_enter",
    "io_uring_setup",
    "kill",
    "mkdir",
    "mkdirat",
    "mmap",
    "mprotect",
    "open_by_handle_at",
    "pipe",
    "pipe2",
    "pivot_root",
    "prctl",
    "process_vm_readv",
    "process_vm_writev",
    "read",
    "recvfrom",
    "recvmsg",
    "rmdir",
    "seccomp",
    "sendmsg",
    "setpgid",
    "setsid",
    "setsockopt",
    "socketpair",
    "tgkill",
    "tkill",
    "truncate",
    "umount",
    "userfaultfd",
    "vfork",
    "write",
];

/// Type id of events whose name is not in [`EVT_TYPES`] (added to the model later).
pub(crate) const OTHER_TYPE: u8 = 63;
/// Bit mask of every type id.
pub(crate) const ALL_TYPES: u128 = u128::MAX;
/// Type ids of the unreported types start here (bits 64.. of a type mask).
pub(crate) const UNREPORTED_BASE: u8 = 64;
/// Bits of the types boxwatch reports (and [`OTHER_TYPE`]).
pub(crate) const OBSERVED_TYPES: u128 = u64::MAX as u128;

pub(crate) fn type_id(name: &str) -> Option<u8> {
    EVT_TYPES.binary_search(&name).ok().map(|i| i as u8)
}

/// A type id for any name a condition may use: reported types, then the unreported ones.
pub(crate) fn any_type_id(name: &str) -> Option<u8> {
    type_id(name)
        .or_else(|| UNREPORTED_TYPES.iter().position(|t| *t == name).map(|i| UNREPORTED_BASE + i as u8))
}

/// Names of the unreported types in a type mask.
pub(crate) fn unreported_names(mask: u128) -> Vec<&'static str> {
    UNREPORTED_TYPES
        .iter()
        .enumerate()
        .filter(|(i, _)| (mask >> (usize::from(UNREPORTED_BASE) + i)) & 1 == 1)
        .map(|(_, n)| *n)
        .collect()
}

/// What a field holds, which decides the operators and literals it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    /// An integer with named values (`PTRACE_ATTACH`).
    Enum(Table),
    /// A bit set with named bits; `contains` tests bits.
    Flags(Table),
    Bool,
    Ip,
    /// `evt.type`: names checked against [`EVT_TYPES`].
    Type,
    /// Several strings; an operator holds if it holds for any of them.
    Strs,
    /// Several integers; an operator holds if it holds for any of them.
    Ints,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Int | Kind::Enum(_) => "integer",
            Kind::Flags(_) => "flags",
            Kind::Bool => "boolean",
            Kind::Ip => "IP address",
            Kind::Type => "event type",
            Kind::Strs => "string list",
            Kind::Ints => "integer list",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rustfmt::skip]
pub(crate) enum Field {
    EvtType,
    EvtRes,
    EvtRawRes,
    EvtFailed,
    EvtSucceeded,
    EvtIsOpenRead,
    EvtIsOpenWrite,
    EvtIsOpenCreate,
    EvtArgFlags,
    EvtArgMode,
    EvtHostname,
    ProcName,
    ProcExepath,
    ProcExe,
    ProcCmdline,
    ProcArgs,
    ProcPname,
    ProcPexepath,
    ProcAname,
    ProcAnameN(u8),
    ProcPid,
    ProcPpid,
    ProcVpid,
    ProcIsContainerInit,
    ProcEntry,
    ProcStdioIsSocket,
    ProcStdin,
    ProcStdout,
    ProcStderr,
    ProcCapEffective,
    UserUid,
    UserEuid,
    UserGid,
    ContainerId,
    ContainerFullId,
    ContainerName,
    ContainerImage,
    ContainerImageRepository,
    ContainerImageTag,
    ContainerPrivileged,
    ContainerRuntime,
    K8sPodName,
    K8sNsName,
    K8sPodUid,
    FdName,
    FdOldname,
    FdDirectory,
    FdFilename,
    FdTypechar,
    FdType,
    FdFamily,
    FdSip,
    FdSport,
    FdDport,
    FdLport,
    FdRip,
    FdRport,
    FdCip,
    FdCport,
    FdIsServer,
    NetPort,
    SockDomain,
    SockType,
    SockProtocol,
    MountFstype,
    MountSource,
    MountTarget,
    MountFlags,
    UmountFlags,
    PtraceRequest,
    PtracePid,
    SetidIds,
    UnshareFlags,
    SetnsNstype,
    ModuleName,
    BpfCmd,
    BpfAttrType,
    MemfdName,
    MemfdFlags,
    CapsetEffective,
    CapsetPermitted,
    ChownUid,
    ChownGid,
    // Falco's fields (the three official rules files use them).
    EvtNum,
    EvtTime,
    EvtRawTime,
    EvtDir,
    EvtArgs,
    EvtBuffer,
    EvtIsOpenExec,
    /// `evt.arg.<name>` / `evt.rawarg.<name>`: index into [`ARG_NAMES`]; raw: not rendered.
    EvtArg(u8, bool),
    ProcPcmdline,
    ProcPexe,
    ProcAexeN(u8),
    ProcAexepathN(u8),
    ProcSname,
    ProcCwd,
    ProcTty,
    ProcEnv,
    ProcDuration,
    ProcIsExeWritable,
    ProcIsExeUpperLayer,
    ProcIsExeFromMemfd,
    ProcIsVpgidLeader,
    ProcExeInoCtime,
    ProcExeInoMtime,
    ProcExeInoCtimeDurationProcStart,
    ThreadCapEffective,
    ThreadCapPermitted,
    UserName,
    UserLoginuid,
    UserLoginname,
    GroupName,
    ContainerStartTs,
    ContainerMounts,
    ContainerMountDest,
    FdNum,
    FdL4proto,
    FdConnected,
    FdNameChanged,
    FdNameraw,
    FdIp,
    FdPort,
    FdSockfamily,
    /// `fd.sip.name`, `fd.cip.name`, ...: DNS names, which boxwatch does not resolve.
    FdIpName,
}

/// Argument names `evt.arg.<name>` may use, Falco's per-syscall names.
pub(crate) const ARG_NAMES: [&str; 30] = [
    "path",
    "name",
    "filename",
    "pathname",
    "oldpath",
    "newpath",
    "target",
    "linkpath",
    "flags",
    "mode",
    "request",
    "pid",
    "uid",
    "gid",
    "ruid",
    "euid",
    "fd",
    "res",
    "res_or_fd",
    "domain",
    "type",
    "proto",
    "cmd",
    "dev",
    "dir",
    "nstype",
    "backlog",
    "addr",
    "tuple",
    "data",
];
const ARG_FIELDS: [&str; 30] = [
    "evt.arg.path",
    "evt.arg.name",
    "evt.arg.filename",
    "evt.arg.pathname",
    "evt.arg.oldpath",
    "evt.arg.newpath",
    "evt.arg.target",
    "evt.arg.linkpath",
    "evt.arg.flags",
    "evt.arg.mode",
    "evt.arg.request",
    "evt.arg.pid",
    "evt.arg.uid",
    "evt.arg.gid",
    "evt.arg.ruid",
    "evt.arg.euid",
    "evt.arg.fd",
    "evt.arg.res",
    "evt.arg.res_or_fd",
    "evt.arg.domain",
    "evt.arg.type",
    "evt.arg.proto",
    "evt.arg.cmd",
    "evt.arg.dev",
    "evt.arg.dir",
    "evt.arg.nstype",
    "evt.arg.backlog",
    "evt.arg.addr",
    "evt.arg.tuple",
    "evt.arg.data",
];
const RAWARG_FIELDS: [&str; 30] = [
    "evt.rawarg.path",
    "evt.rawarg.name",
    "evt.rawarg.filename",
    "evt.rawarg.pathname",
    "evt.rawarg.oldpath",
    "evt.rawarg.newpath",
    "evt.rawarg.target",
    "evt.rawarg.linkpath",
    "evt.rawarg.flags",
    "evt.rawarg.mode",
    "evt.rawarg.request",
    "evt.rawarg.pid",
    "evt.rawarg.uid",
    "evt.rawarg.gid",
    "evt.rawarg.ruid",
    "evt.rawarg.euid",
    "evt.rawarg.fd",
    "evt.rawarg.res",
    "evt.rawarg.res_or_fd",
    "evt.rawarg.domain",
    "evt.rawarg.type",
    "evt.rawarg.proto",
    "evt.rawarg.cmd",
    "evt.rawarg.dev",
    "evt.rawarg.dir",
    "evt.rawarg.nstype",
    "evt.rawarg.backlog",
    "evt.rawarg.addr",
    "evt.rawarg.tuple",
    "evt.rawarg.data",
];
const AEXE: [&str; 8] = [
    "proc.aexe[0]",
    "proc.aexe[1]",
    "proc.aexe[2]",
    "proc.aexe[3]",
    "proc.aexe[4]",
    "proc.aexe[5]",
    "proc.aexe[6]",
    "proc.aexe[7]",
];
const AEXEPATH: [&str; 8] = [
    "proc.aexepath[0]",
    "proc.aexepath[1]",
    "proc.aexepath[2]",
    "proc.aexepath[3]",
    "proc.aexepath[4]",
    "proc.aexepath[5]",
    "proc.aexepath[6]",
    "proc.aexepath[7]",
];

/// Fields boxwatch cannot fill without kernel data it does not record yet: always `<NA>`.
#[allow(dead_code)]
pub(crate) const NOT_AVAILABLE: &[Field] = &[
    Field::EvtBuffer,
    Field::ProcSname,
    Field::ProcEnv,
    Field::ProcIsExeWritable,
    Field::ProcIsExeUpperLayer,
    Field::ProcIsExeFromMemfd,
    Field::ProcIsVpgidLeader,
    Field::ProcExeInoCtime,
    Field::ProcExeInoMtime,
    Field::ProcExeInoCtimeDurationProcStart,
    Field::ThreadCapPermitted,
    Field::UserLoginname,
    Field::ContainerStartTs,
    Field::ContainerMounts,
    Field::ContainerMountDest,
    Field::FdL4proto,
    Field::FdConnected,
    Field::FdNameChanged,
    Field::FdIpName,
];

pub(crate) struct FieldDef {
    pub name: &'static str,
    pub field: Field,
    pub kind: Kind,
    pub doc: &'static str,
}

const fn d(name: &'static str, field: Field, kind: Kind, doc: &'static str) -> FieldDef {
    FieldDef { name, field, kind, doc }
}

use Field as F;
use Kind as K;

pub(crate) const FIELDS: &[FieldDef] = &[
    d("evt.type", F::EvtType, K::Type, "event type (syscall name: openat, execve, connect, ...)"),
    d("evt.res", F::EvtRes, K::Str, "SUCCESS or the errno name (ENOENT, EACCES, ...)"),
    d("evt.rawres", F::EvtRawRes, K::Int, "raw return value"),
    d("evt.failed", F::EvtFailed, K::Bool, "the syscall returned an error"),
    d("evt.succeeded", F::EvtSucceeded, K::Bool, "the syscall succeeded (or is not a syscall)"),
    d("evt.is_open_read", F::EvtIsOpenRead, K::Bool, "an open for reading (O_RDONLY or O_RDWR)"),
    d("evt.is_open_write", F::EvtIsOpenWrite, K::Bool, "an open for writing (O_WRONLY or O_RDWR)"),
    d("evt.is_open_create", F::EvtIsOpenCreate, K::Bool, "an open with O_CREAT"),
    d("evt.arg.flags", F::EvtArgFlags, K::Flags(sym::OPEN_FLAGS), "open flags (O_* names)"),
    d("evt.arg.mode", F::EvtArgMode, K::Flags(sym::MODE_BITS), "mode of open/chmod (S_* names)"),
    d("evt.hostname", F::EvtHostname, K::Str, "host name of the monitor"),
    d("proc.name", F::ProcName, K::Str, "process name (comm)"),
    d("proc.exepath", F::ProcExepath, K::Str, "executable path"),
    d("proc.exe", F::ProcExe, K::Str, "argv[0]"),
    d("proc.cmdline", F::ProcCmdline, K::Str, "full command line, arguments joined by spaces"),
    d("proc.args", F::ProcArgs, K::Str, "arguments after argv[0], joined by spaces"),
    d("proc.pname", F::ProcPname, K::Str, "parent process name"),
    d("proc.pexepath", F::ProcPexepath, K::Str, "parent executable path"),
    d("proc.aname", F::ProcAname, K::Strs, "names of all ancestors (any matches); proc.aname[N]: Nth"),
    d("proc.pid", F::ProcPid, K::Int, "process id (host)"),
    d("proc.ppid", F::ProcPpid, K::Int, "parent process id (host)"),
    d("proc.vpid", F::ProcVpid, K::Int, "process id in its pid namespace"),
    d("proc.is_container_init", F::ProcIsContainerInit, K::Bool, "pid 1 of its pid namespace"),
    d("proc.entry", F::ProcEntry, K::Str, "how it entered its container (container_init, exec_into:...)"),
    d("proc.stdio_is_socket", F::ProcStdioIsSocket, K::Bool, "stdin or stdout is a socket (exec events)"),
    d("proc.stdin_is_socket", F::ProcStdioIsSocket, K::Bool, "alias of proc.stdio_is_socket"),
    d("proc.stdin.type", F::ProcStdin, K::Str, "type of fd 0 at exec: file, socket, fifo, char, closed, ..."),
    d("proc.stdout.type", F::ProcStdout, K::Str, "type of fd 1 at exec"),
    d("proc.stderr.type", F::ProcStderr, K::Str, "type of fd 2 at exec"),
    d("proc.cap_effective", F::ProcCapEffective, K::Flags(sym::CAPS), "effective capabilities (CAP_*)"),
    d("user.uid", F::UserUid, K::Int, "real user id"),
    d("user.euid", F::UserEuid, K::Int, "effective user id"),
    d("user.gid", F::UserGid, K::Int, "real group id"),
    d("group.gid", F::UserGid, K::Int, "alias of user.gid"),
    d("container.id", F::ContainerId, K::Str, "short (12) container id, or 'host'"),
    d("container.full_id", F::ContainerFullId, K::Str, "full container id, or 'host'"),
    d("container.name", F::ContainerName, K::Str, "container name"),
    d("container.image", F::ContainerImage, K::Str, "image reference as the runtime reports it"),
    d("container.image.repository", F::ContainerImageRepository, K::Str, "image without tag/digest"),
    d("container.image.tag", F::ContainerImageTag, K::Str, "image tag"),
    d("container.privileged", F::ContainerPrivileged, K::Bool, "the container is privileged"),
    d("container.runtime", F::ContainerRuntime, K::Str, "docker, cri-containerd, crio, podman, ..."),
    d("k8s.pod.name", F::K8sPodName, K::Str, "Kubernetes pod name"),
    d("k8s.ns.name", F::K8sNsName, K::Str, "Kubernetes namespace"),
    d("k8s.pod.uid", F::K8sPodUid, K::Str, "Kubernetes pod UID"),
    d("fd.name", F::FdName, K::Str, "path (destination of rename/link), or unix socket path"),
    d("fd.oldname", F::FdOldname, K::Str, "source path of rename/link, target of symlink"),
    d("fd.directory", F::FdDirectory, K::Str, "directory part of fd.name"),
    d("fd.filename", F::FdFilename, K::Str, "file name part of fd.name"),
    d("fd.typechar", F::FdTypechar, K::Str, "f (file), 4 (ipv4), 6 (ipv6), u (unix)"),
    d("fd.type", F::FdType, K::Str, "file, ipv4, ipv6, unix, memfd"),
    d("fd.family", F::FdFamily, K::Str, "inet, inet6 or unix (socket events)"),
    d("fd.sip", F::FdSip, K::Ip, "server IP: connect/sendto destination, bind address"),
    d("fd.sport", F::FdSport, K::Int, "server port: connect/sendto destination, bind port"),
    d("fd.dport", F::FdDport, K::Int, "destination port of connect/sendto"),
    d("fd.lport", F::FdLport, K::Int, "local port of bind"),
    d("fd.rip", F::FdRip, K::Ip, "remote IP: connect/sendto destination, accept peer"),
    d("fd.rport", F::FdRport, K::Int, "remote port: connect/sendto destination, accept peer"),
    d("fd.cip", F::FdCip, K::Ip, "client IP of accept"),
    d("fd.cport", F::FdCport, K::Int, "client port of accept"),
    d("fd.is_server", F::FdIsServer, K::Bool, "bind, listen or accept"),
    d("net.port", F::NetPort, K::Int, "port of any socket address in the event"),
    d("sock.domain", F::SockDomain, K::Enum(sym::ADDRESS_FAMILIES), "socket() domain (AF_*)"),
    d("sock.type", F::SockType, K::Enum(sym::SOCK_TYPES), "socket() type (SOCK_*), flags masked"),
    d("sock.protocol", F::SockProtocol, K::Int, "socket() protocol"),
    d("mount.fstype", F::MountFstype, K::Str, "mount file system type"),
    d("mount.source", F::MountSource, K::Str, "mount source"),
    d("mount.target", F::MountTarget, K::Str, "mount or umount2 target"),
    d("mount.flags", F::MountFlags, K::Flags(sym::MOUNT_FLAGS), "mount flags (MS_*)"),
    d("umount.flags", F::UmountFlags, K::Flags(sym::UMOUNT_FLAGS), "umount2 flags (MNT_*)"),
    d("ptrace.request", F::PtraceRequest, K::Enum(sym::PTRACE_REQUESTS), "ptrace request (PTRACE_*)"),
    d("ptrace.pid", F::PtracePid, K::Int, "ptrace target pid"),
    d("setid.ids", F::SetidIds, K::Ints, "ids passed to set*id (any matches)"),
    d("unshare.flags", F::UnshareFlags, K::Flags(sym::CLONE_FLAGS), "unshare flags (CLONE_*)"),
    d("setns.nstype", F::SetnsNstype, K::Flags(sym::CLONE_FLAGS), "setns nstype (CLONE_NEW*, 0: any)"),
    d("module.name", F::ModuleName, K::Str, "kernel module name or file"),
    d("bpf.cmd", F::BpfCmd, K::Enum(sym::BPF_CMDS), "bpf() command (BPF_*)"),
    d("bpf.attr_type", F::BpfAttrType, K::Int, "bpf() program/map type of the command"),
    d("memfd.name", F::MemfdName, K::Str, "memfd_create name"),
    d("memfd.flags", F::MemfdFlags, K::Flags(sym::MEMFD_FLAGS), "memfd_create flags (MFD_*)"),
    d("capset.effective", F::CapsetEffective, K::Flags(sym::CAPS), "capset effective set (CAP_*)"),
    d("capset.permitted", F::CapsetPermitted, K::Flags(sym::CAPS), "capset permitted set (CAP_*)"),
    d("chown.uid", F::ChownUid, K::Int, "chown target uid"),
    d("chown.gid", F::ChownGid, K::Int, "chown target gid"),
    d("evt.num", F::EvtNum, K::Int, "event number (1-based, as Falco's)"),
    d("evt.time", F::EvtTime, K::Int, "event time, Unix ns (HH:MM:SS.nnnnnnnnn in output text, UTC)"),
    d("evt.rawtime", F::EvtRawTime, K::Int, "event time, Unix ns"),
    d("evt.dir", F::EvtDir, K::Str, "'<' (syscall exit, what boxwatch reports) or '>' (entry-only events)"),
    d("evt.args", F::EvtArgs, K::Str, "the event's arguments as text"),
    d("evt.buffer", F::EvtBuffer, K::Str, "I/O buffer (not recorded: <NA>)"),
    d(
        "evt.is_open_exec",
        F::EvtIsOpenExec,
        K::Bool,
        "an open for execution (never: boxwatch sees no FMODE_EXEC)",
    ),
    d("proc.pcmdline", F::ProcPcmdline, K::Str, "parent's command line"),
    d("proc.pexe", F::ProcPexe, K::Str, "parent's argv[0]"),
    d("proc.sname", F::ProcSname, K::Str, "session leader name (not recorded: <NA>)"),
    d("proc.cwd", F::ProcCwd, K::Str, "working directory (read from /proc at exec)"),
    d(
        "proc.tty",
        F::ProcTty,
        K::Int,
        "controlling terminal device number, 0 for none (read from /proc at exec)",
    ),
    d("proc.env", F::ProcEnv, K::Str, "environment (not recorded: <NA>)"),
    d("proc.duration", F::ProcDuration, K::Int, "ns since the process started"),
    d(
        "proc.is_exe_writable",
        F::ProcIsExeWritable,
        K::Bool,
        "executable writable by the user (not recorded: <NA>)",
    ),
    d(
        "proc.is_exe_upper_layer",
        F::ProcIsExeUpperLayer,
        K::Bool,
        "executable in the overlay upper layer (not recorded: <NA>)",
    ),
    d("proc.is_exe_from_memfd", F::ProcIsExeFromMemfd, K::Bool, "executable is a memfd (not recorded: <NA>)"),
    d("proc.is_vpgid_leader", F::ProcIsVpgidLeader, K::Bool, "process group leader (not recorded: <NA>)"),
    d("proc.exe_ino.ctime", F::ProcExeInoCtime, K::Int, "executable inode ctime (not recorded: <NA>)"),
    d("proc.exe_ino.mtime", F::ProcExeInoMtime, K::Int, "executable inode mtime (not recorded: <NA>)"),
    d(
        "proc.exe_ino.ctime_duration_proc_start",
        F::ProcExeInoCtimeDurationProcStart,
        K::Int,
        "(not recorded: <NA>)",
    ),
    d("thread.cap_effective", F::ThreadCapEffective, K::Str, "effective capabilities as text (CAP_* names)"),
    d("thread.cap_permitted", F::ThreadCapPermitted, K::Str, "permitted capabilities (not recorded: <NA>)"),
    d("user.name", F::UserName, K::Str, "user name, from the container's own /etc/passwd"),
    d("user.loginuid", F::UserLoginuid, K::Int, "audit login uid, -1 for none (read from /proc at exec)"),
    d("user.loginname", F::UserLoginname, K::Str, "login user name (not recorded: <NA>)"),
    d("group.name", F::GroupName, K::Str, "group name, from the container's own /etc/group"),
    d("container.start_ts", F::ContainerStartTs, K::Int, "container start time (not recorded: <NA>)"),
    d("container.mounts", F::ContainerMounts, K::Str, "container mounts (not recorded: <NA>)"),
    d(
        "container.mount.dest",
        F::ContainerMountDest,
        K::Str,
        "container.mount.dest[PATH] (not recorded: <NA>)",
    ),
    d(
        "fd.num",
        F::FdNum,
        K::Int,
        "fd of the event: an open's result (-1 on failure), the fd argument of socket calls",
    ),
    d("fd.l4proto", F::FdL4proto, K::Str, "tcp/udp (not recorded: <NA>)"),
    d("fd.connected", F::FdConnected, K::Bool, "(not recorded: <NA>)"),
    d("fd.name_changed", F::FdNameChanged, K::Bool, "(not recorded: <NA>)"),
    d("fd.nameraw", F::FdNameraw, K::Str, "alias of fd.name"),
    d("fd.ip", F::FdIp, K::Ip, "any IP of the event (client or server)"),
    d("fd.net", F::FdIp, K::Ip, "alias of fd.ip (compare with a CIDR)"),
    d("fd.snet", F::FdSip, K::Ip, "alias of fd.sip (compare with a CIDR)"),
    d("fd.cnet", F::FdCip, K::Ip, "alias of fd.cip (compare with a CIDR)"),
    d("fd.rnet", F::FdRip, K::Ip, "alias of fd.rip (compare with a CIDR)"),
    d("fd.lnet", F::FdSip, K::Ip, "alias of fd.sip for bind (compare with a CIDR)"),
    d("fd.port", F::FdPort, K::Int, "any port of the event"),
    d("fd.sockfamily", F::FdSockfamily, K::Str, "ip or unix"),
    d("fd.sip.name", F::FdIpName, K::Str, "DNS name of the IP (not resolved: <NA>)"),
    d("fd.cip.name", F::FdIpName, K::Str, "DNS name of the IP (not resolved: <NA>)"),
    d("fd.rip.name", F::FdIpName, K::Str, "DNS name of the IP (not resolved: <NA>)"),
    d("fd.lip.name", F::FdIpName, K::Str, "DNS name of the IP (not resolved: <NA>)"),
];

const ANAME: [&str; 17] = [
    "proc.aname[0]",
    "proc.aname[1]",
    "proc.aname[2]",
    "proc.aname[3]",
    "proc.aname[4]",
    "proc.aname[5]",
    "proc.aname[6]",
    "proc.aname[7]",
    "proc.aname[8]",
    "proc.aname[9]",
    "proc.aname[10]",
    "proc.aname[11]",
    "proc.aname[12]",
    "proc.aname[13]",
    "proc.aname[14]",
    "proc.aname[15]",
    "proc.aname[16]",
];

/// A field by name (`proc.aname[N]` for N in 0..=16, `evt.arg.NAME`, ...).
pub(crate) fn lookup(name: &str) -> Option<(Field, Kind)> {
    let index = |prefix: &str, max: usize| -> Option<u8> {
        let n = name.strip_prefix(prefix)?.strip_suffix(']')?;
        n.parse::<u8>().ok().filter(|n| usize::from(*n) < max)
    };
    if let Some(n) = index("proc.aname[", ANAME.len()) {
        return Some((F::ProcAnameN(n), K::Str));
    }
    if let Some(n) = index("proc.aexe[", AEXE.len()) {
        return Some((F::ProcAexeN(n), K::Str));
    }
    if let Some(n) = index("proc.aexepath[", AEXEPATH.len()) {
        return Some((F::ProcAexepathN(n), K::Str));
    }
    if name.starts_with("container.mount.dest[") && name.ends_with(']') {
        return Some((F::ContainerMountDest, K::Str));
    }
    if name != "evt.arg.flags" && name != "evt.arg.mode" {
        for (fields, raw) in [(&ARG_FIELDS, false), (&RAWARG_FIELDS, true)] {
            if let Some(i) = fields.iter().position(|f| *f == name) {
                return Some((F::EvtArg(i as u8, raw), K::Str));
            }
        }
    }
    FIELDS.iter().find(|f| f.name == name).map(|f| (f.field, f.kind))
}

/// The closest field name, for "did you mean" hints.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|f| (edit_distance(name, f.name), f.name))
        .filter(|(dist, _)| *dist <= 3)
        .min()
        .map(|(_, n)| n)
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Field {
    /// The canonical name (Falco's where one exists), also the `output_fields` key.
    pub fn name(self) -> &'static str {
        match self {
            F::ProcAnameN(n) => return ANAME.get(usize::from(n)).copied().unwrap_or("proc.aname"),
            F::ProcAexeN(n) => return AEXE.get(usize::from(n)).copied().unwrap_or("proc.aexe"),
            F::ProcAexepathN(n) => return AEXEPATH.get(usize::from(n)).copied().unwrap_or("proc.aexepath"),
            F::EvtArg(i, raw) => {
                let t = if raw { &RAWARG_FIELDS } else { &ARG_FIELDS };
                return t.get(usize::from(i)).copied().unwrap_or("evt.arg");
            }
            _ => {}
        }
        FIELDS.iter().find(|f| f.field == self).map_or("?", |f| f.name)
    }

    pub fn kind(self) -> Kind {
        if let F::ProcAnameN(_) | F::ProcAexeN(_) | F::ProcAexepathN(_) | F::EvtArg(..) = self {
            return K::Str;
        }
        FIELDS.iter().find(|f| f.field == self).map_or(K::Str, |f| f.kind)
    }

    /// Relative cost of extracting and testing, to order `and`/`or` operands cheapest first.
    pub fn cost(self) -> u32 {
        match self {
            F::ProcCmdline | F::ProcArgs | F::ProcPcmdline | F::ThreadCapEffective | F::EvtArgs => 20,
            F::ProcAname => 8,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table_is_sorted_and_small() {
        assert!(EVT_TYPES.windows(2).all(|w| w[0] < w[1]));
        assert!(EVT_TYPES.len() < usize::from(OTHER_TYPE));
        assert_eq!(type_id("openat"), Some(30));
        assert_eq!(type_id("open"), Some(29));
        assert_eq!(type_id("execveat"), None);
    }

    #[test]
    fn lookup_names_and_suggestions() {
        assert_eq!(lookup("proc.aname[3]"), Some((Field::ProcAnameN(3), Kind::Str)));
        assert_eq!(lookup("proc.aname[17]"), None);
        assert_eq!(lookup("proc.aname[x]"), None);
        assert_eq!(Field::ProcAnameN(3).name(), "proc.aname[3]");
        assert_eq!(suggest("proc.nmae"), Some("proc.name"));
        assert_eq!(suggest("zzzzzzzzzzzz"), None);
        for f in FIELDS {
            assert_eq!(lookup(f.name).map(|x| x.0), Some(f.field), "{}", f.name);
        }
    }
}
