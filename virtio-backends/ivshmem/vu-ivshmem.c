/* The ivshmem/VFIO transport of the vhost-user core (see vu-ivshmem.h). A session's device is
 * opened when first needed (the memory table, a kick, the inflight region) and closed on reset,
 * so that the DD can hot-unplug it once the session ends. Every offset and size the front-end
 * gives is checked against the BAR it points into: an access past a BAR would fault, not fail. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "ddctl-proto.h"
#include "vu-ivshmem.h"

/* The inflight region's structures hold 64-bit fields. */
#define VU_IVSHMEM_INFLIGHT_ALIGN 8

static const struct vu_ivshmem_opener vfio_opener;
static const struct vu_ivshmem_opener *opener = &vfio_opener;

/* The state device: opened once per process for the first session that maps its inflight region
 * there, closed with the last mapping. */
static struct {
	struct vu_ivshmem_device dev;
	bool open;
	unsigned maps;
} state;

void vu_ivshmem_set_opener(const struct vu_ivshmem_opener *o)
{
	opener = o ? o : &vfio_opener;
}

const char *vu_ivshmem_dir(void)
{
	const char *dir = getenv("DDTK_IVSHMEM_DIR");

	return dir && *dir ? dir : DDCTL_IVSHMEM_DIR;
}

int vu_ivshmem_resolve(const char *dir, unsigned ivposition, char *ret_bdf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *bdf;
	ssize_t n;

	if (snprintf(path, sizeof(path), "%s/%u", dir, ivposition) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	bdf = strrchr(target, '/');
	bdf = bdf ? bdf + 1 : target;
	if (!vfio_pci_bdf_valid(bdf))
		return -EINVAL;
	if (snprintf(ret_bdf, len, "%s", bdf) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---------- registers ---------- */

/* BAR0 is 256 bytes: the kernel lets it be mapped only when it starts a page, which several
 * devices behind one bridge need not do. Otherwise each access is a pread/pwrite of the device. */
static int reg_read(const struct vu_ivshmem_device *d, unsigned off, uint32_t *ret)
{
	uint32_t v;
	int r;

	if (d->regs) {
		*ret = le32toh(d->regs[off / 4]);
		return 0;
	}
	r = vfio_pci_region_read(&d->pci, VFIO_PCI_BAR0_REGION_INDEX, off, &v, sizeof(v));
	if (r == 0)
		*ret = le32toh(v);
	return r;
}

static int reg_write(const struct vu_ivshmem_device *d, unsigned off, uint32_t v)
{
	v = htole32(v);
	if (d->regs) {
		d->regs[off / 4] = v;
		return 0;
	}
	return vfio_pci_region_write(&d->pci, VFIO_PCI_BAR0_REGION_INDEX, off, &v, sizeof(v));
}

/* ---------- opening through VFIO ---------- */

static int vfio_open(unsigned ivposition, bool want_vectors, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	const char *dir = vu_ivshmem_dir();
	char bdf[sizeof(d->pci.bdf)];
	uint16_t id[2];
	uint32_t pos = 0;
	void *p;
	uint64_t size;
	int r;

	memset(d, 0, sizeof(*d));
	vfio_pci_init(&d->pci);
	r = vu_ivshmem_resolve(dir, ivposition, bdf, sizeof(bdf));
	if (r < 0) {
		snprintf(err, errlen, "%s/%u: %s%s", dir, ivposition, strerror(-r),
			 r == -ENOENT ? " (the device is not plugged or not bound to vfio-pci yet)" : "");
		return r;
	}
	r = vfio_pci_open(&d->pci, bdf, err, errlen);
	if (r < 0)
		return r;
	r = vfio_pci_region_read(&d->pci, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, id, sizeof(id));
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read its config space: %s", bdf, strerror(-r));
		goto out;
	}
	if (le16toh(id[0]) != IVSHMEM_VENDOR_ID || le16toh(id[1]) != IVSHMEM_DEVICE_ID) {
		r = -ENODEV;
		snprintf(err, errlen, "%s is %04x:%04x, not an ivshmem device (%04x:%04x)", bdf, le16toh(id[0]),
			 le16toh(id[1]), IVSHMEM_VENDOR_ID, IVSHMEM_DEVICE_ID);
		goto out;
	}
	r = vfio_pci_map_bar(&d->pci, 0, &p, &size);
	if (r == 0 && size >= IVSHMEM_REG_DOORBELL + 4)
		d->regs = p;
	else if (r < 0 && r != -ENOTSUP) {
		snprintf(err, errlen, "%s: cannot map BAR0: %s", bdf, strerror(-r));
		goto out;
	}
	r = reg_read(d, IVSHMEM_REG_IVPOSITION, &pos);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read IVPosition: %s", bdf, strerror(-r));
		goto out;
	}
	d->ivposition = pos;
	r = vfio_pci_map_bar(&d->pci, IVSHMEM_SHM_BAR, &p, &size);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot map BAR2 (the shared memory): %s", bdf, strerror(-r));
		goto out;
	}
	d->shm = p;
	d->shm_size = size;
	if (want_vectors) {
		r = vfio_pci_set_bus_master(&d->pci);
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot set Bus Master: %s", bdf, strerror(-r));
			goto out;
		}
		r = vfio_pci_msix_enable(&d->pci);
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot set up its MSI-X vectors: %s", bdf, strerror(-r));
			goto out;
		}
		d->vector_fds = d->pci.msix_fds;
		d->nvectors = d->pci.msix_count;
	}
	return 0;
