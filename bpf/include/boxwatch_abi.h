/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * boxwatch_abi.h - THE kernel<->user ABI of boxwatch.
 *
 * Every record that crosses the ring buffer, every map key/value that
 * userspace reads or writes, and every limit both sides agree on is defined
 * here and nowhere else. The Rust mirror is crates/boxwatch-abi/src/lib.rs;
 * it pins the same sizes and offsets with const asserts, and
 * crates/boxwatch-bpf checks the mirror against the BTF of the compiled
 * object at build time. Change both together and bump BW_ABI_VERSION.
 *
 * Rules: fixed-width integers only, explicit padding, no pointers, no
 * bitfields, no C enums in records (kinds are __u32 constants).
 */
#ifndef BOXWATCH_ABI_H
#define BOXWATCH_ABI_H

#define BW_ABI_VERSION 1

#define BW_COMM_LEN 16
#define BW_PATH_LEN 256
#define BW_AUX_LEN 64
#define BW_ARGV_LEN 1024

/* Event kinds. Ids are stable and never reused; all are < 64 so that a
 * __u64 mask can select them (host_kind_mask, urgent_kind_mask). */
#define BW_EV_EXEC 1          /* bw_exec_event */
#define BW_EV_FORK 2          /* args[0]=child tgid, args[1]=child start_ns */
#define BW_EV_EXIT 3          /* args[0]=wait status (code<<8 | signal) */
#define BW_EV_OPEN 4          /* str0=path; args: dfd, path, flags, mode */
#define BW_EV_CHMOD 5         /* op=BW_OP_*; str0=path (not for fchmod) */
#define BW_EV_CHOWN 6
#define BW_EV_UNLINK 7
#define BW_EV_RENAME 8        /* str0=old, str1=new */
#define BW_EV_LINK 9          /* str0=old, str1=new */
#define BW_EV_SYMLINK 10      /* str0=target, str1=link path */
#define BW_EV_MEMFD 11        /* str0=name; args[1]=flags */
#define BW_EV_CONNECT 12      /* str0=raw sockaddr bytes (str_len[0] bytes) */
#define BW_EV_SOCKET 13       /* args: family, type, protocol */
#define BW_EV_BIND 14         /* str0=raw sockaddr */
#define BW_EV_LISTEN 15       /* args: fd, backlog */
#define BW_EV_ACCEPT 16       /* str0=raw peer sockaddr (when asked for) */
#define BW_EV_SENDTO 17       /* str0=raw destination sockaddr */
#define BW_EV_SETID 18        /* op=BW_OP_SET*; args as the syscall */
#define BW_EV_CAPSET 19       /* aux = 2 x struct __user_cap_data_struct; args[2]=target pid */
#define BW_EV_PTRACE 20       /* args: request, pid, addr, data */
#define BW_EV_MOUNT 21        /* str0=source, str1=target, aux=fstype; args[3]=flags */
#define BW_EV_UMOUNT 22       /* str0=target; args[1]=flags */
#define BW_EV_UNSHARE 23      /* args[0]=flags */
#define BW_EV_SETNS 24        /* args: fd, nstype, ns inode behind fd (args[2]) */
#define BW_EV_MODULE 25       /* op=BW_OP_{INIT,FINIT,DELETE}_MODULE,KEXEC_*; str0=name/params */
#define BW_EV_BPF 26          /* op=cmd; args[3]=first u32 of attr (prog/map type) */
#define BW_EV_CGROUP_MKDIR 27 /* args[0]=cgroup id, args[1]=level; str0=path */
#define BW_EV_CGROUP_RMDIR 28 /* args[0]=cgroup id, args[1]=level; str0=path */
#define BW_EV_MAX 29

/* Sub-operations: which syscall of a family produced the event. */
#define BW_OP_NONE 0
#define BW_OP_OPENAT 1
#define BW_OP_OPENAT2 2
#define BW_OP_OPEN 3
#define BW_OP_CREAT 4
#define BW_OP_CHMOD 10
#define BW_OP_FCHMOD 11
#define BW_OP_FCHMODAT 12
#define BW_OP_CHOWN 20
#define BW_OP_FCHOWN 21
#define BW_OP_LCHOWN 22
#define BW_OP_FCHOWNAT 23
#define BW_OP_UNLINK 30
#define BW_OP_UNLINKAT 31
#define BW_OP_RENAME 40
#define BW_OP_RENAMEAT 41
#define BW_OP_RENAMEAT2 42
#define BW_OP_LINK 50
#define BW_OP_LINKAT 51
#define BW_OP_SYMLINK 60
#define BW_OP_SYMLINKAT 61
#define BW_OP_ACCEPT 70
#define BW_OP_ACCEPT4 71
#define BW_OP_SETUID 80
#define BW_OP_SETGID 81
#define BW_OP_SETREUID 82
#define BW_OP_SETREGID 83
#define BW_OP_SETRESUID 84
#define BW_OP_SETRESGID 85
#define BW_OP_SETFSUID 86
#define BW_OP_SETFSGID 87
#define BW_OP_INIT_MODULE 90
#define BW_OP_FINIT_MODULE 91
#define BW_OP_DELETE_MODULE 92
#define BW_OP_KEXEC_LOAD 93
#define BW_OP_KEXEC_FILE_LOAD 94

