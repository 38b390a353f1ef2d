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
