// SPDX-License-Identifier: GPL-2.0-only
/*
 * monitor.bpf.c - boxwatch's kernel side: process lifecycle, exec, file,
 * network, privilege and namespace syscalls, cgroup lifecycle.
 *
 * Data path: a hook decides in-kernel whether the current task is traced
 * (should_trace: own tgid excluded, cgroup_filter map, host_kind_mask),
 * then fills one fixed-size record in the ring buffer `rb`. Syscalls are
 * split in two halves: sys_enter stores the arguments in the task's slot
 * (task storage `inflight_ts`, or the `inflight` hash keyed by tid where
 * task storage is missing) and sys_exit reads user strings and the return
 * value (strings are read at exit because the pages may not be faulted in
 * at entry). Wake-ups are batched with a time bound (see submit()). Every
 * lost event is counted in `drops` by cause.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "boxwatch_abi.h"
#include "compat.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Load-time knobs, set by userspace before load (rodata). */
const volatile __u32 abi_version = BW_ABI_VERSION;
const volatile __u32 self_tgid = 0;
const volatile __u32 filter_cgroups = 1;    /* 0: trace every task */
const volatile __u64 host_kind_mask = 0;    /* kinds that still pass for host cgroups */
const volatile __u64 urgent_kind_mask = 0;  /* kinds that wake the consumer at once */
const volatile __u64 wakeup_bytes = 256 * 1024;
const volatile __u64 wakeup_interval_ns = 200000; /* 0: no time bound */
/* 1: syscall entry state in task storage (inflight_ts); 0: in the inflight
 * hash (kernels without task storage). The map not used is not created:
 * libbpf poisons its references, which sit in code the verifier removes as
 * dead on this constant. */
const volatile __u32 use_task_storage = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024); /* default; userspace sets the size */
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* Entry state of one in-flight syscall; in.kind == 0: no syscall in flight. */
struct inflight_slot {
	struct bw_inflight in;
	__u64 cgid; /* cgroup at entry, reused by the exit half */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight_slot);
} inflight_ts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct inflight_slot);
} inflight SEC(".maps");

/* Per-CPU cache of cgroup_filter answers, indexed by the low bits of the
 * cgroup id: a hit costs an array access instead of a hash lookup. An entry
 * is valid while filter_gen, which userspace bumps after every change to
 * cgroup_filter, is the one it was filled at. */
#define FILTER_CACHE_SLOTS 16
struct filter_cache_entry {
	__u64 cgid;
	__u64 gen;
	__u64 cls; /* 0x100 | cgroup_filter value, 0 when absent */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FILTER_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct filter_cache_entry);
} filter_cache SEC(".maps");

/* Generation of cgroup_filter, written by userspace (its own data section,
 * so an update of it writes nothing else). */
__u64 filter_gen SEC(".data.filter_gen") = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_EV_MAX);
	__type(key, __u32);
	__type(value, __u64);
} emitted SEC(".maps");

/* Keep the ABI types in BTF so the generated Rust types can be checked
 * against the hand-written mirror (crates/boxwatch-bpf/src/abi_check.rs). */
struct bw_event_header _bw_event_header = {};
struct bw_syscall_event _bw_syscall_event = {};
struct bw_exec_event _bw_exec_event = {};
struct bw_inflight _bw_inflight = {};

static __always_inline void count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		*v += 1;
}

/* cgroup v2 id of the current task `t`: what bpf_get_current_cgroup_id()
 * returns (task_dfl_cgroup(t)->kn->id), read with direct BTF loads, without
 * the helper call and its RCU calls (tracepoint programs run under RCU). */
