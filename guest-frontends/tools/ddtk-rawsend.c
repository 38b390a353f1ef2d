/* ddtk-rawsend: runs inside client guests to test what the NIC path lets through. It sends
 * Ethernet frames with whatever source and destination MAC it is told (spoofed ones included)
 * through an AF_PACKET raw socket, or counts the tagged frames a device receives: every frame it
 * hands up, also those for other addresses; --promisc makes a device that filters by address
 * hand those up too. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net-frame.h"

#define RAWSEND_COUNT_DEFAULT 10
#define RAWSEND_COUNT_MAX 100000
/* Frame sizes without the FCS: the Ethernet minimum up to a 1500-byte payload. */
#define RAWSEND_SIZE_MIN 60
#define RAWSEND_SIZE_MAX 1514
/* IEEE 802 "local experimental ethertype 1": no stack in the guests handles it. */
#define RAWSEND_ETHERTYPE_DEFAULT 0x88b5
/* Below this the field is an 802.3 length, not a type. */
#define RAWSEND_ETHERTYPE_MIN 0x0600
#define RAWSEND_TAG_DEFAULT "ddtk-spoof"
/* A receiver looks for the tag in this many bytes at the start of the payload. */
#define RAWSEND_TAG_WINDOW 64
#define RAWSEND_SECONDS_MAX 60
/* Receive buffer for --recv: a 100000-frame burst of small frames arrives faster than one recvfrom()
 * per frame drains it, and each queued frame is charged at its full buffer size. */
#define RAWSEND_RCVBUF (16 * 1024 * 1024)
/* How long one frame may wait for room in the socket's send buffer (a device whose back-end does
 * not take frames fills it) before the run fails instead of hanging. */
#define RAWSEND_STALL_MS 2000

struct options {
	bool recv, promisc;
	const char *dev;
	bool src_self;
	bool has_src, has_dst;
	uint8_t src[ETH_ALEN], dst[ETH_ALEN];
	unsigned long count;
	unsigned long size;
	uint16_t ethertype;
	unsigned long seconds;
	const char *tag;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ddtk-rawsend --dev IFACE --src MAC|self --dst MAC [--count N] [--size BYTES]\n"
		"                    [--ethertype 0xHHHH] [--payload-tag STRING]\n"
		"       ddtk-rawsend --recv --dev IFACE --seconds S [--payload-tag STRING] [--promisc]\n"
		"\n"
		"Sends N Ethernet frames (default %d, at most %d) of BYTES bytes without FCS (%d..%d,\n"
		"default %d) with exactly these addresses; the payload starts with the tag (default %s),\n"
		"the ethertype defaults to 0x%04x. Prints \"sent N\".\n"
		"With --recv, counts for S seconds (1..%d) the frames IFACE receives whose payload holds the\n"
		"tag in its first %d bytes, and prints \"received N\"; --promisc puts IFACE in promiscuous\n"
		"mode meanwhile. Errors go to stderr with exit status 1.\n",
		RAWSEND_COUNT_DEFAULT, RAWSEND_COUNT_MAX, RAWSEND_SIZE_MIN, RAWSEND_SIZE_MAX,
		RAWSEND_SIZE_MIN, RAWSEND_TAG_DEFAULT, RAWSEND_ETHERTYPE_DEFAULT, RAWSEND_SECONDS_MAX,
		RAWSEND_TAG_WINDOW);
}

