/* Taking a frame off a client's transmit chain (see net-tx.h). */
#include <errno.h>

#include "vu-vq.h"
#include "net-tx.h"

int net_tx_take(const struct iovec *iov, unsigned n, size_t total, size_t hdr_len, uint64_t features, unsigned mtu,
		struct net_tx_frame *ret, const char **ret_why)
{
	uint8_t wire[NET_VNET_HDR_MRG_LEN];

	if (hdr_len > sizeof(wire) || total < hdr_len + NET_ETH_MIN_FRAME || total - hdr_len > NET_MAX_FRAME) {
		*ret_why = "shorter than a header and an Ethernet header, or longer than 64 KiB";
		return -EINVAL;
	}
	ret->len = total - hdr_len;
	if (vu_iov_to_buf(iov, n, 0, wire, hdr_len) != hdr_len) {
		*ret_why = "the chain is shorter than it says";
		return -EINVAL;
	}
	net_vnet_hdr_decode(wire, hdr_len, &ret->hdr);
	ret->head_len = vu_iov_to_buf(iov, n, hdr_len, ret->head, ret->len < NET_TX_HEAD ? ret->len : NET_TX_HEAD);
	if (net_vnet_check_tx(&ret->hdr, ret->len, features) < 0) {
		*ret_why = "a virtio-net header no driver writes for the features it negotiated";
		return -EINVAL;
	}
	if (ret->hdr.gso_type == NET_HDR_GSO_NONE && ret->len > (size_t)mtu + NET_ETH_HLEN + NET_VLAN_HLEN) {
		*ret_why = "longer than the MTU";
		return -EINVAL;
	}
	if (net_frame_parse(ret->head, ret->head_len, &ret->info) < 0) {
		*ret_why = "the chain is shorter than it says";
		return -EINVAL;
	}
	if (ret->info.l3_offset > NET_ETH_HLEN || ret->info.ethertype == NET_ETHERTYPE_VLAN ||
	    ret->info.ethertype == NET_ETHERTYPE_QINQ) {
		*ret_why = "a VLAN tag: ddtk-net's ports are untagged";
		return -EINVAL;
	}
	return 0;
}

unsigned net_tx_rest(const struct iovec *iov, unsigned n, const struct net_tx_frame *f, size_t hdr_len,
		     struct iovec *out, unsigned max)
{
	size_t skip = hdr_len + f->head_len;
	unsigned k = 0;

	for (unsigned i = 0; i < n && k < max; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[k].iov_len = l - skip;
		k++;
		skip = 0;
	}
	return k;
}
