/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common.bpf.h - what every boxwatch BPF object includes: the kernel types
 * (vmlinux.h), libbpf's helpers, the kernel -> user ABI (boxwatch_abi.h), the
 * version shims (compat.bpf.h), and the per-CPU counters of emitted records
 * and lost events (`drops`, by BW_DROP_* cause) with count().
 */
#ifndef __BW_COMMON_BPF_H
#define __BW_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "boxwatch_abi.h"
#include "compat.bpf.h"

/* Load-time knobs are `const volatile` rodata, set by userspace before load;
 * each header declares its own. The record layout version: */
const volatile __u32 abi_version = BW_ABI_VERSION;

/* Records emitted (by kind) and events lost (by BW_DROP_* cause), per CPU. */
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

static __always_inline void count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		*v += 1;
}

#endif /* __BW_COMMON_BPF_H */