static __always_inline __u64 task_cgid(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

/* 0x100 | cgroup_filter's value for `cgid` (0 when absent), through the cache. The
 * generation is read before the map, so an answer cached across an update
 * carries the old generation and is not used again. */
static __always_inline __u64 filter_class(__u64 cgid)
{
	__u32 slot = cgid & (FILTER_CACHE_SLOTS - 1);
	struct filter_cache_entry *c = bpf_map_lookup_elem(&filter_cache, &slot);
	__u64 gen = filter_gen;
	__u8 *cls;
	__u64 v;

	if (c && c->cgid == cgid && c->gen == gen)
		return c->cls;
	cls = bpf_map_lookup_elem(&cgroup_filter, &cgid);
	v = cls ? 0x100 | *cls : 0;
	if (c) {
		c->cgid = cgid;
		c->gen = gen;
		c->cls = v;
	}
	return v;
}

/* Decide whether the current task's (tgid) events of `kind` are traced;
 * returns the BW_F_* classification flags, or -1 to drop. */
static __always_inline int should_trace(__u32 kind, __u64 cgid, __u32 tgid)
{
	__u64 cls;

	if (tgid == self_tgid)
		return -1;
	if (!filter_cgroups)
		return 0;
	cls = filter_class(cgid);
	if (!cls)
		return BW_F_CGROUP_UNKNOWN;
	if ((cls & 0xff) == BW_CG_CONTAINER)
		return 0;
	if (host_kind_mask & (1ULL << (kind & 63)))
		return BW_F_HOST;
	return -1;
}

static __always_inline void fill_header(struct bw_event_header *h, struct task_struct *t,
					__u32 kind, __u32 flags, __u64 cgid)
{
	const struct cred *cred = t->cred;
	const __u64 *comm = (const __u64 *)t->comm;
	__u64 *hcomm = (__u64 *)h->comm;

	h->kind = kind;
	h->flags = flags;
	h->ktime_ns = bpf_ktime_get_ns();
	h->tgid = t->tgid;
	h->tid = t->pid;
	h->ppid = t->real_parent->tgid;
	h->uid = cred->uid.val;
	h->gid = cred->gid.val;
	h->euid = cred->euid.val;
	h->egid = cred->egid.val;
	h->cgroup_id = cgid;
	h->start_ns = t->group_leader->start_time;
	h->cap_eff = bw_cred_cap_effective(cred);
	h->mntns = t->nsproxy->mnt_ns->ns.inum;
	h->netns = t->nsproxy->net_ns->ns.inum;
	bw_pid_upid(t->thread_pid, t->thread_pid->level, &h->vpid, &h->pidns);
	h->_pad0 = 0;
	/* What bpf_get_current_comm() copies, without the helper call: comm is
	 * NUL-padded (set with strscpy_pad; a few kernels before 6.x left old
	 * bytes after the NUL, which readers ignore). */
	hcomm[0] = comm[0];
	hcomm[1] = comm[1];
}

/* Ring-buffer fill and its high-water mark, read by userspace for metrics
 * (gauges, racy across CPUs by design). The fill is rewritten only when it
 * moved by more than GAUGE_SLACK: a store on every submit would bounce the
 * cache line between the CPUs that submit. */
__u64 ringbuf_queued = 0;
__u64 ringbuf_queued_max = 0;
#define GAUGE_SLACK 8192

/* When a record last forced a wake-up (racy across CPUs by design). */
__u64 last_wakeup_ns = 0;

/* What the ring-buffer reader is doing (RingReader::poll writes it through
 * the mmap; own section: nothing else shares its page). */
#define READER_RUNNING 0 /* draining, or napping on its own timer: it comes back by itself */
#define READER_PARKED 1  /* asleep in epoll_wait after a drain that found nothing */
/* Starts parked: with no reader yet, records wake as if one slept. */
__u32 reader_state SEC(".data.consumer") = READER_PARKED;

/* Submit with batched wake-ups. A wake-up costs the traced task a self-IPI
 * and the reader's wake (~8 us in the test VM), so records wake only a
 * parked reader; urgent kinds wake it at once. With a time bound
 * (wakeup_interval_ns), a parked reader is woken when the last forced
 * wake-up is older than the interval (a quarter of it once wakeup_bytes are
 * queued): an isolated record is delivered at once. A reader that found
 * records naps on its own timer (RingReader), so a busy ring is read about
 * every interval without wake-ups. Without a time bound, a parked reader is
 * woken once wakeup_bytes are queued and its poll timeout bounds latency.
 * Per-event wake-ups cost ~3x (design/ebpf-toolchain.md). `now` is the
 * record's ktime_ns. */
static __always_inline void submit(void *rec, __u32 kind, __u64 now)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 queued = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
	/* Signed: another CPU may have stored a slightly later time. */
	__s64 since = now - last_wakeup_ns;

	if (queued - ringbuf_queued + GAUGE_SLACK > 2 * GAUGE_SLACK)
		ringbuf_queued = queued;
	if (queued > ringbuf_queued_max)
		ringbuf_queued_max = queued;
	if (urgent_kind_mask & (1ULL << (kind & 63))) {
		flags = BPF_RB_FORCE_WAKEUP;
	} else if (reader_state == READER_RUNNING) {
		/* it comes back by itself */
	} else if (queued >= wakeup_bytes) {
		if (since >= (__s64)(wakeup_interval_ns / 4))
			flags = BPF_RB_FORCE_WAKEUP;
	} else if (wakeup_interval_ns && since >= (__s64)wakeup_interval_ns) {
		flags = BPF_RB_FORCE_WAKEUP;
	}
	if (flags == BPF_RB_FORCE_WAKEUP)
		last_wakeup_ns = now;
	bpf_ringbuf_submit(rec, flags);
	count(&emitted, kind);
}

