/* AF_PACKET uplink: batched sendmmsg/recvmmsg with virtio-net headers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "net-uplink.h"
#include "net-vnet.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

/* Socket buffers: room for a burst of 64 KiB GSO packets in each direction. */
#define NET_UPLINK_SOCKBUF (8 << 20)

int net_uplink_open(struct net_uplink *u, const char *ifname, char *err, size_t errlen)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct packet_mreq mr = { .mr_type = PACKET_MR_PROMISC };
	int one = 1, size = NET_UPLINK_SOCKBUF, r;

	memset(u, 0, sizeof(*u));
	u->fd = -1;
	if (snprintf(u->name, sizeof(u->name), "%s", ifname) >= (int)sizeof(u->name)) {
		snprintf(err, errlen, "uplink name '%s' is too long", ifname);
		return -EINVAL;
	}
	u->ifindex = (int)if_nametoindex(ifname);
	if (!u->ifindex) {
		r = -errno;
		snprintf(err, errlen, "uplink %s: %s", ifname, strerror(errno));
		return r;
	}
	/* Protocol 0: nothing arrives before bind() names the interface. */
	u->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "uplink %s: AF_PACKET socket: %s", ifname, strerror(errno));
		return r;
	}
	if (setsockopt(u->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) {
		r = -errno;
		snprintf(err, errlen, "uplink %s: PACKET_VNET_HDR: %s", ifname, strerror(errno));
		goto fail;
	}
	/* The kernel takes 802.1Q tags off before we see a frame and tells only in the auxiliary
	 * data: without it, frames of every VLAN on a trunk would reach the clients untagged. */
	if (setsockopt(u->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0) {
		r = -errno;
		snprintf(err, errlen, "uplink %s: PACKET_AUXDATA: %s", ifname, strerror(errno));
		goto fail;
	}
	/* Without this, everything we send comes back to us as received (outgoing) frames. */
	u->ignore_outgoing = setsockopt(u->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) == 0;
	/* Root may exceed the sysctl limits; others get what the limits allow. */
	if (setsockopt(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(u->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	sll.sll_ifindex = u->ifindex;
	if (bind(u->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		r = -errno;
		snprintf(err, errlen, "uplink %s: bind: %s", ifname, strerror(errno));
		goto fail;
	}
	/* The clients' MACs are not the interface's: receive every frame on the wire. */
	mr.mr_ifindex = u->ifindex;
	if (setsockopt(u->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		r = -errno;
		snprintf(err, errlen, "uplink %s: promiscuous mode: %s", ifname, strerror(errno));
		goto fail;
	}
	r = net_uplink_get_mtu(u);
	if (r < 0) {
		snprintf(err, errlen, "uplink %s: MTU: %s", ifname, strerror(-r));
		goto fail;
	}
	u->mtu = (unsigned)r;
	return 0;
fail:
	close(u->fd);
	u->fd = -1;
	return r;
}

void net_uplink_close(struct net_uplink *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

static int ifreq_ioctl(const struct net_uplink *u, unsigned long req, struct ifreq *ifr)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", u->name);
	return ioctl(u->fd, req, ifr) < 0 ? -errno : 0;
}

int net_uplink_get_mtu(const struct net_uplink *u)
{
	struct ifreq ifr;
	int r = ifreq_ioctl(u, SIOCGIFMTU, &ifr);

	return r < 0 ? r : ifr.ifr_mtu;
}

bool net_uplink_is_up(const struct net_uplink *u)
{
	struct ifreq ifr;

	return ifreq_ioctl(u, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
}

int net_uplink_send(struct net_uplink *u, struct iovec *const *iovs, const unsigned *iovcnt, unsigned n, bool *ret_ok)
{
	struct mmsghdr msgs[NET_UPLINK_BATCH];
	unsigned done = 0, sent = 0;

	if (n > NET_UPLINK_BATCH)
		return -EINVAL;
	memset(msgs, 0, sizeof(msgs[0]) * n);
	for (unsigned i = 0; i < n; i++) {
		msgs[i].msg_hdr.msg_iov = iovs[i];
		msgs[i].msg_hdr.msg_iovlen = iovcnt[i];
		ret_ok[i] = false;
	}
	while (done < n) {
		int r = sendmmsg(u->fd, msgs + done, n - done, MSG_DONTWAIT);

		if (r > 0) {
			for (int i = 0; i < r; i++)
				ret_ok[done + (unsigned)i] = true;
			done += (unsigned)r;
			sent += (unsigned)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		/* The socket buffer is full: the interface is slower than the clients. Like a switch
		 * port with a full queue, drop (the clients' TCP backs off) rather than make every
		 * client and the receive side wait. */
		if (errno == EAGAIN)
			break;
		if (errno == EBADF || errno == ENOTSOCK || errno == EFAULT)
			return -errno;
		/* This frame was refused (too big for the MTU, a header the kernel rejects, the link
		 * is down): skip it and go on with the others. */
		done++;
	}
	return (int)sent;
}

int net_uplink_recv(struct net_uplink *u, uint8_t *const *bufs, size_t bufsize, unsigned n, size_t *ret_len)
{
	struct mmsghdr msgs[NET_UPLINK_BATCH];
	struct iovec iov[NET_UPLINK_BATCH];
	struct sockaddr_ll from[NET_UPLINK_BATCH];
	union {
		char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
		struct cmsghdr align;
	} control[NET_UPLINK_BATCH];
	int r;

	if (n > NET_UPLINK_BATCH)
		n = NET_UPLINK_BATCH;
	memset(msgs, 0, sizeof(msgs[0]) * n);
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = bufsize;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
		/* cppcheck-suppress legacyUninitvar ; the kernel fills it */
		msgs[i].msg_hdr.msg_control = control[i].buf;
		msgs[i].msg_hdr.msg_controllen = sizeof(control[i].buf);
	}
	do {
		r = recvmmsg(u->fd, msgs, n, MSG_DONTWAIT | MSG_TRUNC, NULL);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	for (int i = 0; i < r; i++) {
		size_t len = msgs[i].msg_len;

		if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len > bufsize || len < NET_VNET_HDR_LEN)
			len = 0;
		if (!u->ignore_outgoing && from[i].sll_pkttype == PACKET_OUTGOING)
			len = 0;
		/* ddtk-net's ports are untagged: a frame that came with a VLAN tag is not theirs. */
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm && len;
		     cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm)) {
			struct tpacket_auxdata aux;

			if (cm->cmsg_level != SOL_PACKET || cm->cmsg_type != PACKET_AUXDATA ||
			    cm->cmsg_len < CMSG_LEN(sizeof(aux)))
				continue;
			memcpy(&aux, CMSG_DATA(cm), sizeof(aux));
			if ((aux.tp_status & TP_STATUS_VLAN_VALID) && (aux.tp_vlan_tci & 0x0fff)) {
				u->rx_tagged++;
				len = 0;
			}
		}
		ret_len[i] = len;
	}
	return r;
}
