/* The uplink: one network interface reached through an AF_PACKET socket with virtio-net headers
 * (PACKET_VNET_HDR), so offloads (partial checksums, TSO/GSO) pass through in both directions and
 * the kernel segments what the interface cannot. A veth or tap in host mode, eth0 in the DD. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <net/if.h>

#define NET_UPLINK_BATCH 64

struct net_uplink {
	int fd;
	int ifindex;
	char name[IF_NAMESIZE];
	unsigned mtu;
	bool ignore_outgoing;   /* the kernel hides our own sends (PACKET_IGNORE_OUTGOING) */
	uint64_t rx_tagged;     /* frames dropped because they came with a VLAN tag */
};

/* Opens ifname: binds to it, receives everything (promiscuous), with vnet headers. err gets a
 * message for the user on failure. */
int net_uplink_open(struct net_uplink *u, const char *ifname, char *err, size_t errlen);
void net_uplink_close(struct net_uplink *u);

/* The interface's current MTU, or a negative errno. */
int net_uplink_get_mtu(const struct net_uplink *u);
/* Whether the interface has carrier. */
bool net_uplink_is_up(const struct net_uplink *u);

/* Sends n frames, each an iovec list starting with a 10-byte vnet header. ret_ok[i] says whether
 * frame i went out: a frame the kernel refuses (ENOBUFS from a full queue, too long, link down) is
 * skipped, and when the socket buffer is full the rest are dropped, never waited for. Returns the
 * number sent, or a negative errno when the socket itself failed. */
int net_uplink_send(struct net_uplink *u, struct iovec *const *iovs, const unsigned *iovcnt, unsigned n, bool *ret_ok);

/* Receives up to n frames into bufs (each bufsize bytes: a 10-byte vnet header, then the frame);
 * ret_len[i] = bytes of frame i including the header, 0 for one to skip (truncated, or our own).
 * Returns the number of entries filled, 0 when nothing is waiting, or a negative errno. */
int net_uplink_recv(struct net_uplink *u, uint8_t *const *bufs, size_t bufsize, unsigned n, size_t *ret_len);
