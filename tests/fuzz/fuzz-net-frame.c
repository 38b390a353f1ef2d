/* Fuzz target: one frame through ddtk-net's pure parts, as a client (or the uplink) could send it:
 * header parsing, anti-spoofing, routing on a switch of three ports, IGMP/MLD snooping applied to
 * the sender's port, the flow hash, the virtio-net header checks and the receive-side checksum
 * completion, and the same bytes as a control-queue command. Checks the switch's promises (a
 * unicast reaches only its owner, nothing goes back to its source, an accepted frame carries its
 * sender's MAC) and that no function reads or writes outside the buffers.
 *
 * Input: [tx features][rx features][from, other ports' filters][vnet header (10 or 12 bytes)][frame]
 * (bits in fuzz_net_frame_input() of make-seeds.py). The control command is everything after the
 * first three bytes, with 1 + (rx features >> 5) queue pairs. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net-ctrl.h"
#include "net-frame.h"
#include "net-switch.h"
#include "net-vnet.h"
#include "vu-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPORTS 3
#define BIT(i) (UINT64_C(1) << (i))

static const uint8_t port_macs[NPORTS][NET_ETH_ALEN] = {
	{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a },
	{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b },
	{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x0c },
};

static const unsigned tx_bits[8] = { NET_F_CSUM, NET_F_HOST_TSO4, NET_F_HOST_TSO6, NET_F_HOST_ECN,
				     NET_F_HOST_UFO, NET_F_MRG_RXBUF, VU_F_VERSION_1, NET_F_CTRL_VQ };
static const unsigned rx_bits[8] = { NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_GUEST_TSO6, NET_F_GUEST_ECN,
				     NET_F_GUEST_UFO, NET_F_MRG_RXBUF, VU_F_VERSION_1, NET_F_CTRL_RX };

static uint64_t features_of(uint8_t b, const unsigned *bits)
{
	uint64_t f = 0;

	for (unsigned i = 0; i < 8; i++)
		if (b & (1u << i))
			f |= VU_BIT(bits[i]);
	return f;
}

/* A copy of p[0..len) in a buffer of exactly len bytes: reads past the end are caught. */
static uint8_t *dup_exact(const uint8_t *p, size_t len)
{
	uint8_t *c = malloc(len ? len : 1);

	if (!c)
		abort();
	memcpy(c, p, len);
	return c;
}

static void check_port(const struct net_port *p, const uint8_t *mac)
{
	if (p->ngroups > NET_MAX_GROUPS || !net_mac_equal(p->mac.b, mac) ||
	    (p->rx_flags & ~(unsigned)(NET_RX_ALLMULTI | NET_RX_NOMULTI | NET_RX_NOBCAST | NET_RX_NOUNI)))
		abort();
	for (unsigned i = 0; i < p->ngroups; i++) {
		if (!net_mac_is_multicast(p->groups[i].b) || net_mac_is_broadcast(p->groups[i].b))
			abort();
		for (unsigned j = 0; j < i; j++)
			if (net_mac_equal(p->groups[i].b, p->groups[j].b))
				abort();
	}
}

struct snoop_ctx {
	struct net_port *port;
	int calls;
};

static void snoop_fn(void *opaque, enum net_mcast_change change, const uint8_t *group)
{
	struct snoop_ctx *s = opaque;

	if (!net_mac_is_multicast(group))
		abort();
	s->calls++;
	if (change == NET_MCAST_JOIN) {
		net_port_join(s->port, group);
		/* a joined group is received from then on, unless the driver filters all multicast */
		if (!net_mac_is_broadcast(group) && !(s->port->rx_flags & NET_RX_NOMULTI) &&
		    !net_port_accepts(s->port, group))
			abort();
	} else {
		net_port_leave(s->port, group);
	}
}

static void check_route(const struct net_switch *sw, int from, const uint8_t *dst)
{
	struct net_route r = net_switch_route(sw, from, dst);
	int owner = net_switch_find(sw, dst);

	if (r.ports & ~(BIT(NPORTS) - 1))
		abort();
	if (from == NET_FROM_UPLINK ? r.uplink : (r.ports & BIT(from)) != 0)
		abort(); /* back to its source */
	for (unsigned i = 0; i < NPORTS; i++) {
		const struct net_port *p = sw->ports[i];
		bool got = r.ports & BIT(i);

		/* exactly the ports that want it, but the source; for unicast, only its owner */
		if (got != ((int)i != from && (net_mac_is_multicast(dst) || owner == (int)i) && net_port_accepts(p, dst)))
			abort();
		if (!net_mac_is_multicast(dst)) {
			/* isolation: another port's unicast never arrives, whatever the filters */
			if (got && (!net_mac_equal(p->mac.b, dst) || (p->rx_flags & NET_RX_NOUNI)))
				abort();
		} else if (net_mac_is_broadcast(dst)) {
			if (got != ((int)i != from && !(p->rx_flags & NET_RX_NOBCAST)))
				abort();
		} else if ((int)i != from && !(p->rx_flags & NET_RX_NOMULTI) &&
			   ((p->rx_flags & NET_RX_ALLMULTI) || p->groups_overflow ||
			    net_mac_is_link_local_multicast(dst)) &&
			   !got) {
			abort();
		}
	}
	if (!net_mac_is_multicast(dst) && owner >= 0 && r.uplink)
		abort(); /* a client's unicast never leaves */
	if (from != NET_FROM_UPLINK && owner < 0 && !r.uplink)
		abort(); /* unknown destinations are the uplink's */
}

