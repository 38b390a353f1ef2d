/* Switching decisions: configured MACs, anti-spoofing, receive filters, multicast membership. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net-switch.h"

void net_port_init(struct net_port *p, const char *name, const struct net_mac *mac)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->mac = *mac;
}

int net_switch_add_port(struct net_switch *sw, struct net_port *p)
{
	if (net_switch_find(sw, p->mac.b) >= 0)
		return -EEXIST;
	if (sw->nports == NET_MAX_PORTS)
		return -ENOSPC;
	sw->ports[sw->nports] = p;
	return (int)sw->nports++;
}

int net_switch_find(const struct net_switch *sw, const uint8_t *mac)
{
	for (unsigned i = 0; i < sw->nports; i++)
		if (net_mac_equal(sw->ports[i]->mac.b, mac))
			return (int)i;
	return -1;
}

enum net_verdict net_switch_check_source(const struct net_switch *sw, int from, const uint8_t *frame, size_t len,
					 const struct net_frame_info *info)
{
	if (from == NET_FROM_UPLINK) {
		/* A frame from outside claiming to come from one of our clients would poison the
		 * others' ARP caches, or be a loop: drop it. */
		if (net_mac_is_multicast(info->src) || net_switch_find(sw, info->src) >= 0)
			return NET_SPOOFED;
		return NET_ACCEPT;
	}
	const struct net_port *p = sw->ports[from];

	if (!net_mac_equal(info->src, p->mac.b))
		return NET_SPOOFED;
	/* An ARP packet naming another MAC as its sender would redirect others' traffic without a
	 * forged source address. */
	if (net_frame_arp_spoofed(frame, len, info, p->mac.b))
		return NET_SPOOFED;
	return NET_ACCEPT;
}

static bool port_has_group(const struct net_port *p, const uint8_t *group)
{
	for (unsigned i = 0; i < p->ngroups; i++)
		if (net_mac_equal(p->groups[i].b, group))
			return true;
	return false;
}

bool net_port_accepts(const struct net_port *p, const uint8_t *dst)
{
	if (!net_mac_is_multicast(dst))
		return !(p->rx_flags & NET_RX_NOUNI) && net_mac_equal(dst, p->mac.b);
	if (net_mac_is_broadcast(dst))
		return !(p->rx_flags & NET_RX_NOBCAST);
	if (p->rx_flags & NET_RX_NOMULTI)
		return false;
	if ((p->rx_flags & NET_RX_ALLMULTI) || p->groups_overflow || net_mac_is_link_local_multicast(dst))
		return true;
	return port_has_group(p, dst);
}

struct net_route net_switch_route(const struct net_switch *sw, int from, const uint8_t *dst)
{
	struct net_route r = { 0, false };

	if (!net_mac_is_multicast(dst)) {
		int to = net_switch_find(sw, dst);

		if (to < 0) {
			r.uplink = from != NET_FROM_UPLINK;
		} else if (to != from && net_port_accepts(sw->ports[to], dst)) {
			r.ports = UINT64_C(1) << to;
		}
		return r;
	}
	for (unsigned i = 0; i < sw->nports; i++)
		if ((int)i != from && net_port_accepts(sw->ports[i], dst))
			r.ports |= UINT64_C(1) << i;
	r.uplink = from != NET_FROM_UPLINK;
	return r;
}

void net_port_join(struct net_port *p, const uint8_t *group)
{
	if (!net_mac_is_multicast(group) || net_mac_is_broadcast(group) || port_has_group(p, group))
		return;
	if (p->ngroups == NET_MAX_GROUPS) {
		p->groups_overflow = true;
		return;
	}
	memcpy(p->groups[p->ngroups++].b, group, NET_ETH_ALEN);
}

void net_port_leave(struct net_port *p, const uint8_t *group)
{
	for (unsigned i = 0; i < p->ngroups; i++) {
		if (net_mac_equal(p->groups[i].b, group)) {
			p->groups[i] = p->groups[--p->ngroups];
			return;
		}
	}
}

void net_port_set_groups(struct net_port *p, const struct net_mac *groups, unsigned n)
{
	p->ngroups = 0;
	p->groups_overflow = false;
	for (unsigned i = 0; i < n; i++)
		net_port_join(p, groups[i].b);
}

void net_port_reset_filters(struct net_port *p)
{
	p->rx_flags = 0;
	p->ngroups = 0;
	p->groups_overflow = false;
}