/* bw_event_header.flags */
#define BW_F_HOST (1u << 0)          /* cgroup classified as host (passed by host_kind_mask) */
#define BW_F_CGROUP_UNKNOWN (1u << 1) /* cgroup not yet classified by userspace */
#define BW_F_NO_RET (1u << 2)        /* emitted at syscall entry: ret is not known */
#define BW_F_TRUNC_STR0 (1u << 3)    /* str0 / filename filled its buffer */
#define BW_F_TRUNC_STR1 (1u << 4)    /* str1 / argv filled its buffer */
#define BW_F_FAULT_STR0 (1u << 5)    /* reading str0 from user memory failed */
#define BW_F_FAULT_STR1 (1u << 6)

/* Values of the cgroup_filter map (key: __u64 cgroup v2 id). Absent means
 * "not classified yet": events pass with BW_F_CGROUP_UNKNOWN. */
#define BW_CG_CONTAINER 1
#define BW_CG_HOST 2

/* Indexes of the per-CPU drop counter array `drops`. */
#define BW_DROP_RINGBUF_FULL 0 /* bpf_ringbuf_reserve failed: event lost */
#define BW_DROP_INFLIGHT_FULL 1 /* syscall-entry state map full: event lost */
#define BW_DROP_MAX 2

/* Common header of every ring-buffer record (104 bytes). */
struct bw_event_header {
	__u32 kind;       /* BW_EV_* */
	__u32 flags;      /* BW_F_* */
	__u64 ktime_ns;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u32 tgid;       /* process id, host pid namespace */
	__u32 tid;        /* thread id, host pid namespace */
	__u32 ppid;       /* real_parent->tgid, host pid namespace */
	__u32 vpid;       /* tgid as seen inside the task's own pid namespace */
	__u32 uid;        /* real uid */
	__u32 gid;        /* real gid */
	__u32 euid;       /* effective uid */
	__u32 egid;       /* effective gid */
	__u64 cgroup_id;  /* cgroup v2 id (inode of the cgroup2 directory) */
	__u64 start_ns;   /* group leader start time (CLOCK_MONOTONIC): with tgid, the process key */
	__u64 cap_eff;    /* effective capabilities */
	__u32 mntns;      /* mount namespace inode */
	__u32 pidns;      /* pid namespace inode (active) */
	__u32 netns;      /* network namespace inode */
	__u32 _pad0;
	char comm[BW_COMM_LEN];
};

/* Every syscall event and the fork/exit/cgroup events (752 bytes). */
struct bw_syscall_event {
	struct bw_event_header hdr;
	__s64 ret;        /* syscall return value (unless BW_F_NO_RET) */
	__u64 args[6];    /* raw syscall arguments (or per-kind values, see kinds) */
	__u32 op;         /* BW_OP_* */
	__u16 str_len[3]; /* bytes used in str0, str1, aux (no NUL) */
	__u16 _pad1;
	char str0[BW_PATH_LEN];
	char str1[BW_PATH_LEN];
	char aux[BW_AUX_LEN];
	__u32 _pad2;
};

/* A successful exec (sched_process_exec), after the new image is in place (1400 bytes). */
struct bw_exec_event {
	struct bw_event_header hdr;
	__u32 filename_len; /* bytes used in filename (no NUL) */
	__u32 argv_len;     /* bytes used in argv: NUL-separated arguments */
	__u32 stdio;        /* file type (S_IFMT >> 12) of fd 0, 1, 2 in bits 0-3, 4-7, 8-11; 0: closed */
	__u32 _pad1;
	char filename[BW_PATH_LEN];
	char argv[BW_ARGV_LEN];
};

/* Entry state of a traced syscall, keyed by tid in map `inflight`. */
struct bw_inflight {
	__u64 args[6];
	__u32 kind;
	__u32 op;
	__u32 flags; /* BW_F_* classification decided at entry */
	__u32 _pad;
};

#ifdef __BPF__
_Static_assert(sizeof(struct bw_event_header) == 104, "bw_event_header size");
_Static_assert(sizeof(struct bw_syscall_event) == 752, "bw_syscall_event size");
_Static_assert(sizeof(struct bw_exec_event) == 1400, "bw_exec_event size");
_Static_assert(__builtin_offsetof(struct bw_event_header, cgroup_id) == 48, "cgroup_id offset");
_Static_assert(__builtin_offsetof(struct bw_event_header, comm) == 88, "comm offset");
_Static_assert(__builtin_offsetof(struct bw_syscall_event, ret) == 104, "ret offset");
_Static_assert(__builtin_offsetof(struct bw_syscall_event, op) == 160, "op offset");
_Static_assert(__builtin_offsetof(struct bw_syscall_event, str0) == 172, "str0 offset");
_Static_assert(__builtin_offsetof(struct bw_exec_event, filename) == 120, "filename offset");
_Static_assert(BW_EV_MAX < 64, "kinds must fit a __u64 mask");
#endif

#endif /* BOXWATCH_ABI_H */
