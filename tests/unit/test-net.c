/* Unit tests of ddtk-net's pure parts: MAC addresses and frame headers, anti-spoofing, where the
 * switch sends a frame (a client never gets another's unicast), IGMP/MLD snooping on hand-built
 * reports, virtio-net header checks and software checksum completion, and control-queue commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net-ctrl.h"
#include "net-frame.h"
#include "net-switch.h"
#include "net-vnet.h"
#include "vu-proto.h"

#define MAC_A { 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a }
#define MAC_B { 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b }
#define MAC_C { 0x02, 0x00, 0x00, 0x00, 0x00, 0x0c }

static const uint8_t mac_a[6] = MAC_A, mac_b[6] = MAC_B, mac_c[6] = MAC_C;
static const uint8_t mac_outside[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t mac_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mac_group[6] = { 0x01, 0x00, 0x5e, 0x01, 0x02, 0x03 };    /* 239.1.2.3 */
static const uint8_t mac_group2[6] = { 0x01, 0x00, 0x5e, 0x7f, 0x00, 0x01 };   /* 239.127.0.1 */
static const uint8_t mac_mdns[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };     /* 224.0.0.251 */
static const uint8_t mac_all_nodes[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t mac_all_routers[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x02 };

static const uint8_t ip_a[4] = { 10, 0, 0, 10 }, ip_b[4] = { 10, 0, 0, 11 };

/* ---------- frame building ---------- */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static size_t put_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put_be16(f + 12, type);
	return 14;
}

/* The one's complement sum of p[0..len) added to acc, 32 bits wide, not folded: written apart from
 * net_csum_fold() on purpose, to check it. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t acc)
{
	for (size_t i = 0; i < len; i++)
		acc += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc > 0xffff)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

/* An IPv4 header of 20 bytes (24 with a router alert option), checksummed. */
static size_t put_ipv4(uint8_t *p, uint8_t proto, const uint8_t *src, const uint8_t *dst, size_t payload,
		       bool router_alert)
{
	size_t hl = router_alert ? 24 : 20;

	memset(p, 0, hl);
	p[0] = (uint8_t)(0x40 | hl / 4);
	put_be16(p + 2, (uint16_t)(hl + payload));
	p[8] = 1;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	if (router_alert) {
		p[20] = 0x94;
		p[21] = 4;
	}
	put_be16(p + 10, (uint16_t)~fold(sum16(p, hl, 0)));
	return hl;
}

static const uint8_t ip6_a[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a };
static const uint8_t ip6_b[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b };
static const uint8_t ip6_mld2[16] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16 };

static size_t put_ipv6(uint8_t *p, uint8_t next, const uint8_t *src, const uint8_t *dst, size_t payload)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	put_be16(p + 4, (uint16_t)payload);
	p[6] = next;
	p[7] = 1;
	memcpy(p + 8, src, 16);
	memcpy(p + 24, dst, 16);
	return 40;
}

/* A hop-by-hop header with a router alert (MLD), then next. */
static size_t put_hbh(uint8_t *p, uint8_t next)
{
	const uint8_t hbh[8] = { next, 0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00 };

	memcpy(p, hbh, 8);
	return 8;
}

/* ---------- addresses and parsing ---------- */

static void test_mac_parse_format(void **state)
{
	struct net_mac m = { { 0 } }, keep = { { 9, 9, 9, 9, 9, 9 } };
	char buf[18];
	static const char *const bad[] = {
		"", "02:00:00:00:00", "02:00:00:00:00:01:", "02:00:00:00:00:011", "02-00-00-00-00-01",
		"2:0:0:0:0:1", "0g:00:00:00:00:01", "02:00:00:00:00:0", " 02:00:00:00:00:01", "02:00:00:00:00:01 ",
	};

	assert_int_equal(net_mac_parse("02:00:00:00:00:0a", &m), 0);
	assert_memory_equal(m.b, mac_a, 6);
	assert_int_equal(net_mac_parse("AA:bb:Cc:dD:00:FF", &m), 0);
	assert_memory_equal(m.b, ((uint8_t[]){ 0xaa, 0xbb, 0xcc, 0xdd, 0x00, 0xff }), 6);
	assert_string_equal(net_mac_format(m.b, buf), "aa:bb:cc:dd:00:ff");
	assert_string_equal(net_mac_format(mac_outside, buf), "52:54:00:12:34:56");
	assert_int_equal(net_mac_parse(buf, &m), 0);
	assert_memory_equal(m.b, mac_outside, 6);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = keep;
		assert_int_equal(net_mac_parse(bad[i], &m), -EINVAL);
		assert_memory_equal(m.b, keep.b, 6); /* untouched on failure */
	}
}

static void test_mac_classes(void **state)
{
	static const uint8_t zero[6];

	assert_true(net_mac_is_valid_unicast(mac_a));
	assert_true(net_mac_is_valid_unicast(mac_outside));
	assert_false(net_mac_is_valid_unicast(zero));
	assert_false(net_mac_is_valid_unicast(mac_bcast));
	assert_false(net_mac_is_valid_unicast(mac_group));
	assert_false(net_mac_is_valid_unicast((uint8_t[]){ 0x03, 0, 0, 0, 0, 1 }));
	assert_true(net_mac_is_broadcast(mac_bcast));
	assert_false(net_mac_is_broadcast(mac_group));
	assert_false(net_mac_is_broadcast((uint8_t[]){ 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe }));
	assert_true(net_mac_is_multicast(mac_bcast));
	assert_true(net_mac_is_link_local_multicast(mac_mdns));
	assert_true(net_mac_is_link_local_multicast(mac_all_nodes));
	assert_true(net_mac_is_link_local_multicast((uint8_t[]){ 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 }));
	assert_false(net_mac_is_link_local_multicast(mac_group));
	assert_false(net_mac_is_link_local_multicast(mac_all_routers));
	assert_false(net_mac_is_link_local_multicast((uint8_t[]){ 0x01, 0x00, 0x5e, 0x00, 0x01, 0x01 }));
	assert_false(net_mac_is_link_local_multicast(mac_bcast));
}

static void test_frame_parse(void **state)
{
	uint8_t f[64] = { 0 };
	struct net_frame_info info;

	put_eth(f, mac_b, mac_a, NET_ETHERTYPE_IPV4);
	assert_int_equal(net_frame_parse(f, 13, &info), -EINVAL);
	assert_int_equal(net_frame_parse(f, 0, &info), -EINVAL);
	assert_int_equal(net_frame_parse(f, 14, &info), 0);
	assert_ptr_equal(info.dst, f);
	assert_ptr_equal(info.src, f + 6);
	assert_int_equal(info.ethertype, NET_ETHERTYPE_IPV4);
	assert_int_equal(info.l3_offset, 14);

	/* 802.1Q */
	put_be16(f + 12, NET_ETHERTYPE_VLAN);
	put_be16(f + 14, 0x0064);
	put_be16(f + 16, NET_ETHERTYPE_ARP);
	assert_int_equal(net_frame_parse(f, 60, &info), 0);
	assert_int_equal(info.ethertype, NET_ETHERTYPE_ARP);
	assert_int_equal(info.l3_offset, 18);
	/* the tag cut off: what is there is the ethertype */
	assert_int_equal(net_frame_parse(f, 17, &info), 0);
	assert_int_equal(info.ethertype, NET_ETHERTYPE_VLAN);
	assert_int_equal(info.l3_offset, 14);
	assert_int_equal(net_frame_parse(f, 18, &info), 0);
	assert_int_equal(info.ethertype, NET_ETHERTYPE_ARP);
	assert_int_equal(info.l3_offset, 18);

	/* 802.1ad + 802.1Q */
	put_be16(f + 12, NET_ETHERTYPE_QINQ);
	put_be16(f + 16, NET_ETHERTYPE_VLAN);
	put_be16(f + 18, 0x0005);
	put_be16(f + 20, NET_ETHERTYPE_IPV6);
	assert_int_equal(net_frame_parse(f, 60, &info), 0);
	assert_int_equal(info.ethertype, NET_ETHERTYPE_IPV6);
	assert_int_equal(info.l3_offset, 22);

	/* a third tag is not looked into */
	put_be16(f + 20, NET_ETHERTYPE_VLAN);
	put_be16(f + 24, NET_ETHERTYPE_IPV4);
	assert_int_equal(net_frame_parse(f, 60, &info), 0);
	assert_int_equal(info.ethertype, NET_ETHERTYPE_VLAN);
	assert_int_equal(info.l3_offset, 22);
	assert_ptr_equal(info.src, f + 6);
}

/* ---------- the switch ---------- */

static struct net_switch sw;
static struct net_port port_a, port_b, port_c;

