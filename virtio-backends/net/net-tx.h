/* A frame a client put on its transmit ring, as ddtk-net takes it: the virtio-net header and the
 * frame's first bytes copied out once (every decision is made on, and every byte sent from, these
 * copies), the rest left in guest memory. The chain's layout is the guest's: the header may be
 * split over descriptors, the frame may start anywhere. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net-frame.h"
#include "net-vnet.h"

/* Frame bytes copied out and checked: Ethernet + VLAN + IP + ports, an ARP packet whole. */
#define NET_TX_HEAD 128

struct net_tx_frame {
	struct net_vnet_hdr hdr;
	size_t len;                    /* frame bytes after the virtio-net header */
	uint8_t head[NET_TX_HEAD];     /* the frame's first head_len bytes */
	size_t head_len;
	struct net_frame_info info;    /* parsed from head */
};

/* Takes the chain iov[0..n) (total bytes in all) carrying a virtio-net header of hdr_len bytes and
 * a frame, from a driver with these features and MTU. Returns 0 with *ret filled, or -EINVAL with
 * *ret_why saying what was wrong (too short or long, an impossible header, a VLAN tag: ports are
 * untagged). */
int net_tx_take(const struct iovec *iov, unsigned n, size_t total, size_t hdr_len, uint64_t features, unsigned mtu,
		struct net_tx_frame *ret, const char **ret_why);

/* The frame's bytes after its head, in guest memory: writes at most max iovecs to out and returns
 * how many. */
unsigned net_tx_rest(const struct iovec *iov, unsigned n, const struct net_tx_frame *f, size_t hdr_len,
		     struct iovec *out, unsigned max);
