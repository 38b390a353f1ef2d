/* The driver domain's vhost-user transport: a back-end in the DD serves session S (one vhost-user
 * device of one client) through the ivshmem-doorbell device whose IVPosition is S, bound to
 * vfio-pci by ddtk-agent, which holds its IOMMU group and hands out its VFIO device fd (the VFIO
 * broker, DDCTL_VFIO_SOCKET). Messages still come on a Unix socket, but without fds: the client's
 * RAM is the device's BAR2 (a memory-table region's mmap_offset is an offset into it), a call is a
 * Doorbell write, and the state device (IVPosition DDCTL_STATE_IVPOSITION, shared by every session
 * of the process) holds the inflight region and the kicks: a kick of queue i is the state device's
 * MSI-X vector kick_vector + i, whose eventfd the broker sends (it holds the vectors enabled). The
 * session's own device has no vectors of its own, so the DD can unplug it safely. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddctl-proto.h"
#include "vfio-pci.h"
#include "vu-dev.h"

/* ivshmem's registers (BAR0), QEMU's docs/specs/ivshmem-spec.rst */
#define IVSHMEM_VENDOR_ID 0x1af4
#define IVSHMEM_DEVICE_ID 0x1110
#define IVSHMEM_REG_IVPOSITION 8
#define IVSHMEM_REG_DOORBELL 12
/* BAR2: the shared memory */
#define IVSHMEM_SHM_BAR 2

/* What a Doorbell write of vector of peer is. */
static inline uint32_t ivshmem_doorbell(uint16_t peer, uint16_t vector)
{
	return (uint32_t)peer << 16 | vector;
}

/* One ivshmem-doorbell device, opened. */
struct vu_ivshmem_device {
	unsigned ivposition;          /* as the device reports it */
	volatile uint32_t *regs;      /* BAR0 mapped, or NULL: registers go through pci's device fd */
	uint8_t *shm;                 /* BAR2 */
	uint64_t shm_size;
	struct vfio_pci pci;
};

/* How devices and kicks are found and opened. By default the VFIO broker sends a device fd for the
 * IVPosition (vu_ivshmem_broker_request) and adopt makes the device of it; a test replaces both
 * (open) or only the VFIO part (adopt). open (NULL: broker, then adopt) fills dev or returns -errno
 * with a line in err; adopt does the same from device_fd, the fd the broker sent for bdf, which it
 * owns from then on (it is closed when adopt fails); close undoes a successful open or adopt. The
 * IVPosition dev reports is checked by the caller. kicks (NULL: the broker's,
 * vu_ivshmem_broker_kicks) puts the eventfds of state-device vectors first..first+count-1 in
 * ret_fds[0..count) (the caller's then: close-on-exec, non-blocking), or returns -errno with a line
 * in err and no fd open. */
struct vu_ivshmem_opener {
	int (*open)(unsigned ivposition, struct vu_ivshmem_device *dev, char *err, size_t errlen);
	int (*adopt)(int device_fd, const char *bdf, struct vu_ivshmem_device *dev, char *err, size_t errlen);
	void (*close)(struct vu_ivshmem_device *dev);
	int (*kicks)(unsigned first, unsigned count, int *ret_fds, char *err, size_t errlen);
};

/* For tests: opener instead of the broker and VFIO (NULL: those again). Set it while no device is
 * open. */
void vu_ivshmem_set_opener(const struct vu_ivshmem_opener *opener);

/* One session. */
struct vu_ivshmem {
	unsigned ivposition;          /* the session id S, 1..DDCTL_SESSIONS_MAX */
	unsigned kick_vector;         /* the state-device vector of queue 0's kicks */
	unsigned nkicks;              /* queues with a kick (and a call): 0..nkicks-1 */
	bool open;                    /* dev is open: from the first need until a reset */
	struct vu_ivshmem_device dev;
	bool kicks_held;              /* kick_fds[0..nkicks) are open: from the first kick until a reset */
	int kick_fds[DDCTL_VFIO_KICKS_MAX];
	/* The client's other memory files (ddctl-proto.h: file k's regions have k in their
	 * mmap_offset's top bits), opened when a region needs them, closed on reset. */
	bool mem_open[DDCTL_MEM_FILES_MAX];
	struct vu_ivshmem_device mem_dev[DDCTL_MEM_FILES_MAX];   /* [0] unused: file 0 is dev */
	unsigned state_maps;          /* references on the state device: its control block, inflight regions */
	const uint32_t *peer_word;    /* the session's control block: the Doorbell's peer id */
	char error[320];              /* why the last operation failed */
};

