/* ivshmem devices (1af4:1110): the bridge hot-plugs one per session, plus the state device. Every
 * DEVICES_SCAN_MS the agent lists the PCI devices; a new one is bound to vfio-pci, its IVPosition
 * (which the bridge, as its ivshmem server, set to the session id) is read through VFIO, and
 * DDCTL_IVSHMEM_DIR/<IVPosition> is linked to its sysfs folder for the back-ends to find; the
 * bridge hears DEVICE_ADDED. A device that is gone is unlinked and reported DEVICE_REMOVED. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio.h"

#define DEVICES_SCAN_MS 200
#define PCI_DEVICES "/sys/bus/pci/devices"
#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define IVSHMEM_REG_IVPOSITION 8

static unsigned read_hex_attr(const char *bdf, const char *attr)
{
	char path[300], buf[32];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", bdf, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (unsigned)strtoul(buf, NULL, 16);
}

static void link_path(const struct agent *a, uint32_t ivposition, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/ivshmem/%u", a->opt.backend.run_dir, ivposition);
}

/* The link is replaced atomically: a back-end never sees it missing or half made. */
static int device_link(const struct agent *a, const struct ivshmem_device *d)
{
	char target[300], path[BACKEND_RUN_DIR_MAX + 32], tmp[BACKEND_RUN_DIR_MAX + 40];

	snprintf(target, sizeof(target), PCI_DEVICES "/%s", d->bdf);
	link_path(a, d->ivposition, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	(void)unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, path) < 0) {
		int r = -errno;
		(void)unlink(tmp);
		return r;
	}
	return 0;
}

static void device_report(struct agent *a, const struct ivshmem_device *d, uint8_t type)
{
	if (a->greeted)
		port_send_text(a, type, d->ivposition, d->bdf);
}

void devices_report_all(struct agent *a)
{
	for (unsigned i = 0; i < a->devices.n; i++)
		if (a->devices.dev[i].ready)
			device_report(a, &a->devices.dev[i], DDCTL_MSG_DEVICE_ADDED);
}

