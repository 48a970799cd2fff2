/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * filter.bpf.h - the in-kernel filter: is the current task traced? The
 * `cgroup_filter` map (cgroup id -> BW_CG_CONTAINER / BW_CG_HOST, written by
 * userspace), its per-CPU cache invalidated by `filter_gen`, the daemon's own
 * tgid and the kinds that still pass for host cgroups (rodata knobs).
 */
#ifndef __BW_FILTER_BPF_H
#define __BW_FILTER_BPF_H

#include "common.bpf.h"

const volatile __u32 self_tgid = 0;
const volatile __u32 filter_cgroups = 1;    /* 0: trace every task */
const volatile __u64 host_kind_mask = 0;    /* kinds that still pass for host cgroups */

/* cgroup id -> BW_CG_CONTAINER | BW_CG_HOST, written by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

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

#endif /* __BW_FILTER_BPF_H */
