/* The driver domain's control protocol: ddtk-bridge (host) <-> ddtk-agent (DD) over the
 * virtio-serial port org.ddtk.control.0, and the fixed layout both sides agree on (session ids,
 * PCI slots, paths in the DD). Framing is the exec agent's (agent-proto.h) with its own magic.
 * docs/dd-control-protocol.md describes it for people. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-proto.h"

#define DDCTL_MAGIC 0x4c434444u   /* "DDCL" read as little-endian bytes */
#define DDCTL_VERSION 2
#define DDCTL_PORT_NAME "org.ddtk.control.0"

/* Sessions: one per vhost-user device of a client. Client i (0-based, in the order of `clients`)
 * has its disk in session 2i+1 and its NIC in session 2i+2. A session's ivshmem-doorbell device
 * has IVPosition = session id and sits in slot = session id of the DD's hot-plug PCI bridge. */
#define DDCTL_SESSIONS_MAX 30
#define DDCTL_CLIENTS_MAX (DDCTL_SESSIONS_MAX / 2)
static inline unsigned ddctl_session_blk(unsigned client_index) { return 2 * client_index + 1; }
static inline unsigned ddctl_session_net(unsigned client_index) { return 2 * client_index + 2; }

/* The state device: one more ivshmem-doorbell device, IVPosition 0, slot 31, whose memory is a
 * host-owned memfd of the bridge: area s (DDCTL_STATE_AREA bytes at s * DDCTL_STATE_AREA) holds
 * session s's inflight region, so it outlives the DD. */
#define DDCTL_STATE_IVPOSITION 0
#define DDCTL_STATE_SLOT 31
#define DDCTL_STATE_AREA (UINT64_C(1) << 20)
#define DDCTL_STATE_SIZE (UINT64_C(32) << 20)   /* a power of two >= (DDCTL_SESSIONS_MAX + 1) areas */

/* Memory in several files (a client with NUMA nodes has one memory backend, so one fd, per node):
 * file 0 is BAR2 of the session's own device; file k (1..DDCTL_MEM_FILES_MAX-1) is BAR2 of one more
 * ivshmem-doorbell device (memory only: no peers, its vector unused) whose IVPosition is
 * ddctl_mem_ivposition(s, k), plugged behind the DD's second hot-plug bridge. In the memory table
 * the back-end gets, a region's mmap_offset is (k << DDCTL_MEM_FILE_SHIFT) | its offset in file k. */
#define DDCTL_MEM_FILES_MAX 4
#define DDCTL_MEM_FILE_SHIFT 48
#define DDCTL_MEM_IVPOSITION_BASE 1024
static inline unsigned ddctl_mem_ivposition(unsigned session, unsigned file)
{
	return DDCTL_MEM_IVPOSITION_BASE + (session - 1) * (DDCTL_MEM_FILES_MAX - 1) + (file - 1);
}
#define DDCTL_MEM_IVPOSITION_LAST (DDCTL_MEM_IVPOSITION_BASE + DDCTL_SESSIONS_MAX * (DDCTL_MEM_FILES_MAX - 1) - 1)
/* The anchor: one more memory-only device behind the second bridge (the state device's memory),
 * plugged with the state device and never unplugged while the DD runs. Everything behind a bridge
 * is one IOMMU group, and the DD's kernel (6.1, intel-iommu) corrupts a list and stops handling
 * hot-plug when the last device of a group that VFIO holds is removed; the state device is the
 * first bridge's anchor, this the second's. */
#define DDCTL_MEM_ANCHOR_IVPOSITION (DDCTL_MEM_IVPOSITION_BASE - 1)

