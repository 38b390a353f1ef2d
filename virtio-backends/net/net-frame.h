/* Ethernet frames as ddtk-net sees them: addresses, the headers it looks into, and the multicast
 * group reports (IGMP, MLD) it snoops to learn which groups a client joined. Every length comes
 * from a guest or the wire: nothing here reads past the bytes it was given. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_ETH_ALEN 6
#define NET_ETH_HLEN 14
#define NET_VLAN_HLEN 4
#define NET_ETH_MIN_FRAME 14 /* a header, nothing else: the least we forward */

#define NET_ETHERTYPE_IPV4 0x0800
#define NET_ETHERTYPE_ARP 0x0806
#define NET_ETHERTYPE_VLAN 0x8100
#define NET_ETHERTYPE_QINQ 0x88a8
#define NET_ETHERTYPE_IPV6 0x86dd

struct net_mac {
	uint8_t b[NET_ETH_ALEN];
};

static inline bool net_mac_is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;
}

bool net_mac_is_broadcast(const uint8_t *mac);
bool net_mac_equal(const uint8_t *a, const uint8_t *b);
/* A MAC a device may own: not multicast, not all zeroes. */
bool net_mac_is_valid_unicast(const uint8_t *mac);
/* Parses "xx:xx:xx:xx:xx:xx" (hex, either case). */
int net_mac_parse(const char *s, struct net_mac *ret);
/* The same into six bytes (tools that keep MACs as byte arrays). */
int net_mac_parse_bytes(const char *s, uint8_t *ret);
/* "xx:xx:xx:xx:xx:xx"; buf needs 18 bytes. */
const char *net_mac_format(const uint8_t *mac, char *buf);

/* What the switch needs from a frame's headers. */
struct net_frame_info {
	const uint8_t *dst, *src;
	uint16_t ethertype;      /* after up to two VLAN tags */
	size_t l3_offset;        /* where the ethertype's payload starts */
};

/* Fills info from the first len bytes of a frame; -EINVAL if it is too short to be a frame. */
int net_frame_parse(const uint8_t *frame, size_t len, struct net_frame_info *ret);

/* An ARP packet whose sender hardware address is not mac: someone else's address claimed. Only
 * Ethernet/IPv4 ARP is looked at. */
bool net_frame_arp_spoofed(const uint8_t *frame, size_t len, const struct net_frame_info *info, const uint8_t *mac);

/* Multicast group changes found in an IGMP (v1/v2/v3) or MLD (v1/v2) report. Groups are given as
 * the Ethernet multicast addresses they map to. */
enum net_mcast_change {
	NET_MCAST_JOIN,
	NET_MCAST_LEAVE,
};

typedef void (*net_mcast_fn)(void *opaque, enum net_mcast_change change, const uint8_t *group_mac);

/* Looks for a membership report in frame and calls fn once per group record. Returns the number
 * of records found (0: not a report). */
int net_frame_snoop_mcast(const uint8_t *frame, size_t len, const struct net_frame_info *info, net_mcast_fn fn,
			  void *opaque);

/* Multicast addresses every client receives without joining: IPv4 224.0.0.0/24 (local network
 * control) and IPv6 all-nodes (ff02::1). */
bool net_mac_is_link_local_multicast(const uint8_t *mac);

/* A hash of the frame's flow (addresses, and ports for TCP/UDP) to spread it over RX queues while
 * keeping each flow on one. */
uint32_t net_frame_flow_hash(const uint8_t *frame, size_t len, const struct net_frame_info *info);