static int switch_setup(void **state)
{
	const struct net_mac a = { MAC_A }, b = { MAC_B }, c = { MAC_C };

	memset(&sw, 0, sizeof(sw));
	net_port_init(&port_a, "a", &a);
	net_port_init(&port_b, "b", &b);
	net_port_init(&port_c, "c", &c);
	assert_int_equal(net_switch_add_port(&sw, &port_a), 0);
	assert_int_equal(net_switch_add_port(&sw, &port_b), 1);
	assert_int_equal(net_switch_add_port(&sw, &port_c), 2);
	return 0;
}

static void test_switch_add_port(void **state)
{
	static struct net_port more[NET_MAX_PORTS];
	struct net_port dup;
	const struct net_mac b = { MAC_B };

	net_port_init(&dup, "dup", &b);
	assert_int_equal(net_switch_add_port(&sw, &dup), -EEXIST);
	assert_int_equal(sw.nports, 3);
	assert_int_equal(net_switch_find(&sw, mac_c), 2);
	assert_int_equal(net_switch_find(&sw, mac_outside), -1);
	for (unsigned i = 3; i < NET_MAX_PORTS; i++) {
		struct net_mac m = { { 0x02, 0x01, 0, 0, 0, (uint8_t)i } };

		net_port_init(&more[i], "more", &m);
		assert_int_equal(net_switch_add_port(&sw, &more[i]), (int)i);
	}
	net_port_init(&more[0], "one too many", &(struct net_mac){ { 0x02, 0x02, 0, 0, 0, 0 } });
	assert_int_equal(net_switch_add_port(&sw, &more[0]), -ENOSPC);
	assert_int_equal(sw.nports, NET_MAX_PORTS);
}

static enum net_verdict check(int from, const uint8_t *f, size_t len)
{
	struct net_frame_info info;

	assert_int_equal(net_frame_parse(f, len, &info), 0);
	return net_switch_check_source(&sw, from, f, len, &info);
}

/* An Ethernet/IPv4 ARP packet at p; returns its length. */
static size_t put_arp(uint8_t *p, uint16_t htype, uint16_t op, const uint8_t *sha, const uint8_t *spa,
		      const uint8_t *tha, const uint8_t *tpa)
{
	put_be16(p, htype);
	put_be16(p + 2, NET_ETHERTYPE_IPV4);
	p[4] = 6;
	p[5] = 4;
	put_be16(p + 6, op);
	memcpy(p + 8, sha, 6);
	memcpy(p + 14, spa, 4);
	memcpy(p + 18, tha, 6);
	memcpy(p + 24, tpa, 4);
	return 28;
}

static void test_source_from_client(void **state)
{
	static const uint8_t zero[6];
	uint8_t f[64] = { 0 };
	size_t n;

	put_eth(f, mac_b, mac_a, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(0, f, 60), NET_ACCEPT);
	assert_int_equal(check(1, f, 60), NET_SPOOFED);   /* B sending as A */
	put_eth(f, mac_b, mac_outside, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(0, f, 60), NET_SPOOFED);
	put_eth(f, mac_b, (uint8_t[]){ 0x03, 0x00, 0x00, 0x00, 0x00, 0x0a }, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(0, f, 60), NET_SPOOFED);   /* multicast source */
	put_eth(f, mac_b, mac_bcast, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(0, f, 60), NET_SPOOFED);

	/* ARP: the sender hardware address is what a neighbour cache learns */
	n = put_eth(f, mac_bcast, mac_a, NET_ETHERTYPE_ARP);
	n += put_arp(f + n, 1, 1, mac_a, ip_a, zero, ip_b);
	assert_int_equal(check(0, f, n), NET_ACCEPT);
	put_arp(f + 14, 1, 2, mac_b, ip_a, mac_b, ip_b);
	assert_int_equal(check(0, f, n), NET_SPOOFED);
	put_arp(f + 14, 1, 2, mac_outside, ip_a, mac_b, ip_b);
	assert_int_equal(check(0, f, n), NET_SPOOFED);
	/* Linux takes hardware type 6 (IEEE 802) on Ethernet as well as 1 */
	put_arp(f + 14, 6, 2, mac_b, ip_a, mac_b, ip_b);
	assert_int_equal(check(0, f, n), NET_SPOOFED);
	put_arp(f + 14, 6, 1, mac_a, ip_a, zero, ip_b);
	assert_int_equal(check(0, f, n), NET_ACCEPT);
	/* Truncated or not Ethernet/IPv4: no receiver takes it as ARP, nothing to check */
	put_arp(f + 14, 1, 2, mac_b, ip_a, mac_b, ip_b);
	assert_int_equal(check(0, f, n - 1), NET_ACCEPT);
	f[14 + 4] = 8;
	assert_int_equal(check(0, f, n), NET_ACCEPT);

	/* a VLAN-tagged ARP is looked into as well */
	n = put_eth(f, mac_bcast, mac_a, NET_ETHERTYPE_VLAN);
	put_be16(f + n, 7);
	put_be16(f + n + 2, NET_ETHERTYPE_ARP);
	n += 4;
	n += put_arp(f + n, 1, 2, mac_c, ip_a, mac_b, ip_b);
	assert_int_equal(check(0, f, n), NET_SPOOFED);
	put_arp(f + 18, 1, 2, mac_a, ip_a, mac_b, ip_b);
	assert_int_equal(check(0, f, n), NET_ACCEPT);
}

static void test_source_from_uplink(void **state)
{
	uint8_t f[64] = { 0 };
	size_t n;

	put_eth(f, mac_a, mac_outside, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(NET_FROM_UPLINK, f, 60), NET_ACCEPT);
	put_eth(f, mac_b, mac_a, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(NET_FROM_UPLINK, f, 60), NET_SPOOFED);  /* a client's MAC from outside */
	put_eth(f, mac_bcast, mac_c, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(NET_FROM_UPLINK, f, 60), NET_SPOOFED);
	put_eth(f, mac_a, mac_group, NET_ETHERTYPE_IPV4);
	assert_int_equal(check(NET_FROM_UPLINK, f, 60), NET_SPOOFED);  /* multicast source */
	/* outside hosts' ARP is theirs to get right: not checked */
	n = put_eth(f, mac_bcast, mac_outside, NET_ETHERTYPE_ARP);
	n += put_arp(f + n, 1, 1, (uint8_t[]){ 0x52, 0x54, 0, 0, 0, 1 }, ip_b, mac_bcast, ip_a);
	assert_int_equal(check(NET_FROM_UPLINK, f, n), NET_ACCEPT);
}

#define BIT(i) (UINT64_C(1) << (i))

static void expect_route(int from, const uint8_t *dst, uint64_t ports, bool uplink)
{
	struct net_route r = net_switch_route(&sw, from, dst);

	assert_int_equal(r.ports, ports);
	assert_int_equal(r.uplink, uplink);
}

static void test_route_unicast(void **state)
{
	expect_route(0, mac_b, BIT(1), false);
	expect_route(2, mac_a, BIT(0), false);
	expect_route(0, mac_outside, 0, true);        /* unknown: the uplink only */
	expect_route(NET_FROM_UPLINK, mac_c, BIT(2), false);
	expect_route(NET_FROM_UPLINK, mac_outside, 0, false); /* never back out */
	expect_route(1, mac_b, 0, false);             /* to itself: nowhere, not the uplink either */
	port_b.rx_flags = NET_RX_NOUNI;
	expect_route(0, mac_b, 0, false);             /* a known port that does not want it */
	expect_route(NET_FROM_UPLINK, mac_b, 0, false);
	port_b.rx_flags = NET_RX_ALLMULTI | NET_RX_NOBCAST | NET_RX_NOMULTI;
	expect_route(0, mac_b, BIT(1), false);        /* multicast filters leave unicast alone */
}

static void test_route_broadcast(void **state)
{
	expect_route(0, mac_bcast, BIT(1) | BIT(2), true);
	expect_route(2, mac_bcast, BIT(0) | BIT(1), true);
	expect_route(NET_FROM_UPLINK, mac_bcast, BIT(0) | BIT(1) | BIT(2), false);
	port_b.rx_flags = NET_RX_NOBCAST;
	expect_route(0, mac_bcast, BIT(2), true);
	expect_route(NET_FROM_UPLINK, mac_bcast, BIT(0) | BIT(2), false);
	/* NOMULTI is about multicast, not broadcast */
	port_b.rx_flags = NET_RX_NOMULTI;
	expect_route(0, mac_bcast, BIT(1) | BIT(2), true);
}