/* Kicks: the state device's own vectors. Queue q of session s is state-device vector
 * spec.kick_vector + q (HELLO's topology says where each session's range starts; the ranges do not
 * overlap and end below DDCTL_KICK_VECTORS_MAX). The bridge owns one eventfd per vector for its
 * whole life and forwards each client kick to its queue's vector; in the DD, ddtk-agent's VFIO
 * broker enables the state device's MSI-X vectors and hands their eventfds to the back-ends. A
 * session's own device therefore has no own vectors: QEMU 7.2's ivshmem (without KVM irqfds, i.e.
 * under TCG) leaves an unplugged device's own-vector fd handlers behind, and one of those fd
 * numbers coming back as another fd the DD's QEMU polls crashed it; the state device is never
 * unplugged while the DD runs, and a session's device, with peers only, can be.
 *
 * Calls: the client's call eventfds are the vectors of a peer of the session's device whose id the
 * bridge chooses: Doorbell = (peer << 16) | queue index signals queue index's call eventfd. The id
 * changes whenever the client replaces a call fd: QEMU 7.2's ivshmem frees a peer's vectors on
 * disconnect, then writes into the freed array if the same id connects again and frees it again
 * when the device goes; so every set of call fds gets a fresh id (from DDCTL_PEER_ID_FIRST, never
 * an own id) and no id is ever disconnected. The current id is a u32 in area 0 of the state device
 * (no session uses it): the session's control block at DDCTL_STATE_CTL_OFFSET(s), stored by the
 * bridge (release) and read by the back-end before each Doorbell write (acquire). */
#define DDCTL_KICK_VECTORS_MAX 128   /* MSI-X vectors of the state device: each is an interrupt of the DD's vCPUs */
#define DDCTL_PEER_ID_FIRST 64
#define DDCTL_STATE_CTL_OFFSET(s) ((uint64_t)(s) * 64)

/* In the DD: the listening vhost-user socket of session s (served by ddtk-blk or ddtk-net started
 * by ddtk-agent), and the link ddtk-agent makes to an ivshmem device once it is bound to vfio-pci:
 * DDCTL_IVSHMEM_DIR/<IVPosition> -> /sys/bus/pci/devices/<BDF>. */
#define DDCTL_RUN_DIR "/run/ddtk"
#define DDCTL_SESSION_SOCKET_FMT DDCTL_RUN_DIR "/s%u.sock"
#define DDCTL_IVSHMEM_DIR DDCTL_RUN_DIR "/ivshmem"

/* The VFIO broker. The DD's ivshmem devices sit behind one conventional PCI bridge, so they are
 * one IOMMU group, and the kernel lets one process hold a group: ddtk-agent holds the container and
 * the groups and hands out VFIO device fds (which work in any process) on this socket. It also
 * holds the state device's MSI-X vectors (the kicks, see above) enabled, each with an eventfd.
 * SOCK_SEQPACKET, one request per connection; a request is one packet, little-endian:
 *   a device: the u32 IVPosition wanted (nothing else);
 *   kicks:    u32 DDCTL_VFIO_KICKS, u32 first vector, u32 count (1..DDCTL_VFIO_KICKS_MAX).
 *   reply:   one packet, i32 status (little-endian: 0, or -errno: -ENODEV for no such device (or
 *            no state device with kicks yet), -ERANGE for vectors the state device does not have,
 *            -EBADMSG for a malformed request), then the device's PCI address as text (the state
 *            device's for kicks), without NUL (may be empty on error); on success a new device fd
 *            of it comes with it (SCM_RIGHTS, exactly one), or, for kicks, the eventfds of vectors
 *            first..first+count-1 in that order (exactly count). The client checks the device's
 *            IVPosition register itself. */
#define DDCTL_VFIO_KICKS 0x4b43494bu   /* "KICK" read as little-endian bytes; no IVPosition */
#define DDCTL_VFIO_KICKS_MAX 64
#define DDCTL_VFIO_SOCKET DDCTL_RUN_DIR "/vfio.sock"

