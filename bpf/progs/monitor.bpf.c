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
#include "common.bpf.h"
#include "task.bpf.h"
#include "filter.bpf.h"
#include "event.bpf.h"
#include "inflight.bpf.h"
#include "strings.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Keep the ABI types in BTF so the generated Rust types can be checked
 * against the hand-written mirror (crates/boxwatch-bpf/src/abi_check.rs). */
struct bw_event_header _bw_event_header = {};
struct bw_syscall_event _bw_syscall_event = {};
struct bw_exec_event _bw_exec_event = {};
struct bw_inflight _bw_inflight = {};

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

/* Copies only the `nargs` arguments the syscall has: reading past the end
 * of the tracepoint record makes the attach fail with EACCES
 * (max_ctx_offset > record size). `nargs` is a constant at every call.
 * Every field of the slot is written: a task-storage slot is reused. */
static __always_inline int sys_enter(struct syscall_trace_enter *ctx, __u32 kind, __u32 op,
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
int enter_setns(struct syscall_trace_enter *ctx)
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

static __always_inline int sys_exit(struct syscall_trace_exit *ctx)
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
	int enter_##name(struct syscall_trace_enter *ctx)                     \
	{                                                                     \
		return sys_enter(ctx, kind, op, nargs);                       \
	}                                                                     \
	SEC("tp/syscalls/sys_exit_" #name)                                    \
	int exit_##name(struct syscall_trace_exit *ctx)                       \
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
int exit_setns(struct syscall_trace_exit *ctx)
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