/* A device that fails is tried on every scan: say why on the first attempt and the last only. */
static void __attribute__((format(printf, 2, 3))) device_fail(const struct ivshmem_device *d, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	if (d->attempts != 1 && d->attempts != DEVICE_ATTEMPTS_MAX)
		return;
	va_start(ap, fmt);
	/* The analyzer of clang 14 misreads va_start here (a known false positive). */
	vsnprintf(why, sizeof(why), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	agent_log("ivshmem %s: %s%s", d->bdf, why,
		  d->attempts == DEVICE_ATTEMPTS_MAX ? "; giving up" : "; trying again every scan");
}

/* Binds, reads and links a device; false when it must be tried again at the next scan. */
static bool device_setup(struct agent *a, struct ivshmem_device *d)
{
	int r;
	uint32_t pos;

	d->attempts++;
	r = vfio_bind(d->bdf);
	if (r < 0) {
		device_fail(d, "cannot bind to vfio-pci: %s", strerror(-r));
		return false;
	}
	if (!a->broker_up) {
		device_fail(d, "no VFIO broker");
		return false;
	}
	r = vfio_broker_add_device(&a->broker, d->bdf, &pos);
	if (r < 0) {
		device_fail(d, "cannot open it through VFIO: %s", a->broker.error);
		return false;
	}
	/* The bridge numbers devices by session (0 is the state device); anything else is not ours to
	 * serve, but is still linked and reported: the bridge decides. -1 is a device that has no
	 * ivshmem server (no peer id). */
	if (pos > 0xffff) {
		device_fail(d, "IVPosition %d: no ivshmem server", (int)pos);
		return false;
	}
	d->ivposition = pos;
	for (unsigned i = 0; i < a->devices.n; i++) {
		const struct ivshmem_device *o = &a->devices.dev[i];
		if (o != d && o->ready && o->ivposition == pos)
			agent_log("ivshmem %s: IVPosition %u is also %s's; the link now names %s", d->bdf, pos, o->bdf,
				  d->bdf);
	}
	char path[BACKEND_RUN_DIR_MAX + 32];
	link_path(a, pos, path, sizeof(path));
	r = device_link(a, d);
	if (r < 0) {
		device_fail(d, "cannot link %s: %s", path, strerror(-r));
		return false;
	}
	d->ready = true;
	agent_log("ivshmem %s: IVPosition %u, bound to vfio-pci, linked as %s", d->bdf, pos, path);
	device_report(a, d, DDCTL_MSG_DEVICE_ADDED);
	return true;
}

static void device_gone(struct agent *a, struct ivshmem_device *d)
{
	if (d->ready) {
		char path[BACKEND_RUN_DIR_MAX + 32], target[300], want[300];
		link_path(a, d->ivposition, path, sizeof(path));
		snprintf(want, sizeof(want), PCI_DEVICES "/%s", d->bdf);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		/* Only our own link: another device may have taken the IVPosition meanwhile. */
		if (n > 0) {
			target[n] = '\0';
			if (!strcmp(target, want))
				(void)unlink(path);
		}
		agent_log("ivshmem %s (IVPosition %u) removed", d->bdf, d->ivposition);
		if (a->broker_up)
			vfio_broker_remove_device(&a->broker, d->bdf);
		device_report(a, d, DDCTL_MSG_DEVICE_REMOVED);
	} else {
		agent_log("ivshmem %s removed", d->bdf);
	}
}

static struct ivshmem_device *device_find(struct devices *ds, const char *bdf)
{
	for (unsigned i = 0; i < ds->n; i++)
		if (!strcmp(ds->dev[i].bdf, bdf))
			return &ds->dev[i];
	return NULL;
}

/* Whether the device at bdf is bound to vfio-pci. A device the bridge unplugged and plugged again
 * between two scans has the same address but comes back without a driver. */
static bool bound_to_vfio(const char *bdf)
{
	char link[128], target[256];
	ssize_t n;

	snprintf(link, sizeof(link), PCI_DEVICES "/%s/driver", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	return !strcmp(base ? base + 1 : target, "vfio-pci");
}

static void devices_scan(struct agent *a)
{
	struct devices *ds = &a->devices;
	DIR *dir = opendir(PCI_DEVICES);
	const struct dirent *de;

	if (!dir)
		return;
	for (unsigned i = 0; i < ds->n; i++)
		ds->dev[i].seen = false;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(ds->dev[0].bdf))
			continue;
		if (read_hex_attr(de->d_name, "vendor") != IVSHMEM_VENDOR ||
		    read_hex_attr(de->d_name, "device") != IVSHMEM_DEVICE)
			continue;
		struct ivshmem_device *d = device_find(ds, de->d_name);
		if (!d) {
			if (ds->n == DEVICES_MAX)
				continue;
			d = &ds->dev[ds->n++];
			*d = (struct ivshmem_device){ 0 };
			snprintf(d->bdf, sizeof(d->bdf), "%s", de->d_name);
			agent_log("ivshmem %s appeared", d->bdf);
		}
		d->seen = true;
		if (d->ready && !bound_to_vfio(d->bdf)) {
			/* Replaced under the same address: the old one is gone, this one is new. */
			device_gone(a, d);
			*d = (struct ivshmem_device){ .seen = true };
			snprintf(d->bdf, sizeof(d->bdf), "%s", de->d_name);
			agent_log("ivshmem %s appeared (replaced)", d->bdf);
		}
		if (!d->ready && d->attempts < DEVICE_ATTEMPTS_MAX)
			(void)device_setup(a, d);
	}
	closedir(dir);
	for (unsigned i = 0; i < ds->n;) {
		if (ds->dev[i].seen) {
			i++;
			continue;
		}
		device_gone(a, &ds->dev[i]);
		ds->dev[i] = ds->dev[--ds->n];
	}
}

void devices_timers(struct agent *a, struct loop *l, int64_t now)
{
	if (now >= a->devices.next_scan_ms) {
		devices_scan(a);
		a->devices.next_scan_ms = now + DEVICES_SCAN_MS;
	}
	loop_wake_at(l, a->devices.next_scan_ms);
}
