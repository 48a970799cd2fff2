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
        Ctx { input, ty, cmdline: OnceCell::new(), args: OnceCell::new() }
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
        }
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