out:
	vfio_pci_close(&d->pci);
	return r;
}

static void vfio_close(struct vu_ivshmem_device *d)
{
	vfio_pci_close(&d->pci);
}

static const struct vu_ivshmem_opener vfio_opener = {
	.open = vfio_open,
	.close = vfio_close,
};

/* ---------- devices ---------- */

/* Opens device ivposition and checks that it is the one the link promised. */
static int device_open(unsigned ivposition, bool want_vectors, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	int r = opener->open(ivposition, want_vectors, d, err, errlen);

	if (r < 0)
		return r;
	/* The link may be stale (a device replaced behind our back), or the device not yet
	 * connected to its server (IVPosition reads -1 then). */
	if (d->ivposition != ivposition) {
		snprintf(err, errlen, "device %s/%u reports IVPosition %d", vu_ivshmem_dir(), ivposition,
			 (int)d->ivposition);
		opener->close(d);
		return -ENXIO;
	}
	return 0;
}

static int session_open(struct vu_ivshmem *iv)
{
	char err[sizeof(iv->error) - 16];
	int r;

	if (iv->open)
		return 0;
	err[0] = '\0';
	r = device_open(iv->ivposition, true, &iv->dev, err, sizeof(err));
	if (r < 0) {
		snprintf(iv->error, sizeof(iv->error), "session %u: %s", iv->ivposition, err);
		return r;
	}
	iv->open = true;
	return 0;
}

static void session_release(struct vu_ivshmem *iv)
{
	if (!iv->open)
		return;
	opener->close(&iv->dev);
	iv->open = false;
	memset(&iv->dev, 0, sizeof(iv->dev));
}

static void state_put(void)
{
	if (!state.maps || --state.maps)
		return;
	opener->close(&state.dev);
	state.open = false;
}

void vu_ivshmem_init(struct vu_ivshmem *iv, unsigned ivposition)
{
	memset(iv, 0, sizeof(*iv));
	iv->ivposition = ivposition;
}

void vu_ivshmem_close(struct vu_ivshmem *iv)
{
	session_release(iv);
	while (iv->state_maps) {
		iv->state_maps--;
		state_put();
	}
}

/* ---------- transport ops ---------- */

static int ivshmem_map_region(void *transport, struct vu_mem_region *r, int fd)
{
	struct vu_ivshmem *iv = transport;
	int ret;

	if (fd >= 0) {
		/* memory_fds is false: vu-msg lets no fd through. */
		snprintf(iv->error, sizeof(iv->error), "session %u: a memory region with an fd", iv->ivposition);
		return -EINVAL;
	}
	ret = session_open(iv);
	if (ret < 0)
		return ret;
	/* vu_mem_from_msg() made sure that the region does not wrap; neither may it leave BAR2. */
	if (r->mmap_offset > iv->dev.shm_size || r->size > iv->dev.shm_size - r->mmap_offset) {
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: memory region of %#llx bytes at offset %#llx is outside BAR2 (%#llx bytes)",
			 iv->ivposition, (unsigned long long)r->size, (unsigned long long)r->mmap_offset,
			 (unsigned long long)iv->dev.shm_size);
		return -EINVAL;
	}
	/* BAR2 stays mapped as long as the device is open: nothing to map or unmap per region. */
	r->map_base = NULL;
	r->map_len = 0;
	r->host = iv->dev.shm + r->mmap_offset;
	return 0;
}

static void ivshmem_unmap_region(void *transport, struct vu_mem_region *r)
{
	r->host = NULL;
}

