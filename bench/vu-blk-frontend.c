/* Synthetic vhost-user front-end for virtio-blk: it plays QEMU's (and the guest driver's) part
 * against a vhost-user-blk back-end at native speed and prints IOPS, latency and CPU as JSON. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vu-blk-frontend.h"

#define FE_STALL_TIMEOUT_NS (10ull * 1000000000ull) /* a back-end that completes nothing in 10 s is broken */
#define FE_MAX_QUEUES 64
#define FE_MAX_QUEUE_SIZE 32768		/* the virtio maximum for a split ring */
#define FE_MAX_BS (16u << 20)
#define FE_MAX_SEGS 256			/* data descriptors per request when size_max forces splitting */
#define FE_MIN_GUEST_MEM (64ull << 20)
#define FE_MAX_GUEST_MEM (4ull << 30)
#define FE_LAT_SAMPLES_MAX (1u << 24)	/* beyond this, latencies are reservoir-sampled */
#define FE_VERIFY_MAX_BLOCKS (1u << 24)
#define FE_CHECK_QUEUE_SIZE 1024		/* --check-requests' default ring size */

/* How much of the virtio-blk config space we read: up to num_queues (the struct is packed); with
 * --check-requests up to write_zeroes_may_unmap. */
#define BLK_CFG_READ_LEN (offsetof(struct virtio_blk_config, num_queues) + sizeof(uint16_t))
#define BLK_CFG_READ_LEN_DISCARD (offsetof(struct virtio_blk_config, write_zeroes_may_unmap) + sizeof(uint8_t))

enum io_order { ORDER_RANDOM, ORDER_SEQUENTIAL, ORDER_PERMUTATION };

struct phase {
	bool is_read;
	bool verify;
	enum io_order order;
	uint64_t limit_ios;	/* 0: no limit */
	uint64_t deadline_ns;	/* 0: no deadline */
	uint64_t submitted;
	uint64_t next_block;
	const uint32_t *perm;
};

volatile sig_atomic_t fe_stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	fe_stop_requested = 1;
}

