/* A PCI device driven through VFIO (type-1 IOMMU) by a user-space driver: its regions (config
 * space, BARs), mmaps of BARs, Bus Master, and its MSI-X vectors as eventfds. Nothing here is
 * specific to ivshmem. The kernel lets one process hold an IOMMU group, so the container and the
 * groups (struct vfio_pci_container) live in one process (ddtk-agent's VFIO broker), which hands
 * device fds to the others; a struct vfio_pci is made from such a device fd (vfio_pci_adopt).
 * Single-threaded; errors are -errno (the calls with err also write a line there). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vfio.h>

/* The PCI limit on an MSI-X table: a device claiming more is broken. */
#define VFIO_PCI_MAX_MSIX 2048
#define VFIO_PCI_NUM_BARS 6

struct vfio_pci_group;

struct vfio_pci_region {
	uint64_t offset;   /* where the region is in the device fd */
	uint64_t size;     /* 0: the device has no such region */
	uint32_t flags;    /* VFIO_REGION_INFO_FLAG_READ, _WRITE, _MMAP */
};

struct vfio_pci {
	char bdf[16];                    /* "0000:01:02.0" */
	int device_fd;
	struct vfio_pci_region regions[VFIO_PCI_NUM_REGIONS];
	void *bar_map[VFIO_PCI_NUM_BARS];
	size_t bar_map_len[VFIO_PCI_NUM_BARS];
	int *msix_fds;                   /* vfio_pci_msix_enable(); msix_count of them */
	unsigned msix_count;
};

/* A device that is not open: vfio_pci_close() on it does nothing. */
void vfio_pci_init(struct vfio_pci *dev);

/* Whether s is a PCI address as sysfs writes it: DOMAIN:BUS:DEVICE.FUNCTION in hex (4 to 8, 2, 2,
 * 1 digits), nothing else (it becomes part of paths). */
bool vfio_pci_bdf_valid(const char *s);

/* The IOMMU group number from the target of /sys/bus/pci/devices/BDF/iommu_group (a path whose
 * last component is the number). -EINVAL when it is not one. */
int vfio_pci_group_number(const char *link_target, unsigned *ret);

/* The VFIO container of a process and the IOMMU groups attached to it: one container (type-1
 * IOMMU, v2 when the kernel has it) for every group. */
struct vfio_pci_container {
	int fd;                          /* /dev/vfio/vfio; -1 until the first group */
	struct vfio_pci_group *groups;
};

void vfio_pci_container_init(struct vfio_pci_container *c);

/* The IOMMU group of device bdf (bound to vfio-pci), opened once and attached to c: the container
 * is opened with the first group, its IOMMU set when it has none. A group already held gets one
 * more user. -EBUSY when another process holds the group (the kernel lets one open file hold it)
 * or when a device of it is not bound to vfio-pci. */
int vfio_pci_group_get(struct vfio_pci_container *c, const char *bdf, struct vfio_pci_group **ret, char *err,
		       size_t errlen);

/* One user of g fewer; with the last one the group is closed (which detaches it from the container).
 * Device fds of it still open (in any process) keep working: the kernel keeps the group open for
 * them, and refuses to open it again (-EBUSY) until they are closed. g may be NULL. */
void vfio_pci_group_put(struct vfio_pci_container *c, struct vfio_pci_group *g);

/* A new fd (close-on-exec) of device bdf of group g: every call opens the device once more. The fd
 * stays usable in another process (mmap, pread/pwrite, ioctls). */
int vfio_pci_group_device_fd(const struct vfio_pci_group *g, const char *bdf, char *err, size_t errlen);

/* Closes every group of c and the container. */
void vfio_pci_container_close(struct vfio_pci_container *c);

/* Makes dev the PCI device of device_fd (a VFIO device fd, from vfio_pci_group_device_fd or received
 * from the process that holds the group): its info and its table of regions. dev owns device_fd
 * from then on, also when this fails (then it is closed). bdf (checked) names it in messages. */
int vfio_pci_adopt(struct vfio_pci *dev, int device_fd, const char *bdf, char *err, size_t errlen);

/* Maps BAR bar (read-write, shared) once; later calls return the same mapping. -ENOTSUP when the
 * kernel does not let it be mapped (a BAR smaller than a page that does not start one): use
 * vfio_pci_region_read/write then. */
int vfio_pci_map_bar(struct vfio_pci *dev, unsigned bar, void **ret_addr, uint64_t *ret_size);

/* len bytes at offset of region index (VFIO_PCI_BAR0_REGION_INDEX..., VFIO_PCI_CONFIG_REGION_INDEX)
 * through the device fd; -EINVAL outside the region. */
int vfio_pci_region_read(const struct vfio_pci *dev, unsigned index, uint64_t offset, void *buf, size_t len);
int vfio_pci_region_write(const struct vfio_pci *dev, unsigned index, uint64_t offset, const void *buf, size_t len);

/* Sets Bus Master in the command register. The device's MSI-X messages are memory writes it
 * makes: without Bus Master (QEMU checks it) they are dropped. */
int vfio_pci_set_bus_master(struct vfio_pci *dev);

/* Gives every MSI-X vector of the device an eventfd (close-on-exec, non-blocking) in
 * dev->msix_fds[0..msix_count): readable when the vector fires. -ENODEV without MSI-X. */
int vfio_pci_msix_enable(struct vfio_pci *dev);

/* Unmaps the BARs, closes the device fd (the last open file of the device disables its interrupts)
 * and its eventfds. Safe on a device not open. */
void vfio_pci_close(struct vfio_pci *dev);