enum ddctl_msg_type {
	/* bridge -> agent, id 0: u32 protocol version, then the topology text: one line per session,
	 * "blk S name=NAME offset=BYTES size=BYTES read-only=0|1 queues=N kick-vector=V" or
	 * "net S name=NAME mac=xx:xx:xx:xx:xx:xx queues=N kick-vector=V" (queues of net = queue pairs;
	 * V: the state-device vector of the session's first virtqueue, see above).
	 * The agent (re)starts its back-ends to serve exactly these sessions, stops every session it
	 * had (a new HELLO means a new bridge connection), and answers HELLO_ACK. */
	DDCTL_MSG_HELLO = 1,
	/* agent -> bridge, id 0: u64 boot id (random, new on every agent start), then text (agent
	 * version). A different boot id than before means the DD restarted. */
	DDCTL_MSG_HELLO_ACK,
	/* bridge -> agent, id = session: connect to the session's back-end socket; from then on VU
	 * frames of this session go to it. Answered by SESSION_STATE. */
	DDCTL_MSG_SESSION_START,
	/* bridge -> agent, id = session: close that connection (the back-end resets the device: stops
	 * its queues, releases the ivshmem device). Answered by SESSION_STATE. */
	DDCTL_MSG_SESSION_STOP,
	/* agent -> bridge, id = session: u32 enum ddctl_session_state, i32 -errno (0 when fine), then
	 * text (why). Answers START/STOP; sent unasked when the back-end connection broke (back-end
	 * died: the agent restarts it; the bridge starts the session again and replays its state). */
	DDCTL_MSG_SESSION_STATE,
	/* both ways, id = session: one vhost-user message (12-byte header + payload, at most
	 * VU_MAX_PAYLOAD), never with fds: bridge -> agent requests, agent -> bridge the back-end's
	 * replies, in order. */
	DDCTL_MSG_VU,
	/* agent -> bridge, id = IVPosition: an ivshmem device appeared and is bound to vfio-pci
	 * (payload: its PCI address as text); DEVICE_REMOVED: it went away. After HELLO the agent
	 * reports every device it has. */
	DDCTL_MSG_DEVICE_ADDED,
	DDCTL_MSG_DEVICE_REMOVED,
	/* agent -> bridge, id 0, every second: u32 1 when every back-end shows progress (and the
	 * watchdog is being petted), 0 when not; then text, one line per back-end. */
	DDCTL_MSG_HEALTH,
	/* either way, id = what it is about: text; a request could not be handled. */
	DDCTL_MSG_ERROR,
	_DDCTL_MSG_LAST,
};

enum ddctl_session_state {
	DDCTL_SESSION_STOPPED = 0,
	DDCTL_SESSION_RUNNING,
	DDCTL_SESSION_FAILED,      /* could not start, or its back-end connection broke */
	_DDCTL_SESSION_LAST,
};

enum ddctl_session_kind {
	DDCTL_KIND_BLK = 1,
	DDCTL_KIND_NET,
};

static inline void ddctl_decoder_init(struct agent_decoder *dec)
{
	agent_decoder_init_proto(dec, DDCTL_MAGIC, DDCTL_VERSION, _DDCTL_MSG_LAST);
}

/* Writes a frame into buf (of size cap); returns its size or -EMSGSIZE. */
static inline int ddctl_frame_encode(uint8_t type, uint32_t id, const void *payload, uint32_t len, uint8_t *buf,
				     size_t cap)
{
	return agent_frame_encode_proto(DDCTL_MAGIC, DDCTL_VERSION, type, id, payload, len, buf, cap);
}

const char *ddctl_msg_type_name(uint8_t type);

/* One line of HELLO's topology. */
struct ddctl_session_spec {
	unsigned session;                /* 1..DDCTL_SESSIONS_MAX */
	enum ddctl_session_kind kind;
	char name[33];
	uint64_t offset, size;           /* blk: the volume's byte range of the DD's disk */
	bool read_only;                  /* blk */
	uint8_t mac[6];                  /* net */
	unsigned queues;                 /* blk: queues; net: queue pairs */
	unsigned kick_vector;            /* the state-device vector of its first virtqueue's kicks */
};

/* Virtqueues of a session: blk queues, net two per queue pair. */
static inline unsigned ddctl_spec_virtqueues(const struct ddctl_session_spec *spec)
{
	return spec->kind == DDCTL_KIND_NET ? 2 * spec->queues : spec->queues;
}

/* Parses HELLO's payload (after the u32 version) into specs[0..*ret_n); every line is checked
 * (session range and uniqueness, kinds, numbers, kick vectors in range and not shared). -EBADMSG on anything malformed. */
int ddctl_topology_parse(const char *text, size_t len, struct ddctl_session_spec *specs, unsigned max,
			 unsigned *ret_n);
/* Appends spec's line (with '\n') to buf at *pos; -EMSGSIZE when it does not fit. */
int ddctl_topology_format(const struct ddctl_session_spec *spec, char *buf, size_t cap, size_t *pos);
