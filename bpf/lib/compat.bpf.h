/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * compat.bpf.h - reads of kernel structures whose layout changed between
 * Linux 5.8 (boxwatch's floor) and today, made version-tolerant with CO-RE.
 *
 * Each shim names the kernel change that forced it. The layout not present
 * on the running kernel is handled by a branch on a CO-RE constant
 * (bpf_core_field_exists / bpf_core_field_size): libbpf resolves it at load
 * time, poisons the relocations of the other branch, and the verifier drops
 * that branch as dead code, so the hot path pays nothing on any kernel.
 *
 * Audit of every kernel structure boxwatch reads (bpf/progs/), 5.8 -> 6.18:
 *   task_struct: tgid, pid, comm, real_parent, group_leader, start_time,
 *     exit_code, cred, nsproxy, mm, files, thread_pid, cgroups   stable
 *   task_struct.state -> __state (2f064a59a11f "sched: Change
 *     task_struct::state", 5.14)                                 not read
 *   task_struct.bpf_storage (5.11, with task storage)            bpf_core_field_exists
 *   cred.{uid,gid,euid,egid}.val                                 stable
 *   cred.cap_effective: u32 cap[2] -> u64 val (6.3)              bw_cred_cap_effective()
 *   pid.numbers: upid[1] -> flexible upid[]                      bw_pid_upid()
 *   css_set.dfl_cgrp, cgroup.kn, kernfs_node.id (u64 since
 *     5.5, 67c0496e87d1 "kernfs: convert kernfs_node->id from
 *     union kernfs_node_id to u64")                              stable from 5.8
 *   nsproxy.{mnt_ns,net_ns}->ns.inum                             stable
 *   mm_struct.arg_start/arg_end                                  stable
 *   files_struct.fdt->{fd,max_fds}, file.f_inode->{i_ino,i_mode} stable
 *   tracepoint records: sched_process_exec (__data_loc filename),
 *     cgroup_mkdir/rmdir (root, level, u64 id, __data_loc path)  TRACE_EVENT: the BTF
 *     type is the record, CO-RE follows any change
 *   syscalls/sys_{enter,exit}_* records: struct syscall_trace_enter
 *     { ent; int nr; args[] } / syscall_trace_exit { ent; int nr; long ret }.
 *     NOT trace_event_raw_sys_enter/exit (raw_syscalls' records, with a
 *     `long id`): their args/ret offsets equal the real ones only while
 *     struct trace_entry is 8 bytes. PREEMPT_RT kernels add
 *     trace_entry.preempt_lazy_count (Debian's 6.1-rt): 12 bytes, args at 16
 *     in the record but at 24 in trace_event_raw_sys_enter, so every syscall
 *     program read the wrong argument and failed to attach (reads past the
 *     record). Found by the kernel matrix.
 */
#ifndef __BW_COMPAT_BPF_H
#define __BW_COMPAT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * Effective capabilities. Before 6.3, kernel_cap_t was
 * `struct kernel_cap_struct { __u32 cap[2]; }`; f122a08b197d ("capability:
 * just use a 'u64' instead of a 'u32[2]' array", 6.3) made it
 * `struct { u64 val; }`. A CO-RE read of `val` fails to relocate on older
 * kernels and, as every program fills the event header, took every hook
 * down (issue #10, Debian 12's 6.1).
 */
struct kernel_cap_struct___pre63 {
	__u32 cap[2];
} __attribute__((preserve_access_index));

struct cred___pre63 {
	struct kernel_cap_struct___pre63 cap_effective;
} __attribute__((preserve_access_index));

static __always_inline __u64 bw_cred_cap_effective(const struct cred *cred)
{
	const struct cred___pre63 *old = (const void *)cred;

	if (bpf_core_field_exists(old->cap_effective.cap))
		return (__u64)old->cap_effective.cap[0] | ((__u64)old->cap_effective.cap[1] << 32);
	return cred->cap_effective.val;
}

/*
 * struct pid ends in the task's pid numbers, one per pid-namespace level. It
 * was declared `struct upid numbers[1]` and is a flexible array `numbers[]`
 * in newer kernels (the one-element-array cleanups; Debian's 6.1 BTF already
 * has the flexible form). CO-RE refuses an index past a fixed array's length,
 * and the verifier refuses a direct load past the end of a struct whose last
 * array is not flexible, so on the old layout levels above 0 are read with
 * bpf_probe_read_kernel at the relocated offset.
 *
 * Returns the level's nr and its namespace's inode. `level` is the task's
 * own level (thread_pid->level). The verifier refuses a variable index into a
 * BTF pointer, so the usual levels (host, one or two nested namespaces) are
 * constant indexes, deeper ones a probe read.
 */
static __always_inline void bw_pid_upid(struct pid *tp, unsigned int level, __u32 *nr,
					__u32 *ns_inum)
{
	struct pid_namespace *pns;
	struct upid up = {};
	__u32 n;

	if (level == 0) {
		n = tp->numbers[0].nr;
		pns = tp->numbers[0].ns;
	} else if (bpf_core_field_size(tp->numbers) == 0 && level == 1) {
		n = tp->numbers[1].nr;
		pns = tp->numbers[1].ns;
	} else if (bpf_core_field_size(tp->numbers) == 0 && level == 2) {
		n = tp->numbers[2].nr;
		pns = tp->numbers[2].ns;
	} else {
		bpf_probe_read_kernel(&up, sizeof(up),
				      (void *)tp + bpf_core_field_offset(tp->numbers) +
					      (level & 31) * sizeof(struct upid));
		*nr = up.nr;
		*ns_inum = up.ns ? BPF_CORE_READ(up.ns, ns.inum) : 0;
		return;
	}
	/* The barriers keep clang from merging the branches' loads into one
	 * load from a computed address, which the verifier would refuse. */
	barrier_var(n);
	barrier_var(pns);
	*nr = n;
	*ns_inum = pns ? pns->ns.inum : 0;
}

#endif /* __BW_COMPAT_BPF_H */