static void test_route_multicast(void **state)
{
	/* nobody joined: the uplink only */
	expect_route(0, mac_group, 0, true);
	expect_route(NET_FROM_UPLINK, mac_group, 0, false);
	net_port_join(&port_b, mac_group);
	expect_route(0, mac_group, BIT(1), true);
	expect_route(NET_FROM_UPLINK, mac_group, BIT(1), false);
	expect_route(1, mac_group, 0, true);          /* not back to the member that sent it */
	expect_route(0, mac_group2, 0, true);
	net_port_join(&port_a, mac_group);
	expect_route(1, mac_group, BIT(0), true);
	expect_route(2, mac_group, BIT(0) | BIT(1), true);
	net_port_leave(&port_b, mac_group);
	expect_route(2, mac_group, BIT(0), true);
	net_port_leave(&port_b, mac_group);           /* twice: nothing more happens */
	assert_int_equal(port_b.ngroups, 0);
	assert_int_equal(port_a.ngroups, 1);

	/* link-local groups reach everyone without joining */
	expect_route(0, mac_mdns, BIT(1) | BIT(2), true);
	expect_route(NET_FROM_UPLINK, mac_all_nodes, BIT(0) | BIT(1) | BIT(2), false);
	expect_route(0, mac_all_routers, 0, true);    /* ff02::2 is not for everyone */

	/* ALLMULTI: every group; NOMULTI: none, not even link-local or joined ones */
	port_c.rx_flags = NET_RX_ALLMULTI;
	expect_route(NET_FROM_UPLINK, mac_group2, BIT(2), false);
	expect_route(NET_FROM_UPLINK, mac_all_routers, BIT(2), false);
	port_a.rx_flags = NET_RX_NOMULTI;
	expect_route(1, mac_group, BIT(2), true);
	expect_route(1, mac_mdns, BIT(2), true);
	expect_route(1, mac_bcast, BIT(0) | BIT(2), true);
	port_c.rx_flags = NET_RX_ALLMULTI | NET_RX_NOMULTI; /* NOMULTI wins */
	expect_route(1, mac_group2, 0, true);
}

static void test_groups_overflow(void **state)
{
	uint8_t g[6] = { 0x01, 0x00, 0x5e, 0x10, 0x00, 0x00 };
	struct net_mac table[NET_MAX_GROUPS + 1];

	for (unsigned i = 0; i < NET_MAX_GROUPS; i++) {
		g[5] = (uint8_t)i;
		net_port_join(&port_b, g);
		net_port_join(&port_b, g); /* duplicates take no room */
	}
	assert_int_equal(port_b.ngroups, NET_MAX_GROUPS);
	assert_false(port_b.groups_overflow);
	expect_route(0, mac_group, 0, true);
	/* broadcast and unicast are not groups */
	net_port_join(&port_b, mac_bcast);
	net_port_join(&port_b, mac_c);
	assert_false(port_b.groups_overflow);
	g[4] = 1;
	net_port_join(&port_b, g);
	assert_int_equal(port_b.ngroups, NET_MAX_GROUPS);
	assert_true(port_b.groups_overflow);
	expect_route(0, mac_group, BIT(1), true);     /* all multicast now */
	expect_route(0, mac_group2, BIT(1), true);
	port_b.rx_flags = NET_RX_NOMULTI;
	expect_route(0, mac_group, 0, true);
	port_b.rx_flags = 0;

	/* a table replaces what was joined, and forgets the overflow */
	table[0] = (struct net_mac){ { 0x01, 0x00, 0x5e, 0x01, 0x02, 0x03 } };
	net_port_set_groups(&port_b, table, 1);
	assert_int_equal(port_b.ngroups, 1);
	assert_false(port_b.groups_overflow);
	expect_route(0, mac_group, BIT(1), true);
	expect_route(0, mac_group2, 0, true);
	for (unsigned i = 0; i <= NET_MAX_GROUPS; i++)
		table[i] = (struct net_mac){ { 0x01, 0x00, 0x5e, 0x20, 0x00, (uint8_t)i } };
	net_port_set_groups(&port_b, table, NET_MAX_GROUPS + 1);
	assert_true(port_b.groups_overflow);
	expect_route(0, mac_group2, BIT(1), true);
	port_b.rx_flags = NET_RX_ALLMULTI;
	net_port_reset_filters(&port_b);
	assert_int_equal(port_b.rx_flags, 0);
	assert_int_equal(port_b.ngroups, 0);
	assert_false(port_b.groups_overflow);
	expect_route(0, mac_group2, 0, true);
}

/* The property the switch exists for: whatever filters the ports set and whatever groups they
 * joined, a unicast frame reaches at most the port owning its destination, never its source. */
static void test_route_isolation(void **state)
{
	const uint8_t *dsts[] = { mac_a, mac_b, mac_c, mac_outside, mac_bcast, mac_group, mac_mdns };
	struct net_port *ports[] = { &port_a, &port_b, &port_c };

	for (unsigned flags = 0; flags < 16 * 16 * 16; flags++) {
		port_a.rx_flags = flags & 15;
		port_b.rx_flags = (flags >> 4) & 15;
		port_c.rx_flags = (flags >> 8) & 15;
		port_b.groups_overflow = flags & 1;
		for (int from = NET_FROM_UPLINK; from < 3; from++) {
			for (unsigned d = 0; d < sizeof(dsts) / sizeof(dsts[0]); d++) {
				struct net_route r = net_switch_route(&sw, from, dsts[d]);

				assert_int_equal(r.ports & ~(BIT(0) | BIT(1) | BIT(2)), 0);
				if (from >= 0)
					assert_int_equal(r.ports & BIT(from), 0);
				else
					assert_false(r.uplink);
				if (net_mac_is_multicast(dsts[d]))
					continue;
				for (unsigned i = 0; i < 3; i++)
					if (r.ports & BIT(i))
						assert_memory_equal(ports[i]->mac.b, dsts[d], 6);
				if (net_switch_find(&sw, dsts[d]) >= 0)
					assert_false(r.uplink); /* a client's unicast never leaves */
			}
		}
	}
}

/* ---------- IGMP and MLD snooping ---------- */

struct snooped {
	unsigned n;
	enum net_mcast_change change[16];
	uint8_t mac[16][6];
};

static void collect(void *opaque, enum net_mcast_change change, const uint8_t *mac)
{
	struct snooped *s = opaque;

	assert_true(s->n < 16);
	s->change[s->n] = change;
	memcpy(s->mac[s->n], mac, 6);
	s->n++;
}

/* Snoops a copy of f[0..len) in a buffer of exactly len bytes, so that the sanitizer build sees any
 * read past the end. */
static int snoop(const uint8_t *f, size_t len, struct snooped *s)
{
	uint8_t *copy = malloc(len);
	struct net_frame_info info;
	int r;

	assert_non_null(copy);
	memcpy(copy, f, len);
	memset(s, 0, sizeof(*s));
	assert_int_equal(net_frame_parse(copy, len, &info), 0);
	r = net_frame_snoop_mcast(copy, len, &info, collect, s);
	free(copy);
	assert_int_equal(r, (int)s->n);
	return r;
}

static void expect_change(const struct snooped *s, unsigned i, enum net_mcast_change change, const uint8_t *mac)
{
	assert_true(i < s->n);
	assert_int_equal(s->change[i], change);
	assert_memory_equal(s->mac[i], mac, 6);
}

/* An IGMPv1/v2 message to group in an IPv4 packet with a router alert; returns the frame length. */
static size_t igmp_v2(uint8_t *f, uint8_t type, const uint8_t *group)
{
	size_t n = put_eth(f, mac_group, mac_a, NET_ETHERTYPE_IPV4);
	uint8_t *igmp;

	n += put_ipv4(f + n, 2, ip_a, group, 8, true);
	igmp = f + n;
	memset(igmp, 0, 8);
	igmp[0] = type;
	igmp[1] = 100;
	memcpy(igmp + 4, group, 4);
	put_be16(igmp + 2, (uint16_t)~fold(sum16(igmp, 8, 0)));
	return n + 8;
}

