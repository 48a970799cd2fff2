/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * event.bpf.h - records to userspace: the ring buffer `rb`, the event header
 * every record starts with (fill_header), reserve_syscall(), and submit()
 * with batched, time-bounded wake-ups (the reader's state and the fill
 * gauges live here).
 */
#ifndef __BW_EVENT_BPF_H
#define __BW_EVENT_BPF_H

#include "common.bpf.h"
#include "task.bpf.h"

const volatile __u64 urgent_kind_mask = 0;  /* kinds that wake the consumer at once */
const volatile __u64 wakeup_bytes = 256 * 1024;
const volatile __u64 wakeup_interval_ns = 200000; /* 0: no time bound */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024); /* default; userspace sets the size */
} rb SEC(".maps");

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

#endif /* __BW_EVENT_BPF_H */
