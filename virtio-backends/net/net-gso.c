/* TCP segmentation in software (see net-gso.h). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "net-frame.h"
#include "net-gso.h"

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

/* One's-complement sum of p[0..len) added to sum, not folded. */
static uint64_t sum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t sum_fold_invert(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int net_gso_segment(const struct net_vnet_hdr *h, const uint8_t *frame, size_t len, uint8_t *buf, net_gso_fn fn,
		    void *opaque)
{
	uint8_t gso = h->gso_type & ~NET_HDR_GSO_ECN;
	bool v4 = gso == NET_HDR_GSO_TCPV4;
	size_t l3 = NET_ETH_HLEN, l4 = h->csum_start, thl, payload_off, payload_len, mss = h->gso_size;
	unsigned nsegs;
	uint32_t seq;
	uint16_t id = 0;

	if ((gso != NET_HDR_GSO_TCPV4 && gso != NET_HDR_GSO_TCPV6) || !(h->flags & NET_HDR_F_NEEDS_CSUM) || !mss ||
	    len > NET_MAX_FRAME || len < l3 + 20)
		return -EINVAL;
	if (get_be16(frame + 12) != (v4 ? NET_ETHERTYPE_IPV4 : NET_ETHERTYPE_IPV6))
		return -EINVAL;
	if (v4) {
		size_t ihl = (size_t)(frame[l3] & 0xf) * 4;

		if (frame[l3] >> 4 != 4 || ihl < 20 || l4 != l3 + ihl || frame[l3 + 9] != 6)
			return -EINVAL;
		id = get_be16(frame + l3 + 4);
	} else if (frame[l3] >> 4 != 6 || l4 != l3 + 40 || frame[l3 + 6] != 6) {
		return -EINVAL; /* extension headers are not cut here */
	}
	if (len < l4 + 20 || h->csum_offset != 16)
		return -EINVAL;
	thl = (size_t)(frame[l4 + 12] >> 4) * 4;
	payload_off = l4 + thl;
	if (thl < 20 || payload_off > len)
		return -EINVAL;
	payload_len = len - payload_off;
	nsegs = payload_len ? (unsigned)((payload_len + mss - 1) / mss) : 1;
	if (nsegs > NET_GSO_MAX_SEGS)
		return -EINVAL;
	seq = get_be32(frame + l4 + 4);
	for (unsigned i = 0; i < nsegs; i++) {
		size_t off = (size_t)i * mss, seg = payload_len - off < mss ? payload_len - off : mss;
		size_t tcp_len = thl + seg;
		uint8_t *tcp = buf + l4, flags = frame[l4 + 13];
		uint64_t sum;

		memcpy(buf, frame, payload_off);
		memcpy(buf + payload_off, frame + payload_off + off, seg);
		if (v4) {
			put_be16(buf + l3 + 2, (uint16_t)(l4 - l3 + tcp_len));
			put_be16(buf + l3 + 4, (uint16_t)(id + i));
			put_be16(buf + l3 + 10, 0);
			put_be16(buf + l3 + 10, sum_fold_invert(sum_add(0, buf + l3, l4 - l3)));
		} else {
			put_be16(buf + l3 + 4, (uint16_t)tcp_len);
		}
		put_be32(tcp + 4, seq + (uint32_t)off);
		if (i + 1 < nsegs)
			flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (i > 0)
			flags &= (uint8_t)~TCP_CWR;
		tcp[13] = flags;
		/* The whole checksum: pseudo header, then the segment. */
		put_be16(tcp + 16, 0);
		sum = v4 ? sum_add(0, buf + l3 + 12, 8) : sum_add(0, buf + l3 + 8, 32);
		sum += 6 + (uint32_t)tcp_len;
		sum = sum_add(sum, tcp, tcp_len);
		put_be16(tcp + 16, sum_fold_invert(sum));
		fn(opaque, buf, payload_off + seg);
	}
	return (int)nsegs;
}
