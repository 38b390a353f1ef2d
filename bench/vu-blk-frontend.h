/* What the synthetic vhost-user front-end's parts share: its state (guest memory, rings, request
 * slots), its vhost-user messaging, hand-built requests, and the entry points of the hostile modes,
 * of --check-requests and of the net mode (`vu-blk-frontend net`, vhost-user-net). */
#pragma once

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#include "vu-msg.h"

/* Limits on what we ask for and on what the back-end may tell us. */
#define FE_PAYLOAD_MAX 512		/* larger than any message this program sends or accepts */
#define FE_REPLY_TIMEOUT_MS 10000	/* a back-end that does not answer a control message in 10 s is broken */
#define SECTOR_SIZE 512u

enum rw_mode { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE };

struct options {
	const char *socket_path;
	enum rw_mode rw;
	uint32_t bs;
	uint32_t iodepth;
	uint32_t queues;
	uint32_t queue_size;
	double runtime_s;
	uint64_t ios;
	uint64_t size;
	bool verify;
	pid_t backend_pid;
	bool no_indirect;
	bool no_event_idx;
	bool no_reply_ack;
	double connect_timeout_s;
	uint64_t seed;
	int hostile;		/* a hostile mode (fe_hostile_mode_parse), -1 for a normal run */
	int hostile_expect;	/* the outcome --expect requires, -1 for the mode's own */
	unsigned warmup_s;	/* --warmup: wait this long for one good read before misbehaving */
	unsigned wait_ms;	/* --wait-ms: how long a hostile mode waits for the device (0: its default) */
	bool check_requests;
	const char *expect_serial;	/* --expect-serial, NULL when not given */
	bool expect_read_only;
};

/* One memfd is the "guest RAM": guest-physical address 0 is its first byte. */
struct guest_mem {
	int fd;
	uint8_t *base;
	uint64_t size;
	uint64_t used;
};

/* A request slot: its buffers and descriptors never move, so a slot is reused as is. */
struct slot {
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *data;
	struct vring_desc *indirect;	/* NULL when requests use direct chains */
	uint64_t hdr_gpa, status_gpa, data_gpa, indirect_gpa;
	uint16_t head;
	bool busy;
	bool is_read;
	bool verify;
	uint64_t offset;
	uint64_t t_submit_ns;
};

struct vq {
	uint32_t index;
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd;
	uint16_t avail_idx;	/* our shadow of avail->idx */
	uint16_t kick_old_idx;	/* avail->idx when we last decided whether to kick */
	uint16_t last_used;	/* next used entry we have not consumed */
	struct slot *slots;
	uint32_t nslots;
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t *batch;	/* slots submitted since the last publish */
	uint32_t nbatch;
};

struct lat_store {
	uint32_t *ns;
	size_t n, cap;
	uint64_t seen;
};

struct frontend {
	struct options opt;
	int sock;
	uint64_t dev_features, features;
	uint64_t dev_protocol_features, protocol_features;
	uint32_t max_queues;
	bool have_config;
	uint64_t capacity_bytes;
	uint32_t size_max, seg_max, blk_size;
	uint16_t cfg_num_queues;
	/* The discard / write-zeroes limits, read only for --check-requests. */
	bool have_discard_config;
	uint32_t max_discard_sectors, max_discard_seg;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	bool event_idx, indirect;
	uint32_t nseg, seg_len, desc_per_req;
	uint64_t nblocks;
	struct guest_mem mem;
	struct vq *vqs;
	uint32_t nvqs;
	uint64_t rng;
	uint64_t inflight;
	/* results */
	uint64_t ios, bytes, errors, kicks, calls;
	struct lat_store lat;
	char first_io_error[256];
	char err[512];
};

/* ---- shared-memory accessors: the back-end reads and writes these concurrently ---- */

