/* virtio-net header checks and receive-side adaptation (checksum completion in software). */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vu-proto.h"
#include "net-vnet.h"

size_t net_vnet_hdr_len(uint64_t features)
{
	return (features & (VU_BIT(NET_F_MRG_RXBUF) | VU_BIT(VU_F_VERSION_1))) ? NET_VNET_HDR_MRG_LEN : NET_VNET_HDR_LEN;
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void net_vnet_hdr_decode(const uint8_t *wire, size_t hdr_len, struct net_vnet_hdr *ret)
{
	ret->flags = wire[0];
	ret->gso_type = wire[1];
	ret->hdr_len = get_le16(wire + 2);
	ret->gso_size = get_le16(wire + 4);
	ret->csum_start = get_le16(wire + 6);
	ret->csum_offset = get_le16(wire + 8);
	ret->num_buffers = hdr_len >= NET_VNET_HDR_MRG_LEN ? get_le16(wire + 10) : 1;
}

void net_vnet_hdr_encode(const struct net_vnet_hdr *h, size_t hdr_len, uint8_t *wire)
{
	wire[0] = h->flags;
	wire[1] = h->gso_type;
	put_le16(wire + 2, h->hdr_len);
	put_le16(wire + 4, h->gso_size);
	put_le16(wire + 6, h->csum_start);
	put_le16(wire + 8, h->csum_offset);
	if (hdr_len >= NET_VNET_HDR_MRG_LEN)
		put_le16(wire + 10, h->num_buffers);
}

int net_vnet_check_tx(struct net_vnet_hdr *h, size_t frame_len, uint64_t features)
{
	uint8_t gso = h->gso_type & ~NET_HDR_GSO_ECN;

	h->flags &= NET_HDR_F_NEEDS_CSUM; /* DATA_VALID and the rest are the device's to set */
	if (h->flags & NET_HDR_F_NEEDS_CSUM) {
		if (!(features & VU_BIT(NET_F_CSUM)))
			return -EINVAL;
		if ((size_t)h->csum_start + h->csum_offset + 2 > frame_len)
			return -EINVAL;
	}
	if (h->gso_type == NET_HDR_GSO_NONE)
		return frame_len <= NET_MAX_FRAME ? 0 : -EINVAL;
	switch (gso) {
	case NET_HDR_GSO_TCPV4:
		if (!(features & VU_BIT(NET_F_HOST_TSO4)))
			return -EINVAL;
		break;
	case NET_HDR_GSO_TCPV6:
		if (!(features & VU_BIT(NET_F_HOST_TSO6)))
			return -EINVAL;
		break;
	case NET_HDR_GSO_UDP:
		if (!(features & VU_BIT(NET_F_HOST_UFO)))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if ((h->gso_type & NET_HDR_GSO_ECN) && !(features & VU_BIT(NET_F_HOST_ECN)))
		return -EINVAL;
	/* A segmentation request needs a partial checksum to finish per segment, and a size. */
	if (!(h->flags & NET_HDR_F_NEEDS_CSUM) || h->gso_size == 0 || frame_len > NET_MAX_FRAME)
		return -EINVAL;
	return 0;
}

static bool rx_gso_ok(const struct net_vnet_hdr *h, uint64_t features)
{
	switch (h->gso_type & ~NET_HDR_GSO_ECN) {
	case NET_HDR_GSO_NONE:
		return true;
	case NET_HDR_GSO_TCPV4:
		if (!(features & VU_BIT(NET_F_GUEST_TSO4)))
			return false;
		break;
	case NET_HDR_GSO_TCPV6:
		if (!(features & VU_BIT(NET_F_GUEST_TSO6)))
			return false;
		break;
	case NET_HDR_GSO_UDP:
		if (!(features & VU_BIT(NET_F_GUEST_UFO)))
			return false;
		break;
	default:
		return false;
	}
	return !(h->gso_type & NET_HDR_GSO_ECN) || (features & VU_BIT(NET_F_GUEST_ECN));
}

int net_vnet_rx_needs_fixup(const struct net_vnet_hdr *h, uint64_t features)
{
	if (!rx_gso_ok(h, features))
		return -EOPNOTSUPP;
	return (h->flags & NET_HDR_F_NEEDS_CSUM) && !(features & VU_BIT(NET_F_GUEST_CSUM));
}

uint16_t net_csum_fold(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

int net_vnet_fixup_rx(struct net_vnet_hdr *h, uint8_t *frame, size_t frame_len, uint64_t features)
{
	int r = net_vnet_rx_needs_fixup(h, features);

	if (r < 0)
		return r;
	if (r) {
		size_t start = h->csum_start, at = start + h->csum_offset;
		uint16_t sum;

		/* A partial checksum: the field holds the pseudo-header sum; add the rest and store. */
		if (at + 2 > frame_len)
			return -EINVAL;
		sum = (uint16_t)~net_csum_fold(frame + start, frame_len - start);
		/* cppcheck-suppress knownConditionTrueFalse ; a fold of 0xffff inverts to 0 */
		if (sum == 0 && h->csum_offset == 6)
			sum = 0xffff; /* UDP: zero means "no checksum" */
		frame[at] = (uint8_t)(sum >> 8);
		frame[at + 1] = (uint8_t)sum;
		h->flags &= (uint8_t)~NET_HDR_F_NEEDS_CSUM;
		h->csum_start = h->csum_offset = 0;
	}
	if (!(features & VU_BIT(NET_F_GUEST_CSUM)))
		h->flags &= (uint8_t)~NET_HDR_F_DATA_VALID;
	return 0;
}