static int parse_ulong(const char *s, int base, unsigned long min, unsigned long max,
		       unsigned long *ret)
{
	char *end;
	if (s[0] == '-' || s[0] == '+' || s[0] == ' ' || s[0] == '\0')
		return -EINVAL;
	errno = 0;
	unsigned long x = strtoul(s, &end, base);
	if (errno || *end != '\0')
		return -EINVAL;
	if (x < min || x > max)
		return -ERANGE;
	*ret = x;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The interface's index, and its MAC when ret_mac is not NULL; -ENOTSUP for a non-Ethernet one. */
static int dev_lookup(int fd, const char *dev, int *ret_ifindex, uint8_t *ret_mac)
{
	struct ifreq ifr;
	if (strlen(dev) >= sizeof(ifr.ifr_name))
		return -ENAMETOOLONG;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, dev, strlen(dev));
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		return -errno;
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return -errno;
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return -ENOTSUP;
	if (ret_mac)
		memcpy(ret_mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	*ret_ifindex = ifindex;
	return 0;
}

static const char *dev_strerror(int r)
{
	return r == -ENOTSUP ? "not an Ethernet device" : strerror(-r);
}

/* A raw socket bound to one interface. Protocol 0 receives nothing, which a sender wants. */
static int packet_socket(const char *dev, uint16_t protocol, int *ret_ifindex, uint8_t *ret_mac)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(protocol));
	if (fd < 0)
		return -errno;
	int ifindex = 0;
	int r = dev_lookup(fd, dev, &ifindex, ret_mac);
	if (r < 0)
		goto fail;
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_protocol = htons(protocol),
		.sll_ifindex = ifindex,
	};
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		r = -errno;
		goto fail;
	}
	*ret_ifindex = ifindex;
	return fd;
fail:
	close(fd);
	return r;
}

/* Sends one frame; waits at most RAWSEND_STALL_MS for room in the send buffer. */
static int frame_send(int fd, const uint8_t *frame, size_t len)
{
	uint64_t deadline = now_ms() + RAWSEND_STALL_MS;
	for (;;) {
		ssize_t n = send(fd, frame, len, 0);
		if (n == (ssize_t)len)
			return 0;
		if (n >= 0)
			return -EMSGSIZE; /* a raw socket sends all or nothing: should not happen */
		int e = errno;
		if (e == EINTR)
			continue;
		/* ENOBUFS: the device's queue is full for now; EAGAIN: the send buffer is. */
		if (e != EAGAIN && e != ENOBUFS)
			return -e;
		uint64_t now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		/* ENOBUFS leaves the socket writable: sleep a little instead of spinning. */
		int wait_ms = e == ENOBUFS ? 1 : (int)(deadline - now);
		if (poll(&p, 1, wait_ms) < 0 && errno != EINTR)
			return -errno;
	}
}

static int run_send(const struct options *o)
{
	int ifindex;
	uint8_t self_mac[ETH_ALEN];
	int fd = packet_socket(o->dev, 0, &ifindex, self_mac);
	if (fd < 0) {
		fprintf(stderr, "ddtk-rawsend: %s: %s\n", o->dev, dev_strerror(fd));
		return 1;
	}
	uint8_t frame[RAWSEND_SIZE_MAX];
	size_t tag_len = strlen(o->tag);
	memset(frame, 0, sizeof(frame));
	memcpy(frame, o->dst, ETH_ALEN);
	memcpy(frame + ETH_ALEN, o->src_self ? self_mac : o->src, ETH_ALEN);
	frame[12] = (uint8_t)(o->ethertype >> 8);
	frame[13] = (uint8_t)o->ethertype;
	memcpy(frame + ETH_HLEN, o->tag, tag_len);
	bool has_seq = ETH_HLEN + tag_len + 4 <= o->size;

	unsigned long sent = 0;
	int r = 0;
	for (; sent < o->count; sent++) {
		/* The frame's number after the tag (big-endian) when it fits, so a receiver can
		 * tell duplicates from distinct frames. */
		if (has_seq) {
			uint32_t seq = htonl((uint32_t)sent);
			memcpy(frame + ETH_HLEN + tag_len, &seq, sizeof(seq));
		}
		r = frame_send(fd, frame, o->size);
		if (r < 0)
			break;
	}
	close(fd);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			fprintf(stderr, "ddtk-rawsend: %s: sent %lu of %lu frames, then the device took none "
				"for %d ms\n", o->dev, sent, o->count, RAWSEND_STALL_MS);
		else
			fprintf(stderr, "ddtk-rawsend: %s: sent %lu of %lu frames, then: %s\n", o->dev, sent,
				o->count, strerror(-r));
		return 1;
	}
	printf("sent %lu\n", sent);
	return 0;
}

