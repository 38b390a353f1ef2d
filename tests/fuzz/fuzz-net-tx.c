/* Fuzz target: a client's transmit chain as ddtk-net takes it (net_tx_take, net_tx_rest): the
 * virtio-net header and the frame cut over descriptors any way a guest likes, any header, any
 * length. Checks that what is taken is exactly the chain's bytes (the header, the head copy, the
 * rest in guest memory, nothing outside the buffers) and that an accepted frame obeys the limits;
 * a GSO packet is also cut in software (net_gso_segment) as for a receiver without TSO.
 *
 * Input: [hdr_len: 10 + 2 * (b & 1)][features][mtu: 68 + 16 * b][k: 1 + b % 16][k cut weights]
 * [the chain's bytes]. Each descriptor is its own heap buffer, so ASan sees any read past one. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "net-gso.h"
#include "net-tx.h"
#include "net-vnet.h"
#include "vu-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seg_check {
	size_t max_len;
	unsigned calls;
};

/* Every segment of a cut GSO packet: no longer than the packet, at least the headers. */
static void seg_fn(void *opaque, const uint8_t *frame, size_t len)
{
	struct seg_check *c = opaque;

	if (len > c->max_len || len < NET_ETH_HLEN + 20 + 20 || ++c->calls > NET_GSO_MAX_SEGS)
		abort();
	(void)frame[len - 1];
}

#define MAX_SEGS 16

static uint64_t features_from(uint8_t b)
{
	static const unsigned bits[] = { NET_F_CSUM, NET_F_HOST_TSO4, NET_F_HOST_TSO6, NET_F_HOST_ECN, NET_F_HOST_UFO,
					 NET_F_MRG_RXBUF, VU_F_VERSION_1 };
	uint64_t f = 0;

	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (b & (1u << i))
			f |= VU_BIT(bits[i]);
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iovec iov[MAX_SEGS], rest[MAX_SEGS];
	struct net_tx_frame f;
	const char *why = NULL;
	size_t hdr_len, total, off = 0;
	unsigned mtu, k, weight_sum = 0, nrest;
	uint64_t features;
	uint8_t *flat;

	if (size < 4)
		return 0;
	hdr_len = 10 + 2 * (data[0] & 1);
	features = features_from(data[1]);
	mtu = 68 + 16u * data[2];
	k = 1 + data[3] % MAX_SEGS;
	if (size < 4 + k)
		return 0;
	const uint8_t *weights = data + 4;

	for (unsigned i = 0; i < k; i++)
		weight_sum += weights[i];
	data += 4 + k;
	total = size - 4 - k;
	/* Cut the chain into k descriptors by the weights (some may be empty). */
	for (unsigned i = 0; i < k; i++) {
		size_t len = i + 1 == k ? total - off
				 : weight_sum ? total * weights[i] / weight_sum : total / k;

		if (len > total - off)
			len = total - off;
		iov[i].iov_base = malloc(len ? len : 1);
		if (!iov[i].iov_base)
			abort();
		memcpy(iov[i].iov_base, data + off, len);
		iov[i].iov_len = len;
		off += len;
	}

	int r = net_tx_take(iov, k, total, hdr_len, features, mtu, &f, &why);

	if (r < 0) {
		if (r != -EINVAL || !why)
			abort();
		goto out;
	}
	/* Taken: it is the chain's bytes. */
	if (f.len != total - hdr_len || f.len > NET_MAX_FRAME || f.len < NET_ETH_MIN_FRAME)
		abort();
	if (f.head_len != (f.len < NET_TX_HEAD ? f.len : NET_TX_HEAD) || memcmp(f.head, data + hdr_len, f.head_len))
		abort();
	if (f.info.dst != f.head || f.info.src != f.head + NET_ETH_ALEN || f.info.l3_offset != NET_ETH_HLEN)
		abort();
	if (f.hdr.gso_type == NET_HDR_GSO_NONE && f.len > (size_t)mtu + NET_ETH_HLEN + NET_VLAN_HLEN)
		abort();
	if ((f.hdr.flags & NET_HDR_F_NEEDS_CSUM) &&
	    (!(features & VU_BIT(NET_F_CSUM)) || (size_t)f.hdr.csum_start + f.hdr.csum_offset + 2 > f.len))
		abort();
	/* The rest: inside the descriptors, and exactly the bytes after the head. */
	nrest = net_tx_rest(iov, k, &f, hdr_len, rest, MAX_SEGS);
	flat = malloc(f.len - f.head_len + 1);
	if (!flat)
		abort();
	off = 0;
	for (unsigned i = 0; i < nrest; i++) {
		bool inside = false;

		for (unsigned j = 0; j < k && !inside; j++)
			inside = (uint8_t *)rest[i].iov_base >= (uint8_t *)iov[j].iov_base &&
				 (uint8_t *)rest[i].iov_base + rest[i].iov_len <= (uint8_t *)iov[j].iov_base + iov[j].iov_len;
		if (!inside || off + rest[i].iov_len > f.len - f.head_len)
			abort();
		memcpy(flat + off, rest[i].iov_base, rest[i].iov_len);
		off += rest[i].iov_len;
	}
	if (off != f.len - f.head_len || memcmp(flat, data + hdr_len + f.head_len, off))
		abort();
	free(flat);
	/* For a receiver without TSO: the same packet cut in software. */
	if (f.hdr.gso_type != NET_HDR_GSO_NONE) {
		static uint8_t seg_buf[NET_MAX_FRAME];
		struct seg_check sc = { .max_len = f.len };
		int nsegs = net_gso_segment(&f.hdr, data + hdr_len, f.len, seg_buf, seg_fn, &sc);

		if (nsegs >= 0 ? (unsigned)nsegs != sc.calls : nsegs != -EINVAL || sc.calls)
			abort();
	}
out:
	for (unsigned i = 0; i < k; i++)
		free(iov[i].iov_base);
	return 0;
}
