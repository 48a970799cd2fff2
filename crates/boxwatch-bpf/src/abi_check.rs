//! Compile-time check that the hand-written mirror in `boxwatch-abi` matches
//! the C layout as clang compiled it (the BTF-generated skeleton types).
//! A header change without a mirror change fails `cargo build` here.

use core::mem::{offset_of, size_of};

use boxwatch_abi as abi;

use crate::skel::monitor::types as k;

macro_rules! same_layout {
    ($rust:ty, $c:ty, [$($field:ident),* $(,)?]) => {
        const _: () = assert!(size_of::<$rust>() == size_of::<$c>(), "size differs");
        $(const _: () = assert!(
            offset_of!($rust, $field) == offset_of!($c, $field),
            concat!("offset of ", stringify!($field), " differs")
        );)*
    };
}

same_layout!(
    abi::EventHeader,
    k::bw_event_header,
    [
        kind, flags, ktime_ns, tgid, tid, ppid, vpid, uid, gid, euid, egid, cgroup_id, start_ns, cap_eff,
        mntns, pidns, netns, comm,
    ]
);
same_layout!(abi::SyscallEvent, k::bw_syscall_event, [hdr, ret, args, op, str_len, str0, str1, aux,]);
same_layout!(abi::ExecEvent, k::bw_exec_event, [hdr, filename_len, argv_len, stdio, filename, argv]);
same_layout!(abi::Inflight, k::bw_inflight, [args, kind, op, flags]);