static __always_inline struct bw_syscall_event *reserve_syscall(struct task_struct *t, __u32 kind,
								  __u32 flags, __u64 cgid)
{
	struct bw_syscall_event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);

	if (!e) {
		count(&drops, BW_DROP_RINGBUF_FULL);
		return NULL;
	}
	fill_header(&e->hdr, t, kind, flags, cgid);
	e->ret = 0;
	e->op = BW_OP_NONE;
	e->str_len[0] = 0;
	e->str_len[1] = 0;
	e->str_len[2] = 0;
	e->_pad1 = 0;
	e->_pad2 = 0;
	e->str0[0] = 0;
	e->str1[0] = 0;
	e->aux[0] = 0;
	for (int i = 0; i < 6; i++)
		e->args[i] = 0;
	return e;
}

/* The file behind a descriptor of the current task, or NULL. */
static __always_inline struct file *fd_file(int fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(t, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(t, files, fdt, max_fds);
	struct file *f = NULL;

	if (fd < 0 || (unsigned int)fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd & 0xFFFF]);
	return f;
}

/* ns inode behind a file descriptor (setns). */
static __always_inline __u64 fd_inode(int fd)
{
	struct file *f = fd_file(fd);

	return f ? BPF_CORE_READ(f, f_inode, i_ino) : 0;
}

/* File type (S_IFMT >> 12) of fd 0, 1 and 2: a shell whose stdio is a socket
 * is a reverse shell. */
static __always_inline __u32 stdio_types(void)
{
	__u32 out = 0;

	for (int i = 0; i < 3; i++) {
		struct file *f = fd_file(i);

		if (f)
			out |= ((BPF_CORE_READ(f, f_inode, i_mode) >> 12) & 0xF) << (4 * i);
	}
	return out;
}

/* ---- process lifecycle ------------------------------------------------ */

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u64 cgid = task_cgid(t);
	int cls = should_trace(BW_EV_EXEC, cgid, t->tgid);
	struct bw_exec_event *e;
	unsigned long start, end, len;
	long n;

	if (cls < 0)
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e) {
		count(&drops, BW_DROP_RINGBUF_FULL);
		return 0;
	}
	fill_header(&e->hdr, t, BW_EV_EXEC, cls, cgid);
	e->stdio = stdio_types();
	e->_pad1 = 0;
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				      (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	e->filename_len = n > 0 ? n - 1 : 0;
	if (n >= (long)sizeof(e->filename))
		e->hdr.flags |= BW_F_TRUNC_STR0;

	start = t->mm->arg_start;
	end = t->mm->arg_end;
	len = end - start;
	if (len > sizeof(e->argv)) {
		len = sizeof(e->argv);
		e->hdr.flags |= BW_F_TRUNC_STR1;
	}
	e->argv_len = 0;
	if (len > 0 && bpf_probe_read_user(e->argv, len & (BW_ARGV_LEN - 1 + BW_ARGV_LEN),
					   (void *)start) == 0)
		e->argv_len = len;
	else if (len > 0)
		e->hdr.flags |= BW_F_FAULT_STR1;
	submit(e, BW_EV_EXEC, e->hdr.ktime_ns);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct bw_syscall_event *e;
	__u64 cgid;
	int cls;

	if (child->pid != child->tgid) /* a new thread, not a new process */
		return 0;
	cgid = task_cgid(t);
	cls = should_trace(BW_EV_FORK, cgid, t->tgid);
	if (cls < 0)
		return 0;
	e = reserve_syscall(t, BW_EV_FORK, cls, cgid);
	if (!e)
		return 0;
	e->args[0] = child->tgid;
	e->args[1] = child->start_time;
	submit(e, BW_EV_FORK, e->hdr.ktime_ns);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct bw_syscall_event *e;
	__u64 cgid;
	int cls;

	if (t->pid != t->tgid) /* thread exit: the process lives on */
		return 0;
	cgid = task_cgid(t);
	cls = should_trace(BW_EV_EXIT, cgid, t->tgid);
	if (cls < 0)
		return 0;
	e = reserve_syscall(t, BW_EV_EXIT, cls, cgid);
	if (!e)
		return 0;
	e->args[0] = (__u32)t->exit_code;
	submit(e, BW_EV_EXIT, e->hdr.ktime_ns);
	return 0;
}

