/* The driver domain's vhost-user transport: a back-end in the DD serves session S (one vhost-user
 * device of one client) through the ivshmem-doorbell device whose IVPosition is S, bound to
 * vfio-pci by ddtk-agent. Messages still come on a Unix socket, but without fds: the client's
 * RAM is the device's BAR2 (a memory-table region's mmap_offset is an offset into it), a kick of
 * queue i is MSI-X vector i, a call is a Doorbell write, and the inflight region lies in the
 * state device (IVPosition DDCTL_STATE_IVPOSITION, shared by every session of the process). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	const int *vector_fds;        /* MSI-X vector i's eventfd = queue i's kick; NULL for the state device */
	unsigned nvectors;
	struct vfio_pci pci;
};

/* How devices are found and opened: through DDCTL_IVSHMEM_DIR and VFIO, or a test's fake. open
 * fills dev (with vectors when want_vectors) or returns -errno with a line in err; close undoes
 * a successful open. */
struct vu_ivshmem_opener {
	int (*open)(unsigned ivposition, bool want_vectors, struct vu_ivshmem_device *dev, char *err, size_t errlen);
	void (*close)(struct vu_ivshmem_device *dev);
};

/* For tests: opener instead of VFIO (NULL: VFIO again). Set it while no device is open. */
void vu_ivshmem_set_opener(const struct vu_ivshmem_opener *opener);

/* One session. */
struct vu_ivshmem {
	unsigned ivposition;          /* the session id S, 1..DDCTL_SESSIONS_MAX */
	bool open;                    /* dev is open: from the first need until a reset */
	struct vu_ivshmem_device dev;
	unsigned state_maps;          /* inflight regions of the state device this session has mapped */
	char error[320];              /* why the last operation failed */
};

void vu_ivshmem_init(struct vu_ivshmem *iv, unsigned ivposition);
/* Releases the device and whatever of the state device the session still holds. */
void vu_ivshmem_close(struct vu_ivshmem *iv);

/* Where ddtk-agent makes its links: $DDTK_IVSHMEM_DIR when set (tests), else DDCTL_IVSHMEM_DIR. */
const char *vu_ivshmem_dir(void);

/* The PCI address the link dir/ivposition points at (.../BDF), checked to be one. */
int vu_ivshmem_resolve(const char *dir, unsigned ivposition, char *ret_bdf, size_t len);

/* memory_fds = false, kick_fd, reset: for vu_dev_init() with a struct vu_ivshmem. */
extern const struct vu_transport_ops vu_ivshmem_transport_ops;
