// SPDX-License-Identifier: Apache-2.0
//
// worknode socket load balancer: the eBPF half of @worknode/proxy-ebpf.
//
// Instead of rewriting packets (iptables DNAT, IPVS), these cgroup socket hooks rewrite the
// *address a socket asks for*: when a process connects (TCP, connected UDP) or sends an
// unconnected UDP datagram to a service frontend (cluster IP, node IP + node port, ...), the
// destination is replaced by one of the service's backends before the kernel ever routes a packet.
// The reverse direction is fixed up at the socket level too: getpeername() and the source address
// of received UDP datagrams show the frontend the application asked for, not the backend.
//
// The map layout below is the binary contract with the TypeScript side of this package (src/),
// which encodes the same structs: do not change a struct or map without changing both sides.
// User space writes wn_services and wn_backends only; wn_affinity and wn_revnat are owned here.
//
// Build: clang -O2 -g -target bpf -I/usr/include/<multiarch> -c sock_lb.c -o sock_lb.o
// (scripts/build-bpf.mjs). Only non-GPL helpers are used, so the Apache-2.0 license string loads.

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif

/* Values of the family field of every key / value below (not AF_INET / AF_INET6). */
#define WN_FAMILY_V4 4
#define WN_FAMILY_V6 6

/* Affinity checks at most this many backend slots when validating a remembered backend. */
#define WN_AFFINITY_SCAN_MAX 256

#define NSEC_PER_SEC 1000000000ULL

/* ------------------------------------------------------------------------------------------ */
/* Map layout (addresses and ports in network byte order, everything else in host order).    */
/* ------------------------------------------------------------------------------------------ */

/* A frontend: the address + port + protocol a client socket asks for. */
struct wn_svc_key {
	__u8 addr[16]; /* IPv4 in addr[0..3], rest zero */
	__u16 port;    /* network byte order */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 family;   /* WN_FAMILY_V4 / WN_FAMILY_V6 */
};

struct wn_svc_value {
	__u32 id;               /* backend set id: backends are wn_backends[{id, 0..count-1}] */
	__u32 count;            /* number of backends; 0 = no endpoints, refuse */
	__u32 affinity_timeout; /* seconds; 0 = no session affinity */
	__u32 flags;            /* reserved, 0 */
};

struct wn_backend_key {
	__u32 id;
	__u32 slot;
};

struct wn_backend_value {
	__u8 addr[16];
	__u16 port; /* network byte order */
	__u8 family;
	__u8 pad;
};

struct wn_affinity_key {
	__u64 netns_cookie; /* the client's network namespace ("client IP" for a socket LB) */
	struct wn_svc_key svc;
	__u32 pad;
};

struct wn_affinity_value {
	struct wn_backend_value backend;
	__u32 pad;
	__u64 last_used_ns; /* bpf_ktime_get_ns() of the last use */
};

struct wn_revnat_key {
	__u64 socket_cookie;
	struct wn_backend_value backend;
	__u32 pad;
};

struct wn_revnat_value {
	struct wn_svc_key service; /* the frontend the socket originally asked for */
};

/* The layout is a binary contract: fail the build rather than drift from it. */
_Static_assert(sizeof(struct wn_svc_key) == 20, "wn_svc_key must be 20 bytes");
_Static_assert(sizeof(struct wn_svc_value) == 16, "wn_svc_value must be 16 bytes");
_Static_assert(sizeof(struct wn_backend_key) == 8, "wn_backend_key must be 8 bytes");
_Static_assert(sizeof(struct wn_backend_value) == 20, "wn_backend_value must be 20 bytes");
_Static_assert(sizeof(struct wn_affinity_key) == 32, "wn_affinity_key must be 32 bytes");
_Static_assert(sizeof(struct wn_affinity_value) == 32, "wn_affinity_value must be 32 bytes");
_Static_assert(sizeof(struct wn_revnat_key) == 32, "wn_revnat_key must be 32 bytes");
_Static_assert(sizeof(struct wn_revnat_value) == 20, "wn_revnat_value must be 20 bytes");

