/* The limit bench/net.sh compares ddtk-net with: the frames vu-blk-frontend's net mode sends (src,
 * dst, type 0x88b5, one size), written straight into an AF_PACKET socket with sendmmsg(). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include "net-frame.h"

#define PKTGEN_FRAME_MIN 60u		/* 64 bytes on the wire with the FCS */
#define PKTGEN_FRAME_MAX 1514u		/* an MTU of 1500 */
#define PKTGEN_BATCH_MAX 1024u
#define PKTGEN_ETHERTYPE 0x88b5u	/* IEEE 802 local experimental, as vu-blk-frontend net */

struct pktgen_options {
	const char *dev;
	uint32_t size;
	double seconds;
	uint32_t batch;
	uint8_t src[6], dst[6];
	bool have_src;
	bool json;
	bool qdisc_bypass;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: raw-pktgen --dev IFNAME --size N --seconds S [options]\n"
		"Sends Ethernet frames (src, dst, type 0x88b5, N bytes without FCS) on IFNAME through an AF_PACKET\n"
		"SOCK_RAW socket with sendmmsg() as fast as the kernel takes them; prints frames/s.\n"
		"  --batch B        frames per sendmmsg() (default 64, at most 1024)\n"
		"  --src MAC        source address (default: the device's)\n"
		"  --dst MAC        destination address (default ff:ff:ff:ff:ff:ff)\n"
		"  --qdisc-bypass   PACKET_QDISC_BYPASS: straight to the driver\n"
		"  --json           one JSON object on stdout instead of text\n");
}

static int parse_options(int argc, char **argv, struct pktgen_options *o)
{
	enum { OPT_DEV = 256, OPT_SIZE, OPT_SECONDS, OPT_BATCH, OPT_SRC, OPT_DST, OPT_QDISC_BYPASS, OPT_JSON, OPT_HELP };
	static const struct option longopts[] = {
		{ "dev", required_argument, NULL, OPT_DEV },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "src", required_argument, NULL, OPT_SRC },
		{ "dst", required_argument, NULL, OPT_DST },
		{ "qdisc-bypass", no_argument, NULL, OPT_QDISC_BYPASS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct pktgen_options){ .size = PKTGEN_FRAME_MIN, .seconds = 5, .batch = 64,
				      .dst = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const char *name = NULL;
		char *end;
		unsigned long v;
		switch (c) {
		case OPT_DEV:
			o->dev = optarg;
			if (strlen(optarg) >= IFNAMSIZ)
				name = "--dev";
			break;
		case OPT_SIZE:
			v = strtoul(optarg, &end, 10);
			if (*end || end == optarg || v < PKTGEN_FRAME_MIN || v > PKTGEN_FRAME_MAX)
				name = "--size (60..1514)";
			o->size = (uint32_t)v;
			break;
		case OPT_SECONDS:
			o->seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(o->seconds > 0) || o->seconds > 1e6)
				name = "--seconds";
			break;
		case OPT_BATCH:
			v = strtoul(optarg, &end, 10);
			if (*end || end == optarg || v == 0 || v > PKTGEN_BATCH_MAX)
				name = "--batch (1..1024)";
			o->batch = (uint32_t)v;
			break;
		case OPT_SRC:
			if (net_mac_parse_bytes(optarg, o->src) < 0)
				name = "--src";
			o->have_src = true;
			break;
		case OPT_DST:
			if (net_mac_parse_bytes(optarg, o->dst) < 0)
				name = "--dst";
			break;
		case OPT_QDISC_BYPASS:
			o->qdisc_bypass = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (name) {
			fprintf(stderr, "raw-pktgen: invalid %s: %s\n", name, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc || !o->dev) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pktgen_options o;
	if (parse_options(argc, argv, &o) < 0)
		return 2;

	/* Protocol 0: the socket sends and receives nothing, so it costs nothing on the way in. */
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "raw-pktgen: socket(AF_PACKET): %s\n", strerror(errno));
		return 1;
	}
	struct ifreq ifr = { 0 };
	memcpy(ifr.ifr_name, o.dev, strlen(o.dev) + 1);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		fprintf(stderr, "raw-pktgen: %s: %s\n", o.dev, strerror(errno));
		return 1;
	}
	int ifindex = ifr.ifr_ifindex;
	if (!o.have_src) {
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
			fprintf(stderr, "raw-pktgen: %s: SIOCGIFHWADDR: %s\n", o.dev, strerror(errno));
			return 1;
		}
		memcpy(o.src, ifr.ifr_hwaddr.sa_data, 6);
	}
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_protocol = 0 };
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "raw-pktgen: bind %s: %s\n", o.dev, strerror(errno));
		return 1;
	}
	int one = 1;
	if (o.qdisc_bypass && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0) {
		fprintf(stderr, "raw-pktgen: PACKET_QDISC_BYPASS: %s\n", strerror(errno));
		return 1;
	}

	static uint8_t frame[PKTGEN_FRAME_MAX];
	memcpy(frame, o.dst, 6);
	memcpy(frame + 6, o.src, 6);
	frame[12] = PKTGEN_ETHERTYPE >> 8;
	frame[13] = PKTGEN_ETHERTYPE & 0xff;
	for (uint32_t j = 14; j < o.size; j++)
		frame[j] = (uint8_t)j;
	struct iovec iov = { .iov_base = frame, .iov_len = o.size };
	static struct mmsghdr msgs[PKTGEN_BATCH_MAX];
	for (uint32_t i = 0; i < o.batch; i++)
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1 };

	uint64_t frames = 0, errors = 0, calls = 0;
	int first_error = 0;
	double cpu0 = cpu_s();
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(o.seconds * 1e9), t = t0;
	while (t < deadline) {
		int n = sendmmsg(fd, msgs, o.batch, 0);
		calls++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* A full device queue: not fatal, but counted; the rate says the rest. */
			if (errno != ENOBUFS && errno != EAGAIN) {
				fprintf(stderr, "raw-pktgen: sendmmsg: %s\n", strerror(errno));
				return 1;
			}
			if (!first_error)
				first_error = errno;
			errors++;
		} else {
			frames += (uint64_t)n;
		}
		t = now_ns();
	}
	double el = (double)(t - t0) / 1e9, cpu = cpu_s() - cpu0;
	double fps = (double)frames / el;
	if (o.json)
		printf("{\"frames\": %" PRIu64 ", \"frames_per_s\": %.0f, \"bits_per_s\": %.0f, \"frame_size\": %u, "
		       "\"seconds\": %.3f, \"send_errors\": %" PRIu64 ", \"sendmmsg_calls\": %" PRIu64 ", \"cpu_s\": %.3f}\n",
		       frames, fps, fps * o.size * 8, o.size, el, errors, calls, cpu);
	else
		printf("sent %" PRIu64 " frames of %u bytes in %.3f s on %s: %.0f frames/s, %.1f Mbit/s; %" PRIu64
		       " failed sendmmsg() (%s); CPU %.3f s\n",
		       frames, o.size, el, o.dev, fps, fps * o.size * 8 / 1e6, errors,
		       first_error ? strerror(first_error) : "none", cpu);
	close(fd);
	return 0;
}