/* ---- cgroup lifecycle (cgroup v2 hierarchy only: root id 0) ----------- */

static __always_inline int cgroup_event(struct trace_event_raw_cgroup *ctx, __u32 kind)
{
	struct task_struct *t;
	struct bw_syscall_event *e;
	long n;

	if (ctx->root != 0)
		return 0;
	t = bpf_get_current_task_btf();
	e = reserve_syscall(t, kind, 0, task_cgid(t));
	if (!e)
		return 0;
	e->args[0] = ctx->id;
	e->args[1] = ctx->level;
	n = bpf_probe_read_kernel_str(e->str0, sizeof(e->str0),
				      (void *)ctx + (ctx->__data_loc_path & 0xFFFF));
	e->str_len[0] = n > 0 ? n - 1 : 0;
	if (n >= (long)sizeof(e->str0))
		e->hdr.flags |= BW_F_TRUNC_STR0;
	/* Lifecycle events always wake the consumer: it classifies the cgroup. */
	last_wakeup_ns = e->hdr.ktime_ns;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	count(&emitted, kind);
	return 0;
}

SEC("tp/cgroup/cgroup_mkdir")
int handle_cgroup_mkdir(struct trace_event_raw_cgroup *ctx)
{
	return cgroup_event(ctx, BW_EV_CGROUP_MKDIR);
}

SEC("tp/cgroup/cgroup_rmdir")
int handle_cgroup_rmdir(struct trace_event_raw_cgroup *ctx)
{
	return cgroup_event(ctx, BW_EV_CGROUP_RMDIR);
}

/* ---- syscalls: entry half ---------------------------------------------- */

/* The slot that receives a syscall's entry state: the task's own slot in
 * task storage (created on first use), or `tmp` for the hash, which
 * commit_slot() then inserts. NULL (counted) if no slot can be had. */
static __always_inline struct inflight_slot *slot_for_entry(struct task_struct *t,
								    struct inflight_slot *tmp)
{
	struct inflight_slot *s = tmp;

	if (use_task_storage) {
		s = bpf_task_storage_get(&inflight_ts, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!s)
			count(&drops, BW_DROP_INFLIGHT_FULL);
	}
	return s;
}

static __always_inline int commit_slot(struct task_struct *t, struct inflight_slot *s)
{
	__u32 tid;

	if (use_task_storage)
		return 0;
	tid = t->pid;
	if (bpf_map_update_elem(&inflight, &tid, s, BPF_ANY))
		count(&drops, BW_DROP_INFLIGHT_FULL);
	return 0;
}

/* Copies only the `nargs` arguments the syscall has: reading past the end
 * of the tracepoint record makes the attach fail with EACCES
 * (max_ctx_offset > record size). `nargs` is a constant at every call.
 * Every field of the slot is written: a task-storage slot is reused. */
static __always_inline int sys_enter(struct trace_event_raw_sys_enter *ctx, __u32 kind, __u32 op,
				     const int nargs)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct inflight_slot tmp;
	struct inflight_slot *s;
	__u64 cgid = task_cgid(t);
	int cls = should_trace(kind, cgid, t->tgid);

	if (cls < 0)
		return 0;
	s = slot_for_entry(t, &tmp);
	if (!s)
		return 0;
	s->in.flags = cls;
	s->in.kind = kind;
	s->in.op = op;
	s->in._pad = 0;
	s->cgid = cgid;
	/* No loop: the verifier refuses a modified ctx pointer. */
	s->in.args[0] = ctx->args[0];
	s->in.args[1] = nargs > 1 ? ctx->args[1] : 0;
	s->in.args[2] = nargs > 2 ? ctx->args[2] : 0;
	s->in.args[3] = nargs > 3 ? ctx->args[3] : 0;
	s->in.args[4] = nargs > 4 ? ctx->args[4] : 0;
	s->in.args[5] = nargs > 5 ? ctx->args[5] : 0;
	return commit_slot(t, s);
}