static inline uint16_t shared_load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void shared_store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline uint32_t shared_load32(const uint32_t *p)
{
	return le32toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline uint16_t *vq_used_event(struct vq *vq)
{
	return &vq->avail->ring[vq->num];
}

static inline uint16_t *vq_avail_event(struct vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

static inline bool has_feature(uint64_t features, unsigned bit)
{
	return features & VU_BIT(bit);
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* ---- vu-blk-frontend.c: the vhost-user front-end every mode shares ---- */

/* Set by SIGINT and SIGTERM: the run stops and reports what it has. */
extern volatile sig_atomic_t fe_stop_requested;

/* Records the message of an error in fe->err and returns r. */
int fe_error(struct frontend *fe, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t now_ns(void);
uint64_t rng_next(uint64_t *state);
/* The data --verify writes: 8 bytes for each 8-byte-aligned disk offset, distinct per seed. */
uint64_t pattern_word(uint64_t seed, uint64_t disk_offset);
void pattern_fill(uint8_t *buf, uint32_t len, uint64_t seed, uint64_t disk_offset);
/* Carves size bytes, aligned, out of guest memory. */
void *gmem_alloc(struct guest_mem *m, uint64_t size, uint64_t align, uint64_t *ret_gpa);
/* Sends one message (with fds) as it is; nothing is read back. */
int fe_send(struct frontend *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
	    unsigned nfds);
/* Reads the reply to req, which must carry exactly reply_size bytes. -ECONNRESET when the back-end
 * closed the connection, -ETIMEDOUT when it said nothing for FE_REPLY_TIMEOUT_MS, -EPROTO for a
 * malformed reply. */
int fe_recv_reply(struct frontend *fe, uint32_t req, void *reply, uint32_t reply_size);
/* fe_send, then the reply (reply != NULL) or, with REPLY_ACK, the acknowledgement. */
int fe_call(struct frontend *fe, uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned nfds,
	    void *reply, uint32_t reply_size);
int fe_set_state(struct frontend *fe, uint32_t req, uint32_t index, uint32_t num);
/* Connects to opt.socket_path, retrying for opt.connect_timeout_s while the back-end starts. */
int fe_connect(struct frontend *fe);
/* The device-independent start of QEMU's handshake: GET_FEATURES (VERSION_1 required), protocol
 * features (want_protocol, plus REPLY_ACK unless opt.no_reply_ack), GET_QUEUE_NUM with MQ, SET_OWNER. */
int fe_negotiate_begin(struct frontend *fe, uint64_t want_protocol);
/* SET_FEATURES with what the device offers of want; sets event_idx and indirect. */
int fe_negotiate_features(struct frontend *fe, uint64_t want);
/* The memfd that is the guest's RAM (at least FE_MIN_GUEST_MEM), mapped. */
int fe_guest_mem_create(struct frontend *fe, uint64_t size);
/* nvqs rings of num entries in guest memory; vq->index = its position. */
int fe_vqs_create(struct frontend *fe, uint32_t nvqs, uint16_t num);
/* SET_MEM_TABLE: all of guest memory as one region at guest address 0. */
int fe_send_mem_table(struct frontend *fe);
/* SET_VRING_NUM .. SET_VRING_ENABLE for vq, with new call and kick eventfds. */
int fe_start_vring(struct frontend *fe, struct vq *vq);
/* Stops one ring as QEMU does (disable, then GET_VRING_BASE); *ret_base is the back-end's base. */
int fe_stop_vring(struct frontend *fe, struct vq *vq, uint32_t *ret_base);
/* Stops every ring and checks that the back-end consumed exactly what we made available. */
int fe_stop_vrings(struct frontend *fe);
/* Publishes vq->avail_idx and kicks unless the back-end asked not to be (EVENT_IDX or NO_NOTIFY). */
int fe_vq_publish(struct frontend *fe, struct vq *vq);
void fe_close(struct frontend *fe);
/* utime + stime of a process, in clock ticks; this process's CPU seconds. */
int proc_cpu_ticks(pid_t pid, uint64_t *ret_ticks);
double self_cpu_s(void);
/* A number with optional k/m/g suffixes (powers of two). */
int parse_u64(const char *s, bool suffixes, uint64_t *ret);
/* s as a JSON string, quotes included; bytes outside printable ASCII are escaped. */
void fe_json_string(FILE *f, const char *s);

/* Hand-built requests, one descriptor at a time. */
void fe_desc_set(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
/* Puts head into the next avail entry; nothing is published. */
void fe_avail_add(struct vq *vq, uint16_t head);
/* Publishes vq->avail_idx and kicks unconditionally (asking for a call at the next used entry):
 * a back-end must cope with a kick it did not ask for. Returns 0 or -errno of the kick. */
int fe_publish_kick(const struct frontend *fe, struct vq *vq);
/* Before sleeping: asks for a call at the next used entry; true if one already arrived. */
bool fe_vq_arm(const struct frontend *fe, struct vq *vq);
/* Whether the socket says something while we wait for the rings: 0 nothing, -ECONNRESET the
 * back-end hung up, -EPROTO it sent a message nobody asked for. */
int fe_socket_state(const struct frontend *fe);

/* ---- vu-blk-hostile.c ---- */

/* The index of a hostile mode or outcome name, -EINVAL for an unknown one. */
int fe_hostile_mode_parse(const char *name);
int fe_hostile_outcome_parse(const char *name);
/* The modes with their expected outcomes, for --help; or just their names, one a line. */
void fe_hostile_usage(FILE *f);
void fe_hostile_list(FILE *f);
/* Misbehaves as fe->opt.hostile on a front-end that finished the handshake; prints one JSON line.
 * Returns the exit status: 0 when the outcome is the expected one, 1 otherwise. */
int fe_hostile_run(struct frontend *fe);
/* The same JSON line for a run that could not even complete the handshake. */
int fe_hostile_report_setup_failure(const struct frontend *fe);

/* ---- vu-blk-requests.c ---- */

/* --check-requests on a front-end that finished the handshake: every request type, checked byte
 * for byte; one line per check on stderr, one JSON line on stdout. Returns the exit status: 0 when
 * every check passed, 1 otherwise. */
int fe_requests_run(struct frontend *fe);
/* The same JSON line for a run that could not even complete the handshake. */
int fe_requests_report_setup_failure(const struct frontend *fe);

/* ---- vu-frontend-net.c ---- */

/* `vu-blk-frontend net ...`: a vhost-user-net front-end that sends frames as fast as the back-end
 * takes them. argv[0] is "net". Returns the exit status. */
int fe_net_main(int argc, char **argv);