static bool payload_has_tag(const uint8_t *payload, size_t len, const char *tag, size_t tag_len)
{
	if (len > RAWSEND_TAG_WINDOW)
		len = RAWSEND_TAG_WINDOW;
	return memmem(payload, len, tag, tag_len) != NULL;
}

static int run_recv(const struct options *o)
{
	int ifindex;
	int fd = packet_socket(o->dev, ETH_P_ALL, &ifindex, NULL);
	if (fd < 0) {
		fprintf(stderr, "ddtk-rawsend: %s: %s\n", o->dev, dev_strerror(fd));
		return 1;
	}
	if (o->promisc) {
		/* A membership, not IFF_PROMISC: the kernel drops it when the socket closes, so the
		 * device leaves promiscuous mode however this program ends. */
		struct packet_mreq mr = { .mr_ifindex = ifindex, .mr_type = PACKET_MR_PROMISC };
		if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
			fprintf(stderr, "ddtk-rawsend: %s: promiscuous mode: %s\n", o->dev, strerror(errno));
			close(fd);
			return 1;
		}
	}
	/* SO_RCVBUFFORCE goes past net.core.rmem_max (root); without it the rmem_max cap will do. */
	int rcvbuf = RAWSEND_RCVBUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	/* Only the header and the tag window matter; longer frames arrive truncated. */
	uint8_t buf[ETH_HLEN + RAWSEND_TAG_WINDOW];
	size_t tag_len = strlen(o->tag);
	unsigned long received = 0;
	uint64_t deadline = now_ms() + o->seconds * 1000u;
	int r = 0;
	for (uint64_t now = now_ms(); now < deadline; now = now_ms()) {
		struct sockaddr_ll from;
		socklen_t from_len = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &from_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				r = -errno;
				break;
			}
			struct pollfd p = { .fd = fd, .events = POLLIN };
			uint64_t left = deadline - now;
			if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR) {
				r = -errno;
				break;
			}
			continue;
		}
		/* Frames from before bind() may come from other devices; our own sends are not
		 * receptions. */
		if (from.sll_ifindex != ifindex || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		size_t got = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf);
		if (got > ETH_HLEN && payload_has_tag(buf + ETH_HLEN, got - ETH_HLEN, o->tag, tag_len))
			received++;
	}
	/* Frames the socket had no room for were not counted: say so, the count is a lower bound. */
	struct tpacket_stats stats;
	socklen_t stats_len = sizeof(stats);
	if (r == 0 && getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &stats_len) == 0 && stats.tp_drops)
		fprintf(stderr, "ddtk-rawsend: %s: %u frames dropped (receive buffer full) were not counted\n",
			o->dev, stats.tp_drops);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "ddtk-rawsend: %s: receiving: %s\n", o->dev, strerror(-r));
		return 1;
	}
	printf("received %lu\n", received);
	return 0;
}