SEC("tp/syscalls/sys_enter_setns")
int enter_setns(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct inflight_slot tmp;
	struct inflight_slot *s;
	__u64 cgid = task_cgid(t);
	int cls = should_trace(BW_EV_SETNS, cgid, t->tgid);

	if (cls < 0)
		return 0;
	s = slot_for_entry(t, &tmp);
	if (!s)
		return 0;
	s->in.flags = cls;
	s->in.kind = BW_EV_SETNS;
	s->in.op = BW_OP_NONE;
	s->in._pad = 0;
	s->cgid = cgid;
	s->in.args[0] = ctx->args[0];
	s->in.args[1] = ctx->args[1];
	s->in.args[2] = fd_inode((int)ctx->args[0]);
	s->in.args[3] = 0;
	s->in.args[4] = 0;
	s->in.args[5] = 0;
	return commit_slot(t, s);
}

/* ---- syscalls: exit half ----------------------------------------------- */

/* Which argument holds a user string or sockaddr, per (kind, op). */
#define NO_ARG 0xff

struct strspec {
	__u8 s0, s1, aux;
	__u8 sockaddr; /* s0 is a sockaddr of length args[sockaddr] (or *ptr for accept) */
};

static __always_inline struct strspec spec_for(__u32 kind, __u32 op)
{
	struct strspec s = { NO_ARG, NO_ARG, NO_ARG, NO_ARG };

	switch (kind) {
	case BW_EV_OPEN: s.s0 = (op == BW_OP_OPEN || op == BW_OP_CREAT) ? 0 : 1; break;
	case BW_EV_CHMOD:
	case BW_EV_CHOWN:
		if (op == BW_OP_CHMOD || op == BW_OP_CHOWN || op == BW_OP_LCHOWN)
			s.s0 = 0;
		else if (op == BW_OP_FCHMODAT || op == BW_OP_FCHOWNAT)
			s.s0 = 1;
		break;
	case BW_EV_UNLINK: s.s0 = op == BW_OP_UNLINK ? 0 : 1; break;
	case BW_EV_RENAME:
	case BW_EV_LINK:
		if (op == BW_OP_RENAME || op == BW_OP_LINK) {
			s.s0 = 0;
			s.s1 = 1;
		} else {
			s.s0 = 1;
			s.s1 = 3;
		}
		break;
	case BW_EV_SYMLINK:
		s.s0 = 0;
		s.s1 = op == BW_OP_SYMLINK ? 1 : 2;
		break;
	case BW_EV_MEMFD: s.s0 = 0; break;
	case BW_EV_MOUNT: s.s0 = 0; s.s1 = 1; s.aux = 2; break;
	case BW_EV_UMOUNT: s.s0 = 0; break;
	case BW_EV_CONNECT:
	case BW_EV_BIND: s.s0 = 1; s.sockaddr = 2; break;
	case BW_EV_SENDTO: s.s0 = 4; s.sockaddr = 5; break;
	case BW_EV_ACCEPT: s.s0 = 1; s.sockaddr = 2; break;
	case BW_EV_MODULE:
		if (op == BW_OP_FINIT_MODULE)
			s.s0 = 1;
		else if (op == BW_OP_INIT_MODULE)
			s.s0 = 2;
		else if (op == BW_OP_DELETE_MODULE)
			s.s0 = 0;
		break;
	}
	return s;
}

static __always_inline void read_str(struct bw_syscall_event *e, int slot, __u64 uptr)
{
	char *dst = slot == 0 ? e->str0 : e->str1;
	long n;

	if (!uptr)
		return;
	n = bpf_probe_read_user_str(dst, BW_PATH_LEN, (void *)uptr);
	if (n < 0) {
		e->hdr.flags |= slot == 0 ? BW_F_FAULT_STR0 : BW_F_FAULT_STR1;
		return;
	}
	e->str_len[slot] = n > 0 ? n - 1 : 0;
	if (n >= BW_PATH_LEN)
		e->hdr.flags |= slot == 0 ? BW_F_TRUNC_STR0 : BW_F_TRUNC_STR1;
}

