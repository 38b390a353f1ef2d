/* VFIO: a container and its IOMMU groups, and PCI devices from device fds (see vfio-pci.h). The
 * container never gets DMA mappings: the devices this is for (ivshmem) do not DMA; the IOMMU is
 * there because VFIO needs one to hand out a device at all, and for interrupt remapping. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "vfio-pci.h"

#define VFIO_PCI_SYSFS_DEVICES "/sys/bus/pci/devices"

/* An IOMMU group the process holds, attached to its container. The kernel lets one open file hold
 * a group: every device of it that the process hands out comes from this one. */
struct vfio_pci_group {
	struct vfio_pci_group *next;
	unsigned number;
	int fd;
	unsigned users;
};

static int fail(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!errlen)
		return r;
	va_start(ap, fmt);
	/* The analyzer of clang 14 misreads va_start here (a known false positive). */
	n = vsnprintf(err, errlen, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, ": %s", strerror(-r));
	return r;
}

void vfio_pci_init(struct vfio_pci *dev)
{
	memset(dev, 0, sizeof(*dev));
	dev->device_fd = -1;
}

static bool hex_digits(const char **s, size_t min, size_t max, char stop)
{
	size_t n = 0;

	while (n < max && ((**s >= '0' && **s <= '9') || (**s >= 'a' && **s <= 'f'))) {
		(*s)++;
		n++;
	}
	if (n < min || **s != stop)
		return false;
	if (stop)
		(*s)++;
	return true;
}

bool vfio_pci_bdf_valid(const char *s)
{
	if (!s || strlen(s) >= sizeof(((struct vfio_pci *)0)->bdf))
		return false;
	return hex_digits(&s, 4, 8, ':') && hex_digits(&s, 2, 2, ':') && hex_digits(&s, 2, 2, '.') &&
	       *s >= '0' && *s <= '7' && s[1] == '\0';
}

int vfio_pci_group_number(const char *link_target, unsigned *ret)
{
	const char *name = strrchr(link_target, '/');
	unsigned long v;
	char *end;

	name = name ? name + 1 : link_target;
	if (*name < '0' || *name > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(name, &end, 10);
	if (errno || *end || v > INT_MAX)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

void vfio_pci_container_init(struct vfio_pci_container *c)
{
	c->fd = -1;
	c->groups = NULL;
}

static int container_open(struct vfio_pci_container *c, char *err, size_t errlen)
{
	int fd;

	if (c->fd >= 0)
		return 0;
	fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "/dev/vfio/vfio (is the vfio module loaded?)");
	if (ioctl(fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		close(fd);
		return fail(err, errlen, -EPROTO, "/dev/vfio/vfio: unknown VFIO API version");
	}
	c->fd = fd;
	return 0;
}

static int container_attach(struct vfio_pci_container *c, unsigned number, int group_fd, char *err, size_t errlen)
{
	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };

	if (ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &c->fd) < 0)
		return fail(err, errlen, -errno, "IOMMU group %u: cannot attach it to the container", number);
	/* The IOMMU is set once per container, after its first group; the kernel drops it with the
	 * container's last group, which need not be ours to count: a group closed while device fds of
	 * it are open stays attached until they are closed. So ask the container. */
	if (ioctl(c->fd, VFIO_IOMMU_GET_INFO, &info) == 0)
		return 0;
	/* v2 (unmap semantics fixed) where the kernel has it; this user maps nothing either way. */
	if (ioctl(c->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0 && ioctl(c->fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0) {
		/* The caller closes the group, which detaches it again. */
		return fail(err, errlen, -errno, "IOMMU group %u: no type-1 IOMMU (is vfio_iommu_type1 loaded, "
			    "and the IOMMU on: intel_iommu=on?)", number);
	}
	return 0;
}

int vfio_pci_group_get(struct vfio_pci_container *c, const char *bdf, struct vfio_pci_group **ret, char *err,
		       size_t errlen)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_pci_group *g;
	char path[PATH_MAX], target[PATH_MAX];
	unsigned number;
	ssize_t n;
	int fd, r;

	if (errlen)
		err[0] = '\0';
	if (!vfio_pci_bdf_valid(bdf))
		return fail(err, errlen, -EINVAL, "'%s' is not a PCI address", bdf ? bdf : "(null)");
	snprintf(path, sizeof(path), VFIO_PCI_SYSFS_DEVICES "/%s/iommu_group", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return fail(err, errlen, -errno, "%s (no such device, or no IOMMU)", path);
	target[n] = '\0';
	if (vfio_pci_group_number(target, &number) < 0)
		return fail(err, errlen, -EINVAL, "%s: unexpected target %s", path, target);
	for (g = c->groups; g; g = g->next) {
		if (g->number == number) {
			g->users++;
			*ret = g;
			return 0;
		}
	}
	r = container_open(c, err, errlen);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/dev/vfio/%u", number);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -EBUSY)
			return fail(err, errlen, r, "%s: another process holds IOMMU group %u (VFIO lets one process "
				    "hold a group), or device fds of it from before are still open", path, number);
		return fail(err, errlen, r, "%s (is %s bound to vfio-pci?)", path, bdf);
	}
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
		r = fail(err, errlen, -errno, "%s: group status", path);
		goto out;
	}
	/* Not viable: a device of the group is bound to a driver of the kernel, which VFIO must not let
	 * user space (and its device's DMA) share an IOMMU domain with. */
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		r = fail(err, errlen, -EBUSY, "IOMMU group %u: not every device of it is bound to vfio-pci", number);
		goto out;
	}
	r = container_attach(c, number, fd, err, errlen);
	if (r < 0)
		goto out;
	g = calloc(1, sizeof(*g));
	if (!g) {
		r = fail(err, errlen, -ENOMEM, "IOMMU group %u", number);
		goto out;
	}
	g->number = number;
	g->fd = fd;
	g->users = 1;
	g->next = c->groups;
	c->groups = g;
	*ret = g;
	return 0;
