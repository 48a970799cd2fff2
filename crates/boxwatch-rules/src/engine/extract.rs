//! Field extraction: the value of a [`Field`] for one event, without allocating (except
//! `proc.cmdline`/`proc.args`, joined once per event on first use).

use std::cell::OnceCell;
use std::net::IpAddr;

use boxwatch_model::{Detail, FdType, SockAddr};

use super::Input;
use super::fields::{Field, OTHER_TYPE, type_id};
use super::symbols as sym;

use Field as F;

/// A field's value for one event. `None`: the field does not apply (every comparison fails).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'v> {
    None,
    Str(&'v str),
    Int(i64),
    Bool(bool),
    Ip(IpAddr),
    Type(u8),
    Strs(&'v [&'v str]),
    Ints(&'v [i64]),
}

/// One event being evaluated: the input, its type id, and lazily joined strings.
pub(crate) struct Ctx<'i, 'a> {
    pub input: &'i Input<'a>,
    pub ty: u8,
    cmdline: OnceCell<String>,
    args: OnceCell<String>,
    pcmdline: OnceCell<String>,
    caps: OnceCell<String>,
    evt_args: OnceCell<String>,
}

enum Role {
    Dest,
    Local,
    Peer,
}

fn opt<'v, T>(v: Option<T>, f: impl FnOnce(T) -> Val<'v>) -> Val<'v> {
    v.map_or(Val::None, f)
}

fn addr_of(d: &Detail) -> Option<(&SockAddr, Role)> {
    match d {
        Detail::Connect { addr, .. } | Detail::Sendto { addr, .. } => addr.as_ref().map(|a| (a, Role::Dest)),
        Detail::Bind { addr, .. } => addr.as_ref().map(|a| (a, Role::Local)),
        Detail::Accept { peer, .. } => peer.as_ref().map(|a| (a, Role::Peer)),
        _ => None,
    }
}

/// The path an event acts on (`fd.name`).
pub(crate) fn path_of(d: &Detail) -> Option<&str> {
    match d {
        Detail::Open { path, .. } | Detail::Unlink { path, .. } => Some(path),
        Detail::Chmod { path, .. } | Detail::Chown { path, .. } => path.as_deref(),
        Detail::Rename { to, .. } | Detail::Link { to, .. } => Some(to),
        Detail::Symlink { link, .. } => Some(link),
        _ => match addr_of(d) {
            Some((SockAddr::Unix { path, .. }, _)) => Some(path),
            _ => None,
        },
    }
}

/// The serde name of an fd type.
pub(crate) fn fd_type_name(t: FdType) -> &'static str {
    match t {
        FdType::Closed => "closed",
        FdType::Fifo => "fifo",
        FdType::Char => "char",
        FdType::Dir => "dir",
        FdType::Block => "block",
        FdType::File => "file",
        FdType::Symlink => "symlink",
        FdType::Socket => "socket",
        FdType::Other => "other",
    }
}

/// Repository and tag of an image reference (`reg:5000/ns/app:1.2@sha256:…`).
pub(crate) fn split_image(image: &str) -> (&str, Option<&str>) {
    let s = image.split('@').next().unwrap_or(image);
    let name_start = s.rfind('/').map_or(0, |i| i + 1);
    match s[name_start..].rfind(':') {
        Some(i) => (&s[..name_start + i], Some(&s[name_start + i + 1..])),
        None => (s, None),
    }
}

fn family(a: &SockAddr) -> Option<(&'static str, &'static str, &'static str)> {
    match a {
        SockAddr::Inet { .. } => Some(("4", "ipv4", "inet")),
        SockAddr::Inet6 { .. } => Some(("6", "ipv6", "inet6")),
        SockAddr::Unix { .. } => Some(("u", "unix", "unix")),
        SockAddr::Other { .. } => None,
    }
}

