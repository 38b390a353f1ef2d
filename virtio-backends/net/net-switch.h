/* The switch inside ddtk-net: one port per client plus the uplink. A port's MAC comes from the
 * configuration and is never learned from traffic; the switch decides which frames a port may send
 * (anti-spoofing) and which it receives (its own unicast, broadcast, the multicast groups it joined),
 * and counts everything per port. It moves no bytes itself: ddtk-net's data path asks it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "net-frame.h"

#define NET_MAX_PORTS 64   /* clients of one ddtk-net */
#define NET_MAX_GROUPS 64  /* multicast groups one client may join; more: it gets all multicast */

/* Counters from the client's point of view: tx = it sent, rx = it received. */
struct net_counters {
	uint64_t tx_packets, tx_bytes;   /* accepted from the client */
	uint64_t rx_packets, rx_bytes;   /* delivered to the client */
	uint64_t tx_spoofed;             /* dropped: source MAC (or ARP sender) not the client's */
	uint64_t tx_malformed;           /* dropped: too short, too long, bad virtio-net header */
	uint64_t tx_dropped;             /* dropped: the uplink refused it */
	uint64_t rx_dropped;             /* dropped: no receive buffers, backlog full, offload unknown */
};

/* Receive filter flags (the control queue's RX mode commands). */
enum {
	NET_RX_ALLMULTI = 1 << 0,
	NET_RX_NOMULTI = 1 << 1,
	NET_RX_NOBCAST = 1 << 2,
	NET_RX_NOUNI = 1 << 3,
};

struct net_port {
	struct net_mac mac;
	char name[64];
	unsigned rx_flags;
	struct net_mac groups[NET_MAX_GROUPS];   /* joined (snooped reports, control-queue table) */
	unsigned ngroups;
	bool groups_overflow;                     /* joined more than NET_MAX_GROUPS: all multicast */
	bool up;                                  /* has a started receive queue */
	struct net_counters c;
};

/* The uplink's own counters. */
struct net_uplink_counters {
	uint64_t rx_packets, rx_bytes;   /* received from the wire */
	uint64_t tx_packets, tx_bytes;   /* sent to the wire */
	uint64_t rx_unknown;             /* unicast for no client */
	uint64_t rx_spoofed;             /* claimed a client's MAC as source */
	uint64_t rx_malformed;
	uint64_t tx_errors;
};

struct net_switch {
	struct net_port *ports[NET_MAX_PORTS];
	unsigned nports;
	struct net_uplink_counters uplink;
};

/* Where a frame goes: a set of client ports, and the uplink or not. */
struct net_route {
	uint64_t ports;   /* bit i: sw->ports[i] */
	bool uplink;
};

#define NET_FROM_UPLINK (-1)

void net_port_init(struct net_port *p, const char *name, const struct net_mac *mac);
/* Adds p as the next port; -EEXIST when another port has its MAC, -ENOSPC when full. Returns the
 * port's index. */
int net_switch_add_port(struct net_switch *sw, struct net_port *p);

/* Whether a frame from port `from` with these headers may enter the switch. */
enum net_verdict {
	NET_ACCEPT,
	NET_SPOOFED,
};
enum net_verdict net_switch_check_source(const struct net_switch *sw, int from, const uint8_t *frame, size_t len,
					 const struct net_frame_info *info);

/* Whether port p wants a frame for dst. */
bool net_port_accepts(const struct net_port *p, const uint8_t *dst);

/* Decides where a frame from port `from` (or NET_FROM_UPLINK) to dst goes. Never back to its
 * source, never to the uplink when it came from there. */
struct net_route net_switch_route(const struct net_switch *sw, int from, const uint8_t *dst);

/* Index of the port owning unicast mac, or -1. */
int net_switch_find(const struct net_switch *sw, const uint8_t *mac);

/* Membership changes (snooped reports or the control queue). */
void net_port_join(struct net_port *p, const uint8_t *group);
void net_port_leave(struct net_port *p, const uint8_t *group);
/* Replaces the joined groups with a table of n (control queue MAC_TABLE_SET). */
void net_port_set_groups(struct net_port *p, const struct net_mac *groups, unsigned n);
/* Forgets what the driver told or showed us (its device was reset). */
void net_port_reset_filters(struct net_port *p);
