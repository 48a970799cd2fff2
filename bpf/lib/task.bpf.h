/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * task.bpf.h - reads of the current task: its cgroup v2 id, the files behind
 * its descriptors (setns targets, stdio types). Version-dependent reads
 * (capabilities, pid numbers) are in compat.bpf.h.
 */
#ifndef __BW_TASK_BPF_H
#define __BW_TASK_BPF_H

#include "common.bpf.h"

/* cgroup v2 id of the current task `t`: what bpf_get_current_cgroup_id()
 * returns (task_dfl_cgroup(t)->kn->id), read with direct BTF loads, without
 * the helper call and its RCU calls (tracepoint programs run under RCU). */
static __always_inline __u64 task_cgid(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
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

#endif /* __BW_TASK_BPF_H */