fn domain_family(domain: u32) -> Option<(&'static str, &'static str, &'static str)> {
    match domain {
        2 => Some(("4", "ipv4", "inet")),
        10 => Some(("6", "ipv6", "inet6")),
        1 => Some(("u", "unix", "unix")),
        _ => None,
    }
}

impl<'i, 'a> Ctx<'i, 'a> {
    pub fn new(input: &'i Input<'a>) -> Self {
        let ty = type_id(input.event.name()).unwrap_or(OTHER_TYPE);
        Ctx {
            input,
            ty,
            cmdline: OnceCell::new(),
            args: OnceCell::new(),
            pcmdline: OnceCell::new(),
            caps: OnceCell::new(),
            evt_args: OnceCell::new(),
        }
    }

    fn argv(&self) -> &[String] {
        match &self.input.event.detail {
            Detail::Exec { argv, .. } => argv,
            _ => self.input.argv,
        }
    }

    pub fn exepath(&self) -> Option<&str> {
        match &self.input.event.detail {
            Detail::Exec { filename, .. } => Some(filename),
            _ => self.input.exe,
        }
    }

    pub fn cmdline(&self) -> &str {
        self.cmdline.get_or_init(|| {
            let argv = self.argv();
            if argv.is_empty() { self.input.event.process.comm.clone() } else { argv.join(" ") }
        })
    }

    fn file_kind(&self) -> Option<(&'static str, &'static str, &'static str)> {
        let d = &self.input.event.detail;
        match d {
            Detail::Socket { domain, .. } => domain_family(*domain),
            Detail::Memfd { .. } => Some(("f", "memfd", "")),
            _ => match addr_of(d) {
                Some((a, _)) => family(a),
                None => path_of(d).map(|_| ("f", "file", "")),
            },
        }
    }

