/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * strings.bpf.h - user memory into a syscall record: NUL-terminated strings
 * (paths) into str0/str1 and socket addresses into str0, with the truncation
 * and fault flags set.
 */
#ifndef __BW_STRINGS_BPF_H
#define __BW_STRINGS_BPF_H

#include "common.bpf.h"

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

#endif /* __BW_STRINGS_BPF_H */