/* The one's complement sum of p[0..len) on 16-bit big-endian words, apart from net_csum_fold(). */
static uint32_t sum16(const uint8_t *p, size_t len)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < len; i++) {
		acc += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
		acc = (acc & 0xffff) + (acc >> 16);
	}
	return acc;
}

static void check_vnet(const uint8_t *wire, size_t hdr_len, const uint8_t *frame, size_t len, uint64_t tx_features,
		       uint64_t rx_features)
{
	struct net_vnet_hdr h, rx;
	uint8_t back[NET_VNET_HDR_MRG_LEN];
	uint8_t *copy;
	int r, need;

	net_vnet_hdr_decode(wire, hdr_len, &h);
	net_vnet_hdr_encode(&h, hdr_len, back);
	if (memcmp(back, wire, hdr_len) != 0)
		abort();
	if (net_vnet_check_tx(&h, len, tx_features) == 0) {
		uint8_t gso = h.gso_type & (uint8_t)~NET_HDR_GSO_ECN;

		if (h.flags & ~NET_HDR_F_NEEDS_CSUM)
			abort();
		if ((h.flags & NET_HDR_F_NEEDS_CSUM) &&
		    (!(tx_features & VU_BIT(NET_F_CSUM)) || (size_t)h.csum_start + h.csum_offset + 2 > len))
			abort();
		if (h.gso_type != NET_HDR_GSO_NONE &&
		    (!(h.flags & NET_HDR_F_NEEDS_CSUM) || h.gso_size == 0 ||
		     (gso == NET_HDR_GSO_TCPV4 && !(tx_features & VU_BIT(NET_F_HOST_TSO4))) ||
		     (gso == NET_HDR_GSO_TCPV6 && !(tx_features & VU_BIT(NET_F_HOST_TSO6))) ||
		     (gso == NET_HDR_GSO_UDP && !(tx_features & VU_BIT(NET_F_HOST_UFO))) ||
		     ((h.gso_type & NET_HDR_GSO_ECN) && !(tx_features & VU_BIT(NET_F_HOST_ECN)))))
			abort();
		if (len > NET_MAX_FRAME)
			abort();
	}

	/* The receive side sees what came in, checked or not (the uplink's headers are not). */
	net_vnet_hdr_decode(wire, hdr_len, &rx);
	copy = dup_exact(frame, len);
	need = net_vnet_rx_needs_fixup(&rx, rx_features);
	r = net_vnet_fixup_rx(&rx, copy, len, rx_features);
	if (need < 0 ? r != need : (r != 0 && r != -EINVAL))
		abort();
	if (need == 0 && memcmp(copy, frame, len) != 0)
		abort();
	if (r == 0) {
		if (!(rx_features & VU_BIT(NET_F_GUEST_CSUM)) &&
		    (rx.flags & (NET_HDR_F_NEEDS_CSUM | NET_HDR_F_DATA_VALID)))
			abort();
		if (need > 0) {
			size_t start, at;
			struct net_vnet_hdr orig;
			uint16_t partial;

			net_vnet_hdr_decode(wire, hdr_len, &orig);
			start = orig.csum_start;
			at = start + orig.csum_offset;
			/* Only the checksum field changed, and with the pseudo-header sum that was in it
			 * the segment now adds up (for a field on a 16-bit boundary of the segment). */
			if (memcmp(copy, frame, at) != 0 || memcmp(copy + at + 2, frame + at + 2, len - at - 2) != 0)
				abort();
			partial = (uint16_t)(frame[at] << 8 | frame[at + 1]);
			if (!(orig.csum_offset & 1) && (sum16(copy + start, len - start) + partial) % 0xffff != 0)
				abort();
		}
	}
	free(copy);
}