static void test_snoop_igmp_v1_v2(void **state)
{
	uint8_t f[128];
	struct snooped s;
	size_t n;

	n = igmp_v2(f, 0x16, (uint8_t[]){ 239, 1, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_JOIN, mac_group);
	/* the top bit of the second byte does not make it to the MAC */
	n = igmp_v2(f, 0x16, (uint8_t[]){ 239, 129, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_JOIN, mac_group);
	n = igmp_v2(f, 0x17, (uint8_t[]){ 239, 1, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_LEAVE, mac_group);
	n = igmp_v2(f, 0x12, (uint8_t[]){ 224, 0, 0, 251 });
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_JOIN, mac_mdns);
	/* not a group address; a query; IGMP cut short; not IGMP */
	n = igmp_v2(f, 0x16, (uint8_t[]){ 10, 1, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 0);
	n = igmp_v2(f, 0x11, (uint8_t[]){ 239, 1, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 0);
	n = igmp_v2(f, 0x16, (uint8_t[]){ 239, 1, 2, 3 });
	assert_int_equal(snoop(f, n - 1, &s), 0);
	f[14 + 9] = 17;
	assert_int_equal(snoop(f, n, &s), 0);
	/* the IPv4 total length says the message is shorter than the frame's padding suggests */
	n = igmp_v2(f, 0x16, (uint8_t[]){ 239, 1, 2, 3 });
	memset(f + n, 0, 10);
	put_be16(f + 14 + 2, 24 + 7);
	assert_int_equal(snoop(f, n + 10, &s), 0);
	/* total length beyond the frame */
	put_be16(f + 14 + 2, 24 + 8 + 20);
	assert_int_equal(snoop(f, n + 10, &s), 0);
	/* header length field shorter than a header */
	put_be16(f + 14 + 2, 24 + 8);
	f[14] = 0x44;
	assert_int_equal(snoop(f, n, &s), 0);
}

/* Appends a v3/v2 group record: addr_len 4 (IGMPv3) or 16 (MLDv2). */
static size_t put_record(uint8_t *p, uint8_t type, const uint8_t *group, size_t addr_len, uint16_t nsrcs, uint8_t aux)
{
	size_t n = 4 + addr_len;

	p[0] = type;
	p[1] = aux;
	put_be16(p + 2, nsrcs);
	memcpy(p + 4, group, addr_len);
	for (unsigned i = 0; i < nsrcs; i++, n += addr_len) {
		memset(p + n, 0, addr_len);
		p[n] = 10;
		p[n + addr_len - 1] = (uint8_t)(i + 1);
	}
	memset(p + n, 0xee, (size_t)aux * 4);
	return n + (size_t)aux * 4;
}

/* An IGMPv3 report of the records in rec[0..rec_len) claiming nrec of them. */
static size_t igmp_v3(uint8_t *f, uint16_t nrec, const uint8_t *rec, size_t rec_len)
{
	size_t n = put_eth(f, (uint8_t[]){ 0x01, 0x00, 0x5e, 0x00, 0x00, 0x16 }, mac_a, NET_ETHERTYPE_IPV4);
	uint8_t *igmp;

	n += put_ipv4(f + n, 2, ip_a, (uint8_t[]){ 224, 0, 0, 22 }, 8 + rec_len, true);
	igmp = f + n;
	memset(igmp, 0, 8);
	igmp[0] = 0x22;
	put_be16(igmp + 6, nrec);
	memcpy(igmp + 8, rec, rec_len);
	put_be16(igmp + 2, (uint16_t)~fold(sum16(igmp, 8 + rec_len, 0)));
	return n + 8 + rec_len;
}

static void test_snoop_igmp_v3(void **state)
{
	uint8_t rec[256], f[512];
	struct snooped s;
	size_t r = 0, n, first_len;

	r += put_record(rec + r, 2, (uint8_t[]){ 239, 1, 2, 3 }, 4, 0, 0);   /* IS_EXCLUDE {}: join */
	first_len = r;
	r += put_record(rec + r, 3, (uint8_t[]){ 239, 127, 0, 1 }, 4, 0, 0); /* TO_INCLUDE {}: leave */
	r += put_record(rec + r, 5, (uint8_t[]){ 224, 0, 0, 251 }, 4, 2, 1); /* ALLOW {2 sources}: join */
	r += put_record(rec + r, 6, (uint8_t[]){ 239, 9, 9, 9 }, 4, 1, 0);  /* BLOCK: no change */
	r += put_record(rec + r, 5, (uint8_t[]){ 239, 9, 9, 8 }, 4, 0, 0);  /* ALLOW {}: no change */
	r += put_record(rec + r, 4, (uint8_t[]){ 10, 0, 0, 1 }, 4, 0, 0);   /* not a group */
	r += put_record(rec + r, 1, (uint8_t[]){ 239, 1, 2, 4 }, 4, 1, 0);  /* IS_INCLUDE {S}: join */
	r += put_record(rec + r, 4, (uint8_t[]){ 239, 1, 2, 5 }, 4, 3, 2);  /* TO_EXCLUDE: join */
	n = igmp_v3(f, 8, rec, r);
	assert_int_equal(snoop(f, n, &s), 5);
	expect_change(&s, 0, NET_MCAST_JOIN, mac_group);
	expect_change(&s, 1, NET_MCAST_LEAVE, mac_group2);
	expect_change(&s, 2, NET_MCAST_JOIN, mac_mdns);
	expect_change(&s, 3, NET_MCAST_JOIN, (uint8_t[]){ 0x01, 0x00, 0x5e, 0x01, 0x02, 0x04 });
	expect_change(&s, 4, NET_MCAST_JOIN, (uint8_t[]){ 0x01, 0x00, 0x5e, 0x01, 0x02, 0x05 });

	/* fewer records claimed than present: the rest is not looked at */
	n = igmp_v3(f, 2, rec, r);
	assert_int_equal(snoop(f, n, &s), 2);
	/* more claimed than present, or the frame cut anywhere inside the second record: the
	 * records before still count, nothing is read past the end */
	n = igmp_v3(f, 60000, rec, r);
	assert_int_equal(snoop(f, n, &s), 5);
	for (size_t cut = 1; cut < 8; cut++) {
		n = igmp_v3(f, 8, rec, first_len + cut);
		assert_int_equal(snoop(f, n, &s), 1);
	}
	/* a record claiming more sources than fit */
	r = put_record(rec, 2, (uint8_t[]){ 239, 1, 2, 3 }, 4, 0, 0);
	r += put_record(rec + r, 1, (uint8_t[]){ 239, 1, 2, 4 }, 4, 2, 0);
	put_be16(rec + first_len + 2, 0xffff);
	n = igmp_v3(f, 2, rec, r);
	assert_int_equal(snoop(f, n, &s), 1);
	/* and aux data that does not fit */
	put_be16(rec + first_len + 2, 2);
	rec[first_len + 1] = 0xff;
	n = igmp_v3(f, 2, rec, r);
	assert_int_equal(snoop(f, n, &s), 1);
	/* the IPv4 total length cuts the report */
	rec[first_len + 1] = 0;
	n = igmp_v3(f, 2, rec, r);
	assert_int_equal(snoop(f, n, &s), 2);
	put_be16(f + 14 + 2, (uint16_t)(get_be16(f + 14 + 2) - 1));
	assert_int_equal(snoop(f, n, &s), 1);
}

/* An MLD message after a hop-by-hop header (or directly after the IPv6 header). */
static size_t mld(uint8_t *f, bool hbh, const uint8_t *icmp, size_t icmp_len)
{
	size_t n = put_eth(f, (uint8_t[]){ 0x33, 0x33, 0x00, 0x00, 0x00, 0x16 }, mac_a, NET_ETHERTYPE_IPV6);

	n += put_ipv6(f + n, hbh ? 0 : 58, ip6_a, ip6_mld2, (hbh ? 8 : 0) + icmp_len);
	if (hbh)
		n += put_hbh(f + n, 58);
	memcpy(f + n, icmp, icmp_len);
	return n + icmp_len;
}

static const uint8_t group6[16] = { 0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x03 };
static const uint8_t group6_mac[6] = { 0x33, 0x33, 0x00, 0x01, 0x00, 0x03 };

static void test_snoop_mld_v1(void **state)
{
	uint8_t icmp[24] = { 131, 0, 0, 0, 0, 0, 0, 0 }, f[256];
	struct snooped s;
	size_t n;

	memcpy(icmp + 8, group6, 16);
	n = mld(f, true, icmp, 24);
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_JOIN, group6_mac);
	icmp[0] = 132;
	n = mld(f, true, icmp, 24);
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_LEAVE, group6_mac);
	n = mld(f, false, icmp, 24);
	assert_int_equal(snoop(f, n, &s), 1);
	expect_change(&s, 0, NET_MCAST_LEAVE, group6_mac);
	/* a query is not a report */
	icmp[0] = 130;
	n = mld(f, true, icmp, 24);
	assert_int_equal(snoop(f, n, &s), 0);
	/* not a multicast address */
	icmp[0] = 131;
	memcpy(icmp + 8, ip6_b, 16);
	n = mld(f, true, icmp, 24);
	assert_int_equal(snoop(f, n, &s), 0);
	memcpy(icmp + 8, group6, 16);
	/* cut short; payload length beyond the frame; the hop-by-hop header beyond the payload */
	n = mld(f, true, icmp, 24);
	assert_int_equal(snoop(f, n - 1, &s), 0);
	put_be16(f + 14 + 4, 8 + 23);
	assert_int_equal(snoop(f, n, &s), 0);
	put_be16(f + 14 + 4, 8 + 24 + 1);
	assert_int_equal(snoop(f, n, &s), 0);
	put_be16(f + 14 + 4, 8 + 24);
	f[14 + 40 + 1] = 10; /* the extension header claims 88 bytes */
	assert_int_equal(snoop(f, n, &s), 0);
	/* an extension header chain that never ends is not followed forever */
	for (size_t i = 0; i < 20; i++)
		put_hbh(f + 14 + 40 + 8 * i, 60);
	put_be16(f + 14 + 4, 160);
	f[14 + 6] = 0;
	assert_int_equal(snoop(f, 14 + 40 + 160, &s), 0);
}

static size_t mld_v2(uint8_t *f, uint16_t nrec, const uint8_t *rec, size_t rec_len)
{
	uint8_t icmp[512] = { 143, 0, 0, 0, 0, 0 };

	put_be16(icmp + 6, nrec);
	memcpy(icmp + 8, rec, rec_len);
	return mld(f, true, icmp, 8 + rec_len);
}

static void test_snoop_mld_v2(void **state)
{
	static const uint8_t all_nodes6[16] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01 };
	uint8_t rec[256], f[640];
	struct snooped s;
	size_t r = 0, n, first_len;

	r += put_record(rec + r, 4, group6, 16, 0, 0);        /* TO_EXCLUDE {}: join */
	first_len = r;
	r += put_record(rec + r, 3, all_nodes6, 16, 0, 0);    /* TO_INCLUDE {}: leave */
	r += put_record(rec + r, 5, group6, 16, 2, 1);        /* ALLOW {2}: join */
	r += put_record(rec + r, 2, ip6_b, 16, 0, 0);         /* not a group */
	n = mld_v2(f, 4, rec, r);
	assert_int_equal(snoop(f, n, &s), 3);
	expect_change(&s, 0, NET_MCAST_JOIN, group6_mac);
	expect_change(&s, 1, NET_MCAST_LEAVE, mac_all_nodes);
	expect_change(&s, 2, NET_MCAST_JOIN, group6_mac);
	for (size_t cut = 1; cut < 20; cut += 3) {
		n = mld_v2(f, 4, rec, first_len + cut);
		assert_int_equal(snoop(f, n, &s), 1);
	}
	put_be16(rec + first_len + 2, 1000);
	n = mld_v2(f, 4, rec, r);
	assert_int_equal(snoop(f, n, &s), 1);
}

static void test_snoop_other(void **state)
{
	uint8_t f[128] = { 0 };
	struct snooped s;
	size_t n;

	/* a VLAN-tagged report counts: the tag is the client's business */
	n = put_eth(f, mac_group, mac_a, NET_ETHERTYPE_VLAN);
	put_be16(f + n, 3);
	put_be16(f + n + 2, NET_ETHERTYPE_IPV4);
	n += 4;
	n += put_ipv4(f + n, 2, ip_a, (uint8_t[]){ 239, 1, 2, 3 }, 8, false);
	f[n] = 0x16;
	memcpy(f + n + 4, (uint8_t[]){ 239, 1, 2, 3 }, 4);
	assert_int_equal(snoop(f, n + 8, &s), 1);
	expect_change(&s, 0, NET_MCAST_JOIN, mac_group);
	/* ARP, and IPv4 UDP, are not reports */
	n = put_eth(f, mac_bcast, mac_a, NET_ETHERTYPE_ARP);
	n += put_arp(f + n, 1, 1, mac_a, ip_a, mac_bcast, ip_b);
	assert_int_equal(snoop(f, n, &s), 0);
	n = put_eth(f, mac_group, mac_a, NET_ETHERTYPE_IPV4);
	n += put_ipv4(f + n, 17, ip_a, (uint8_t[]){ 239, 1, 2, 3 }, 8, false);
	assert_int_equal(snoop(f, n + 8, &s), 0);
	/* headers only */
	assert_int_equal(snoop(f, 14, &s), 0);
	put_be16(f + 12, NET_ETHERTYPE_IPV6);
	assert_int_equal(snoop(f, 14, &s), 0);
}

static void test_snoop_applied_to_port(void **state)
{
	uint8_t f[128];
	struct snooped s;
	size_t n;

	/* what ddtk-net does with a snooped report: join, then leave */
	n = igmp_v2(f, 0x16, (uint8_t[]){ 239, 1, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 1);
	net_port_join(&port_c, s.mac[0]);
	expect_route(NET_FROM_UPLINK, mac_group, BIT(2), false);
	n = igmp_v2(f, 0x17, (uint8_t[]){ 239, 1, 2, 3 });
	assert_int_equal(snoop(f, n, &s), 1);
	net_port_leave(&port_c, s.mac[0]);
	expect_route(NET_FROM_UPLINK, mac_group, 0, false);
}

/* ---------- virtio-net header ---------- */

#define F(b) VU_BIT(NET_F_##b)

static void test_vnet_hdr_len_and_codec(void **state)
{
	struct net_vnet_hdr h = { .flags = 1, .gso_type = 0x81, .hdr_len = 0x1234, .gso_size = 1448,
				  .csum_start = 0x0122, .csum_offset = 0xabcd, .num_buffers = 3 };
	struct net_vnet_hdr back;
	uint8_t wire[12];

	assert_int_equal(net_vnet_hdr_len(0), 10);
	assert_int_equal(net_vnet_hdr_len(F(CSUM) | F(GUEST_TSO4)), 10);
	assert_int_equal(net_vnet_hdr_len(F(MRG_RXBUF)), 12);
	assert_int_equal(net_vnet_hdr_len(VU_BIT(VU_F_VERSION_1)), 12);
	assert_int_equal(net_vnet_hdr_len(VU_BIT(VU_F_VERSION_1) | F(MRG_RXBUF)), 12);

	memset(wire, 0x55, sizeof(wire));
	net_vnet_hdr_encode(&h, 10, wire);
	assert_memory_equal(wire, ((uint8_t[]){ 1, 0x81, 0x34, 0x12, 0xa8, 0x05, 0x22, 0x01, 0xcd, 0xab, 0x55, 0x55 }),
			    12);
	net_vnet_hdr_decode(wire, 10, &back);
	assert_int_equal(back.num_buffers, 1);
	back.num_buffers = 3;
	assert_memory_equal(&back, &h, sizeof(h));
	net_vnet_hdr_encode(&h, 12, wire);
	assert_int_equal(wire[10], 3);
	assert_int_equal(wire[11], 0);
	memset(&back, 0, sizeof(back));
	net_vnet_hdr_decode(wire, 12, &back);
	assert_memory_equal(&back, &h, sizeof(h));
}

static int tx(uint8_t flags, uint8_t gso, uint16_t gso_size, uint16_t start, uint16_t offset, size_t len,
	      uint64_t features)
{
	struct net_vnet_hdr h = { .flags = flags, .gso_type = gso, .gso_size = gso_size, .csum_start = start,
				  .csum_offset = offset };

	return net_vnet_check_tx(&h, len, features);
}

static void test_vnet_check_tx(void **state)
{
	const uint64_t all = F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(HOST_UFO);
	const uint8_t NC = NET_HDR_F_NEEDS_CSUM;
	struct net_vnet_hdr h;

	assert_int_equal(tx(0, 0, 0, 0, 0, 60, 0), 0);
	assert_int_equal(tx(0, 0, 0, 0, 0, NET_MAX_FRAME, 0), 0);
	assert_int_equal(tx(0, 0, 0, 0, 0, NET_MAX_FRAME + 1, all), -EINVAL);
	/* partial checksums */
	assert_int_equal(tx(NC, 0, 0, 34, 16, 100, F(CSUM)), 0);
	assert_int_equal(tx(NC, 0, 0, 34, 16, 100, all & ~F(CSUM)), -EINVAL);
	assert_int_equal(tx(NC, 0, 0, 82, 16, 100, F(CSUM)), 0);       /* the field ends the frame */
	assert_int_equal(tx(NC, 0, 0, 83, 16, 100, F(CSUM)), -EINVAL);
	assert_int_equal(tx(NC, 0, 0, 34, 65, 100, F(CSUM)), -EINVAL);
	assert_int_equal(tx(NC, 0, 0, 0xffff, 0xffff, 100, F(CSUM)), -EINVAL);
	/* segmentation offloads need their feature, a partial checksum and a size */
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV4, 1448, 34, 16, 3000, all), 0);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV4, 1448, 34, 16, 3000, all & ~F(HOST_TSO4)), -EINVAL);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV6, 1428, 54, 16, 3000, all), 0);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV6, 1428, 54, 16, 3000, all & ~F(HOST_TSO6)), -EINVAL);
	assert_int_equal(tx(NC, NET_HDR_GSO_UDP, 1472, 34, 6, 3000, all), 0);
	assert_int_equal(tx(NC, NET_HDR_GSO_UDP, 1472, 34, 6, 3000, all & ~F(HOST_UFO)), -EINVAL);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV4 | NET_HDR_GSO_ECN, 1448, 34, 16, 3000, all), 0);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV4 | NET_HDR_GSO_ECN, 1448, 34, 16, 3000, all & ~F(HOST_ECN)),
			 -EINVAL);
	assert_int_equal(tx(NC, NET_HDR_GSO_ECN, 1448, 34, 16, 3000, all), -EINVAL);
	assert_int_equal(tx(NC, 2, 1448, 34, 16, 3000, all), -EINVAL);
	assert_int_equal(tx(NC, 5, 1448, 34, 16, 3000, all), -EINVAL);
	assert_int_equal(tx(0, NET_HDR_GSO_TCPV4, 1448, 34, 16, 3000, all), -EINVAL);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV4, 0, 34, 16, 3000, all), -EINVAL);
	assert_int_equal(tx(NC, NET_HDR_GSO_TCPV4, 1448, 34, 16, NET_MAX_FRAME + 1, all), -EINVAL);
	/* DATA_VALID and unknown flags are the device's to set: cleared, not refused */
	h = (struct net_vnet_hdr){ .flags = NET_HDR_F_DATA_VALID | 0x04 | 0x80 };
	assert_int_equal(net_vnet_check_tx(&h, 60, 0), 0);
	assert_int_equal(h.flags, 0);
	h = (struct net_vnet_hdr){ .flags = NC | NET_HDR_F_DATA_VALID, .csum_start = 34, .csum_offset = 6 };
	assert_int_equal(net_vnet_check_tx(&h, 60, F(CSUM)), 0);
	assert_int_equal(h.flags, NC);
}