int fe_error(struct frontend *fe, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fe->err, sizeof(fe->err), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	return r;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t rng_next(uint64_t *state)
{
	/* xorshift64*: fast and good enough to spread offsets; never seeded with 0. */
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

uint64_t pattern_word(uint64_t seed, uint64_t disk_offset)
{
	/* splitmix64 finaliser over (seed, offset): every 8 bytes of the disk get a distinct value
	 * per run, so stale data from an earlier run or a misplaced block cannot pass --verify. */
	uint64_t z = seed ^ (disk_offset * 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void pattern_fill(uint8_t *buf, uint32_t len, uint64_t seed, uint64_t disk_offset)
{
	for (uint32_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, disk_offset + i);
		memcpy(buf + i, &w, sizeof(w));
	}
}

void fe_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* ---- CPU accounting ---- */

/* utime + stime of a whole process (all its threads), in clock ticks, from /proc/PID/stat. */
int proc_cpu_ticks(pid_t pid, uint64_t *ret_ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	buf[n] = '\0';
	/* The command name may contain spaces and parentheses: fields are counted after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	p++;
	/* After ')' come field 3 (state) .. field 13 (cmajflt); utime and stime are fields 14 and 15. */
	for (int field = 3; field <= 13; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EINVAL;
	}
	unsigned long long utime, stime;
	if (sscanf(p, " %llu %llu", &utime, &stime) != 2)
		return -EINVAL;
	*ret_ticks = utime + stime;
	return 0;
}

double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- latency samples ---- */

static void lat_record(struct frontend *fe, uint64_t ns)
{
	struct lat_store *l = &fe->lat;
	uint32_t v = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	l->seen++;
	if (l->n == l->cap && l->cap < FE_LAT_SAMPLES_MAX) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		uint32_t *p = realloc(l->ns, cap * sizeof(*p));
		if (p) {
			l->ns = p;
			l->cap = cap;
		}
	}
	if (l->n < l->cap) {
		l->ns[l->n++] = v;
		return;
	}
	if (l->n == 0)
		return;
	/* Reservoir sampling keeps the percentiles unbiased over arbitrarily long runs. */
	uint64_t j = rng_next(&fe->rng) % l->seen;
	if (j < l->n)
		l->ns[j] = v;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in µs; 0 when there are no samples. */
static double lat_percentile_us(const struct lat_store *l, double pct)
{
	if (l->n == 0)
		return 0;
	size_t rank = (size_t)((pct / 100.0) * (double)l->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return (double)l->ns[rank - 1] / 1000.0;
}

/* ---- vhost-user messaging ---- */

int fe_send(struct frontend *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
	    unsigned nfds)
{
	uint8_t buf[sizeof(struct vu_hdr) + FE_PAYLOAD_MAX];
	struct vu_hdr hdr = { .request = req, .flags = VU_FLAG_VERSION | flags, .size = size };
	if (size > FE_PAYLOAD_MAX || nfds > VU_MAX_FDS)
		return fe_error(fe, -EMSGSIZE, "%s: message too large", vu_request_name(req));
	memcpy(buf, &hdr, sizeof(hdr));
	if (size)
		memcpy(buf + sizeof(hdr), payload, size);
	size_t total = sizeof(hdr) + size, done = 0;

	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = total };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (done < total) {
		/* The fds travel with the first byte; a short write sends the rest without them. */
		iov.iov_base = buf + done;
		iov.iov_len = total - done;
		ssize_t n = sendmsg(fe->sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			return fe_error(fe, r, "%s: send: %s", vu_request_name(req), strerror(-r));
		}
		done += (size_t)n;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	return 0;
}

/* Reads exactly len bytes of a reply; fds the back-end should not have sent are closed. */
static int fe_recv_exact(struct frontend *fe, uint32_t req, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		struct pollfd pfd = { .fd = fe->sock, .events = POLLIN };
		int pr = poll(&pfd, 1, FE_REPLY_TIMEOUT_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return fe_error(fe, -errno, "%s: poll: %s", vu_request_name(req), strerror(errno));
		if (pr == 0)
			return fe_error(fe, -ETIMEDOUT, "%s: no reply from the back-end within %d ms",
					vu_request_name(req), FE_REPLY_TIMEOUT_MS);
		union {
			char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { .iov_base = (uint8_t *)buf + done, .iov_len = len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(fe->sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fe_error(fe, -errno, "%s: recv: %s", vu_request_name(req), strerror(errno));
		if (n == 0)
			return fe_error(fe, -ECONNRESET, "%s: the back-end closed the connection",
					vu_request_name(req));
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfds; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(fd);
			}
		}
		done += (size_t)n;
	}
	return 0;
}

int fe_recv_reply(struct frontend *fe, uint32_t req, void *reply, uint32_t reply_size)
{
	if (reply_size > FE_PAYLOAD_MAX)
		return fe_error(fe, -EMSGSIZE, "%s: reply too large", vu_request_name(req));
	struct vu_hdr hdr = { 0 };
	int r = fe_recv_exact(fe, req, &hdr, sizeof(hdr));
	if (r < 0)
		return r;
	if (hdr.request != req)
		return fe_error(fe, -EPROTO, "%s: reply is for request %u", vu_request_name(req), hdr.request);
	if ((hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION || !(hdr.flags & VU_FLAG_REPLY))
		return fe_error(fe, -EPROTO, "%s: reply has flags 0x%x (want version 1 and REPLY)",
				vu_request_name(req), hdr.flags);
	if (hdr.size != reply_size)
		return fe_error(fe, -EPROTO, "%s: reply payload is %u bytes, expected %u%s", vu_request_name(req),
				hdr.size, reply_size, hdr.size == 0 ? " (the back-end reports a failure)" : "");
	uint8_t body[FE_PAYLOAD_MAX] = { 0 };
	r = fe_recv_exact(fe, req, body, reply_size);
	if (r < 0)
		return r;
	memcpy(reply, body, reply_size);
	return 0;
}

/*
 * Sends one request and waits for its reply. Requests with a reply payload (reply != NULL) must be
 * answered with exactly reply_size bytes; the others, once REPLY_ACK is negotiated, ask for an
 * acknowledgement so that a back-end's refusal surfaces at the message that caused it.
 */
int fe_call(struct frontend *fe, uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned nfds,
	    void *reply, uint32_t reply_size)
{
	bool ack = !reply && (fe->protocol_features & VU_BIT(VU_PROTOCOL_F_REPLY_ACK));
	if (reply_size > FE_PAYLOAD_MAX)
		return fe_error(fe, -EMSGSIZE, "%s: reply too large", vu_request_name(req));
	int r = fe_send(fe, req, ack ? VU_FLAG_NEED_REPLY : 0, payload, size, fds, nfds);
	if (r < 0 || (!reply && !ack))
		return r;
	if (reply)
		return fe_recv_reply(fe, req, reply, reply_size);
	uint64_t status = 0;
	r = fe_recv_reply(fe, req, &status, sizeof(status));
	if (r < 0)
		return r;
	if (status != 0)
		return fe_error(fe, -EPROTO, "%s: the back-end refused it (status %" PRIu64 ")",
				vu_request_name(req), status);
	return 0;
}

static int fe_get_u64(struct frontend *fe, uint32_t req, uint64_t *ret)
{
	return fe_call(fe, req, NULL, 0, NULL, 0, ret, sizeof(*ret));
}

static int fe_set_u64(struct frontend *fe, uint32_t req, uint64_t v)
{
	return fe_call(fe, req, &v, sizeof(v), NULL, 0, NULL, 0);
}

int fe_set_state(struct frontend *fe, uint32_t req, uint32_t index, uint32_t num)
{
	struct vu_vring_state s = { .index = index, .num = num };
	return fe_call(fe, req, &s, sizeof(s), NULL, 0, NULL, 0);
}

int fe_connect(struct frontend *fe)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = fe->opt.socket_path;
	if (strlen(path) >= sizeof(sa.sun_path))
		return fe_error(fe, -ENAMETOOLONG, "socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* The back-end may still be starting: retry for a while rather than race its listen(). */
	uint64_t deadline = now_ns() + (uint64_t)(fe->opt.connect_timeout_s * 1e9);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return fe_error(fe, -errno, "socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			fe->sock = fd;
			return 0;
		}
		int r = -errno;
		close(fd);
		if ((r != -ENOENT && r != -ECONNREFUSED) || now_ns() >= deadline || fe_stop_requested)
			return fe_error(fe, r, "connect %s: %s", path, strerror(-r));
		struct timespec ts = { .tv_nsec = 20L * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* ---- negotiation ---- */

static uint32_t config_le32(const uint8_t *region, size_t offset)
{
	uint32_t v;
	memcpy(&v, region + offset, sizeof(v));
	return le32toh(v);
}

static int fe_read_config(struct frontend *fe)
{
	const uint32_t len = fe->opt.check_requests ? BLK_CFG_READ_LEN_DISCARD : BLK_CFG_READ_LEN;
	/* The request carries as many (zero) bytes of space as it asks for. */
	struct vu_config_msg req = { .offset = 0, .size = len, .flags = 0 }, reply = { 0 };
	int r = fe_call(fe, VU_REQ_GET_CONFIG, &req, VU_CONFIG_HDR_SIZE + len, NULL, 0, &reply,
			VU_CONFIG_HDR_SIZE + len);
	if (r < 0)
		return r;
	if (reply.offset != 0 || reply.size != len)
		return fe_error(fe, -EPROTO, "GET_CONFIG: reply describes offset %u size %u, asked 0/%u",
				reply.offset, reply.size, len);
	const uint8_t *region = reply.region;
	if (len >= BLK_CFG_READ_LEN_DISCARD) {
		fe->max_discard_sectors = config_le32(region, offsetof(struct virtio_blk_config, max_discard_sectors));
		fe->max_discard_seg = config_le32(region, offsetof(struct virtio_blk_config, max_discard_seg));
		fe->max_write_zeroes_sectors = config_le32(region, offsetof(struct virtio_blk_config,
									  max_write_zeroes_sectors));
		fe->max_write_zeroes_seg = config_le32(region, offsetof(struct virtio_blk_config, max_write_zeroes_seg));
		fe->write_zeroes_may_unmap = region[offsetof(struct virtio_blk_config, write_zeroes_may_unmap)];
		fe->have_discard_config = true;
	}
	uint64_t capacity;
	uint32_t size_max, seg_max, blk_size;
	uint16_t num_queues;
	memcpy(&capacity, region + offsetof(struct virtio_blk_config, capacity), sizeof(capacity));
	memcpy(&size_max, region + offsetof(struct virtio_blk_config, size_max), sizeof(size_max));
	memcpy(&seg_max, region + offsetof(struct virtio_blk_config, seg_max), sizeof(seg_max));
	memcpy(&blk_size, region + offsetof(struct virtio_blk_config, blk_size), sizeof(blk_size));
	memcpy(&num_queues, region + offsetof(struct virtio_blk_config, num_queues), sizeof(num_queues));
	capacity = le64toh(capacity);
	if (capacity > UINT64_MAX / SECTOR_SIZE)
		return fe_error(fe, -EPROTO, "GET_CONFIG: capacity %" PRIu64 " sectors overflows", capacity);
	fe->capacity_bytes = capacity * SECTOR_SIZE;
	fe->size_max = le32toh(size_max);
	fe->seg_max = le32toh(seg_max);
	fe->blk_size = le32toh(blk_size);
	fe->cfg_num_queues = le16toh(num_queues);
	fe->have_config = true;
	return 0;
}

int fe_negotiate_begin(struct frontend *fe, uint64_t want_protocol)
{
	/* QEMU's order: protocol features and queue count first (vhost_user_backend_init), then
	 * SET_OWNER; the device's own part (config space, SET_FEATURES) follows. */
	int r = fe_get_u64(fe, VU_REQ_GET_FEATURES, &fe->dev_features);
	if (r < 0)
		return r;
	if (!has_feature(fe->dev_features, VU_F_VERSION_1))
		return fe_error(fe, -ENOTSUP, "the back-end does not offer VIRTIO_F_VERSION_1 (features 0x%" PRIx64 ")",
				fe->dev_features);

	fe->max_queues = 1;
	if (has_feature(fe->dev_features, VU_F_PROTOCOL_FEATURES)) {
		r = fe_get_u64(fe, VU_REQ_GET_PROTOCOL_FEATURES, &fe->dev_protocol_features);
		if (r < 0)
			return r;
		if (!fe->opt.no_reply_ack)
			want_protocol |= VU_BIT(VU_PROTOCOL_F_REPLY_ACK);
		uint64_t pf = fe->dev_protocol_features & want_protocol;
		r = fe_set_u64(fe, VU_REQ_SET_PROTOCOL_FEATURES, pf);
		if (r < 0)
			return r;
		/* Only now may we ask for acks: the back-end knows REPLY_ACK from this point on. */
		fe->protocol_features = pf;
		if (has_feature(pf, VU_PROTOCOL_F_MQ)) {
			uint64_t n = 0;
			r = fe_get_u64(fe, VU_REQ_GET_QUEUE_NUM, &n);
			if (r < 0)
				return r;
			if (n == 0)
				return fe_error(fe, -EPROTO, "GET_QUEUE_NUM: the back-end reports 0 queues");
			fe->max_queues = n > FE_MAX_QUEUES ? FE_MAX_QUEUES : (uint32_t)n;
		}
	}

	return fe_call(fe, VU_REQ_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
}

int fe_negotiate_features(struct frontend *fe, uint64_t want)
{
	fe->features = fe->dev_features & want;
	int r = fe_set_u64(fe, VU_REQ_SET_FEATURES, fe->features);
	if (r < 0)
		return r;
	fe->event_idx = has_feature(fe->features, VU_F_RING_EVENT_IDX);
	fe->indirect = has_feature(fe->features, VU_F_RING_INDIRECT_DESC);
	return 0;
}

static int fe_negotiate(struct frontend *fe)
{
	int r = fe_negotiate_begin(fe, VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_CONFIG));
	if (r < 0)
		return r;
	/* QEMU reads the config space at realize, before SET_FEATURES when the device starts. */
	if (has_feature(fe->protocol_features, VU_PROTOCOL_F_CONFIG)) {
		r = fe_read_config(fe);
		if (r < 0)
			return r;
	}

	uint64_t want = VU_BIT(VU_F_VERSION_1) | VU_BIT(VU_F_PROTOCOL_FEATURES) |
			VU_BIT(VIRTIO_BLK_F_FLUSH) | VU_BIT(VIRTIO_BLK_F_MQ) | VU_BIT(VIRTIO_BLK_F_RO) |
			VU_BIT(VIRTIO_BLK_F_SIZE_MAX) | VU_BIT(VIRTIO_BLK_F_SEG_MAX) | VU_BIT(VIRTIO_BLK_F_BLK_SIZE);
	if (!fe->opt.no_event_idx)
		want |= VU_BIT(VU_F_RING_EVENT_IDX);
	if (!fe->opt.no_indirect)
		want |= VU_BIT(VU_F_RING_INDIRECT_DESC);
	if (fe->opt.check_requests)
		want |= VU_BIT(VIRTIO_BLK_F_DISCARD) | VU_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	return fe_negotiate_features(fe, want);
}

/* Checks the options against what the device reported and derives the request layout. */
static int fe_check_device(struct frontend *fe)
{
	struct options *o = &fe->opt;
	/* --check-requests judges a read-only device itself (--expect-read-only). */
	bool writes = !o->check_requests && (o->verify || o->rw == RW_RANDWRITE || o->rw == RW_WRITE);
	if (writes && has_feature(fe->features, VIRTIO_BLK_F_RO))
		return fe_error(fe, -EROFS, "the device is read-only (VIRTIO_BLK_F_RO) and the workload writes");
	if (!fe->have_config && !o->size)
		return fe_error(fe, -ENOTSUP, "the back-end has no config space (VHOST_USER_PROTOCOL_F_CONFIG): pass --size");
	if (!o->size)
		o->size = fe->capacity_bytes;
	if (fe->have_config && o->size > fe->capacity_bytes)
		return fe_error(fe, -EINVAL, "--size %" PRIu64 " exceeds the capacity %" PRIu64, o->size,
				fe->capacity_bytes);
	fe->nblocks = o->size / o->bs;
	if (fe->nblocks == 0)
		return fe_error(fe, -EINVAL, "the region (%" PRIu64 " bytes) is smaller than --bs %u", o->size, o->bs);

	if (o->queues > fe->max_queues)
		return fe_error(fe, -EINVAL, "--queues %u: the back-end supports %u", o->queues, fe->max_queues);
	if (o->queues > 1 && !has_feature(fe->features, VIRTIO_BLK_F_MQ))
		return fe_error(fe, -EINVAL, "--queues %u: the back-end does not offer VIRTIO_BLK_F_MQ", o->queues);
	if (o->queues > 1 && fe->have_config && o->queues > fe->cfg_num_queues)
		return fe_error(fe, -EINVAL, "--queues %u: config space num_queues is %u", o->queues,
				fe->cfg_num_queues);

	if (has_feature(fe->features, VIRTIO_BLK_F_BLK_SIZE) && fe->have_config) {
		uint32_t b = fe->blk_size;
		if (b < SECTOR_SIZE || b > (1u << 16) || (b & (b - 1)))
			return fe_error(fe, -EPROTO, "config space blk_size %u is not a power of two in 512..64k", b);
		if (o->bs % b)
			return fe_error(fe, -EINVAL, "--bs %u is not a multiple of the device's block size %u", o->bs, b);
	}

	/* A device with a maximum segment size gets the data split the way a guest driver would. */
	fe->seg_len = o->bs;
	if (has_feature(fe->features, VIRTIO_BLK_F_SIZE_MAX) && fe->have_config && fe->size_max &&
	    fe->size_max < o->bs)
		fe->seg_len = fe->size_max / SECTOR_SIZE * SECTOR_SIZE;
	if (fe->seg_len == 0)
		return fe_error(fe, -EPROTO, "config space size_max %u is below one sector", fe->size_max);
	fe->nseg = (o->bs + fe->seg_len - 1) / fe->seg_len;
	if (fe->nseg > FE_MAX_SEGS)
		return fe_error(fe, -EINVAL, "--bs %u needs %u segments of size_max %u", o->bs, fe->nseg, fe->seg_len);
	if (has_feature(fe->features, VIRTIO_BLK_F_SEG_MAX) && fe->have_config && fe->seg_max &&
	    fe->nseg > fe->seg_max)
		return fe_error(fe, -EINVAL, "--bs %u needs %u segments; the device takes %u", o->bs, fe->nseg,
				fe->seg_max);
	fe->desc_per_req = fe->nseg + 2;

	uint32_t ring_slots = fe->indirect ? o->queue_size : o->queue_size / fe->desc_per_req;
	if (o->iodepth > ring_slots)
		return fe_error(fe, -EINVAL, "--iodepth %u does not fit a ring of %u with %u descriptors per request%s",
				o->iodepth, o->queue_size, fe->indirect ? 1 : fe->desc_per_req,
				fe->indirect ? "" : " (VIRTIO_RING_F_INDIRECT_DESC not negotiated)");
	return 0;
}

/* ---- guest memory and rings ---- */

void *gmem_alloc(struct guest_mem *m, uint64_t size, uint64_t align, uint64_t *ret_gpa)
{
	uint64_t off = (m->used + align - 1) & ~(align - 1);
	if (off + size > m->size)
		return NULL;
	m->used = off + size;
	*ret_gpa = off;
	return m->base + off;
}

int fe_guest_mem_create(struct frontend *fe, uint64_t size)
{
	fe->mem.size = size < FE_MIN_GUEST_MEM ? FE_MIN_GUEST_MEM : size;
	fe->mem.fd = memfd_create("vu-frontend-guest-ram", MFD_CLOEXEC);
	if (fe->mem.fd < 0)
		return fe_error(fe, -errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(fe->mem.fd, (off_t)fe->mem.size) < 0)
		return fe_error(fe, -errno, "ftruncate guest memory: %s", strerror(errno));
	void *p = mmap(NULL, fe->mem.size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->mem.fd, 0);
	if (p == MAP_FAILED)
		return fe_error(fe, -errno, "mmap guest memory: %s", strerror(errno));
	fe->mem.base = p;
	return 0;
}

int fe_vqs_create(struct frontend *fe, uint32_t nvqs, uint16_t num)
{
	fe->vqs = calloc(nvqs, sizeof(*fe->vqs));
	if (!fe->vqs)
		return fe_error(fe, -ENOMEM, "out of memory");
	fe->nvqs = nvqs;
	for (uint32_t q = 0; q < nvqs; q++) {
		struct vq *vq = &fe->vqs[q];
		vq->index = q;
		vq->num = num;
		vq->kick_fd = vq->call_fd = -1;
		vq->desc = gmem_alloc(&fe->mem, 16ull * num, 4096, &vq->desc_gpa);
		vq->avail = gmem_alloc(&fe->mem, 6 + 2ull * num, 4096, &vq->avail_gpa);
		vq->used = gmem_alloc(&fe->mem, 6 + 8ull * num, 4096, &vq->used_gpa);
		if (!vq->desc || !vq->avail || !vq->used)
			return fe_error(fe, -ENOMEM, "out of guest memory for the rings of queue %u", q);
	}
	return 0;
}

static int fe_setup_memory(struct frontend *fe)
{
	const struct options *o = &fe->opt;
	uint64_t num = o->queue_size;
	uint64_t per_slot = align_up(o->bs, 4096) + 64 + align_up(16ull * fe->desc_per_req, 64);
	uint64_t per_vq = align_up(16 * num, 4096) + align_up(6 + 2 * num, 4096) + align_up(6 + 8 * num, 4096) +
			  (uint64_t)o->iodepth * per_slot;
	uint64_t need = align_up((uint64_t)o->queues * per_vq + (1ull << 20), 2ull << 20);
	if (need > FE_MAX_GUEST_MEM)
		return fe_error(fe, -E2BIG, "queues x iodepth x bs needs %" PRIu64 " MiB of guest memory (limit %llu)",
				need >> 20, FE_MAX_GUEST_MEM >> 20);
	int r = fe_guest_mem_create(fe, need);
	if (r == 0)
		r = fe_vqs_create(fe, o->queues, (uint16_t)num);
	if (r < 0)
		return r;
	for (uint32_t q = 0; q < fe->nvqs; q++) {
		struct vq *vq = &fe->vqs[q];
		vq->nslots = o->iodepth;
		vq->slots = calloc(vq->nslots, sizeof(*vq->slots));
		vq->free_slots = calloc(vq->nslots, sizeof(*vq->free_slots));
		vq->batch = calloc(vq->nslots, sizeof(*vq->batch));
		if (!vq->slots || !vq->free_slots || !vq->batch)
			return fe_error(fe, -ENOMEM, "out of memory for queue %u", q);
		for (uint32_t s = 0; s < vq->nslots; s++) {
			struct slot *sl = &vq->slots[s];
			uint64_t small_gpa;
			uint8_t *small = gmem_alloc(&fe->mem, 64, 64, &small_gpa);
			sl->data = gmem_alloc(&fe->mem, o->bs, 4096, &sl->data_gpa);
			if (!small || !sl->data)
				return fe_error(fe, -ENOMEM, "out of guest memory for queue %u", q);
			sl->hdr = (struct virtio_blk_outhdr *)small;
			sl->hdr_gpa = small_gpa;
			sl->status = small + 32;
			sl->status_gpa = small_gpa + 32;
			if (fe->indirect) {
				sl->indirect = gmem_alloc(&fe->mem, 16ull * fe->desc_per_req, 64, &sl->indirect_gpa);
				if (!sl->indirect)
					return fe_error(fe, -ENOMEM, "out of guest memory for queue %u", q);
				sl->head = (uint16_t)s;
			} else {
				sl->head = (uint16_t)(s * fe->desc_per_req);
			}
			/* Non-zero write data: a back-end cannot take a zero-page shortcut. */
			pattern_fill(sl->data, o->bs, fe->opt.seed ^ 0x5555, ((uint64_t)q << 40) + (uint64_t)s * o->bs);
			vq->free_slots[vq->nfree++] = vq->nslots - 1 - s;
		}
	}
	return 0;
}

int fe_send_mem_table(struct frontend *fe)
{
	/* One region: all of guest memory, at guest address 0, known to the back-end by our address. */
	struct vu_mem_table_msg mt = { .nregions = 1 };
	mt.regions[0] = (struct vu_mem_region_msg){ .guest_phys_addr = 0, .memory_size = fe->mem.size,
						    .userspace_addr = (uint64_t)(uintptr_t)fe->mem.base, .mmap_offset = 0 };
	return fe_call(fe, VU_REQ_SET_MEM_TABLE, &mt, offsetof(struct vu_mem_table_msg, regions) + sizeof(mt.regions[0]),
		       &fe->mem.fd, 1, NULL, 0);
}

int fe_start_vring(struct frontend *fe, struct vq *vq)
{
	int r = fe_set_state(fe, VU_REQ_SET_VRING_NUM, vq->index, vq->num);
	if (r < 0)
		return r;
	r = fe_set_state(fe, VU_REQ_SET_VRING_BASE, vq->index, 0);
	if (r < 0)
		return r;
	/* The rings by their addresses in this process, as QEMU gives them. */
	struct vu_vring_addr addr = { .index = vq->index, .flags = 0,
				      .desc_user_addr = (uint64_t)(uintptr_t)vq->desc,
				      .used_user_addr = (uint64_t)(uintptr_t)vq->used,
				      .avail_user_addr = (uint64_t)(uintptr_t)vq->avail, .log_guest_addr = 0 };
	r = fe_call(fe, VU_REQ_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0, NULL, 0);
	if (r < 0)
		return r;

	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->call_fd < 0 || vq->kick_fd < 0)
		return fe_error(fe, -errno, "eventfd: %s", strerror(errno));
	/* The call fd goes first: the ring starts on SET_VRING_KICK and must be able to signal us. */
	uint64_t index = vq->index;
	r = fe_call(fe, VU_REQ_SET_VRING_CALL, &index, sizeof(index), &vq->call_fd, 1, NULL, 0);
	if (r < 0)
		return r;
	r = fe_call(fe, VU_REQ_SET_VRING_KICK, &index, sizeof(index), &vq->kick_fd, 1, NULL, 0);
	if (r < 0)
		return r;
	if (has_feature(fe->features, VU_F_PROTOCOL_FEATURES))
		r = fe_set_state(fe, VU_REQ_SET_VRING_ENABLE, vq->index, 1);
	return r;
}

int fe_stop_vring(struct frontend *fe, struct vq *vq, uint32_t *ret_base)
{
	int r;
	if (has_feature(fe->features, VU_F_PROTOCOL_FEATURES)) {
		r = fe_set_state(fe, VU_REQ_SET_VRING_ENABLE, vq->index, 0);
		if (r < 0)
			return r;
	}
	struct vu_vring_state req = { .index = vq->index, .num = 0 }, reply = { 0, 0 };
	r = fe_call(fe, VU_REQ_GET_VRING_BASE, &req, sizeof(req), NULL, 0, &reply, sizeof(reply));
	if (r < 0)
		return r;
	if (reply.index != vq->index)
		return fe_error(fe, -EPROTO, "GET_VRING_BASE: reply for queue %u, asked %u", reply.index, vq->index);
	*ret_base = reply.num;
	return 0;
}

int fe_stop_vrings(struct frontend *fe)
{
	for (uint32_t q = 0; q < fe->nvqs; q++) {
		struct vq *vq = &fe->vqs[q];
		uint32_t base = 0;
		int r = fe_stop_vring(fe, vq, &base);
		if (r < 0)
			return r;
		if (base != vq->avail_idx)
			return fe_error(fe, -EPROTO, "GET_VRING_BASE queue %u: back-end base %u, front-end made %u available",
					vq->index, base, vq->avail_idx);
	}
	return 0;
}

/* ---- the data path ---- */

static bool phase_may_submit(const struct phase *ph)
{
	if (fe_stop_requested)
		return false;
	if (ph->limit_ios && ph->submitted >= ph->limit_ios)
		return false;
	if (ph->deadline_ns && now_ns() >= ph->deadline_ns)
		return false;
	return true;
}

static uint64_t phase_next_offset(struct frontend *fe, struct phase *ph)
{
	uint64_t block = 0;
	switch (ph->order) {
	case ORDER_RANDOM:
		block = rng_next(&fe->rng) % fe->nblocks;
		break;
	case ORDER_SEQUENTIAL:
		block = ph->next_block;
		ph->next_block = (ph->next_block + 1) % fe->nblocks;
		break;
	case ORDER_PERMUTATION:
		block = ph->perm[ph->next_block++];
		break;
	}
	return block * fe->opt.bs;
}

static void vq_build_request(struct frontend *fe, struct vq *vq, struct slot *sl)
{
	sl->hdr->type = htole32(sl->is_read ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT);
	sl->hdr->ioprio = 0;
	sl->hdr->sector = htole64(sl->offset / SECTOR_SIZE);
	/* Not a status a device can return: a back-end that never writes it shows up as an error. */
	*sl->status = 0xff;

	struct vring_desc *d = sl->indirect ? sl->indirect : &vq->desc[sl->head];
	uint16_t base = sl->indirect ? 0 : sl->head;
	uint32_t n = fe->desc_per_req;
	d[0].addr = htole64(sl->hdr_gpa);
	d[0].len = htole32(sizeof(struct virtio_blk_outhdr));
	d[0].flags = htole16(VRING_DESC_F_NEXT);
	d[0].next = htole16(base + 1);
	for (uint32_t i = 0; i < fe->nseg; i++) {
		uint32_t off = i * fe->seg_len;
		uint32_t len = fe->opt.bs - off < fe->seg_len ? fe->opt.bs - off : fe->seg_len;
		d[1 + i].addr = htole64(sl->data_gpa + off);
		d[1 + i].len = htole32(len);
		d[1 + i].flags = htole16(VRING_DESC_F_NEXT | (sl->is_read ? VRING_DESC_F_WRITE : 0));
		d[1 + i].next = htole16(base + 2 + i);
	}
	d[n - 1].addr = htole64(sl->status_gpa);
	d[n - 1].len = htole32(1);
	d[n - 1].flags = htole16(VRING_DESC_F_WRITE);
	d[n - 1].next = 0;
	if (sl->indirect) {
		struct vring_desc *h = &vq->desc[sl->head];
		h->addr = htole64(sl->indirect_gpa);
		h->len = htole32(16 * n);
		h->flags = htole16(VRING_DESC_F_INDIRECT);
		h->next = 0;
	}
	vq->avail->ring[vq->avail_idx % vq->num] = htole16(sl->head);
	vq->avail_idx++;
}

int fe_vq_publish(struct frontend *fe, struct vq *vq)
{
	/* Release: the descriptors and avail ring entries written above must be visible to the
	 * back-end before the avail->idx that announces them. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	shared_store16(&vq->avail->idx, vq->avail_idx);
	/* Full barrier (store-load): the new avail->idx must be visible before we read the back-end's
	 * avail_event / used->flags; otherwise it may go to sleep on the old index while we skip the kick. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	bool kick;
	if (fe->event_idx)
		kick = vring_need_event(shared_load16(vq_avail_event(vq)), vq->avail_idx, vq->kick_old_idx);
	else
		kick = !(shared_load16(&vq->used->flags) & VRING_USED_F_NO_NOTIFY);
	vq->kick_old_idx = vq->avail_idx;
	if (!kick)
		return 0;
	uint64_t one = 1;
	if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one))
		return fe_error(fe, -errno, "kick queue %u: %s", vq->index, strerror(errno));
	fe->kicks++;
	return 0;
}

/* Publishes the batch and kicks the back-end unless it asked not to be. */
static int vq_publish(struct frontend *fe, struct vq *vq)
{
	uint64_t t = now_ns();
	for (uint32_t i = 0; i < vq->nbatch; i++)
		vq->slots[vq->batch[i]].t_submit_ns = t;
	vq->nbatch = 0;
	return fe_vq_publish(fe, vq);
}

void fe_desc_set(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

void fe_avail_add(struct vq *vq, uint16_t head)
{
	vq->avail->ring[vq->avail_idx % vq->num] = htole16(head);
	vq->avail_idx++;
}

int fe_publish_kick(const struct frontend *fe, struct vq *vq)
{
	uint64_t one = 1;

	if (fe->event_idx)
		shared_store16(vq_used_event(vq), vq->last_used);
	/* Release: descriptors and ring entries are visible before the index that announces them. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	shared_store16(&vq->avail->idx, vq->avail_idx);
	/* Full barrier: the index is visible before the kick wakes the back-end up. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

int fe_socket_state(const struct frontend *fe)
{
	uint8_t b;
	ssize_t n = recv(fe->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return -ECONNRESET;
	if (n > 0)
		return -EPROTO;
	return 0;
}

/* Fills the queue up to its depth; returns how many requests were submitted. */
static int vq_fill(struct frontend *fe, struct vq *vq, struct phase *ph)
{
	while (vq->nfree && phase_may_submit(ph)) {
		uint32_t s = vq->free_slots[--vq->nfree];
		struct slot *sl = &vq->slots[s];
		sl->busy = true;
		sl->is_read = ph->is_read;
		sl->verify = ph->verify;
		sl->offset = phase_next_offset(fe, ph);
		if (sl->verify && !sl->is_read)
			pattern_fill(sl->data, fe->opt.bs, fe->opt.seed, sl->offset);
		vq_build_request(fe, vq, sl);
		vq->batch[vq->nbatch++] = s;
		ph->submitted++;
		fe->inflight++;
	}
	int n = (int)vq->nbatch;
	if (n) {
		int r = vq_publish(fe, vq);
		if (r < 0)
			return r;
	}
	return n;
}

static void io_error(struct frontend *fe, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void io_error(struct frontend *fe, const char *fmt, ...)
{
	fe->errors++;
	if (fe->first_io_error[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fe->first_io_error, sizeof(fe->first_io_error), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
}

static void slot_verify(struct frontend *fe, const struct slot *sl)
{
	for (uint32_t i = 0; i + 8 <= fe->opt.bs; i += 8) {
		uint64_t got, want = pattern_word(fe->opt.seed, sl->offset + i);
		memcpy(&got, sl->data + i, sizeof(got));
		if (got != want) {
			io_error(fe, "verify: byte %" PRIu64 " reads 0x%016" PRIx64 ", wrote 0x%016" PRIx64,
				 sl->offset + i, got, want);
			return;
		}
	}
}

/* Consumes used entries; returns how many requests completed. The used ring is the back-end's
 * word, so every id and count is checked before it indexes anything. */
static int vq_reap(struct frontend *fe, struct vq *vq)
{
	uint16_t used_idx = shared_load16(&vq->used->idx);
	if (used_idx == vq->last_used)
		return 0;
	/* Acquire: the used entries, status bytes and read data must be read after the used->idx
	 * that announced them. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(used_idx - vq->last_used);
	uint32_t busy = vq->nslots - vq->nfree;
	if (pending > busy)
		return fe_error(fe, -EPROTO, "queue %u: used->idx moved by %u with %u requests in flight",
				vq->index, pending, busy);
	uint64_t t = now_ns();
	for (uint16_t i = 0; i < pending; i++) {
		const struct vring_used_elem *e = &vq->used->ring[vq->last_used % vq->num];
		uint32_t id = shared_load32(&e->id);
		uint32_t s = fe->indirect ? id : id / fe->desc_per_req;
		if (s >= vq->nslots || vq->slots[s].head != id || !vq->slots[s].busy)
			return fe_error(fe, -EPROTO, "queue %u: used id %u is not a request in flight", vq->index, id);
		struct slot *sl = &vq->slots[s];
		uint8_t status = *sl->status;
		if (status != VIRTIO_BLK_S_OK)
			io_error(fe, "%s at byte %" PRIu64 ": status %u", sl->is_read ? "read" : "write", sl->offset,
				 status);
		else {
			fe->bytes += fe->opt.bs;
			if (sl->verify && sl->is_read)
				slot_verify(fe, sl);
		}
		lat_record(fe, t - sl->t_submit_ns);
		sl->busy = false;
		vq->free_slots[vq->nfree++] = s;
		vq->last_used++;
		fe->ios++;
		fe->inflight--;
	}
	return pending;
}

bool fe_vq_arm(const struct frontend *fe, struct vq *vq)
{
	if (fe->event_idx) {
		shared_store16(vq_used_event(vq), vq->last_used);
		/* Full barrier (store-load): used_event must be visible before we re-read used->idx,
		 * or a completion landing in between would neither be seen nor signalled. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return shared_load16(&vq->used->idx) != vq->last_used;
}

static int fe_run_phase(struct frontend *fe, struct phase *ph)
{
	struct pollfd pfds[FE_MAX_QUEUES + 1];
	for (uint32_t q = 0; q < fe->nvqs; q++)
		pfds[q] = (struct pollfd){ .fd = fe->vqs[q].call_fd, .events = POLLIN };
	/* We never expect a message now: readability means the back-end hung up or misbehaves. */
	pfds[fe->nvqs] = (struct pollfd){ .fd = fe->sock, .events = POLLIN };
	uint64_t last_progress = now_ns();

	for (;;) {
		int progress = 0;
		for (uint32_t q = 0; q < fe->nvqs; q++) {
			int r = vq_reap(fe, &fe->vqs[q]);
			if (r < 0)
				return r;
			progress += r;
			r = vq_fill(fe, &fe->vqs[q], ph);
			if (r < 0)
				return r;
			progress += r;
		}
		if (progress) {
			last_progress = now_ns();
			continue;
		}
		if (fe->inflight == 0)
			return 0;

		bool arrived = false;
		for (uint32_t q = 0; q < fe->nvqs; q++)
			arrived |= fe_vq_arm(fe, &fe->vqs[q]);
		if (arrived)
			continue;
		if (now_ns() - last_progress > FE_STALL_TIMEOUT_NS)
			return fe_error(fe, -ETIMEDOUT, "the back-end completed nothing in %llu s (%" PRIu64 " requests in flight)",
					FE_STALL_TIMEOUT_NS / 1000000000ull, fe->inflight);
		int pr = poll(pfds, fe->nvqs + 1, 1000);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return fe_error(fe, -errno, "poll: %s", strerror(errno));
		if (pfds[fe->nvqs].revents)
			return fe_error(fe, -ECONNRESET, "the back-end closed the connection (or sent an unexpected message) "
					"with %" PRIu64 " requests in flight", fe->inflight);
		for (uint32_t q = 0; q < fe->nvqs; q++) {
			if (!(pfds[q].revents & POLLIN))
				continue;
			uint64_t cnt;
			if (read(pfds[q].fd, &cnt, sizeof(cnt)) == sizeof(cnt))
				fe->calls++;
		}
	}
}

static int fe_run(struct frontend *fe, double *ret_elapsed_s)
{
	const struct options *o = &fe->opt;
	int r;
	uint64_t t0 = now_ns();
	if (o->verify) {
		/* Every block once, in a random order (--rw rand*) so that completions come back out of
		 * order, written with a per-run pattern and then read back and compared. */
		uint64_t n = o->ios && o->ios < fe->nblocks ? o->ios : fe->nblocks;
		if (n > FE_VERIFY_MAX_BLOCKS)
			return fe_error(fe, -E2BIG, "--verify over %" PRIu64 " blocks: limit it with --size or --ios", n);
		uint32_t *perm = malloc(n * sizeof(*perm));
		if (!perm)
			return fe_error(fe, -ENOMEM, "out of memory");
		for (uint64_t i = 0; i < n; i++)
			perm[i] = (uint32_t)i;
		if (o->rw == RW_RANDREAD || o->rw == RW_RANDWRITE) {
			for (uint64_t i = n - 1; i > 0; i--) {
				uint64_t j = rng_next(&fe->rng) % (i + 1);
				uint32_t tmp = perm[i];
				perm[i] = perm[j];
				perm[j] = tmp;
			}
		}
		struct phase wr = { .is_read = false, .verify = true, .order = ORDER_PERMUTATION, .limit_ios = n, .perm = perm };
		struct phase rd = { .is_read = true, .verify = true, .order = ORDER_PERMUTATION, .limit_ios = n, .perm = perm };
		r = fe_run_phase(fe, &wr);
		if (r == 0)
			r = fe_run_phase(fe, &rd);
		free(perm);
	} else {
		struct phase ph = {
			.is_read = o->rw == RW_RANDREAD || o->rw == RW_READ,
			.order = o->rw == RW_RANDREAD || o->rw == RW_RANDWRITE ? ORDER_RANDOM : ORDER_SEQUENTIAL,
			.limit_ios = o->ios,
			.deadline_ns = o->runtime_s > 0 ? t0 + (uint64_t)(o->runtime_s * 1e9) : 0,
		};
		r = fe_run_phase(fe, &ph);
	}
	*ret_elapsed_s = (double)(now_ns() - t0) / 1e9;
	return r;
}

void fe_close(struct frontend *fe)
{
	if (fe->sock >= 0)
		close(fe->sock);
	for (uint32_t q = 0; fe->vqs && q < fe->nvqs; q++) {
		struct vq *vq = &fe->vqs[q];
		if (vq->kick_fd >= 0)
			close(vq->kick_fd);
		if (vq->call_fd >= 0)
			close(vq->call_fd);
		free(vq->slots);
		free(vq->free_slots);
		free(vq->batch);
	}
	free(fe->vqs);
	if (fe->mem.base)
		munmap(fe->mem.base, fe->mem.size);
	if (fe->mem.fd >= 0)
		close(fe->mem.fd);
	free(fe->lat.ns);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vu-blk-frontend --socket PATH [options]\n"
		"       vu-blk-frontend net --socket PATH --mac MAC --dst MAC ... (vhost-user-net; net --help)\n"
		"Drives a vhost-user-blk back-end as QEMU and a guest driver would, prints one JSON object.\n"
		"  --rw randread|randwrite|read|write   workload (default randread)\n"
		"  --bs BYTES          request size, multiple of 512 (default 4096; k/m suffixes)\n"
		"  --iodepth N         requests in flight per queue (default 1)\n"
		"  --queues N          virtqueues (default 1)\n"
		"  --queue-size N      ring size, power of two (default 256; 1024 with --check-requests)\n"
		"  --runtime SECONDS   run time (default 5 unless --ios)\n"
		"  --ios N             stop after N requests\n"
		"  --size BYTES        use only the first BYTES of the disk (default: its capacity)\n"
		"  --verify            write every block with a pattern, read it back and compare\n"
		"  --backend-pid PID   also report that process's CPU time (with --hostile: check it is alive)\n"
		"  --no-indirect       do not negotiate VIRTIO_RING_F_INDIRECT_DESC\n"
		"  --no-event-idx      do not negotiate VIRTIO_RING_F_EVENT_IDX\n"
		"  --no-reply-ack      do not negotiate VHOST_USER_PROTOCOL_F_REPLY_ACK\n"
		"  --connect-timeout SECONDS  retry connecting this long (default 5)\n"
		"  --seed N            random seed (default: from the clock)\n"
		"  --hostile MODE      do the handshake, then misbehave as MODE (below) instead of a workload;\n"
		"                      print {\"mode\":..,\"outcome\":..,\"expected\":..,\"detail\":..} and exit 0\n"
		"                      when the outcome is the expected one, 1 otherwise\n"
		"  --expect OUTCOME    with --hostile: require this outcome instead of the mode's own\n"
		"  --list-hostile      print the hostile modes, one a line, and exit\n"
		"  --warmup SECONDS    with --hostile: first wait up to SECONDS for one good read to complete\n"
		"                      (a device served from a driver domain is there only once it is plugged)\n"
		"  --wait-ms MS        with --hostile: how long the device gets to use requests or answer before\n"
		"                      it counts as having given up (default 2000; more for a loaded machine)\n"
		"  --check-requests    do the handshake (also negotiating DISCARD and WRITE_ZEROES), then send every\n"
		"                      request type ddtk-blk supports and check the results byte for byte: FLUSH,\n"
		"                      GET_ID, a pattern over the first MiB and the last 64 KiB, DISCARD and\n"
		"                      WRITE_ZEROES (single and multi-segment, with and without UNMAP, a burst\n"
		"                      filling the ring), errors (segments past the end, too many segments,\n"
		"                      DISCARD flags, unknown type); a line per check on stderr, one JSON object\n"
		"                      on stdout, exit 1 on a failure. It overwrites the first MiB and the last\n"
		"                      64 KiB of the disk\n"
		"  --expect-serial STR with --check-requests: GET_ID must return STR (20 bytes, NUL padded)\n"
		"  --expect-read-only  with --check-requests: the device must offer VIRTIO_BLK_F_RO and refuse\n"
		"                      writes, discards and write-zeroes with IOERR; nothing is changed\n");
	fe_hostile_usage(f);
}

int parse_u64(const char *s, bool suffixes, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	uint64_t mult = 1;
	if (suffixes && *end) {
		switch (*end) {
		case 'k': case 'K': mult = 1ull << 10; break;
		case 'm': case 'M': mult = 1ull << 20; break;
		case 'g': case 'G': mult = 1ull << 30; break;
		default: return -EINVAL;
		}
		end++;
	}
	if (*end || (v && mult > UINT64_MAX / v))
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_SOCKET = 256, OPT_RW, OPT_BS, OPT_IODEPTH, OPT_QUEUES, OPT_QUEUE_SIZE, OPT_RUNTIME, OPT_IOS,
	       OPT_SIZE, OPT_VERIFY, OPT_BACKEND_PID, OPT_NO_INDIRECT, OPT_NO_EVENT_IDX, OPT_CONNECT_TIMEOUT,
	       OPT_SEED, OPT_NO_REPLY_ACK, OPT_HOSTILE, OPT_EXPECT, OPT_LIST_HOSTILE, OPT_CHECK_REQUESTS,
	       OPT_EXPECT_SERIAL, OPT_EXPECT_READ_ONLY, OPT_WARMUP, OPT_WAIT_MS, OPT_HELP };
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "rw", required_argument, NULL, OPT_RW },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "iodepth", required_argument, NULL, OPT_IODEPTH },
		{ "queues", required_argument, NULL, OPT_QUEUES },
		{ "queue-size", required_argument, NULL, OPT_QUEUE_SIZE },
		{ "runtime", required_argument, NULL, OPT_RUNTIME },
		{ "ios", required_argument, NULL, OPT_IOS },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "backend-pid", required_argument, NULL, OPT_BACKEND_PID },
		{ "no-indirect", no_argument, NULL, OPT_NO_INDIRECT },
		{ "no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "no-reply-ack", no_argument, NULL, OPT_NO_REPLY_ACK },
		{ "hostile", required_argument, NULL, OPT_HOSTILE },
		{ "expect", required_argument, NULL, OPT_EXPECT },
		{ "list-hostile", no_argument, NULL, OPT_LIST_HOSTILE },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "wait-ms", required_argument, NULL, OPT_WAIT_MS },
		{ "check-requests", no_argument, NULL, OPT_CHECK_REQUESTS },
		{ "expect-serial", required_argument, NULL, OPT_EXPECT_SERIAL },
		{ "expect-read-only", no_argument, NULL, OPT_EXPECT_READ_ONLY },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .rw = RW_RANDREAD, .bs = 4096, .iodepth = 1, .queues = 1, .queue_size = 256,
			       .connect_timeout_s = 5, .hostile = -1, .hostile_expect = -1 };
	bool have_seed = false, have_queue_size = false;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		uint64_t v = 0;
		const char *name = NULL;
		char *end;
		switch (c) {
		case OPT_SOCKET:
			o->socket_path = optarg;
			break;
		case OPT_RW:
			if (!strcmp(optarg, "randread"))
				o->rw = RW_RANDREAD;
			else if (!strcmp(optarg, "randwrite"))
				o->rw = RW_RANDWRITE;
			else if (!strcmp(optarg, "read"))
				o->rw = RW_READ;
			else if (!strcmp(optarg, "write"))
				o->rw = RW_WRITE;
			else
				name = "--rw";
			break;
		case OPT_BS:
			if (parse_u64(optarg, true, &v) < 0 || v == 0 || v % SECTOR_SIZE || v > FE_MAX_BS)
				name = "--bs (a multiple of 512 up to 16M)";
			o->bs = (uint32_t)v;
			break;
		case OPT_IODEPTH:
			if (parse_u64(optarg, false, &v) < 0 || v == 0 || v > FE_MAX_QUEUE_SIZE)
				name = "--iodepth";
			o->iodepth = (uint32_t)v;
			break;
		case OPT_QUEUES:
			if (parse_u64(optarg, false, &v) < 0 || v == 0 || v > FE_MAX_QUEUES)
				name = "--queues (1..64)";
			o->queues = (uint32_t)v;
			break;
		case OPT_QUEUE_SIZE:
			if (parse_u64(optarg, false, &v) < 0 || v == 0 || v > FE_MAX_QUEUE_SIZE || (v & (v - 1)))
				name = "--queue-size (a power of two up to 32768)";
			o->queue_size = (uint32_t)v;
			have_queue_size = true;
			break;
		case OPT_RUNTIME:
			o->runtime_s = strtod(optarg, &end);
			if (*end || end == optarg || !(o->runtime_s > 0) || o->runtime_s > 1e6)
				name = "--runtime";
			break;
		case OPT_IOS:
			if (parse_u64(optarg, true, &o->ios) < 0 || o->ios == 0)
				name = "--ios";
			break;
		case OPT_SIZE:
			if (parse_u64(optarg, true, &o->size) < 0 || o->size == 0)
				name = "--size";
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_BACKEND_PID:
			if (parse_u64(optarg, false, &v) < 0 || v == 0 || v > INT32_MAX)
				name = "--backend-pid";
			o->backend_pid = (pid_t)v;
			break;
		case OPT_NO_INDIRECT:
			o->no_indirect = true;
			break;
		case OPT_NO_EVENT_IDX:
			o->no_event_idx = true;
			break;
		case OPT_CONNECT_TIMEOUT:
			o->connect_timeout_s = strtod(optarg, &end);
			if (*end || end == optarg || !(o->connect_timeout_s >= 0) || o->connect_timeout_s > 3600)
				name = "--connect-timeout";
			break;
		case OPT_SEED:
			if (parse_u64(optarg, false, &o->seed) < 0)
				name = "--seed";
			have_seed = true;
			break;
		case OPT_NO_REPLY_ACK:
			o->no_reply_ack = true;
			break;
		case OPT_HOSTILE:
			o->hostile = fe_hostile_mode_parse(optarg);
			if (o->hostile < 0)
				name = "--hostile (see --list-hostile)";
			break;
		case OPT_EXPECT:
			o->hostile_expect = fe_hostile_outcome_parse(optarg);
			if (o->hostile_expect < 0)
				name = "--expect (an outcome named in --help)";
			break;
		case OPT_LIST_HOSTILE:
			fe_hostile_list(stdout);
			exit(0);
		case OPT_WARMUP:
			if (parse_u64(optarg, false, &v) < 0 || v < 1 || v > 600)
				name = "--warmup (1..600 seconds)";
			o->warmup_s = (unsigned)v;
			break;
		case OPT_WAIT_MS:
			if (parse_u64(optarg, false, &v) < 0 || v < 100 || v > 600000)
				name = "--wait-ms (100..600000)";
			o->wait_ms = (unsigned)v;
			break;
		case OPT_CHECK_REQUESTS:
			o->check_requests = true;
			break;
		case OPT_EXPECT_SERIAL:
			if (strlen(optarg) > VIRTIO_BLK_ID_BYTES)
				name = "--expect-serial (at most 20 bytes)";
			o->expect_serial = optarg;
			break;
		case OPT_EXPECT_READ_ONLY:
			o->expect_read_only = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (name) {
			fprintf(stderr, "vu-blk-frontend: invalid %s: %s\n", name, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc || !o->socket_path) {
		usage(stderr);
		return -EINVAL;
	}
	if ((o->hostile_expect >= 0 || o->warmup_s || o->wait_ms) && o->hostile < 0) {
		fprintf(stderr, "vu-blk-frontend: --expect, --warmup and --wait-ms need --hostile\n");
		return -EINVAL;
	}
	if ((o->expect_serial || o->expect_read_only) && !o->check_requests) {
		fprintf(stderr, "vu-blk-frontend: --expect-serial and --expect-read-only need --check-requests\n");
		return -EINVAL;
	}
	if (o->check_requests && (o->hostile >= 0 || o->verify)) {
		fprintf(stderr, "vu-blk-frontend: --check-requests is a mode of its own (no --hostile, no --verify)\n");
		return -EINVAL;
	}
	if (!o->runtime_s && !o->ios && !o->verify)
		o->runtime_s = 5;
	/* --check-requests fills a whole ring at once (a WRITE_ZEROES burst): the largest ddtk-blk takes. */
	if (o->check_requests && !have_queue_size)
		o->queue_size = FE_CHECK_QUEUE_SIZE;
	if (!have_seed)
		o->seed = now_ns() ^ ((uint64_t)getpid() << 32);
	return 0;
}

static const char *rw_name(enum rw_mode rw)
{
	switch (rw) {
	case RW_RANDREAD: return "randread";
	case RW_RANDWRITE: return "randwrite";
	case RW_READ: return "read";
	case RW_WRITE: return "write";
	}
	return "?";
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (argc > 1 && !strcmp(argv[1], "net"))
		return fe_net_main(argc - 1, argv + 1);

	struct frontend fe = { .sock = -1, .mem.fd = -1 };
	if (parse_options(argc, argv, &fe.opt) < 0)
		return 2;
	fe.rng = fe.opt.seed ? fe.opt.seed : 0x9E3779B97F4A7C15ull;

	uint64_t backend_ticks0 = 0, backend_ticks1 = 0;
	double cpu0, cpu1, elapsed = 0;
	int r;
	if (fe.opt.backend_pid && (r = proc_cpu_ticks(fe.opt.backend_pid, &backend_ticks0)) < 0) {
		fprintf(stderr, "vu-blk-frontend: --backend-pid %d: %s\n", (int)fe.opt.backend_pid, strerror(-r));
		return 1;
	}
	r = fe_connect(&fe);
	if (r == 0)
		r = fe_negotiate(&fe);
	if (r == 0)
		r = fe_check_device(&fe);
	if (r == 0)
		r = fe_setup_memory(&fe);
	if (r == 0)
		r = fe_send_mem_table(&fe);
	for (uint32_t q = 0; r == 0 && q < fe.nvqs; q++)
		r = fe_start_vring(&fe, &fe.vqs[q]);
	if (r < 0) {
		fprintf(stderr, "vu-blk-frontend: %s: %s\n", fe.opt.socket_path, fe.err);
		if (fe.opt.hostile >= 0)
			fe_hostile_report_setup_failure(&fe);
		if (fe.opt.check_requests)
			fe_requests_report_setup_failure(&fe);
		fe_close(&fe);
		return 1;
	}
	if (fe.opt.hostile >= 0 || fe.opt.check_requests) {
		/* No workload: the mode decides what happens on this connection. */
		int rc = fe.opt.check_requests ? fe_requests_run(&fe) : fe_hostile_run(&fe);
		fe_close(&fe);
		return rc;
	}
	fprintf(stderr, "vu-blk-frontend: %s: %s bs %u iodepth %u x %u queue(s) of %u over %" PRIu64 " MiB; "
		"features 0x%" PRIx64 " (EVENT_IDX %s, INDIRECT %s), protocol 0x%" PRIx64 ", %u descriptor(s) per request\n",
		fe.opt.socket_path, fe.opt.verify ? "verify" : rw_name(fe.opt.rw), fe.opt.bs, fe.opt.iodepth, fe.nvqs,
		fe.opt.queue_size, fe.opt.size >> 20, fe.features, fe.event_idx ? "on" : "off",
		fe.indirect ? "on" : "off", fe.protocol_features, fe.desc_per_req);

	if (fe.opt.backend_pid)
		proc_cpu_ticks(fe.opt.backend_pid, &backend_ticks0);
	cpu0 = self_cpu_s();
	r = fe_run(&fe, &elapsed);
	cpu1 = self_cpu_s();
	int backend_r = 0;
	if (fe.opt.backend_pid)
		backend_r = proc_cpu_ticks(fe.opt.backend_pid, &backend_ticks1);
	if (r == 0)
		r = fe_stop_vrings(&fe);
	if (r < 0) {
		fprintf(stderr, "vu-blk-frontend: %s: %s\n", fe.opt.socket_path, fe.err);
		fe_close(&fe);
		return 1;
	}

	qsort(fe.lat.ns, fe.lat.n, sizeof(*fe.lat.ns), cmp_u32);
	long tck = sysconf(_SC_CLK_TCK);
	char backend_cpu[32] = "null";
	if (fe.opt.backend_pid && backend_r == 0 && tck > 0)
		snprintf(backend_cpu, sizeof(backend_cpu), "%.3f", (double)(backend_ticks1 - backend_ticks0) / (double)tck);
	printf("{\"iops\": %.0f, \"mbps\": %.1f, \"lat_p50_us\": %.1f, \"lat_p99_us\": %.1f, "
	       "\"backend_cpu_s\": %s, \"frontend_cpu_s\": %.3f, \"bytes\": %" PRIu64 ", \"ios\": %" PRIu64 ", "
	       "\"errors\": %" PRIu64 ", \"runtime_s\": %.3f, \"kicks\": %" PRIu64 ", \"calls\": %" PRIu64 "}\n",
	       elapsed > 0 ? (double)fe.ios / elapsed : 0, elapsed > 0 ? (double)fe.bytes / elapsed / 1e6 : 0,
	       lat_percentile_us(&fe.lat, 50), lat_percentile_us(&fe.lat, 99), backend_cpu, cpu1 - cpu0, fe.bytes,
	       fe.ios, fe.errors, elapsed, fe.kicks, fe.calls);
	fflush(stdout);

	int rc = 0;
	if (fe.errors) {
		fprintf(stderr, "vu-blk-frontend: %" PRIu64 " request(s) failed; first: %s\n", fe.errors, fe.first_io_error);
		rc = 1;
	}
	if (fe.opt.backend_pid && backend_r < 0) {
		fprintf(stderr, "vu-blk-frontend: --backend-pid %d: %s (did the back-end exit?)\n",
			(int)fe.opt.backend_pid, strerror(-backend_r));
		rc = 1;
	}
	if (fe_stop_requested) {
		fprintf(stderr, "vu-blk-frontend: interrupted; the numbers cover the time before the signal\n");
		rc = 1;
	}
	fe_close(&fe);
	return rc;
}
