/* Control-queue commands (virtio spec 5.1.6.5) applied to a switch port. */

#include "net-ctrl.h"

enum {
	CLASS_RX = 0,
	CLASS_MAC = 1,
	CLASS_ANNOUNCE = 3,
	CLASS_MQ = 4,
	CLASS_GUEST_OFFLOADS = 5,
};

enum {
	RX_PROMISC = 0,
	RX_ALLMULTI = 1,
	RX_ALLUNI = 2,
	RX_NOMULTI = 3,
	RX_NOUNI = 4,
	RX_NOBCAST = 5,
};

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t apply_rx(struct net_port *p, uint8_t cmd, const uint8_t *data, size_t len)
{
	unsigned flag;

	if (len != 1 || data[0] > 1)
		return NET_CTRL_ERR;
	switch (cmd) {
	case RX_PROMISC:
	case RX_ALLUNI:
		return NET_CTRL_OK; /* accepted; another client's unicast is never delivered anyway */
	case RX_ALLMULTI:
		flag = NET_RX_ALLMULTI;
		break;
	case RX_NOMULTI:
		flag = NET_RX_NOMULTI;
		break;
	case RX_NOUNI:
		flag = NET_RX_NOUNI;
		break;
	case RX_NOBCAST:
		flag = NET_RX_NOBCAST;
		break;
	default:
		return NET_CTRL_ERR;
	}
	if (data[0])
		p->rx_flags |= flag;
	else
		p->rx_flags &= ~flag;
	return NET_CTRL_OK;
}

static uint8_t apply_mac_table(struct net_port *p, const uint8_t *data, size_t len)
{
	uint32_t n_uni, n_multi;
	size_t off;

	/* Two tables: unicast (ignored: a client gets its own address only), then multicast. */
	if (len < 4)
		return NET_CTRL_ERR;
	n_uni = get_le32(data);
	if (n_uni > (len - 4) / NET_ETH_ALEN)
		return NET_CTRL_ERR;
	off = 4 + (size_t)n_uni * NET_ETH_ALEN;
	if (len - off < 4)
		return NET_CTRL_ERR;
	n_multi = get_le32(data + off);
	off += 4;
	if (n_multi > (len - off) / NET_ETH_ALEN || (len - off) != (size_t)n_multi * NET_ETH_ALEN)
		return NET_CTRL_ERR;
	for (uint32_t i = 0; i < n_multi; i++)
		if (!net_mac_is_multicast(data + off + (size_t)i * NET_ETH_ALEN))
			return NET_CTRL_ERR;
	/* Joined one by one, so that repeats take no room and more than NET_MAX_GROUPS distinct
	 * groups fall back to all multicast (a table cut at the limit would lose groups listed past
	 * it when the first entries repeat). */
	net_port_set_groups(p, NULL, 0);
	for (uint32_t i = 0; i < n_multi; i++)
		net_port_join(p, data + off + (size_t)i * NET_ETH_ALEN);
	return NET_CTRL_OK;
}

uint8_t net_ctrl_apply(struct net_port *p, unsigned max_pairs, const uint8_t *cmd, size_t len, unsigned *io_pairs)
{
	const uint8_t *data = cmd + 2;

	if (len < 2)
		return NET_CTRL_ERR;
	len -= 2;
	switch (cmd[0]) {
	case CLASS_RX:
		return apply_rx(p, cmd[1], data, len);
	case CLASS_MAC:
		if (cmd[1] == 0)
			return apply_mac_table(p, data, len);
		/* ADDR_SET: only to the address the configuration gave. */
		if (cmd[1] == 1 && len == NET_ETH_ALEN && net_mac_equal(data, p->mac.b))
			return NET_CTRL_OK;
		return NET_CTRL_ERR;
	case CLASS_ANNOUNCE:
		return cmd[1] == 0 && len == 0 ? NET_CTRL_OK : NET_CTRL_ERR;
	case CLASS_MQ:
		if (cmd[1] == 0 && len == 2) {
			unsigned pairs = (unsigned)data[0] | (unsigned)data[1] << 8;

			if (pairs >= 1 && pairs <= max_pairs) {
				*io_pairs = pairs;
				return NET_CTRL_OK;
			}
		}
		return NET_CTRL_ERR;
	case CLASS_GUEST_OFFLOADS:
		return cmd[1] == 0 && len == 8 ? NET_CTRL_OK : NET_CTRL_ERR;
	default:
		return NET_CTRL_ERR;
	}
}