static void check_ctrl(struct net_port *p, unsigned max_pairs, const uint8_t *cmd, size_t len, const uint8_t *mac)
{
	uint8_t *copy = dup_exact(cmd, len);
	unsigned pairs = 1;
	struct net_port before;
	uint8_t ack;

	memcpy(&before, p, sizeof(before));
	ack = net_ctrl_apply(p, max_pairs, copy, len, &pairs);

	if (ack != NET_CTRL_OK && ack != NET_CTRL_ERR)
		abort();
	if (pairs < 1 || pairs > max_pairs)
		abort();
	/* a refused command changes nothing */
	if (ack == NET_CTRL_ERR &&
	    (before.rx_flags != p->rx_flags || before.ngroups != p->ngroups ||
	     before.groups_overflow != p->groups_overflow ||
	     memcmp(before.groups, p->groups, sizeof(p->groups[0]) * p->ngroups) != 0))
		abort();
	check_port(p, mac);
	/* a multicast table accepted: every group listed is received */
	if (ack == NET_CTRL_OK && len >= 2 && copy[0] == 1 && copy[1] == 0 && !(p->rx_flags & NET_RX_NOMULTI)) {
		size_t off = 2 + 4 + (size_t)(copy[2] | copy[3] << 8) * NET_ETH_ALEN + 4;

		for (; off + NET_ETH_ALEN <= len; off += NET_ETH_ALEN)
			if (!net_mac_is_broadcast(copy + off) && !net_port_accepts(p, copy + off))
				abort();
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct net_port ports[NPORTS];
	struct net_switch sw;
	struct net_frame_info info;
	uint64_t tx_features, rx_features;
	size_t hdr_len, len;
	int from;
	uint8_t *frame;

	if (size < 3)
		return 0;
	tx_features = features_of(data[0], tx_bits);
	rx_features = features_of(data[1], rx_bits);
	from = data[2] % 4 == 3 ? NET_FROM_UPLINK : data[2] % 4;

	memset(&sw, 0, sizeof(sw));
	for (unsigned i = 0; i < NPORTS; i++) {
		struct net_mac m;

		memcpy(m.b, port_macs[i], NET_ETH_ALEN);
		net_port_init(&ports[i], "fuzz", &m);
		if (net_switch_add_port(&sw, &ports[i]) != (int)i)
			abort();
	}
	/* the other ports' receive filters, and one that joined a group */
	ports[(from + 1 + NPORTS) % NPORTS].rx_flags = (data[2] >> 2) & 15;
	ports[(from + 2 + NPORTS) % NPORTS].rx_flags = (data[2] >> 6) & 3;
	net_port_join(&ports[1], (const uint8_t[]){ 0x01, 0x00, 0x5e, 0x01, 0x02, 0x03 });

	/* the same bytes as a control command, to the sender's port (port 0 for the uplink) */
	check_ctrl(&ports[from < 0 ? 0 : from], 1 + (data[1] >> 5), data + 3, size - 3, port_macs[from < 0 ? 0 : from]);

	hdr_len = net_vnet_hdr_len(tx_features);
	if (size < 3 + hdr_len)
		return 0;
	len = size - 3 - hdr_len;
	frame = dup_exact(data + 3 + hdr_len, len);
	if (net_frame_parse(frame, len, &info) < 0) {
		if (len >= NET_ETH_MIN_FRAME)
			abort();
		free(frame);
		return 0;
	}
	if (info.dst != frame || info.src != frame + NET_ETH_ALEN || info.l3_offset > len ||
	    info.l3_offset < NET_ETH_HLEN || info.l3_offset > NET_ETH_HLEN + 2 * NET_VLAN_HLEN)
		abort();

	if (net_switch_check_source(&sw, from, frame, len, &info) == NET_ACCEPT) {
		if (from == NET_FROM_UPLINK) {
			if (net_mac_is_multicast(info.src) || net_switch_find(&sw, info.src) >= 0)
				abort();
		} else if (!net_mac_equal(info.src, port_macs[from]) ||
			   net_frame_arp_spoofed(frame, len, &info, port_macs[from])) {
			abort();
		}
	}
	check_route(&sw, from, info.dst);

	{
		struct snoop_ctx s = { &ports[from < 0 ? 0 : from], 0 };
		int found = net_frame_snoop_mcast(frame, len, &info, snoop_fn, &s);

		if (found != s.calls || found < 0)
			abort();
		for (unsigned i = 0; i < NPORTS; i++)
			check_port(&ports[i], port_macs[i]);
		/* routing again with the groups the report changed */
		check_route(&sw, from, info.dst);
		check_route(&sw, NET_FROM_UPLINK, (const uint8_t[]){ 0x01, 0x00, 0x5e, 0x01, 0x02, 0x03 });
	}

	if (net_frame_flow_hash(frame, len, &info) != net_frame_flow_hash(frame, len, &info))
		abort();
	check_vnet(data + 3, hdr_len, frame, len, tx_features, rx_features);
	free(frame);
	return 0;
}