static int ivshmem_map_inflight(void *transport, int fd, uint64_t size, uint64_t offset, void **ret_addr)
{
	struct vu_ivshmem *iv = transport;
	const uint64_t area = (uint64_t)iv->ivposition * DDCTL_STATE_AREA;

	if (fd >= 0) {
		/* GET_INFLIGHT_FD: the region must outlive the DD, so the bridge makes it on the host. */
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: the inflight region comes from the state device, not from us", iv->ivposition);
		return -EOPNOTSUPP;
	}
	/* Each session has its own area of the state device: one session can never write another's
	 * inflight region, whatever the front-end says. */
	if (!size || offset < area || offset - area > DDCTL_STATE_AREA || size > DDCTL_STATE_AREA - (offset - area) ||
	    offset % VU_IVSHMEM_INFLIGHT_ALIGN) {
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: inflight region of %#llx bytes at %#llx is not in its area of the state device "
			 "(%#llx bytes at %#llx)", iv->ivposition, (unsigned long long)size,
			 (unsigned long long)offset, (unsigned long long)DDCTL_STATE_AREA, (unsigned long long)area);
		return -EINVAL;
	}
	if (!state.open) {
		char err[sizeof(iv->error) - 16] = "";
		int r = device_open(DDCTL_STATE_IVPOSITION, false, &state.dev, err, sizeof(err));
		if (r < 0) {
			snprintf(iv->error, sizeof(iv->error), "state device: %s", err);
			return r;
		}
		state.open = true;
	}
	if (offset > state.dev.shm_size || size > state.dev.shm_size - offset) {
		snprintf(iv->error, sizeof(iv->error), "session %u: inflight region ends past the state device (%#llx bytes)",
			 iv->ivposition, (unsigned long long)state.dev.shm_size);
		if (!state.maps) {
			opener->close(&state.dev);
			state.open = false;
		}
		return -EINVAL;
	}
	state.maps++;
	iv->state_maps++;
	*ret_addr = state.dev.shm + offset;
	return 0;
}

static void ivshmem_unmap_inflight(void *transport, void *addr, uint64_t size)
{
	struct vu_ivshmem *iv = transport;

	if (!iv->state_maps)
		return;
	iv->state_maps--;
	state_put();
}

static int ivshmem_kick_fd(void *transport, unsigned index)
{
	struct vu_ivshmem *iv = transport;
	int fd, r;

	r = session_open(iv);
	if (r < 0)
		return r;
	if (index >= iv->dev.nvectors) {
		snprintf(iv->error, sizeof(iv->error), "session %u: queue %u has no MSI-X vector (the device has %u)",
			 iv->ivposition, index, iv->dev.nvectors);
		return -EINVAL;
	}
	/* The vector's eventfd stays the device's (closed with it); the queue gets its own fd for
	 * the same counter, which the core closes when the ring stops. */
	fd = fcntl(iv->dev.vector_fds[index], F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(iv->error, sizeof(iv->error), "session %u: queue %u: %s", iv->ivposition, index, strerror(errno));
		return r;
	}
	return fd;
}

static int ivshmem_notify(void *transport, struct vu_vq *vq)
{
	struct vu_ivshmem *iv = transport;

	if (!iv->open)
		return -ENODEV;
	if (vq->index >= iv->dev.nvectors)
		return -EINVAL;
	/* The used entries and used->idx were stored into BAR2 (the client's RAM); the Doorbell is
	 * a store to BAR0 (uncached MMIO, which traps to the DD's hypervisor and signals the
	 * client's call eventfd). The client must find the used entries when it takes the
	 * interrupt: the fence keeps the RAM stores before the MMIO store (on x86 stores are
	 * ordered anyway and this costs an mfence next to a VM exit; weaker CPUs need it). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return reg_write(&iv->dev, IVSHMEM_REG_DOORBELL, ivshmem_doorbell(DDCTL_CLIENT_PEER_ID, (uint16_t)vq->index));
}

static void ivshmem_reset(void *transport)
{
	struct vu_ivshmem *iv = transport;

	/* Everything is unmapped and every kick fd closed: let the DD unplug the device. */
	session_release(iv);
}

static const char *ivshmem_last_error(void *transport)
{
	const struct vu_ivshmem *iv = transport;

	return iv->error;
}

const struct vu_transport_ops vu_ivshmem_transport_ops = {
	.memory_fds = false,
	.map_region = ivshmem_map_region,
	.unmap_region = ivshmem_unmap_region,
	.map_inflight = ivshmem_map_inflight,
	.unmap_inflight = ivshmem_unmap_inflight,
	.notify = ivshmem_notify,
	.kick_fd = ivshmem_kick_fd,
	.reset = ivshmem_reset,
	.last_error = ivshmem_last_error,
};