out:
	/* Closing the group also detaches it from the container. */
	close(fd);
	return r;
}

void vfio_pci_group_put(struct vfio_pci_container *c, struct vfio_pci_group *g)
{
	if (!g || --g->users)
		return;
	for (struct vfio_pci_group **p = &c->groups; *p; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	close(g->fd);
	free(g);
}

int vfio_pci_group_device_fd(const struct vfio_pci_group *g, const char *bdf, char *err, size_t errlen)
{
	int fd;

	if (!vfio_pci_bdf_valid(bdf))
		return fail(err, errlen, -EINVAL, "'%s' is not a PCI address", bdf ? bdf : "(null)");
	/* The kernel makes device fds close-on-exec. */
	fd = ioctl(g->fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: no VFIO device in IOMMU group %u (bound to vfio-pci?)", bdf,
			    g->number);
	return fd;
}

void vfio_pci_container_close(struct vfio_pci_container *c)
{
	while (c->groups) {
		c->groups->users = 1;
		vfio_pci_group_put(c, c->groups);
	}
	if (c->fd >= 0)
		close(c->fd);
	vfio_pci_container_init(c);
}

int vfio_pci_adopt(struct vfio_pci *dev, int device_fd, const char *bdf, char *err, size_t errlen)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int r;

	vfio_pci_init(dev);
	if (errlen)
		err[0] = '\0';
	if (!vfio_pci_bdf_valid(bdf)) {
		if (device_fd >= 0)
			close(device_fd);
		return fail(err, errlen, -EINVAL, "'%s' is not a PCI address", bdf ? bdf : "(null)");
	}
	snprintf(dev->bdf, sizeof(dev->bdf), "%s", bdf);
	if (device_fd < 0)
		return fail(err, errlen, -EBADF, "%s: no device fd", bdf);
	dev->device_fd = device_fd;
	if (ioctl(dev->device_fd, VFIO_DEVICE_GET_INFO, &info) < 0) {
		r = fail(err, errlen, -errno, "%s: device info (not a VFIO device fd?)", bdf);
		goto out;
	}
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) || info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
		r = fail(err, errlen, -ENODEV, "%s: not a PCI device", bdf);
		goto out;
	}
	for (unsigned i = 0; i < VFIO_PCI_NUM_REGIONS && i < info.num_regions; i++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };

		/* A region the device lacks (no ROM, no VGA) fails or has size 0: either is "none". */
		if (ioctl(dev->device_fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
			continue;
		dev->regions[i] = (struct vfio_pci_region){ .offset = ri.offset, .size = ri.size, .flags = ri.flags };
	}
	if (!dev->regions[VFIO_PCI_CONFIG_REGION_INDEX].size) {
		r = fail(err, errlen, -ENODEV, "%s: no config space region", bdf);
		goto out;
	}
	return 0;
out:
	vfio_pci_close(dev);
	return r;
}

