/* Binding an ivshmem device to vfio-pci. Opening it (the container, the group, device fds for the
 * back-ends) is the VFIO broker's (vfio-broker.c): one IOMMU group can be open in one process. */
#pragma once

/* Binds the PCI device bdf to vfio-pci (driver_override, then drivers_probe); 0 when it is bound. */
int vfio_bind(const char *bdf);
