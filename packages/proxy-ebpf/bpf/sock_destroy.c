// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// worknode socket termination: the socket-LB counterpart of kube-proxy's UDP conntrack cleanup.
//
// sock_lb.c rewrites a connected UDP socket's destination once, at connect(). When that backend
// then leaves the service, the socket would keep talking to it forever (a DNS resolver's connected
// socket to a deleted CoreDNS pod, say). User space (src/proxier.ts) writes the backends that went
// away into wn_gone_backends and reads this iterator once in every network namespace of the node;
// the iterator destroys every connected UDP socket of that namespace whose peer is one of them.
// A destroyed UDP socket is disconnected and its owner gets ECONNABORTED (udp_abort), so a
// resolver reconnects and connect4/6 picks a current backend.
//
// License: bpf_sock_destroy() is a kfunc, and the verifier lets only programs with a
// GPL-compatible license string call kfuncs (bpf_seq_printf() is GPL-only too). This object is
// therefore "Dual MIT/GPL"; the main object, sock_lb.c, uses no GPL-only helper and stays
// Apache-2.0. The two objects share no code, only the layout of struct wn_backend_value.
//
// Needs Linux >= 6.5 (bpf_sock_destroy from iter/udp). Struct access is CO-RE against a vmlinux.h
// generated at build time into dist/bpf (scripts/build-bpf.mjs):
//   bpftool btf dump file /sys/kernel/btf/vmlinux format c > dist/bpf/vmlinux.h

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Values of wn_backend_value.family (not AF_INET / AF_INET6), as in sock_lb.c. */
#define WN_FAMILY_V4 4
#define WN_FAMILY_V6 6

/* Socket families and the connected state of a UDP socket (not in vmlinux.h: they are macros). */
#define WN_AF_INET 2
#define WN_AF_INET6 10
#define WN_TCP_ESTABLISHED 1

/* The same struct as in sock_lb.c and src/maps/layout.ts (see the layout contract there). */
struct wn_backend_value {
	__u8 addr[16]; /* IPv4 in addr[0..3], rest zero */
	__u16 port;    /* network byte order */
	__u8 family;   /* WN_FAMILY_V4 / WN_FAMILY_V6 */
	__u8 pad;
};

_Static_assert(sizeof(struct wn_backend_value) == 20, "wn_backend_value must be 20 bytes");

/* Backends that left their service since the last run. Written and cleared by user space around
 * each run of the iterator; the value is unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct wn_backend_value);
	__type(value, __u8);
	__uint(max_entries, 65536);
} wn_gone_backends SEC(".maps");

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* The peer of a connected socket as a wn_backend_value key; 0 if the socket is not connected or
 * of another family. A v4-mapped peer of an AF_INET6 socket is read as its IPv4 address, the way
 * connect6 in sock_lb.c reads it. */
static __always_inline int wn_peer(struct sock_common *skc, struct wn_backend_value *key)
{
	if (skc->skc_state != WN_TCP_ESTABLISHED || skc->skc_dport == 0)
		return 0;
	key->port = skc->skc_dport;

	if (skc->skc_family == WN_AF_INET) {
		__u32 ip4 = skc->skc_daddr;
		__builtin_memcpy(key->addr, &ip4, 4);
		key->family = WN_FAMILY_V4;
		return 1;
	}
	if (skc->skc_family != WN_AF_INET6)
		return 0;

	__u32 w0 = skc->skc_v6_daddr.in6_u.u6_addr32[0];
	__u32 w1 = skc->skc_v6_daddr.in6_u.u6_addr32[1];
	__u32 w2 = skc->skc_v6_daddr.in6_u.u6_addr32[2];
	__u32 w3 = skc->skc_v6_daddr.in6_u.u6_addr32[3];
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff)) {
		__builtin_memcpy(key->addr, &w3, 4);
		key->family = WN_FAMILY_V4;
		return 1;
	}
	__builtin_memcpy(key->addr, &w0, 4);
	__builtin_memcpy(key->addr + 4, &w1, 4);
	__builtin_memcpy(key->addr + 8, &w2, 4);
	__builtin_memcpy(key->addr + 12, &w3, 4);
	key->family = WN_FAMILY_V6;
	return 1;
}

/* Runs once per UDP socket of the reading process's network namespace. Prints one line per
 * destroyed socket ("destroyed <errno-style result>"), which user space counts. */
SEC("iter/udp")
int wn_iter_udp_destroy(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (struct sock *)ctx->udp_sk;
	struct wn_backend_value key = {};

	if (!sk)
		return 0;
	if (!wn_peer(&sk->__sk_common, &key))
		return 0;
	if (!bpf_map_lookup_elem(&wn_gone_backends, &key))
		return 0;

	int err = bpf_sock_destroy(&sk->__sk_common);
	BPF_SEQ_PRINTF(ctx->meta->seq, "destroyed %d\n", err);
	return 0;
}

char _license[] SEC("license") = "Dual MIT/GPL";
