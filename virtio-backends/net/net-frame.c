/* Frame header parsing for the switch: addresses, VLAN tags, ARP senders, and IGMP/MLD membership
 * reports. All input is hostile; every read is bounded by the length given. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net-frame.h"

#define IPPROTO_IGMP_ 2
#define IPPROTO_ICMPV6_ 58
#define IGMP_V1_REPORT 0x12
#define IGMP_V2_REPORT 0x16
#define IGMP_V2_LEAVE 0x17
#define IGMP_V3_REPORT 0x22
#define MLD_V1_REPORT 131
#define MLD_V1_DONE 132
#define MLD_V2_REPORT 143
/* A report can list no more groups than fit in a jumbo frame; cap the walk all the same. */
#define NET_MCAST_MAX_RECORDS 256

static const uint8_t broadcast[NET_ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

bool net_mac_is_broadcast(const uint8_t *mac)
{
	return memcmp(mac, broadcast, NET_ETH_ALEN) == 0;
}

bool net_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, NET_ETH_ALEN) == 0;
}

bool net_mac_is_valid_unicast(const uint8_t *mac)
{
	static const uint8_t zero[NET_ETH_ALEN];

	return !net_mac_is_multicast(mac) && memcmp(mac, zero, NET_ETH_ALEN) != 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_mac_parse(const char *s, struct net_mac *ret)
{
	struct net_mac m;

	for (unsigned i = 0; i < NET_ETH_ALEN; i++) {
		int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		m.b[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < NET_ETH_ALEN - 1) {
			if (*s != ':')
				return -EINVAL;
			s++;
		}
	}
	if (*s)
		return -EINVAL;
	*ret = m;
	return 0;
}

int net_mac_parse_bytes(const char *s, uint8_t *ret)
{
	struct net_mac m;
	int r = net_mac_parse(s, &m);

	if (r == 0)
		memcpy(ret, m.b, NET_ETH_ALEN);
	return r;
}

const char *net_mac_format(const uint8_t *mac, char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return buf;
}

int net_frame_parse(const uint8_t *frame, size_t len, struct net_frame_info *ret)
{
	size_t off = 12;
	uint16_t type;

	if (len < NET_ETH_MIN_FRAME)
		return -EINVAL;
	type = get_be16(frame + off);
	/* At most two tags (802.1ad + 802.1Q); a third is left as the ethertype. */
	for (int tags = 0; tags < 2 && (type == NET_ETHERTYPE_VLAN || type == NET_ETHERTYPE_QINQ); tags++) {
		if (len < off + 2 + NET_VLAN_HLEN)
			break;
		off += NET_VLAN_HLEN;
		type = get_be16(frame + off);
	}
	ret->dst = frame;
	ret->src = frame + NET_ETH_ALEN;
	ret->ethertype = type;
	ret->l3_offset = off + 2;
	return 0;
}

bool net_frame_arp_spoofed(const uint8_t *frame, size_t len, const struct net_frame_info *info, const uint8_t *mac)
{
	const uint8_t *arp = frame + info->l3_offset;

	if (info->ethertype != NET_ETHERTYPE_ARP)
		return false;
	/* htype 1 (Ethernet) or 6 (IEEE 802: Linux takes it on Ethernet too, arp_process()), ptype
	 * IPv4, hlen 6, plen 4; the sender's MAC follows the 8-byte header. */
	if (len < info->l3_offset + 28 || (get_be16(arp) != 1 && get_be16(arp) != 6) ||
	    get_be16(arp + 2) != NET_ETHERTYPE_IPV4 || arp[4] != NET_ETH_ALEN || arp[5] != 4)
		return false;
	return !net_mac_equal(arp + 8, mac);
}

bool net_mac_is_link_local_multicast(const uint8_t *mac)
{
	static const uint8_t v4_local[5] = { 0x01, 0x00, 0x5e, 0x00, 0x00 };
	static const uint8_t v6_all_nodes[NET_ETH_ALEN] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };

	return memcmp(mac, v4_local, sizeof(v4_local)) == 0 || memcmp(mac, v6_all_nodes, NET_ETH_ALEN) == 0;
}

