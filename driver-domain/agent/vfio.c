/* VFIO helpers of ddtk-agent (vfio.h). */
#include "vfio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCI_DEVICES "/sys/bus/pci/devices"

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int r = n < 0 ? -errno : (size_t)n == strlen(text) ? 0 : -EIO;
	close(fd);
	return r;
}

static int device_driver(const char *bdf, char *ret, size_t cap)
{
	char path[PATH_MAX], target[PATH_MAX];

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", bdf);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		ret[0] = '\0';
		return errno == ENOENT ? 0 : -errno;
	}
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	return snprintf(ret, cap, "%s", base ? base + 1 : target) < (int)cap ? 0 : -ENAMETOOLONG;
}

int vfio_bind(const char *bdf)
{
	char path[PATH_MAX], driver[64];
	int r;

	if ((r = device_driver(bdf, driver, sizeof(driver))) < 0)
		return r;
	if (!strcmp(driver, "vfio-pci"))
		return 0;
	if (driver[0]) {
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver/unbind", bdf);
		if ((r = write_file(path, bdf)) < 0)
			return r;
	}
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver_override", bdf);
	if ((r = write_file(path, "vfio-pci")) < 0)
		return r;
	if ((r = write_file("/sys/bus/pci/drivers_probe", bdf)) < 0)
		return r;
	if ((r = device_driver(bdf, driver, sizeof(driver))) < 0)
		return r;
	return strcmp(driver, "vfio-pci") == 0 ? 0 : -ENODEV;
}

static int device_group(const char *bdf, unsigned *ret)
{
	char path[PATH_MAX], target[PATH_MAX];

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/iommu_group", bdf);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	char *end;
	unsigned long g = strtoul(base ? base + 1 : target, &end, 10);
	if (*end || g > UINT_MAX)
		return -EINVAL;
	*ret = (unsigned)g;
	return 0;
}

int vfio_read_bar0_u32(const char *bdf, uint32_t offset, uint32_t *ret)
{
	int container = -1, group = -1, device = -1, r;
	unsigned group_id = 0;
	char path[64];

	if ((r = device_group(bdf, &group_id)) < 0)
		return r;
	snprintf(path, sizeof(path), "/dev/vfio/%u", group_id);
	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (container < 0) {
		r = -errno;
		goto out;
	}
	group = open(path, O_RDWR | O_CLOEXEC);
	if (group < 0) {
		r = -errno;   /* EBUSY: a back-end holds the group */
		goto out;
	}
	struct vfio_group_status status = { .argsz = sizeof(status) };
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) < 0) {
		r = -errno;
		goto out;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		r = -EPERM;   /* another device of the group is bound to a host driver */
		goto out;
	}
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0 ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0) {
		r = -errno;
		goto out;
	}
	device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (device < 0) {
		r = -errno;
		goto out;
	}
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &reg) < 0) {
		r = -errno;
		goto out;
	}
	if (!(reg.flags & VFIO_REGION_INFO_FLAG_READ) || reg.size < (uint64_t)offset + 4) {
		r = -ENXIO;
		goto out;
	}
	uint32_t v;
	ssize_t n = pread(device, &v, sizeof(v), (off_t)(reg.offset + offset));
	if (n != (ssize_t)sizeof(v)) {
		r = n < 0 ? -errno : -EIO;
		goto out;
	}
	*ret = v;
	r = 0;
out:
	if (device >= 0)
		close(device);
	if (group >= 0)
		close(group);
	if (container >= 0)
		close(container);
	return r;
}

int sysfs_read_bar0_u32(const char *bdf, uint32_t offset, uint32_t *ret)
{
	char path[PATH_MAX], enable[PATH_MAX];
	struct stat st;
	int fd, r;

	/* Memory decoding must be on for the read to reach the device: vfio-pci leaves a device it
	 * has bound but nobody opened disabled. The enable count is the kernel's, so this pair does not
	 * disturb a back-end that enables it too. */
	snprintf(enable, sizeof(enable), PCI_DEVICES "/%s/enable", bdf);
	if ((r = write_file(enable, "1")) < 0)
		return r;
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)offset + 4) {
		r = -ENXIO;
		goto out;
	}
	size_t len = (size_t)st.st_size < 4096 ? (size_t)st.st_size : 4096;
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	*ret = *(const volatile uint32_t *)((const uint8_t *)map + offset);
	munmap(map, len);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	(void)write_file(enable, "0");
	return r;
}
