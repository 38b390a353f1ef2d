/* A PCI device opened through VFIO (type-1 IOMMU) by a user-space driver: its regions (config
 * space, BARs), mmaps of BARs, Bus Master, and its MSI-X vectors as eventfds. Nothing here is
 * specific to ivshmem. Single-threaded; errors are -errno (vfio_pci_open also writes a line). */
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
	struct vfio_pci_group *group;    /* shared with the other devices of its IOMMU group */
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

/* Opens the device at bdf, which must be bound to vfio-pci: the IOMMU group (opened once per
 * process and shared by its devices), a container with the type-1 IOMMU (v2 when the kernel has
 * it), the device fd and the table of its regions. On failure err says which step failed (the
 * kernel lets one process at a time hold a group: -EBUSY when another one does). */
int vfio_pci_open(struct vfio_pci *dev, const char *bdf, char *err, size_t errlen);

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

/* Unmaps the BARs, closes the device (which disables its interrupts), its eventfds and, with the
 * group's last device, the group and its container. Safe on a device not open. */
void vfio_pci_close(struct vfio_pci *dev);