static void ipv4_group_mac(const uint8_t *g, uint8_t *mac)
{
	mac[0] = 0x01;
	mac[1] = 0x00;
	mac[2] = 0x5e;
	mac[3] = g[1] & 0x7f;
	mac[4] = g[2];
	mac[5] = g[3];
}

static void ipv6_group_mac(const uint8_t *g, uint8_t *mac)
{
	mac[0] = 0x33;
	mac[1] = 0x33;
	memcpy(mac + 2, g + 12, 4);
}

/* IGMPv3 and MLDv2 record types (RFC 3376, RFC 3810). */
enum {
	RECORD_IS_INCLUDE = 1,
	RECORD_IS_EXCLUDE = 2,
	RECORD_TO_INCLUDE = 3,
	RECORD_TO_EXCLUDE = 4,
	RECORD_ALLOW = 5,
	RECORD_BLOCK = 6,
};

/* Whether a record means "I listen to this group" (1), "I stopped" (0), or neither (-1). */
static int record_meaning(uint8_t type, uint16_t nsrcs)
{
	switch (type) {
	case RECORD_IS_EXCLUDE:
	case RECORD_TO_EXCLUDE:
		return 1;
	case RECORD_IS_INCLUDE:
	case RECORD_TO_INCLUDE:
		return nsrcs ? 1 : 0;
	case RECORD_ALLOW:
		return nsrcs ? 1 : -1;
	default:
		return -1;
	}
}

/* Walks the records of a v3/v2 report: addr_len 4 (IGMP) or 16 (MLD). */
static int snoop_records(const uint8_t *p, size_t len, size_t off, unsigned count, size_t addr_len, net_mcast_fn fn,
			 void *opaque)
{
	int found = 0;

	for (unsigned i = 0; i < count && i < NET_MCAST_MAX_RECORDS; i++) {
		size_t rec_len;
		uint16_t nsrcs;
		int meaning;

		if (len < off + 4 + addr_len)
			break;
		nsrcs = get_be16(p + off + 2);
		rec_len = 4 + addr_len + (size_t)nsrcs * addr_len + (size_t)p[off + 1] * 4;
		if (len - off < rec_len)
			break;
		meaning = record_meaning(p[off], nsrcs);
		if (meaning >= 0) {
			const uint8_t *g = p + off + 4;
			uint8_t mac[NET_ETH_ALEN];

			if (addr_len == 4 && (g[0] & 0xf0) == 0xe0) {
				ipv4_group_mac(g, mac);
				fn(opaque, meaning ? NET_MCAST_JOIN : NET_MCAST_LEAVE, mac);
				found++;
			} else if (addr_len == 16 && g[0] == 0xff) {
				ipv6_group_mac(g, mac);
				fn(opaque, meaning ? NET_MCAST_JOIN : NET_MCAST_LEAVE, mac);
				found++;
			}
		}
		off += rec_len;
	}
	return found;
}

static int snoop_igmp(const uint8_t *ip, size_t len, net_mcast_fn fn, void *opaque)
{
	size_t ihl, total;
	const uint8_t *igmp;
	uint8_t mac[NET_ETH_ALEN];

	if (len < 20 || ip[0] >> 4 != 4 || ip[9] != IPPROTO_IGMP_)
		return 0;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	total = get_be16(ip + 2);
	if (ihl < 20 || total < ihl || total > len)
		return 0;
	igmp = ip + ihl;
	len = total - ihl;
	if (len < 8)
		return 0;
	switch (igmp[0]) {
	case IGMP_V1_REPORT:
	case IGMP_V2_REPORT:
	case IGMP_V2_LEAVE:
		if ((igmp[4] & 0xf0) != 0xe0)
			return 0;
		ipv4_group_mac(igmp + 4, mac);
		fn(opaque, igmp[0] == IGMP_V2_LEAVE ? NET_MCAST_LEAVE : NET_MCAST_JOIN, mac);
		return 1;
	case IGMP_V3_REPORT:
		return snoop_records(igmp, len, 8, get_be16(igmp + 6), 4, fn, opaque);
	default:
		return 0;
	}
}

