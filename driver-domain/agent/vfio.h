/* The few VFIO steps ddtk-agent needs for an ivshmem device: bind it to vfio-pci, and read its
 * IVPosition register once. (virtio-backends/ivshmem/vfio-pci.[ch] does the full job for the
 * back-ends; these lines duplicate the part of it the agent needs.) When VFIO cannot open the
 * device's IOMMU group (a back-end holds it: one process per group; or a device of the group is
 * driven by a kernel driver), the register is read through sysfs instead. */
#pragma once

#include <stdint.h>

/* Binds the PCI device bdf to vfio-pci (driver_override, then drivers_probe); 0 when it is bound. */
int vfio_bind(const char *bdf);
/* Opens the device through VFIO (container, group, device), reads BAR0 at `offset` (4 bytes) and
 * closes it all again. */
int vfio_read_bar0_u32(const char *bdf, uint32_t offset, uint32_t *ret);
/* The same through sysfs: enable the device, map resource0, read, disable again. */
int sysfs_read_bar0_u32(const char *bdf, uint32_t offset, uint32_t *ret);