/* Session ivposition (1..DDCTL_SESSIONS_MAX) whose queues 0..nkicks-1 (1..DDCTL_VFIO_KICKS_MAX)
 * are kicked by state-device vectors kick_vector.. (ending at DDCTL_KICK_VECTORS_MAX at most).
 * Nothing is opened yet. -EINVAL with a line in iv->error for numbers out of range. */
int vu_ivshmem_init(struct vu_ivshmem *iv, unsigned ivposition, unsigned kick_vector, unsigned nkicks);
/* Releases the device, the kicks and whatever of the state device the session still holds. */
void vu_ivshmem_close(struct vu_ivshmem *iv);

/* A back-end's kick-vector= option for a session (ddtk-blk's exports, ddtk-net's clients): given
 * with ivshmem=S (and only then), its `count` virtqueues' vectors from `first` within
 * DDCTL_KICK_VECTORS_MAX. Prints why not (prefixed with prog) and returns -EINVAL. */
int vu_ivshmem_kicks_check(const char *prog, unsigned session, bool given, unsigned first, unsigned count);
/* Two sessions' kick ranges must not overlap (a kick would wake the wrong queue): -EINVAL, printed. */
int vu_ivshmem_kicks_apart(const char *prog, unsigned s1, unsigned first1, unsigned count1, unsigned s2,
			   unsigned first2, unsigned count2);

/* The VFIO broker's socket: $DDTK_VFIO_SOCKET when set (tests), else DDCTL_VFIO_SOCKET. */
const char *vu_ivshmem_broker_socket(void);

/* How long a back-end waits for the broker's reply. The agent answers in its next loop turn; a
 * back-end stuck longer would stall every session it serves. */
#define VU_IVSHMEM_BROKER_TIMEOUT_MS 3000

/* The client side of the broker's protocol (ddctl-proto.h) on sock, a connected SOCK_SEQPACKET
 * socket: asks for ivposition and returns the device fd the reply brought (close-on-exec), with the
 * device's PCI address in ret_bdf. Otherwise -errno with a line in err: the broker's status (-ENODEV:
 * it has no such device), or -EPROTO for a reply that is not one (status 0 without exactly one fd,
 * a malformed PCI address, a short or long packet); every fd that came with it is closed. */
int vu_ivshmem_broker_ask(int sock, unsigned ivposition, char *ret_bdf, size_t len, char *err, size_t errlen);

/* The same on a new connection to the broker listening on path, waiting for the reply at most
 * VU_IVSHMEM_BROKER_TIMEOUT_MS (-ETIMEDOUT). */
int vu_ivshmem_broker_request(const char *path, unsigned ivposition, char *ret_bdf, size_t len, char *err,
			      size_t errlen);

/* The kicks request on sock: the eventfds of the state device's vectors first..first+count-1
 * (count 1..DDCTL_VFIO_KICKS_MAX) in ret_fds[0..count), in that order, each close-on-exec and
 * non-blocking, and 0; the state device's PCI address in ret_bdf when it is not NULL. Otherwise
 * -errno with a line in err and ret_fds untouched: the broker's status (-ENODEV: no state device
 * with its vectors enabled yet; -ERANGE: it has fewer vectors), -EINVAL for a count out of range,
 * or -EPROTO for a reply that is not one (status 0 without exactly count fds, a malformed PCI
 * address, a short or long packet); every fd that came with it is closed. */
int vu_ivshmem_broker_ask_kicks(int sock, unsigned first, unsigned count, int *ret_fds, char *ret_bdf, size_t len,
				char *err, size_t errlen);

/* The same on a new connection to the broker listening on path (VU_IVSHMEM_BROKER_TIMEOUT_MS). */
int vu_ivshmem_broker_kicks(const char *path, unsigned first, unsigned count, int *ret_fds, char *err,
			    size_t errlen);

/* memory_fds = false, kick_fd, reset: for vu_dev_init() with a struct vu_ivshmem. */
extern const struct vu_transport_ops vu_ivshmem_transport_ops;