static uint8_t pkt[2048];

/* Ethernet + IPv4 + UDP (proto 17) or TCP (proto 6) with payload bytes of a pattern, its checksum
 * field holding the folded pseudo-header sum (what a driver with CSUM writes). Returns the frame
 * length; *pseudo gets the pseudo-header sum. */
static size_t build_l4_v4(uint8_t proto, size_t payload, uint32_t *pseudo)
{
	size_t n = put_eth(pkt, mac_b, mac_a, NET_ETHERTYPE_IPV4);
	size_t l4 = (proto == 6 ? 20 : 8) + payload;
	uint8_t *t;

	n += put_ipv4(pkt + n, proto, ip_a, ip_b, l4, false);
	t = pkt + n;
	memset(t, 0, l4);
	put_be16(t, 40000);
	put_be16(t + 2, 5201);
	if (proto == 6) {
		t[12] = 0x50;
		t[13] = 0x18;
		put_be16(t + 14, 65535);
	} else {
		put_be16(t + 4, (uint16_t)l4);
	}
	for (size_t i = 0; i < payload; i++)
		t[l4 - payload + i] = (uint8_t)(i * 7 + 3);
	*pseudo = sum16(ip_a, 4, 0);
	*pseudo = sum16(ip_b, 4, *pseudo);
	*pseudo += proto + (uint32_t)l4;
	put_be16(t + (proto == 6 ? 16 : 6), fold(*pseudo));
	return n + l4;
}