int vfio_pci_map_bar(struct vfio_pci *dev, unsigned bar, void **ret_addr, uint64_t *ret_size)
{
	const struct vfio_pci_region *reg;
	void *p;

	if (bar >= VFIO_PCI_NUM_BARS || dev->device_fd < 0)
		return -EINVAL;
	reg = &dev->regions[VFIO_PCI_BAR0_REGION_INDEX + bar];
	if (!dev->bar_map[bar]) {
		if (!reg->size)
			return -ENODEV;
		if (!(reg->flags & VFIO_REGION_INFO_FLAG_MMAP))
			return -ENOTSUP;
		if (reg->size > SIZE_MAX || reg->offset > (uint64_t)INT64_MAX)
			return -EOVERFLOW;
		p = mmap(NULL, (size_t)reg->size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->device_fd, (off_t)reg->offset);
		if (p == MAP_FAILED)
			return -errno;
		dev->bar_map[bar] = p;
		dev->bar_map_len[bar] = (size_t)reg->size;
	}
	*ret_addr = dev->bar_map[bar];
	*ret_size = reg->size;
	return 0;
}

static int region_check(const struct vfio_pci *dev, unsigned index, uint64_t offset, size_t len, uint32_t need,
			off_t *ret_pos)
{
	const struct vfio_pci_region *reg;

	if (index >= VFIO_PCI_NUM_REGIONS || dev->device_fd < 0)
		return -EINVAL;
	reg = &dev->regions[index];
	if ((reg->flags & need) != need || offset > reg->size || len > reg->size - offset ||
	    reg->offset + offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	*ret_pos = (off_t)(reg->offset + offset);
	return 0;
}

int vfio_pci_region_read(const struct vfio_pci *dev, unsigned index, uint64_t offset, void *buf, size_t len)
{
	off_t pos;
	ssize_t n;
	int r = region_check(dev, index, offset, len, VFIO_REGION_INFO_FLAG_READ, &pos);

	if (r < 0)
		return r;
	n = pread(dev->device_fd, buf, len, pos);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vfio_pci_region_write(const struct vfio_pci *dev, unsigned index, uint64_t offset, const void *buf, size_t len)
{
	off_t pos;
	ssize_t n;
	int r = region_check(dev, index, offset, len, VFIO_REGION_INFO_FLAG_WRITE, &pos);

	if (r < 0)
		return r;
	n = pwrite(dev->device_fd, buf, len, pos);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vfio_pci_set_bus_master(struct vfio_pci *dev)
{
	uint16_t cmd;
	int r;

	r = vfio_pci_region_read(dev, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, sizeof(cmd));
	if (r < 0)
		return r;
	/* Config space is little-endian. */
	cmd = htole16((uint16_t)(le16toh(cmd) | PCI_COMMAND_MASTER));
	return vfio_pci_region_write(dev, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, sizeof(cmd));
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int vfio_pci_msix_enable(struct vfio_pci *dev)
{
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	struct vfio_irq_set *set;
	size_t set_size;
	int *fds, r;

	if (dev->device_fd < 0 || dev->msix_fds)
		return -EINVAL;
	if (ioctl(dev->device_fd, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
		return -errno;
	if (!info.count || !(info.flags & VFIO_IRQ_INFO_EVENTFD))
		return -ENODEV;
	if (info.count > VFIO_PCI_MAX_MSIX)
		return -E2BIG;
	fds = calloc(info.count, sizeof(*fds));
	set_size = sizeof(*set) + info.count * sizeof(int);
	set = calloc(1, set_size);
	if (!fds || !set) {
		free(fds);
		free(set);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < info.count; i++)
		fds[i] = -1;
	for (unsigned i = 0; i < info.count; i++) {
		/* Non-blocking: the loop reads a vector's fd when epoll says so, and polling must not
		 * block on one that did not fire. */
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fds[i] < 0) {
			r = -errno;
			goto out;
		}
	}
	set->argsz = (uint32_t)set_size;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = info.count;
	memcpy(set->data, fds, info.count * sizeof(int));
	if (ioctl(dev->device_fd, VFIO_DEVICE_SET_IRQS, set) < 0) {
		r = -errno;
		goto out;
	}
	dev->msix_fds = fds;
	dev->msix_count = info.count;
	free(set);
	return 0;
out:
	close_fds(fds, info.count);
	free(fds);
	free(set);
	return r;
}

void vfio_pci_close(struct vfio_pci *dev)
{
	for (unsigned i = 0; i < VFIO_PCI_NUM_BARS; i++)
		if (dev->bar_map[i])
			munmap(dev->bar_map[i], dev->bar_map_len[i]);
	/* Closing the device disables its interrupts before their eventfds go. */
	if (dev->device_fd >= 0)
		close(dev->device_fd);
	if (dev->msix_fds) {
		close_fds(dev->msix_fds, dev->msix_count);
		free(dev->msix_fds);
	}
	vfio_pci_init(dev);
}