/* The maps. A restarted proxy reuses the maps it pinned (bpftool's "map name ... pinned ..."),
 * which works only while their definitions stay the same: changing a map's type, key, value,
 * max_entries or flags requires bumping MAP_LAYOUT_VERSION in src/maps/layout.ts, so that the
 * new programs get new maps (in maps-v<N>) and the old ones are removed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct wn_svc_key);
	__type(value, struct wn_svc_value);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} wn_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct wn_backend_key);
	__type(value, struct wn_backend_value);
	__uint(max_entries, 2097152);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} wn_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct wn_affinity_key);
	__type(value, struct wn_affinity_value);
	__uint(max_entries, 65536);
} wn_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct wn_revnat_key);
	__type(value, struct wn_revnat_value);
	__uint(max_entries, 262144);
} wn_revnat SEC(".maps");

/* ------------------------------------------------------------------------------------------ */
/* Backend selection, shared by IPv4 and IPv6.                                                */
/* ------------------------------------------------------------------------------------------ */

enum wn_verdict {
	WN_PASS,   /* not a frontend: leave the socket alone */
	WN_SELECT, /* *out holds the chosen backend */
	WN_REFUSE, /* frontend without a usable backend: fail with ECONNREFUSED */
};

static __always_inline int wn_backend_equal(const struct wn_backend_value *a,
					    const struct wn_backend_value *b)
{
	if (a->port != b->port || a->family != b->family)
		return 0;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a->addr[i] != b->addr[i])
			return 0;
	}
	return 1;
}

/* Is *backend still one of the current backends of svc? (Affinity must not pin a client to a
 * backend that left the service; user space gives a changed backend list a new id.) */
static __always_inline int wn_backend_in_service(const struct wn_svc_value *svc,
						 const struct wn_backend_value *backend)
{
	struct wn_backend_key bkey = { .id = svc->id };
	__u32 count = svc->count;

	for (__u32 slot = 0; slot < WN_AFFINITY_SCAN_MAX; slot++) {
		if (slot >= count)
			break;
		bkey.slot = slot;
		struct wn_backend_value *b = bpf_map_lookup_elem(&wn_backends, &bkey);
		if (b && wn_backend_equal(b, backend))
			return 1;
	}
	return 0;
}

/* Choose a backend for the frontend *key (a zero-padded key built from the socket's destination).
 * Returns a wn_verdict; on WN_SELECT the backend is in *out. */
static __always_inline int wn_select_backend(void *ctx, const struct wn_svc_key *key,
					     struct wn_backend_value *out)
{
	struct wn_svc_value *svc = bpf_map_lookup_elem(&wn_services, key);
	if (!svc)
		return WN_PASS;

	/* Copy the value: user space may rewrite it while we run. */
	__u32 id = svc->id;
	__u32 count = svc->count;
	__u32 timeout = svc->affinity_timeout;
	if (count == 0)
		return WN_REFUSE; /* no endpoints: like kube-proxy's REJECT */

	struct wn_affinity_key akey = {};
	__u64 now = 0;
	if (timeout > 0) {
		/* sessionAffinity ClientIP: for a socket LB the "client" is the network namespace. */
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.svc = *key;
		now = bpf_ktime_get_ns();

		struct wn_affinity_value *aff = bpf_map_lookup_elem(&wn_affinity, &akey);
		if (aff && now - aff->last_used_ns < (__u64)timeout * NSEC_PER_SEC) {
			struct wn_svc_value current = { .id = id, .count = count };
			if (wn_backend_in_service(&current, &aff->backend)) {
				aff->last_used_ns = now;
				*out = aff->backend;
				return WN_SELECT;
			}
		}
	}

	struct wn_backend_key bkey = { .id = id, .slot = bpf_get_prandom_u32() % count };
	struct wn_backend_value *b = bpf_map_lookup_elem(&wn_backends, &bkey);
	if (!b)
		return WN_REFUSE; /* raced with a backend set change: refuse, never misroute */
	*out = *b;

