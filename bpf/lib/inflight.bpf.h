/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * inflight.bpf.h - the slot where a syscall's entry half leaves its state for
 * the exit half: task storage (`inflight_ts`, 5.11+) or a hash by tid
 * (`inflight`), chosen by userspace before load (`use_task_storage`; the map
 * not used is not created).
 */
#ifndef __BW_INFLIGHT_BPF_H
#define __BW_INFLIGHT_BPF_H

#include "common.bpf.h"

/* 1: syscall entry state in task storage (inflight_ts); 0: in the inflight
 * hash (kernels without task storage). The map not used is not created:
 * libbpf poisons its references, which sit in code the verifier removes as
 * dead on this constant. */
const volatile __u32 use_task_storage = 0;

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

#endif /* __BW_INFLIGHT_BPF_H */