static __always_inline void read_sockaddr(struct bw_syscall_event *e, __u64 uptr, __u64 len,
					  bool len_is_ptr)
{
	__u32 n = 0;

	if (!uptr)
		return;
	if (len_is_ptr) {
		if (!len || bpf_probe_read_user(&n, sizeof(n), (void *)len))
			return;
	} else {
		n = (__u32)len;
	}
	{
		/* sockaddr_un is the largest we decode (110 bytes). The barrier keeps
		 * clang from dropping the mask the verifier needs as a bound. */
		__u64 sz = n > 127 ? 127 : n;

		barrier_var(sz);
		sz &= 0x7f;
		if (sz == 0)
			return;
		if (bpf_probe_read_user(e->str0, sz, (void *)uptr)) {
			e->hdr.flags |= BW_F_FAULT_STR0;
			return;
		}
		e->str_len[0] = sz;
	}
}

/* args[i] with a constant-folded switch: a computed index into a map value
 * is refused by the verifier. */
static __always_inline __u64 arg_at(const struct bw_inflight *in, __u8 i)
{
	switch (i) {
	case 0: return in->args[0];
	case 1: return in->args[1];
	case 2: return in->args[2];
	case 3: return in->args[3];
	case 4: return in->args[4];
	case 5: return in->args[5];
	default: return 0;
	}
}

static __always_inline void decorate(struct bw_syscall_event *e, struct bw_inflight *in)
{
	struct strspec s = spec_for(in->kind, in->op);

	if (s.sockaddr != NO_ARG) {
		/* accept: the peer address is written by the kernel, only on success */
		bool is_accept = in->kind == BW_EV_ACCEPT;

		if (!is_accept || e->ret >= 0)
			read_sockaddr(e, arg_at(in, s.s0), arg_at(in, s.sockaddr), is_accept);
	} else if (s.s0 != NO_ARG) {
		read_str(e, 0, arg_at(in, s.s0));
	}
	if (s.s1 != NO_ARG)
		read_str(e, 1, arg_at(in, s.s1));
	if (s.aux != NO_ARG && arg_at(in, s.aux)) {
		long n = bpf_probe_read_user_str(e->aux, sizeof(e->aux), (void *)arg_at(in, s.aux));

		e->str_len[2] = n > 0 ? n - 1 : 0;
	}
	switch (in->kind) {
	case BW_EV_CAPSET:
		/* struct __user_cap_data_struct[2]: effective, permitted, inheritable (u32 each) */
		if (in->args[1] && !bpf_probe_read_user(e->aux, 24, (void *)in->args[1]))
			e->str_len[2] = 24;
		/* struct __user_cap_header_struct { u32 version; int pid; }: target pid (0 = self) */
		if (in->args[0]) {
			__s32 pid = 0;

			bpf_probe_read_user(&pid, sizeof(pid), (void *)(in->args[0] + 4));
			e->args[2] = (__u32)pid;
		}
		break;
	case BW_EV_OPEN:
		if (in->op == BW_OP_OPENAT2 && in->args[2]) {
			/* struct open_how { u64 flags, mode, resolve } */
			__u64 how[2] = {};

			bpf_probe_read_user(how, sizeof(how), (void *)in->args[2]);
			e->args[2] = how[0];
			e->args[3] = how[1];
		}
		break;
	case BW_EV_BPF:
		if (in->args[1]) {
			__u32 first = 0;

			bpf_probe_read_user(&first, sizeof(first), (void *)in->args[1]);
			e->args[3] = first;
		}
		break;
	}
}

/* The current task's in-flight syscall, or NULL. */
static __always_inline struct inflight_slot *slot_for_exit(struct task_struct *t)
{
	struct inflight_slot *s;
	__u32 tid;

	if (use_task_storage) {
		/* A task that never had a syscall traced (a host task) has no
		 * storage at all: skip the helper call. */
		if (bpf_core_field_exists(t->bpf_storage) && !t->bpf_storage)
			return NULL;
		s = bpf_task_storage_get(&inflight_ts, t, 0, 0);
		return s && s->in.kind ? s : NULL;
	}
	tid = t->pid;
	return bpf_map_lookup_elem(&inflight, &tid);
}

/* The exit half is done with the slot: mark it empty (task storage) or delete it. */
static __always_inline void release_slot(struct task_struct *t, struct inflight_slot *s)
{
	__u32 tid;

	if (use_task_storage) {
		s->in.kind = 0;
		return;
	}
	tid = t->pid;
	bpf_map_delete_elem(&inflight, &tid);
}