	if (timeout > 0) {
		struct wn_affinity_value aval = { .backend = *b, .last_used_ns = now };
		bpf_map_update_elem(&wn_affinity, &akey, &aval, BPF_ANY);
	}
	return WN_SELECT;
}

/* Remember which frontend this socket asked for when it got this backend, so that replies and
 * getpeername() can be shown with the frontend's address. */
static __always_inline void wn_record_revnat(void *ctx, const struct wn_svc_key *key,
					     const struct wn_backend_value *backend)
{
	struct wn_revnat_key rkey = {
		.socket_cookie = bpf_get_socket_cookie(ctx),
		.backend = *backend,
	};
	struct wn_revnat_value rval = { .service = *key };

	bpf_map_update_elem(&wn_revnat, &rkey, &rval, BPF_ANY);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading and writing the socket address of a bpf_sock_addr context.                         */
/* ------------------------------------------------------------------------------------------ */

/* IPv4 context (connect4, sendmsg4, recvmsg4, getpeername4): address -> zeroed key fields. */
static __always_inline void wn_read_addr4(struct bpf_sock_addr *ctx, __u8 addr[16], __u8 *family)
{
	__u32 ip4 = ctx->user_ip4;

	__builtin_memcpy(addr, &ip4, 4);
	*family = WN_FAMILY_V4;
}

/* IPv6 context: a v4-mapped address (::ffff:a.b.c.d, dual-stack sockets talking IPv4) is read as
 * its IPv4 address so that IPv4 frontends work for AF_INET6 sockets too. */
static __always_inline void wn_read_addr6(struct bpf_sock_addr *ctx, __u8 addr[16], __u8 *family)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1];
	__u32 w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff)) {
		__builtin_memcpy(addr, &w3, 4);
		*family = WN_FAMILY_V4;
		return;
	}
	__builtin_memcpy(addr, &w0, 4);
	__builtin_memcpy(addr + 4, &w1, 4);
	__builtin_memcpy(addr + 8, &w2, 4);
	__builtin_memcpy(addr + 12, &w3, 4);
	*family = WN_FAMILY_V6;
}

/* Write addr/port to an IPv4 context. Returns 0 if the family does not fit. */
static __always_inline int wn_write_addr4(struct bpf_sock_addr *ctx, const __u8 addr[16],
					  __u16 port, __u8 family)
{
	__u32 ip4;

	if (family != WN_FAMILY_V4)
		return 0;
	__builtin_memcpy(&ip4, addr, 4);
	ctx->user_ip4 = ip4;
	ctx->user_port = port;
	return 1;
}