/* Options are checked before anything is opened; -EINVAL after printing why not. */
static int options_parse(int argc, char **argv, struct options *o)
{
	enum { OPT_RECV = 256, OPT_DEV, OPT_SRC, OPT_DST, OPT_COUNT, OPT_SIZE, OPT_ETHERTYPE,
	       OPT_TAG, OPT_SECONDS, OPT_PROMISC };
	static const struct option opts[] = {
		{ "recv", no_argument, NULL, OPT_RECV },
		{ "dev", required_argument, NULL, OPT_DEV },
		{ "src", required_argument, NULL, OPT_SRC },
		{ "dst", required_argument, NULL, OPT_DST },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "ethertype", required_argument, NULL, OPT_ETHERTYPE },
		{ "payload-tag", required_argument, NULL, OPT_TAG },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "promisc", no_argument, NULL, OPT_PROMISC },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool send_only = false, recv_only = false;
	unsigned long x;
	int c;

	*o = (struct options){ .count = RAWSEND_COUNT_DEFAULT, .size = RAWSEND_SIZE_MIN,
			       .ethertype = RAWSEND_ETHERTYPE_DEFAULT, .tag = RAWSEND_TAG_DEFAULT };
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_RECV:
			o->recv = true;
			break;
		case OPT_DEV:
			o->dev = optarg;
			break;
		case OPT_SRC:
			send_only = true;
			o->has_src = true;
			o->src_self = strcmp(optarg, "self") == 0;
			if (!o->src_self && net_mac_parse_bytes(optarg, o->src) < 0) {
				fprintf(stderr, "ddtk-rawsend: --src must be XX:XX:XX:XX:XX:XX or self, not '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_DST:
			send_only = true;
			o->has_dst = true;
			if (net_mac_parse_bytes(optarg, o->dst) < 0) {
				fprintf(stderr, "ddtk-rawsend: --dst must be XX:XX:XX:XX:XX:XX, not '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_COUNT:
			send_only = true;
			if (parse_ulong(optarg, 10, 1, RAWSEND_COUNT_MAX, &o->count) < 0) {
				fprintf(stderr, "ddtk-rawsend: --count must be 1 to %d, not '%s'\n",
					RAWSEND_COUNT_MAX, optarg);
				return -EINVAL;
			}
			break;
		case OPT_SIZE:
			send_only = true;
			if (parse_ulong(optarg, 10, RAWSEND_SIZE_MIN, RAWSEND_SIZE_MAX, &o->size) < 0) {
				fprintf(stderr, "ddtk-rawsend: --size must be %d to %d bytes, not '%s'\n",
					RAWSEND_SIZE_MIN, RAWSEND_SIZE_MAX, optarg);
				return -EINVAL;
			}
			break;
		case OPT_ETHERTYPE:
			send_only = true;
			if (strncasecmp(optarg, "0x", 2) != 0 ||
			    parse_ulong(optarg + 2, 16, RAWSEND_ETHERTYPE_MIN, 0xffff, &x) < 0) {
				fprintf(stderr, "ddtk-rawsend: --ethertype must be 0x%04x to 0xffff, not '%s'\n",
					RAWSEND_ETHERTYPE_MIN, optarg);
				return -EINVAL;
			}
			o->ethertype = (uint16_t)x;
			break;
		case OPT_TAG:
			o->tag = optarg;
			break;
		case OPT_SECONDS:
			recv_only = true;
			if (parse_ulong(optarg, 10, 1, RAWSEND_SECONDS_MAX, &o->seconds) < 0) {
				fprintf(stderr, "ddtk-rawsend: --seconds must be 1 to %d, not '%s'\n",
					RAWSEND_SECONDS_MAX, optarg);
				return -EINVAL;
			}
			break;
		case OPT_PROMISC:
			recv_only = true;
			o->promisc = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ddtk-rawsend: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->dev) {
		fprintf(stderr, "ddtk-rawsend: --dev is required\n");
		return -EINVAL;
	}
	size_t tag_len = strlen(o->tag);
	if (tag_len == 0 || tag_len > RAWSEND_TAG_WINDOW) {
		fprintf(stderr, "ddtk-rawsend: --payload-tag must be 1 to %d bytes\n", RAWSEND_TAG_WINDOW);
		return -EINVAL;
	}
	if (o->recv) {
		if (send_only) {
			fprintf(stderr, "ddtk-rawsend: --src, --dst, --count, --size and --ethertype are for sending\n");
			return -EINVAL;
		}
		if (!o->seconds) {
			fprintf(stderr, "ddtk-rawsend: --recv needs --seconds\n");
			return -EINVAL;
		}
		return 0;
	}
	if (recv_only) {
		fprintf(stderr, "ddtk-rawsend: --seconds and --promisc are for --recv\n");
		return -EINVAL;
	}
	if (!o->has_src || !o->has_dst) {
		fprintf(stderr, "ddtk-rawsend: sending needs --src and --dst\n");
		return -EINVAL;
	}
	if (ETH_HLEN + tag_len > o->size) {
		fprintf(stderr, "ddtk-rawsend: a %zu-byte tag does not fit in %lu-byte frames\n", tag_len,
			o->size);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	if (options_parse(argc, argv, &o) < 0)
		return 1;
	return o.recv ? run_recv(&o) : run_send(&o);
}