/* Whether the segment from start, its checksum in place, adds up with the pseudo-header. */
static bool l4_checksum_ok(const uint8_t *f, size_t len, size_t start, uint32_t pseudo)
{
	return fold(sum16(f + start, len - start, pseudo)) == 0xffff;
}

static void test_vnet_fixup_rx_checksum(void **state)
{
	struct net_vnet_hdr h;
	uint32_t pseudo;
	uint8_t before[2048];
	size_t len;

	for (int proto = 6; proto <= 17; proto += 11) {
		for (size_t payload = 0; payload < 40; payload += 13) {
			uint16_t off = proto == 6 ? 16 : 6;
			uint16_t expect;

			len = build_l4_v4((uint8_t)proto, payload, &pseudo);
			assert_false(l4_checksum_ok(pkt, len, 34, pseudo));
			/* the checksum computed from scratch, apart from the code under test */
			memcpy(before, pkt, len);
			put_be16(before + 34 + off, 0);
			expect = (uint16_t)~fold(sum16(before + 34, len - 34, pseudo));

			/* a receiver that takes partial checksums gets it as it is */
			memcpy(before, pkt, len);
			h = (struct net_vnet_hdr){ .flags = NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = off };
			assert_int_equal(net_vnet_rx_needs_fixup(&h, F(GUEST_CSUM)), 0);
			assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, F(GUEST_CSUM)), 0);
			assert_int_equal(h.flags, NET_HDR_F_NEEDS_CSUM);
			assert_memory_equal(pkt, before, len);

			/* one that does not gets it completed */
			assert_int_equal(net_vnet_rx_needs_fixup(&h, 0), 1);
			assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), 0);
			assert_int_equal(h.flags, 0);
			assert_int_equal(h.csum_start, 0);
			assert_int_equal(h.csum_offset, 0);
			/* cppcheck-suppress knownConditionTrueFalse ; a fold of 0xffff inverts to 0 */
			assert_int_equal(get_be16(pkt + 34 + off), expect == 0 && proto == 17 ? 0xffff : expect);
			assert_true(l4_checksum_ok(pkt, len, 34, pseudo));
			/* nothing but the checksum field changed */
			put_be16(before + 34 + off, get_be16(pkt + 34 + off));
			assert_memory_equal(pkt, before, len);
		}
	}
}

static void test_vnet_fixup_rx_udp_zero(void **state)
{
	struct net_vnet_hdr h = { .flags = NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 6 };
	uint32_t pseudo;
	size_t len = build_l4_v4(17, 8, &pseudo);
	uint16_t s;

	/* Choose the last payload word so that the checksum comes out as 0, which UDP sends as
	 * 0xffff (0 would mean "none"). */
	put_be16(pkt + len - 2, 0);
	s = fold(sum16(pkt + 34, len - 34, 0)); /* the field holds the pseudo-header sum already */
	put_be16(pkt + len - 2, (uint16_t)~s);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), 0);
	assert_int_equal(get_be16(pkt + 40), 0xffff);
	assert_true(l4_checksum_ok(pkt, len, 34, pseudo));
	/* TCP has no such rule: the same sum stays 0 there */
	len = build_l4_v4(6, 8, &pseudo);
	put_be16(pkt + len - 2, 0);
	s = fold(sum16(pkt + 34, len - 34, 0));
	put_be16(pkt + len - 2, (uint16_t)~s);
	h = (struct net_vnet_hdr){ .flags = NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16 };
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), 0);
	assert_int_equal(get_be16(pkt + 50), 0);
	assert_true(l4_checksum_ok(pkt, len, 34, pseudo));
}

static void test_vnet_fixup_rx_ipv6_tcp(void **state)
{
	struct net_vnet_hdr h = { .flags = NET_HDR_F_NEEDS_CSUM, .csum_start = 54, .csum_offset = 16 };
	size_t n = put_eth(pkt, mac_b, mac_a, NET_ETHERTYPE_IPV6), l4 = 20 + 101;
	uint32_t pseudo;

	n += put_ipv6(pkt + n, 6, ip6_a, ip6_b, l4);
	memset(pkt + n, 0, l4);
	pkt[n + 12] = 0x50;
	for (size_t i = 20; i < l4; i++)
		pkt[n + i] = (uint8_t)(0xff - i);
	pseudo = sum16(ip6_a, 16, 0);
	pseudo = sum16(ip6_b, 16, pseudo);
	pseudo += 6 + (uint32_t)l4;
	put_be16(pkt + n + 16, fold(pseudo));
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, n + l4, F(GUEST_TSO4)), 0);
	assert_true(l4_checksum_ok(pkt, n + l4, 54, pseudo));
}