/* Write addr/port to an IPv6 context (an IPv4 address becomes v4-mapped). */
static __always_inline int wn_write_addr6(struct bpf_sock_addr *ctx, const __u8 addr[16],
					  __u16 port, __u8 family)
{
	__u32 w[4];

	if (family == WN_FAMILY_V4) {
		w[0] = 0;
		w[1] = 0;
		w[2] = bpf_htonl(0x0000ffff);
		__builtin_memcpy(&w[3], addr, 4);
	} else if (family == WN_FAMILY_V6) {
		__builtin_memcpy(w, addr, 16);
	} else {
		return 0;
	}
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	ctx->user_port = port;
	return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Forward direction: connect() and unconnected sendmsg().                                    */
/* ------------------------------------------------------------------------------------------ */

/* Look the destination up and, if it is a frontend, rewrite it to a backend. Returns the hook's
 * return value: 1 = go on (rewritten or left alone), 0 = fail the syscall with ECONNREFUSED. */
static __always_inline int wn_forward(struct bpf_sock_addr *ctx, int is_v6)
{
	struct wn_svc_key key = {};
	struct wn_backend_value backend = {};

	if (is_v6)
		wn_read_addr6(ctx, key.addr, &key.family);
	else
		wn_read_addr4(ctx, key.addr, &key.family);
	key.port = (__u16)ctx->user_port;
	key.proto = (__u8)ctx->protocol;

	switch (wn_select_backend(ctx, &key, &backend)) {
	case WN_PASS:
		return 1;
	case WN_SELECT:
		break;
	default:
		goto refuse;
	}

	if (is_v6) {
		if (!wn_write_addr6(ctx, backend.addr, backend.port, backend.family))
			goto refuse;
	} else {
		/* An AF_INET socket cannot reach an IPv6 backend. */
		if (!wn_write_addr4(ctx, backend.addr, backend.port, backend.family))
			goto refuse;
	}
	wn_record_revnat(ctx, &key, &backend);
	return 1;

refuse:
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* connect(2) on an AF_INET socket: TCP connects and connected UDP. The socket then talks to the
 * backend directly, so no per-packet work is needed afterwards. */
SEC("cgroup/connect4")
int wn_connect4(struct bpf_sock_addr *ctx)
{
	return wn_forward(ctx, 0);
}

/* connect(2) on an AF_INET6 socket (IPv6 frontends, and IPv4 ones through v4-mapped addresses). */
SEC("cgroup/connect6")
int wn_connect6(struct bpf_sock_addr *ctx)
{
	return wn_forward(ctx, 1);
}

/* sendto/sendmsg with a destination address on an unconnected AF_INET UDP socket: every datagram
 * names its destination, so each one is load-balanced (with affinity, per client netns). */
SEC("cgroup/sendmsg4")
int wn_sendmsg4(struct bpf_sock_addr *ctx)
{
	return wn_forward(ctx, 0);
}

/* Unconnected UDP sends on an AF_INET6 socket. */
SEC("cgroup/sendmsg6")
int wn_sendmsg6(struct bpf_sock_addr *ctx)
{
	return wn_forward(ctx, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Reverse direction: recvmsg() source addresses and getpeername().                           */
/* ------------------------------------------------------------------------------------------ */

/* If this socket reached the address in ctx through a frontend, put the frontend back. These
 * hooks must always return 1 (they cannot fail the syscall). */
static __always_inline int wn_reverse(struct bpf_sock_addr *ctx, int is_v6)
{
	struct wn_revnat_key rkey = {};

	if (is_v6)
		wn_read_addr6(ctx, rkey.backend.addr, &rkey.backend.family);
	else
		wn_read_addr4(ctx, rkey.backend.addr, &rkey.backend.family);
	rkey.backend.port = (__u16)ctx->user_port;
	rkey.socket_cookie = bpf_get_socket_cookie(ctx);

	struct wn_revnat_value *rval = bpf_map_lookup_elem(&wn_revnat, &rkey);
	if (!rval)
		return 1;

	/* Copy first: the LRU entry may be replaced concurrently. */
	struct wn_svc_key svc = rval->service;
	if (is_v6)
		wn_write_addr6(ctx, svc.addr, svc.port, svc.family);
	else
		wn_write_addr4(ctx, svc.addr, svc.port, svc.family);
	return 1;
}

/* recvmsg/recvfrom on an AF_INET UDP socket: a reply from the backend is shown as coming from the
 * frontend, so that clients which check the reply's source (DNS resolvers do) accept it. */
SEC("cgroup/recvmsg4")
int wn_recvmsg4(struct bpf_sock_addr *ctx)
{
	return wn_reverse(ctx, 0);
}

SEC("cgroup/recvmsg6")
int wn_recvmsg6(struct bpf_sock_addr *ctx)
{
	return wn_reverse(ctx, 1);
}

/* getpeername(2) on a connected socket: report the frontend the application connected to. */
SEC("cgroup/getpeername4")
int wn_getpeername4(struct bpf_sock_addr *ctx)
{
	return wn_reverse(ctx, 0);
}

SEC("cgroup/getpeername6")
int wn_getpeername6(struct bpf_sock_addr *ctx)
{
	return wn_reverse(ctx, 1);
}

char _license[] SEC("license") = "Apache-2.0";