    pub fn get(&self, f: Field) -> Val<'_> {
        let input = self.input;
        let ev = input.event;
        let p = &ev.process;
        let d = &ev.detail;
        let c = input.container;
        let s = Val::Str;
        let int = |v: i64| Val::Int(v);
        match f {
            F::EvtType => Val::Type(self.ty),
            F::EvtRes => opt(ev.ret, |r| s(sym::res_name(r))),
            F::EvtRawRes => opt(ev.ret, int),
            F::EvtFailed => Val::Bool(!ev.succeeded()),
            F::EvtSucceeded => Val::Bool(ev.succeeded()),
            F::EvtIsOpenRead | F::EvtIsOpenWrite | F::EvtIsOpenCreate => {
                let Detail::Open { flags, .. } = d else { return Val::Bool(false) };
                let acc = flags & sym::O_ACCMODE;
                Val::Bool(match f {
                    F::EvtIsOpenRead => acc == 0 || acc == 2,
                    F::EvtIsOpenWrite => acc == 1 || acc == 2,
                    _ => flags & sym::O_CREAT != 0,
                })
            }
            F::EvtArgFlags => match d {
                Detail::Open { flags, .. } => int(*flags as i64),
                _ => Val::None,
            },
            F::EvtArgMode => match d {
                Detail::Open { mode, .. } | Detail::Chmod { mode, .. } => int(i64::from(*mode)),
                _ => Val::None,
            },
            F::EvtHostname => s(input.hostname),
            F::ProcName => s(&p.comm),
            F::ProcExepath => opt(self.exepath(), s),
            F::ProcExe => opt(self.argv().first(), |a| s(a)),
            F::ProcCmdline => s(self.cmdline()),
            F::ProcArgs => s(self.args.get_or_init(|| self.argv().get(1..).unwrap_or_default().join(" "))),
            F::ProcPname => opt(input.ancestors.first(), |a| s(a)),
            F::ProcPexepath => opt(input.parent_exe, s),
            F::ProcAname if input.ancestors.is_empty() => Val::None,
            F::ProcAname => Val::Strs(input.ancestors),
            F::ProcAnameN(0) => s(&p.comm),
            F::ProcAnameN(n) => opt(input.ancestors.get(usize::from(n) - 1), |a| s(a)),
            F::ProcPid => int(p.pid.into()),
            F::ProcPpid => int(p.ppid.into()),
            F::ProcVpid => int(p.vpid.into()),
            F::ProcIsContainerInit => Val::Bool(p.vpid == 1),
            F::ProcEntry => opt(input.entry, s),
            F::ProcStdioIsSocket => match d {
                Detail::Exec { stdio, .. } => Val::Bool(stdio[..2].contains(&FdType::Socket)),
                _ => Val::Bool(input.stdio_is_socket),
            },
            F::ProcStdin | F::ProcStdout | F::ProcStderr => match d {
                Detail::Exec { stdio, .. } => {
                    let i = match f {
                        F::ProcStdin => 0,
                        F::ProcStdout => 1,
                        _ => 2,
                    };
                    s(fd_type_name(stdio[i]))
                }
                _ => Val::None,
            },
            F::ProcCapEffective => int(p.cap_effective as i64),
            F::UserUid => int(p.uid.into()),
            F::UserEuid => int(p.euid.into()),
            F::UserGid => int(p.gid.into()),
            F::ContainerId => s(c.map_or("host", |c| c.short_id())),
            F::ContainerFullId => s(c.map_or("host", |c| c.id.as_str())),
            F::ContainerName => opt(input.container_name, s),
            F::ContainerImage => opt(input.image, s),
            F::ContainerImageRepository => opt(input.image, |i| s(split_image(i).0)),
            F::ContainerImageTag => opt(input.image.and_then(|i| split_image(i).1), s),
            F::ContainerPrivileged => Val::Bool(input.privileged),
            F::ContainerRuntime => opt(c, |c| s(c.runtime.as_str())),
            F::K8sPodName => opt(input.pod_name, s),
            F::K8sNsName => opt(input.pod_namespace, s),
            F::K8sPodUid => opt(c.and_then(|c| c.pod_uid.as_deref()), s),
            F::FdName => opt(path_of(d), s),
            F::FdOldname => match d {
                Detail::Rename { from, .. } | Detail::Link { from, .. } => s(from),
                Detail::Symlink { target, .. } => s(target),
                _ => Val::None,
            },
            F::FdDirectory => match path_of(d).and_then(|p| p.rfind('/').map(|i| (p, i))) {
                Some((_, 0)) => s("/"),
                Some((p, i)) => s(&p[..i]),
                None => Val::None,
            },
            F::FdFilename => opt(path_of(d), |p| s(p.rsplit('/').next().unwrap_or(p))),
            F::FdTypechar => opt(self.file_kind(), |k| s(k.0)),
            F::FdType => opt(self.file_kind(), |k| s(k.1)),
            F::FdFamily => opt(self.file_kind().filter(|k| !k.2.is_empty()), |k| s(k.2)),
            F::FdSip
            | F::FdSport
            | F::FdDport
            | F::FdLport
            | F::FdRip
            | F::FdRport
            | F::FdCip
            | F::FdCport
            | F::NetPort => {
                let Some((a, role)) = addr_of(d) else { return Val::None };
                let wanted = matches!(
                    (f, role),
                    (F::FdSip | F::FdSport, Role::Dest | Role::Local)
                        | (F::FdDport, Role::Dest)
                        | (F::FdLport, Role::Local)
                        | (F::FdRip | F::FdRport, Role::Dest | Role::Peer)
                        | (F::FdCip | F::FdCport, Role::Peer)
                        | (F::NetPort, _)
                );
                match f {
                    _ if !wanted => Val::None,
                    F::FdSip | F::FdRip | F::FdCip => opt(a.ip(), Val::Ip),
                    _ => opt(a.port(), |p| int(p.into())),
                }
            }
            F::FdIsServer => {
                Val::Bool(matches!(d, Detail::Bind { .. } | Detail::Listen { .. } | Detail::Accept { .. }))
            }
            F::SockDomain | F::SockType | F::SockProtocol => match d {
                Detail::Socket { domain, sock_type, protocol } => int(i64::from(match f {
                    F::SockDomain => *domain,
                    F::SockType => sock_type & 0xf,
                    _ => *protocol,
                })),
                _ => Val::None,
            },
            F::MountFstype | F::MountSource | F::MountFlags => match d {
                Detail::Mount { fstype, source, flags, .. } => match f {
                    F::MountFstype => s(fstype),
                    F::MountSource => s(source),
                    _ => int(*flags as i64),
                },
                _ => Val::None,
            },
            F::MountTarget => match d {
                Detail::Mount { target, .. } | Detail::Umount { target, .. } => s(target),
                _ => Val::None,
            },
            F::UmountFlags => match d {
                Detail::Umount { flags, .. } => int(*flags as i64),
                _ => Val::None,
            },
            F::PtraceRequest | F::PtracePid => match d {
                Detail::Ptrace { request, pid } => {
                    int(if f == F::PtraceRequest { *request } else { (*pid).into() })
                }
                _ => Val::None,
            },
            F::SetidIds => match d {
                Detail::SetId { ids, .. } => Val::Ints(ids),
                _ => Val::None,
            },
            F::UnshareFlags => match d {
                Detail::Unshare { flags } => int(*flags as i64),
                _ => Val::None,
            },
            F::SetnsNstype => match d {
                Detail::Setns { nstype, .. } => int(*nstype as i64),
                _ => Val::None,
            },
            F::ModuleName => match d {
                Detail::Module { name, .. } => s(name),
                _ => Val::None,
            },
            F::BpfCmd | F::BpfAttrType => match d {
                Detail::Bpf { cmd, attr_type } => {
                    int(i64::from(if f == F::BpfCmd { *cmd } else { *attr_type }))
                }
                _ => Val::None,
            },
            F::MemfdName | F::MemfdFlags => match d {
                Detail::Memfd { name, flags } => {
                    if f == F::MemfdName {
                        s(name)
                    } else {
                        int(i64::from(*flags))
                    }
                }
                _ => Val::None,
            },
            F::CapsetEffective | F::CapsetPermitted => match d {
                Detail::Capset { effective, permitted, .. } => {
                    int((if f == F::CapsetEffective { *effective } else { *permitted }) as i64)
                }
                _ => Val::None,
            },
            F::ChownUid | F::ChownGid => match d {
                Detail::Chown { uid, gid, .. } => int(if f == F::ChownUid { *uid } else { *gid }),
                _ => Val::None,
            },
            F::EvtNum => int(input.evt_num as i64),
            F::EvtTime | F::EvtRawTime => int(input.wall_ns as i64),
            F::EvtDir => s(if ev.flags & boxwatch_abi::flags::NO_RET != 0 { ">" } else { "<" }),
            F::EvtArgs => s(self.evt_args.get_or_init(|| self.render_args())),
            F::EvtIsOpenExec => Val::Bool(false),
            F::EvtArg(i, raw) => self.arg(i, raw),
            F::ProcPcmdline if input.parent_argv.is_empty() => Val::None,
            F::ProcPcmdline => s(self.pcmdline.get_or_init(|| input.parent_argv.join(" "))),
            F::ProcPexe => opt(input.parent_argv.first(), |a| s(a)),
            F::ProcAexeN(0) => opt(self.argv().first(), |a| s(a)),
            F::ProcAexeN(1) => opt(input.parent_argv.first(), |a| s(a)),
            F::ProcAexepathN(0) => opt(self.exepath(), s),
            F::ProcAexepathN(n) => {
                opt(input.ancestor_exes.get(usize::from(n) - 1).filter(|e| !e.is_empty()), |e| s(e))
            }
            F::ProcCwd => opt(input.cwd, s),
            F::ProcTty => opt(input.tty, int),
            F::ProcDuration => {
                opt(ev.ktime_ns.checked_sub(p.start_ns).filter(|_| p.start_ns > 0), |d| int(d as i64))
            }
            F::ThreadCapEffective => {
                s(self.caps.get_or_init(|| sym::render_flags(sym::CAPS, p.cap_effective).replace('|', " ")))
            }
            F::UserName => opt(input.user_name, s),
            F::UserLoginuid => opt(input.loginuid, int),
            F::GroupName => opt(input.group_name, s),
            F::FdNum => match d {
                Detail::Open { .. } => int(ev.ret.map_or(-1, |r| if r < 0 { -1 } else { r })),
                Detail::Connect { fd, .. }
                | Detail::Bind { fd, .. }
                | Detail::Sendto { fd, .. }
                | Detail::Listen { fd, .. } => int((*fd).into()),
                Detail::Accept { .. } | Detail::Socket { .. } | Detail::Memfd { .. } => opt(ev.ret, int),
                _ => Val::None,
            },
            F::FdNameraw => opt(path_of(d), s),
            F::FdIp => match addr_of(d) {
                Some((a, _)) => opt(a.ip(), Val::Ip),
                None => Val::None,
            },
            F::FdPort => match addr_of(d) {
                Some((a, _)) => opt(a.port(), |p| int(p.into())),
                None => Val::None,
            },
            F::FdSockfamily => match self.file_kind() {
                Some((_, "ipv4" | "ipv6", _)) => s("ip"),
                Some((_, "unix", _)) => s("unix"),
                _ => Val::None,
            },
            F::ProcAexeN(_) => Val::None,
            // Text fields boxwatch cannot know read as Falco prints a missing value, so Falco's
            // own guards (`not container.mount.dest[/] in ("<NA>","N/A")`) hold.
            F::EvtBuffer
            | F::ProcSname
            | F::ProcEnv
            | F::ThreadCapPermitted
            | F::UserLoginname
            | F::ContainerMounts
            | F::ContainerMountDest
            | F::FdL4proto
            | F::FdIpName => s("<NA>"),
            F::ProcIsExeWritable
            | F::ProcIsExeUpperLayer
            | F::ProcIsExeFromMemfd
            | F::ProcIsVpgidLeader
            | F::ProcExeInoCtime
            | F::ProcExeInoMtime
            | F::ProcExeInoCtimeDurationProcStart
            | F::ContainerStartTs
            | F::FdConnected
            | F::FdNameChanged => Val::None,
        }
    }

    /// `evt.arg.<name>` with Falco's per-syscall argument names; rendered (symbolic names for
    /// requests, domains, commands) unless `raw`.
    fn arg(&self, i: u8, raw: bool) -> Val<'_> {
        let d = &self.input.event.detail;
        let ret = self.input.event.ret;
        let name = super::fields::ARG_NAMES.get(usize::from(i)).copied().unwrap_or("");
        let s = Val::Str;
        let int = |v: i64| Val::Int(v);
        let sym_or_int = |t: sym::Table, v: i64| match (raw, t.iter().find(|(_, x)| *x as i64 == v)) {
            (false, Some((n, _))) => s(n),
            _ => int(v),
        };
        match (name, d) {
            ("filename", Detail::Exec { filename, .. }) => s(filename),
            (
                "name" | "path" | "pathname" | "filename",
                Detail::Open { path, .. } | Detail::Unlink { path, .. },
            ) => s(path),
            (
                "filename" | "path" | "pathname",
                Detail::Chmod { path: Some(p), .. } | Detail::Chown { path: Some(p), .. },
            ) => s(p),
            ("oldpath", Detail::Rename { from, .. } | Detail::Link { from, .. }) => s(from),
            ("newpath", Detail::Rename { to, .. } | Detail::Link { to, .. }) => s(to),
            ("target", Detail::Symlink { target, .. }) => s(target),
            ("linkpath", Detail::Symlink { link, .. }) => s(link),
            ("name", Detail::Memfd { name, .. } | Detail::Module { name, .. }) => s(name),
            ("dev", Detail::Mount { source, .. }) => s(source),
            ("dir", Detail::Mount { target, .. }) | ("name", Detail::Umount { target, .. }) => s(target),
            ("type", Detail::Mount { fstype, .. }) => s(fstype),
            (
                "flags",
                Detail::Mount { flags, .. } | Detail::Umount { flags, .. } | Detail::Unshare { flags },
            ) => int(*flags as i64),
            ("flags", Detail::Memfd { flags, .. }) => int((*flags).into()),
            ("mode", Detail::Chmod { mode, .. }) => int((*mode).into()),
            ("request", Detail::Ptrace { request, .. }) => sym_or_int(sym::PTRACE_REQUESTS, *request),
            ("pid", Detail::Ptrace { pid, .. } | Detail::Capset { pid, .. }) => int((*pid).into()),
            ("uid" | "ruid", Detail::SetId { ids, .. }) => opt(ids.first(), |v| int(*v)),
            ("uid", Detail::Chown { uid, .. }) => int(*uid),
            ("euid", Detail::SetId { ids, .. }) => opt(ids.get(1), |v| int(*v)),
            ("gid", Detail::Chown { gid, .. }) => int(*gid),
            ("gid", Detail::SetId { ids, .. }) => opt(ids.first(), |v| int(*v)),
            (
                "fd",
                Detail::Connect { fd, .. }
                | Detail::Bind { fd, .. }
                | Detail::Sendto { fd, .. }
                | Detail::Listen { fd, .. }
                | Detail::Accept { fd, .. }
                | Detail::Setns { fd, .. },
            ) => int((*fd).into()),
            ("fd", Detail::Chmod { fd: Some(fd), .. } | Detail::Chown { fd: Some(fd), .. }) => {
                int((*fd).into())
            }
            ("backlog", Detail::Listen { backlog, .. }) => int((*backlog).into()),
            ("domain", Detail::Socket { domain, .. }) => sym_or_int(sym::ADDRESS_FAMILIES, (*domain).into()),
            ("type", Detail::Socket { sock_type, .. }) => {
                sym_or_int(sym::SOCK_TYPES, i64::from(sock_type & 0xf))
            }
            ("proto", Detail::Socket { protocol, .. }) => int((*protocol).into()),
            ("cmd", Detail::Bpf { cmd, .. }) => sym_or_int(sym::BPF_CMDS, (*cmd).into()),
            ("nstype", Detail::Setns { nstype, .. }) => int(*nstype as i64),
            ("res" | "res_or_fd", _) => opt(ret, int),
            _ => Val::None,
        }
    }

    /// `evt.args`: the event's arguments as `name=value` text, roughly as Falco prints them.
    fn render_args(&self) -> String {
        let mut out = Vec::new();
        for (i, name) in super::fields::ARG_NAMES.iter().enumerate() {
            if matches!(*name, "res" | "res_or_fd" | "pathname" | "ruid") {
                continue;
            }
            match self.arg(i as u8, false) {
                Val::Str(v) => out.push(format!("{name}={v}")),
                Val::Int(v) => out.push(format!("{name}={v}")),
                _ => {}
            }
        }
        if let Some(r) = self.input.event.ret {
            out.push(format!("res={r}"));
        }
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_split() {
        assert_eq!(split_image("nginx"), ("nginx", None));
        assert_eq!(split_image("docker.io/library/nginx:1.25"), ("docker.io/library/nginx", Some("1.25")));
        assert_eq!(split_image("reg:5000/app@sha256:ab"), ("reg:5000/app", None));
        assert_eq!(split_image("reg:5000/app:v1@sha256:ab"), ("reg:5000/app", Some("v1")));
    }
}