static void test_vnet_fixup_rx_offloads(void **state)
{
	const uint64_t csum = F(GUEST_CSUM);
	struct net_vnet_hdr h;
	uint32_t pseudo;
	size_t len = build_l4_v4(6, 1000, &pseudo);
	uint8_t before[2048];

	memcpy(before, pkt, len);
	/* a TSO packet for a receiver that cannot take it is dropped, untouched */
	h = (struct net_vnet_hdr){ .flags = NET_HDR_F_NEEDS_CSUM, .gso_type = NET_HDR_GSO_TCPV4, .gso_size = 500,
				   .csum_start = 34, .csum_offset = 16 };
	assert_int_equal(net_vnet_rx_needs_fixup(&h, csum), -EOPNOTSUPP);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum), -EOPNOTSUPP);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), -EOPNOTSUPP);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO6) | F(GUEST_UFO)), -EOPNOTSUPP);
	assert_memory_equal(pkt, before, len);
	assert_int_equal(h.flags, NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO4)), 0);
	assert_int_equal(h.gso_type, NET_HDR_GSO_TCPV4);
	assert_int_equal(h.flags, NET_HDR_F_NEEDS_CSUM);
	assert_memory_equal(pkt, before, len);
	h.gso_type = NET_HDR_GSO_TCPV4 | NET_HDR_GSO_ECN;
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO4)), -EOPNOTSUPP);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO4) | F(GUEST_ECN)), 0);
	h.gso_type = NET_HDR_GSO_TCPV6;
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO4)), -EOPNOTSUPP);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO6)), 0);
	h.gso_type = NET_HDR_GSO_UDP;
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_TSO4) | F(GUEST_TSO6)), -EOPNOTSUPP);
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, csum | F(GUEST_UFO)), 0);
	h.gso_type = 2;
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, ~UINT64_C(0)), -EOPNOTSUPP);
	assert_memory_equal(pkt, before, len);

	/* DATA_VALID means something only to a receiver with GUEST_CSUM */
	h = (struct net_vnet_hdr){ .flags = NET_HDR_F_DATA_VALID };
	assert_int_equal(net_vnet_rx_needs_fixup(&h, 0), 0);
	assert_int_equal(net_vnet_fixup_rx(&h, NULL, len, csum), 0);
	assert_int_equal(h.flags, NET_HDR_F_DATA_VALID);
	assert_int_equal(net_vnet_fixup_rx(&h, NULL, len, F(GUEST_TSO4)), 0);
	assert_int_equal(h.flags, 0);

	/* a checksum field beyond the frame (from the uplink, nobody checked it) */
	h = (struct net_vnet_hdr){ .flags = NET_HDR_F_NEEDS_CSUM, .csum_start = (uint16_t)(len - 10),
				   .csum_offset = 9 };
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), -EINVAL);
	h.csum_offset = 8;
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), 0);
	h = (struct net_vnet_hdr){ .flags = NET_HDR_F_NEEDS_CSUM, .csum_start = 0xffff, .csum_offset = 0xffff };
	assert_int_equal(net_vnet_fixup_rx(&h, pkt, len, 0), -EINVAL);
}

static void test_csum_fold(void **state)
{
	/* RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 */
	assert_int_equal(net_csum_fold((uint8_t[]){ 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 }, 8), 0xddf2);
	assert_int_equal(net_csum_fold((uint8_t[]){ 0xab }, 1), 0xab00);
	assert_int_equal(net_csum_fold(NULL, 0), 0);
	for (size_t i = 0; i < sizeof(pkt); i++)
		pkt[i] = (uint8_t)(i * 31 + 7);
	for (size_t len = 0; len < 300; len += 7)
		assert_int_equal(net_csum_fold(pkt, len), fold(sum16(pkt, len, 0)));
	memset(pkt, 0xff, sizeof(pkt));
	assert_int_equal(net_csum_fold(pkt, sizeof(pkt)), 0xffff);
}

/* ---------- control queue ---------- */

static unsigned pairs;

static uint8_t ctrl(const uint8_t *cmd, size_t len)
{
	return net_ctrl_apply(&port_a, 4, cmd, len, &pairs);
}

#define CTRL(...) ctrl((const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))

static void test_ctrl_rx(void **state)
{
	assert_int_equal(CTRL(0, 1, 1), NET_CTRL_OK);            /* ALLMULTI on */
	assert_int_equal(port_a.rx_flags, NET_RX_ALLMULTI);
	assert_int_equal(CTRL(0, 3, 1), NET_CTRL_OK);            /* NOMULTI */
	assert_int_equal(CTRL(0, 4, 1), NET_CTRL_OK);            /* NOUNI */
	assert_int_equal(CTRL(0, 5, 1), NET_CTRL_OK);            /* NOBCAST */
	assert_int_equal(port_a.rx_flags, NET_RX_ALLMULTI | NET_RX_NOMULTI | NET_RX_NOUNI | NET_RX_NOBCAST);
	assert_int_equal(CTRL(0, 1, 0), NET_CTRL_OK);
	assert_int_equal(CTRL(0, 4, 0), NET_CTRL_OK);
	assert_int_equal(port_a.rx_flags, NET_RX_NOMULTI | NET_RX_NOBCAST);
	/* promiscuous and all-unicast are accepted and change nothing */
	assert_int_equal(CTRL(0, 0, 1), NET_CTRL_OK);
	assert_int_equal(CTRL(0, 2, 1), NET_CTRL_OK);
	assert_int_equal(port_a.rx_flags, NET_RX_NOMULTI | NET_RX_NOBCAST);
	expect_route(1, mac_c, BIT(2), false);
	/* malformed */
	assert_int_equal(CTRL(0, 1), NET_CTRL_ERR);
	assert_int_equal(CTRL(0, 1, 1, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(0, 1, 2), NET_CTRL_ERR);
	assert_int_equal(CTRL(0, 6, 1), NET_CTRL_ERR);
	assert_int_equal(CTRL(0, 0xff, 0), NET_CTRL_ERR);
	assert_int_equal(ctrl((const uint8_t[]){ 0 }, 1), NET_CTRL_ERR);
	assert_int_equal(ctrl((const uint8_t[]){ 0 }, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(9, 0, 1), NET_CTRL_ERR);           /* unknown class */
	assert_int_equal(port_a.rx_flags, NET_RX_NOMULTI | NET_RX_NOBCAST);
}

static size_t mac_table(uint8_t *p, uint32_t n_uni, const uint8_t (*uni)[6], uint32_t n_multi,
			const uint8_t (*multi)[6])
{
	size_t n = 2;

	p[0] = 1;
	p[1] = 0;
	memcpy(p + n, &(uint32_t){ htole32(n_uni) }, 4);
	n += 4;
	for (uint32_t i = 0; i < n_uni; i++, n += 6)
		memcpy(p + n, uni[i], 6);
	memcpy(p + n, &(uint32_t){ htole32(n_multi) }, 4);
	n += 4;
	for (uint32_t i = 0; i < n_multi; i++, n += 6)
		memcpy(p + n, multi[i], 6);
	return n;
}

static void test_ctrl_mac_table(void **state)
{
	static uint8_t cmd[2 + 8 + 6 * 200];
	uint8_t groups[100][6];
	size_t n;

	memcpy(groups[0], mac_group, 6);
	memcpy(groups[1], mac_all_routers, 6);
	n = mac_table(cmd, 1, &mac_outside, 2, (const uint8_t(*)[6])groups);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_OK);
	assert_int_equal(port_a.ngroups, 2);
	assert_false(port_a.groups_overflow);
	expect_route(NET_FROM_UPLINK, mac_group, BIT(0), false);
	expect_route(NET_FROM_UPLINK, mac_all_routers, BIT(0), false);
	expect_route(NET_FROM_UPLINK, mac_outside, 0, false); /* the unicast table widens nothing */
	expect_route(1, mac_outside, 0, true);

	/* every malformed table is refused, and changes nothing */
	assert_int_equal(ctrl(cmd, n - 1), NET_CTRL_ERR);      /* short of its last entry */
	cmd[n] = 0;
	assert_int_equal(ctrl(cmd, n + 1), NET_CTRL_ERR);      /* a byte too many */
	memcpy(cmd + 2, &(uint32_t){ htole32(0xffffffff) }, 4);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);
	memcpy(cmd + 2, &(uint32_t){ htole32(0x2aaaaaab) }, 4); /* * 6 wraps 32 bits to 2 */
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);
	memcpy(cmd + 2, &(uint32_t){ htole32(3) }, 4);         /* the multicast count inside the unicast */
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);
	memcpy(cmd + 2, &(uint32_t){ htole32(1) }, 4);
	memcpy(cmd + 12, &(uint32_t){ htole32(0x2aaaaaab) }, 4);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);
	memcpy(cmd + 12, &(uint32_t){ htole32(0xffffffff) }, 4);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);
	memcpy(cmd + 12, &(uint32_t){ htole32(1) }, 4);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);          /* one entry too many */
	assert_int_equal(ctrl(cmd, 2 + 4 + 6), NET_CTRL_ERR);  /* no multicast count */
	assert_int_equal(ctrl(cmd, 2 + 3), NET_CTRL_ERR);
	assert_int_equal(ctrl(cmd, 2), NET_CTRL_ERR);
	/* a unicast address in the multicast table */
	memcpy(groups[1], mac_b, 6);
	n = mac_table(cmd, 0, NULL, 2, (const uint8_t(*)[6])groups);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_ERR);
	assert_int_equal(port_a.ngroups, 2);
	expect_route(NET_FROM_UPLINK, mac_all_routers, BIT(0), false);

	/* an empty table leaves nothing */
	n = mac_table(cmd, 0, NULL, 0, NULL);
	assert_int_equal(n, 10);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_OK);
	assert_int_equal(port_a.ngroups, 0);
	expect_route(NET_FROM_UPLINK, mac_group, 0, false);

	/* more groups than a port keeps: all multicast */
	for (unsigned i = 0; i < 100; i++)
		memcpy(groups[i], (uint8_t[]){ 0x01, 0x00, 0x5e, 0x30, 0x00, (uint8_t)i }, 6);
	n = mac_table(cmd, 0, NULL, 100, (const uint8_t(*)[6])groups);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_OK);
	assert_true(port_a.groups_overflow);
	expect_route(NET_FROM_UPLINK, mac_group, BIT(0), false);
	n = mac_table(cmd, 0, NULL, NET_MAX_GROUPS, (const uint8_t(*)[6])groups);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_OK);
	assert_false(port_a.groups_overflow);
	assert_int_equal(port_a.ngroups, NET_MAX_GROUPS);
	expect_route(NET_FROM_UPLINK, mac_group, 0, false);

	/* a table with repeats still gets the driver every group it listed, even past the limit */
	for (unsigned i = 0; i < 70; i++)
		memcpy(groups[i], mac_group2, 6);
	n = mac_table(cmd, 0, NULL, 100, (const uint8_t(*)[6])groups);
	assert_int_equal(ctrl(cmd, n), NET_CTRL_OK);
	for (unsigned i = 0; i < 100; i++)
		assert_true(net_port_accepts(&port_a, groups[i]));
}