static int snoop_mld(const uint8_t *ip, size_t len, net_mcast_fn fn, void *opaque)
{
	size_t off = 40, payload;
	uint8_t next, mac[NET_ETH_ALEN];
	const uint8_t *icmp;

	if (len < 40 || ip[0] >> 4 != 6)
		return 0;
	payload = get_be16(ip + 4);
	if (payload > len - 40)
		return 0;
	len = 40 + payload;
	next = ip[6];
	/* MLD reports come after a hop-by-hop header (router alert); skip extension headers. */
	for (int hops = 0; hops < 8 && (next == 0 || next == 43 || next == 60); hops++) {
		size_t ext;

		if (len < off + 8)
			return 0;
		ext = ((size_t)ip[off + 1] + 1) * 8;
		if (len - off < ext)
			return 0;
		next = ip[off];
		off += ext;
	}
	if (next != IPPROTO_ICMPV6_ || len < off + 8)
		return 0;
	icmp = ip + off;
	len -= off;
	switch (icmp[0]) {
	case MLD_V1_REPORT:
	case MLD_V1_DONE:
		if (len < 24 || icmp[8] != 0xff)
			return 0;
		ipv6_group_mac(icmp + 8, mac);
		fn(opaque, icmp[0] == MLD_V1_DONE ? NET_MCAST_LEAVE : NET_MCAST_JOIN, mac);
		return 1;
	case MLD_V2_REPORT:
		return snoop_records(icmp, len, 8, get_be16(icmp + 6), 16, fn, opaque);
	default:
		return 0;
	}
}

int net_frame_snoop_mcast(const uint8_t *frame, size_t len, const struct net_frame_info *info, net_mcast_fn fn,
			  void *opaque)
{
	if (info->l3_offset > len)
		return 0;
	if (info->ethertype == NET_ETHERTYPE_IPV4)
		return snoop_igmp(frame + info->l3_offset, len - info->l3_offset, fn, opaque);
	if (info->ethertype == NET_ETHERTYPE_IPV6)
		return snoop_mld(frame + info->l3_offset, len - info->l3_offset, fn, opaque);
	return 0;
}

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

uint32_t net_frame_flow_hash(const uint8_t *frame, size_t len, const struct net_frame_info *info)
{
	const uint8_t *ip = frame + info->l3_offset;
	size_t l = len > info->l3_offset ? len - info->l3_offset : 0;
	uint32_t h = 2166136261u;

	if (info->ethertype == NET_ETHERTYPE_IPV4 && l >= 20 && ip[0] >> 4 == 4) {
		size_t ihl = (size_t)(ip[0] & 0xf) * 4;
		bool first_fragment = (get_be16(ip + 6) & 0x1fff) == 0;

		h = fnv1a(h, ip + 12, 8);
		h = fnv1a(h, ip + 9, 1);
		/* Later fragments carry no ports: hash every fragment by addresses alone. */
		if (first_fragment && !(get_be16(ip + 6) & 0x2000) && (ip[9] == 6 || ip[9] == 17) && ihl >= 20 &&
		    l >= ihl + 4)
			h = fnv1a(h, ip + ihl, 4);
		return h;
	}
	if (info->ethertype == NET_ETHERTYPE_IPV6 && l >= 40 && ip[0] >> 4 == 6) {
		h = fnv1a(h, ip + 8, 32);
		if ((ip[6] == 6 || ip[6] == 17) && l >= 44)
			h = fnv1a(h, ip + 40, 4);
		return h;
	}
	return fnv1a(h, frame, (size_t)2 * NET_ETH_ALEN);
}
