/* Software segmentation: a TCP GSO packet (up to 64 KiB, one set of headers) cut into the
 * MSS-sized frames it stands for, for a receiver that did not negotiate GUEST_TSO (a DPDK guest,
 * say) — as the kernel's GSO does for a NIC without TSO. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "net-vnet.h"

/* Segments one packet at most becomes; a GSO packet that would need more is refused. */
#define NET_GSO_MAX_SEGS 256

/* Called once per segment with a complete frame (headers fixed, TCP and IPv4 checksums computed in
 * full). The buffer is reused for the next segment. */
typedef void (*net_gso_fn)(void *opaque, const uint8_t *frame, size_t len);

/* Cuts frame[0..len) whose header h says TCPV4 or TCPV6 GSO with a partial checksum. Returns the
 * number of segments, or -EINVAL for a packet that is not a well-formed TCP GSO packet over plain
 * Ethernet + IPv4 (any options) or IPv6 (no extension headers), or needs more than
 * NET_GSO_MAX_SEGS. buf is scratch of at least NET_MAX_FRAME bytes. */
int net_gso_segment(const struct net_vnet_hdr *h, const uint8_t *frame, size_t len, uint8_t *buf, net_gso_fn fn,
		    void *opaque);