static void test_ctrl_mac_addr_and_others(void **state)
{
	/* ADDR_SET: only to the configured address */
	assert_int_equal(CTRL(1, 1, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a), NET_CTRL_OK);
	assert_int_equal(CTRL(1, 1, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b), NET_CTRL_ERR);
	assert_int_equal(CTRL(1, 1, 0x02, 0x00, 0x00, 0x00, 0x00), NET_CTRL_ERR);
	assert_int_equal(CTRL(1, 1, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(1, 2), NET_CTRL_ERR);
	assert_memory_equal(port_a.mac.b, mac_a, 6);
	expect_route(1, mac_a, BIT(0), false);
	expect_route(1, mac_b, 0, false);

	/* MQ_VQ_PAIRS_SET within 1..max */
	pairs = 1;
	assert_int_equal(CTRL(4, 0, 4, 0), NET_CTRL_OK);
	assert_int_equal(pairs, 4);
	assert_int_equal(CTRL(4, 0, 2, 0), NET_CTRL_OK);
	assert_int_equal(pairs, 2);
	assert_int_equal(CTRL(4, 0, 1, 0), NET_CTRL_OK);
	assert_int_equal(pairs, 1);
	assert_int_equal(CTRL(4, 0, 0, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(4, 0, 5, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(4, 0, 1, 1), NET_CTRL_ERR);      /* 257 */
	assert_int_equal(CTRL(4, 0, 2), NET_CTRL_ERR);
	assert_int_equal(CTRL(4, 0, 2, 0, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(4, 1, 2, 0), NET_CTRL_ERR);      /* RSS: not offered */
	assert_int_equal(pairs, 1);

	/* ANNOUNCE_ACK and GUEST_OFFLOADS_SET: acknowledged when well-formed */
	assert_int_equal(CTRL(3, 0), NET_CTRL_OK);
	assert_int_equal(CTRL(3, 0, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(5, 0, 0, 0, 0, 0, 0, 0, 0, 0), NET_CTRL_OK);
	assert_int_equal(CTRL(5, 0, 0, 0, 0, 0, 0, 0, 0), NET_CTRL_ERR);
	assert_int_equal(CTRL(2, 0), NET_CTRL_ERR);            /* VLAN filtering: not offered */
}

/* ---------- flow hash ---------- */

static uint32_t hash(const uint8_t *f, size_t len)
{
	struct net_frame_info info;

	assert_int_equal(net_frame_parse(f, len, &info), 0);
	return net_frame_flow_hash(f, len, &info);
}

static void test_flow_hash(void **state)
{
	uint8_t f[256], g[256];
	uint32_t pseudo, h0, hfrag;
	size_t len = build_l4_v4(6, 40, &pseudo);

	memcpy(f, pkt, len);
	h0 = hash(f, len);
	assert_int_equal(hash(f, len), h0);
	/* the same flow: other payload, TTL, IP id, MAC addresses */
	memcpy(g, f, len);
	g[len - 1] ^= 0xff;
	g[14 + 8] = 3;
	g[14 + 5] = 77;
	memcpy(g, mac_c, 6);
	assert_int_equal(hash(g, len), h0);
	/* with a VLAN tag */
	memcpy(g, f, 12);
	put_be16(g + 12, NET_ETHERTYPE_VLAN);
	put_be16(g + 14, 9);
	memcpy(g + 16, f + 12, len - 12);
	assert_int_equal(hash(g, len + 4), h0);
	/* ports and addresses make other flows */
	memcpy(g, f, len);
	put_be16(g + 34, 40001);
	assert_int_not_equal(hash(g, len), h0);
	memcpy(g, f, len);
	put_be16(g + 36, 80);
	assert_int_not_equal(hash(g, len), h0);
	memcpy(g, f, len);
	g[14 + 15] = 99;
	assert_int_not_equal(hash(g, len), h0);

	/* fragments: the first (MF set) and a later one (offset, no ports) hash alike, by addresses */
	memcpy(g, f, len);
	put_be16(g + 14 + 6, 0x2000);
	hfrag = hash(g, len);
	assert_int_not_equal(hfrag, h0);
	put_be16(g + 34, 1234);            /* the ports do not matter then */
	assert_int_equal(hash(g, len), hfrag);
	put_be16(g + 14 + 6, 185);         /* the last fragment, 1480 bytes in */
	memset(g + 34, 0x5a, len - 34);
	assert_int_equal(hash(g, len), hfrag);
	put_be16(g + 14 + 6, 0x2000 | 185);
	assert_int_equal(hash(g, len), hfrag);

	/* UDP too; ICMP by addresses */
	len = build_l4_v4(17, 10, &pseudo);
	h0 = hash(pkt, len);
	put_be16(pkt + 34, 1);
	assert_int_not_equal(hash(pkt, len), h0);
	pkt[14 + 9] = 1;
	h0 = hash(pkt, len);
	put_be16(pkt + 34, 2);
	assert_int_equal(hash(pkt, len), h0);

	/* TCP over IPv6: ports matter */
	len = put_eth(f, mac_b, mac_a, NET_ETHERTYPE_IPV6);
	len += put_ipv6(f + len, 6, ip6_a, ip6_b, 20);
	memset(f + len, 0, 20);
	put_be16(f + len, 1000);
	put_be16(f + len + 2, 22);
	len += 20;
	h0 = hash(f, len);
	put_be16(f + 54, 1001);
	assert_int_not_equal(hash(f, len), h0);
	/* cut before the ports: no read past the end, addresses only */
	assert_int_equal(hash(f, 54 + 3), hash(f, 54));

	/* not IP: by MAC addresses */
	len = put_eth(f, mac_b, mac_a, NET_ETHERTYPE_ARP);
	memset(f + len, 1, 28);
	h0 = hash(f, len + 28);
	memset(f + len, 2, 28);
	assert_int_equal(hash(f, len + 28), h0);
	memcpy(f, mac_c, 6);
	assert_int_not_equal(hash(f, len + 28), h0);
	/* headers only */
	put_be16(f + 12, NET_ETHERTYPE_IPV4);
	(void)hash(f, 14);
	put_be16(f + 12, NET_ETHERTYPE_IPV6);
	(void)hash(f, 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac_parse_format),
		cmocka_unit_test(test_mac_classes),
		cmocka_unit_test(test_frame_parse),
#define S(f) cmocka_unit_test_setup(f, switch_setup)
		S(test_switch_add_port),
		S(test_source_from_client),
		S(test_source_from_uplink),
		S(test_route_unicast),
		S(test_route_broadcast),
		S(test_route_multicast),
		S(test_groups_overflow),
		S(test_route_isolation),
		S(test_snoop_igmp_v1_v2),
		S(test_snoop_igmp_v3),
		S(test_snoop_mld_v1),
		S(test_snoop_mld_v2),
		S(test_snoop_other),
		S(test_snoop_applied_to_port),
		cmocka_unit_test(test_vnet_hdr_len_and_codec),
		cmocka_unit_test(test_vnet_check_tx),
		cmocka_unit_test(test_vnet_fixup_rx_checksum),
		cmocka_unit_test(test_vnet_fixup_rx_udp_zero),
		cmocka_unit_test(test_vnet_fixup_rx_ipv6_tcp),
		cmocka_unit_test(test_vnet_fixup_rx_offloads),
		cmocka_unit_test(test_csum_fold),
		S(test_ctrl_rx),
		S(test_ctrl_mac_table),
		S(test_ctrl_mac_addr_and_others),
		cmocka_unit_test(test_flow_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