static __always_inline int sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct inflight_slot *s = slot_for_exit(t);
	struct bw_inflight *in;
	struct bw_syscall_event *e;

	if (!s)
		return 0;
	in = &s->in;
	e = reserve_syscall(t, in->kind, in->flags, s->cgid);
	if (!e) {
		release_slot(t, s);
		return 0;
	}
	e->ret = ctx->ret;
	e->op = in->op;
	e->args[0] = in->args[0];
	e->args[1] = in->args[1];
	e->args[2] = in->args[2];
	e->args[3] = in->args[3];
	e->args[4] = in->args[4];
	e->args[5] = in->args[5];
	decorate(e, in);
	submit(e, in->kind, e->hdr.ktime_ns);
	release_slot(t, s);
	return 0;
}

/* One entry and one exit program per syscall: per-syscall tracepoints cost
 * ~40 ns to every other syscall, raw sys_enter/exit ~140 ns. */
#define SYSCALL(name, kind, op, nargs)                                        \
	SEC("tp/syscalls/sys_enter_" #name)                                   \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)               \
	{                                                                     \
		return sys_enter(ctx, kind, op, nargs);                       \
	}                                                                     \
	SEC("tp/syscalls/sys_exit_" #name)                                    \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                 \
	{                                                                     \
		return sys_exit(ctx);                                         \
	}

SYSCALL(open, BW_EV_OPEN, BW_OP_OPEN, 3)
SYSCALL(creat, BW_EV_OPEN, BW_OP_CREAT, 2)
SYSCALL(openat, BW_EV_OPEN, BW_OP_OPENAT, 4)
SYSCALL(openat2, BW_EV_OPEN, BW_OP_OPENAT2, 4)
SYSCALL(chmod, BW_EV_CHMOD, BW_OP_CHMOD, 2)
SYSCALL(fchmod, BW_EV_CHMOD, BW_OP_FCHMOD, 2)
SYSCALL(fchmodat, BW_EV_CHMOD, BW_OP_FCHMODAT, 3)
SYSCALL(chown, BW_EV_CHOWN, BW_OP_CHOWN, 3)
SYSCALL(fchown, BW_EV_CHOWN, BW_OP_FCHOWN, 3)
SYSCALL(lchown, BW_EV_CHOWN, BW_OP_LCHOWN, 3)
SYSCALL(fchownat, BW_EV_CHOWN, BW_OP_FCHOWNAT, 5)
SYSCALL(unlink, BW_EV_UNLINK, BW_OP_UNLINK, 1)
SYSCALL(unlinkat, BW_EV_UNLINK, BW_OP_UNLINKAT, 3)
SYSCALL(rename, BW_EV_RENAME, BW_OP_RENAME, 2)
SYSCALL(renameat, BW_EV_RENAME, BW_OP_RENAMEAT, 4)
SYSCALL(renameat2, BW_EV_RENAME, BW_OP_RENAMEAT2, 5)
SYSCALL(link, BW_EV_LINK, BW_OP_LINK, 2)
SYSCALL(linkat, BW_EV_LINK, BW_OP_LINKAT, 5)
SYSCALL(symlink, BW_EV_SYMLINK, BW_OP_SYMLINK, 2)
SYSCALL(symlinkat, BW_EV_SYMLINK, BW_OP_SYMLINKAT, 3)
SYSCALL(memfd_create, BW_EV_MEMFD, BW_OP_NONE, 2)
SYSCALL(connect, BW_EV_CONNECT, BW_OP_NONE, 3)
SYSCALL(socket, BW_EV_SOCKET, BW_OP_NONE, 3)
SYSCALL(bind, BW_EV_BIND, BW_OP_NONE, 3)
SYSCALL(listen, BW_EV_LISTEN, BW_OP_NONE, 2)
SYSCALL(accept, BW_EV_ACCEPT, BW_OP_ACCEPT, 3)
SYSCALL(accept4, BW_EV_ACCEPT, BW_OP_ACCEPT4, 4)
SYSCALL(sendto, BW_EV_SENDTO, BW_OP_NONE, 6)
SYSCALL(setuid, BW_EV_SETID, BW_OP_SETUID, 1)
SYSCALL(setgid, BW_EV_SETID, BW_OP_SETGID, 1)
SYSCALL(setreuid, BW_EV_SETID, BW_OP_SETREUID, 2)
SYSCALL(setregid, BW_EV_SETID, BW_OP_SETREGID, 2)
SYSCALL(setresuid, BW_EV_SETID, BW_OP_SETRESUID, 3)
SYSCALL(setresgid, BW_EV_SETID, BW_OP_SETRESGID, 3)
SYSCALL(setfsuid, BW_EV_SETID, BW_OP_SETFSUID, 1)
SYSCALL(setfsgid, BW_EV_SETID, BW_OP_SETFSGID, 1)
SYSCALL(capset, BW_EV_CAPSET, BW_OP_NONE, 2)
SYSCALL(ptrace, BW_EV_PTRACE, BW_OP_NONE, 4)
SYSCALL(mount, BW_EV_MOUNT, BW_OP_NONE, 5)
SYSCALL(umount, BW_EV_UMOUNT, BW_OP_NONE, 2)
SYSCALL(unshare, BW_EV_UNSHARE, BW_OP_NONE, 1)
SYSCALL(bpf, BW_EV_BPF, BW_OP_NONE, 3)
SYSCALL(init_module, BW_EV_MODULE, BW_OP_INIT_MODULE, 3)
SYSCALL(finit_module, BW_EV_MODULE, BW_OP_FINIT_MODULE, 3)
SYSCALL(delete_module, BW_EV_MODULE, BW_OP_DELETE_MODULE, 2)

SEC("tp/syscalls/sys_exit_setns")
int exit_setns(struct trace_event_raw_sys_exit *ctx)
{
	return sys_exit(ctx);
}

/* ---- fallback for syscalls whose tracepoints do not exist -------------- */
/*
 * On kernels without CONFIG_MODULES / CONFIG_KEXEC the init_module,
 * finit_module, delete_module and kexec_* tracepoints are absent, but the
 * syscalls can still be attempted (ENOSYS). raw_tp/sys_enter sees every
 * syscall number; userspace enables this program only when a module/kexec
 * tracepoint is missing, because it runs on every syscall (~+100 ns each on
 * the 6.18 test VM).
 * Emitted at entry: BW_F_NO_RET.
 */
#if defined(__TARGET_ARCH_x86)
#define NR_INIT_MODULE 175
#define NR_DELETE_MODULE 176
#define NR_KEXEC_LOAD 246
#define NR_FINIT_MODULE 313
#define NR_KEXEC_FILE_LOAD 320
#elif defined(__TARGET_ARCH_arm64)
#define NR_INIT_MODULE 105
#define NR_DELETE_MODULE 106
#define NR_KEXEC_LOAD 104
#define NR_FINIT_MODULE 273
#define NR_KEXEC_FILE_LOAD 294
#endif

SEC("raw_tp/sys_enter")
int BPF_PROG(fallback_sys_enter, struct pt_regs *regs, long id)
{
	struct task_struct *t;
	struct bw_syscall_event *e;
	__u32 op;
	__u64 cgid;
	int cls;

	switch (id) {
	case NR_INIT_MODULE: op = BW_OP_INIT_MODULE; break;
	case NR_FINIT_MODULE: op = BW_OP_FINIT_MODULE; break;
	case NR_DELETE_MODULE: op = BW_OP_DELETE_MODULE; break;
	case NR_KEXEC_LOAD: op = BW_OP_KEXEC_LOAD; break;
	case NR_KEXEC_FILE_LOAD: op = BW_OP_KEXEC_FILE_LOAD; break;
	default: return 0;
	}
	t = bpf_get_current_task_btf();
	cgid = task_cgid(t);
	cls = should_trace(BW_EV_MODULE, cgid, t->tgid);
	if (cls < 0)
		return 0;
	e = reserve_syscall(t, BW_EV_MODULE, cls | BW_F_NO_RET, cgid);
	if (!e)
		return 0;
	e->op = op;
	e->args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	e->args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	e->args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	if (op == BW_OP_INIT_MODULE)
		read_str(e, 0, e->args[2]);
	else if (op == BW_OP_FINIT_MODULE)
		read_str(e, 0, e->args[1]);
	else if (op == BW_OP_DELETE_MODULE)
		read_str(e, 0, e->args[0]);
	submit(e, BW_EV_MODULE, e->hdr.ktime_ns);
	return 0;
}
