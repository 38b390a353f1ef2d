/* See vmm.h. libvirt errors are taken with virGetLastErrorMessage() and returned, not printed. */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"

static void libvirt_quiet(void *opaque, virErrorPtr error)
{
	/* libvirt prints every error to stderr by default; ddtk reports them itself. */
}

int vmm_open(struct vmm *m, const struct ddtk_config *cfg, bool connect, struct ddtk_err *err)
{
	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	int r = vm_accel_resolve(cfg->accel, "/", &m->accel);
	if (r < 0)
		return ddtk_err_set(err, r, "accel = %s: /dev/kvm is not usable here (use auto or tcg)",
				    vm_accel_name(cfg->accel));
	snprintf(m->instance_dir, sizeof(m->instance_dir), "%s/%s", cfg->state_dir, cfg->instance);
	if (!connect)
		return 0;
	virSetErrorFunc(NULL, libvirt_quiet);
	m->conn = virConnectOpen(cfg->libvirt_uri);
	if (!m->conn)
		return ddtk_err_set(err, -ECONNREFUSED, "cannot connect to libvirt at %s: %s (is libvirtd running?"
				    " scripts/start-libvirt starts it)", cfg->libvirt_uri, virGetLastErrorMessage());
	return 0;
}

void vmm_close(struct vmm *m)
{
	if (m->conn)
		virConnectClose(m->conn);
	m->conn = NULL;
}

int vmm_vm_get(const struct vmm *m, const char *vm, struct vmm_vm *ret_vm, struct ddtk_err *err)
{
	const struct ddtk_config *cfg = m->cfg;
	const struct ddtk_client_config *client = NULL;
	struct vmm_vm *v = ret_vm;

	if (strcmp(vm, "dd") != 0 && !(client = ddtk_config_client(cfg, vm))) {
		char names[DDTK_CLIENTS_MAX * (DDTK_NAME_MAX + 2) + 8] = "dd";
		for (unsigned i = 0; i < cfg->n_clients; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), ", %s", cfg->clients[i].name);
		return ddtk_err_set(err, -ENOENT, "no VM named '%s' in instance %s (VMs: %s)", vm, cfg->instance, names);
	}
	memset(v, 0, sizeof(*v));
	v->role = client ? VM_ROLE_CLIENT : VM_ROLE_DD;
	snprintf(v->vm, sizeof(v->vm), "%s", vm);
	snprintf(v->domain, sizeof(v->domain), "ddtk-%s-%s", cfg->instance, vm);
	const char *image = client ? "client" : "dd";
	snprintf(v->image_kernel, sizeof(v->image_kernel), "%s/%s/vmlinuz", cfg->images_dir, image);
	snprintf(v->image_initrd, sizeof(v->image_initrd), "%s/%s/initrd.gz", cfg->images_dir, image);
	snprintf(v->kernel, sizeof(v->kernel), "%s/%s.vmlinuz", m->instance_dir, vm);
	snprintf(v->initrd, sizeof(v->initrd), "%s/%s.initrd.gz", m->instance_dir, vm);
	snprintf(v->console_log, sizeof(v->console_log), "%s/%s.console.log", m->instance_dir, vm);
	if (cfg->dd.disk_image[0])
		snprintf(v->disk_image, sizeof(v->disk_image), "%s", cfg->dd.disk_image);
	else
		snprintf(v->disk_image, sizeof(v->disk_image), "%s/dd-disk.img", m->instance_dir);
	if (client) {
		unsigned index = (unsigned)(client - cfg->clients);
		int r = 0;
		if (client->volume_mib)
			r = ddtk_bridge_blk_socket(cfg, index, v->bridge_blk_socket);
		if (r == 0 && client->dd_nic)
			r = ddtk_bridge_net_socket(cfg, index, v->bridge_net_socket);
		if (r < 0)
			return ddtk_err_set(err, r, "%s: ddtk-bridge's socket path is too long (state-dir %s)", vm,
					    cfg->state_dir);
	}
	/* panic=-1: a panicking guest reboots at once, and on_reboot=destroy stops it, so a failed
	 * boot shows as a stopped domain instead of a hang. */
	/* pci=nomsi: QEMU 7.2 (Debian 12) under TCG dereferences its missing irqfd table when a
	 * vhost-user-net device's MSI-X vectors get their notifiers (virtio-pci's config-interrupt
	 * code, fixed upstream in 8.x) and the guest crashes QEMU while loading virtio_net. With INTx
	 * the path is never taken; under KVM the table exists and MSI-X stays. */
	bool nomsi = client && (client->vhost_user_net[0] || client->dd_nic) && m->accel == VM_ACCEL_TCG;

	snprintf(v->cmdline, sizeof(v->cmdline), "console=ttyS0 panic=-1 quiet ddtk.name=%s%s%s%s%s", vm,
		 client ? "" : " intel_iommu=on", nomsi ? " pci=nomsi" : "",
		 (client ? client->cmdline_append : cfg->dd.cmdline_append)[0] ? " " : "",
		 client ? client->cmdline_append : cfg->dd.cmdline_append);

	struct vm_spec *s = &v->spec;
	s->name = v->domain;
	s->instance = cfg->instance;
	s->vm = v->vm;
	s->role = v->role;
	s->accel = m->accel;
	s->emulator = cfg->emulator;
	s->memory_mib = client ? client->memory_mib : cfg->dd.memory_mib;
	s->vcpus = client ? client->vcpus : cfg->dd.vcpus;
	s->numa_nodes = client ? client->numa_nodes : 1;
	s->kernel = v->kernel;
	s->initrd = v->initrd;
	s->cmdline = v->cmdline;
	s->console_log = v->console_log;
	if (client) {
		/* A volume or dd-nic is a vhost-user device like any other to the client: only the
		 * socket's owner (ddtk-bridge) differs. */
		s->vhost_user_blk = client->volume_mib ? v->bridge_blk_socket : client->vhost_user_blk;
		s->vhost_user_blk_queues = client->volume_mib ? client->volume_queues : client->vhost_user_blk_queues;
		s->vhost_user_net = client->dd_nic ? v->bridge_net_socket : client->vhost_user_net;
		s->vhost_user_net_queues = client->dd_nic ? client->dd_nic_queues : client->vhost_user_net_queues;
		ddtk_config_client_mac(cfg, client, &s->mac);
	} else {
		s->nic = &cfg->dd.nic;
		s->nic_tap = cfg->dd.nic_tap;
		s->disk = &cfg->dd.disk;
		s->disk_image = v->disk_image;
		s->watchdog_action = cfg->dd.watchdog_action;
		s->hotplug_window = vm_dd_hotplug_window(cfg);
	}
	return 0;
}

int vmm_xml(const struct vmm *m, const char *vm, char **ret_xml, struct ddtk_err *err)
{
	struct vmm_vm v;
	int r = vmm_vm_get(m, vm, &v, err);
	if (r < 0)
		return r;
	return vm_xml_build(&v.spec, ret_xml, err);
}

int vmm_mkdir_p(const char *path, mode_t mode)
{
	char buf[DDTK_PATH_MAX + 64];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Puts a copy of an image file where the domain reads it: a hard link when possible (same file
 * system, no copy), else a copy. The instance folder is one QEMU's user can reach, wherever the
 * build tree is. */
static int stage_file(const char *src, const char *dst)
{
	char tmp[DDTK_PATH_MAX + 160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	unlink(tmp);
	if (link(src, tmp) < 0) {
		int in = open(src, O_RDONLY | O_CLOEXEC);
		if (in < 0)
			return -errno;
		int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out < 0) {
			int r = -errno;
			close(in);
			return r;
		}
		struct stat st;
		int r = fstat(in, &st) < 0 ? -errno : 0;
		for (off_t off = 0; r == 0 && off < st.st_size;) {
			ssize_t n = sendfile(out, in, &off, (size_t)(st.st_size - off));
			if (n <= 0)
				r = n < 0 ? -errno : -EIO;
		}
		close(in);
		if (close(out) < 0 && r == 0)
			r = -errno;
		if (r < 0) {
			unlink(tmp);
			return r;
		}
	}
	if (rename(tmp, dst) < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	/* When dst already was a link to src, rename() leaves both names in place. */
	unlink(tmp);
	return 0;
}

static int disk_image_create(const char *path, uint64_t size_mib)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno; /* an existing image holds data: keep it */
	int r = ftruncate(fd, (off_t)(size_mib * 1024 * 1024)) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}

static virDomainPtr domain_lookup(struct vmm *m, const char *name)
{
	return virDomainLookupByName(m->conn, name);
}

/* The domain's libvirt state: -ENOENT when libvirt has no such domain, -EIO when it cannot tell. */
static int domain_state(struct vmm *m, const char *domain, int *ret_state)
{
	virDomainPtr dom = domain_lookup(m, domain);
	if (!dom)
		return -ENOENT;
	int ok = virDomainGetState(dom, ret_state, NULL, 0);
	virDomainFree(dom);
	return ok == 0 ? 0 : -EIO;
}

static bool domain_running(struct vmm *m, const char *domain)
{
	int state;
	return domain_state(m, domain, &state) == 0 && state == VIR_DOMAIN_RUNNING;
}

int vmm_start(struct vmm *m, const char *vm, struct ddtk_err *err)
{
	struct vmm_vm v;
	int r = vmm_vm_get(m, vm, &v, err);
	if (r < 0)
		return r;

	/* Running or paused: anything but stopped is this VM in use. */
	int state;
	if (domain_state(m, v.domain, &state) == 0 && state != VIR_DOMAIN_SHUTOFF)
		return ddtk_err_set(err, -EEXIST, "%s already runs as domain %s", vm, v.domain);
	if (access(v.image_kernel, R_OK) < 0 || access(v.image_initrd, R_OK) < 0)
		return ddtk_err_set(err, -ENOENT, "the %s image is missing (%s): build it with `ninja -C build`"
				    " or set images-dir", vm_role_name(v.role), v.image_initrd);
	if ((r = vmm_mkdir_p(m->instance_dir, 0755)) < 0)
		return ddtk_err_set(err, r, "cannot create %s: %s", m->instance_dir, strerror(-r));
	if ((r = stage_file(v.image_kernel, v.kernel)) < 0 || (r = stage_file(v.image_initrd, v.initrd)) < 0)
		return ddtk_err_set(err, r, "cannot stage the %s image in %s: %s", vm_role_name(v.role),
				    m->instance_dir, strerror(-r));
	if (v.role == VM_ROLE_DD && m->cfg->dd.disk.kind == DDTK_DEVICE_EMULATED &&
	    (r = disk_image_create(v.disk_image, m->cfg->dd.disk_size_mib)) < 0)
		return ddtk_err_set(err, r, "cannot create the disk image %s: %s", v.disk_image, strerror(-r));

	char *xml = NULL;
	if ((r = vm_xml_build(&v.spec, &xml, err)) < 0)
		return r;
	virDomainPtr dom = virDomainCreateXML(m->conn, xml, VIR_DOMAIN_NONE);
	free(xml);
	if (!dom)
		return ddtk_err_set(err, -EIO, "libvirt cannot start %s: %s", v.domain, virGetLastErrorMessage());
	virDomainFree(dom);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vmm_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Sets err to `why`, followed by the end of the console log. */
static int fail_with_console(struct vmm *m, const struct vmm_vm *v, int r, struct ddtk_err *err,
			     const char *why)
{
	char *tail = vmm_console_tail(m, v->vm, 25);
	ddtk_err_set(err, r, "%s\n--- last lines of its console log %s ---\n%s--- end of console log ---",
		     why, v->console_log, tail ? tail : "(empty)\n");
	free(tail);
	return r;
}

int vmm_wait_ready(struct vmm *m, const char *vm, unsigned timeout_s, struct ddtk_err *err)
{
	struct vmm_vm v;
	int r = vmm_vm_get(m, vm, &v, err);
	if (r < 0)
		return r;
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	struct agent_client *client = NULL;
	char why[512];

	for (;;) {
		if (!domain_running(m, v.domain)) {
			snprintf(why, sizeof(why), "%s (domain %s) stopped while booting", vm, v.domain);
			r = -ECHILD;
			break;
		}
		if (now_ms() >= deadline) {
			snprintf(why, sizeof(why), "%s (domain %s) did not answer within %u s of its start",
				 vm, v.domain, timeout_s);
			r = -ETIMEDOUT;
			break;
		}
		if (!client) {
			char *path = NULL;
			if (vmm_agent_socket(m, vm, &path, NULL) == 0)
				agent_client_connect(path, &client, NULL);
			free(path);
			if (!client) {
				vmm_sleep_ms(200);
				continue;
			}
		}
		/* One connection, a PING a second: the guest's agent answers once it has started. */
		if (agent_client_ping(client, 1000, NULL, 0, NULL) == 0) {
			agent_client_free(client);
			return 0;
		}
	}
	agent_client_free(client);
	return fail_with_console(m, &v, r, err, why);
}

int vmm_stop(struct vmm *m, const char *vm, struct ddtk_err *err)
{
	struct vmm_vm v;
	int r = vmm_vm_get(m, vm, &v, err);
	if (r < 0)
		return r;
	virDomainPtr dom = domain_lookup(m, v.domain);
	if (!dom)
		return 0;
	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0) {
		/* It may have stopped on its own in between. */
		if (virDomainIsActive(dom) == 1)
			r = ddtk_err_set(err, -EIO, "cannot stop %s: %s", v.domain, virGetLastErrorMessage());
	}
	virDomainFree(dom);
	return r;
}

const char *vmm_state(struct vmm *m, const char *vm)
{
	struct vmm_vm v;
	if (vmm_vm_get(m, vm, &v, NULL) < 0)
		return "unknown";
	int state = VIR_DOMAIN_NOSTATE;
	int r = domain_state(m, v.domain, &state);
	if (r == -ENOENT)
		return "not running";
	if (r < 0)
		return "unknown";
	switch ((virDomainState)state) {
	case VIR_DOMAIN_RUNNING: return "running";
	case VIR_DOMAIN_BLOCKED: return "blocked";
	case VIR_DOMAIN_PAUSED: return "paused";
	case VIR_DOMAIN_SHUTDOWN: return "shutting down";
	case VIR_DOMAIN_SHUTOFF: return "shut off";
	case VIR_DOMAIN_CRASHED: return "crashed";
	case VIR_DOMAIN_PMSUSPENDED: return "suspended";
	case VIR_DOMAIN_NOSTATE:
	case VIR_DOMAIN_LAST:
		break;
	}
	return "unknown";
}

int vmm_agent_socket(struct vmm *m, const char *vm, char **ret_path, struct ddtk_err *err)
{
	struct vmm_vm v;
	int r = vmm_vm_get(m, vm, &v, err);
	if (r < 0)
		return r;
	virDomainPtr dom = domain_lookup(m, v.domain);
	if (!dom)
		return ddtk_err_set(err, -ESRCH, "%s is not running (no domain %s)", vm, v.domain);
	char *xml = virDomainGetXMLDesc(dom, 0);
	virDomainFree(dom);
	if (!xml)
		return ddtk_err_set(err, -EIO, "cannot read the XML of %s: %s", v.domain, virGetLastErrorMessage());

	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, XML_PARSE_NONET);
	free(xml);
	if (!doc)
		return ddtk_err_set(err, -EBADMSG, "cannot parse the XML of %s", v.domain);
	r = ddtk_err_set(err, -ENOENT, "%s has no agent port %s", v.domain, AGENT_PORT_NAME);
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr obj = ctx ? xmlXPathEvalExpression(BAD_CAST "string(/domain/devices/channel"
				"[target/@name='" AGENT_PORT_NAME "']/source/@path)", ctx) : NULL;
	if (obj && obj->type == XPATH_STRING && obj->stringval && obj->stringval[0]) {
		*ret_path = strdup((const char *)obj->stringval);
		r = *ret_path ? 0 : ddtk_err_set(err, -ENOMEM, "out of memory");
	}
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return r;
}

static int purge_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int vmm_purge(struct vmm *m, struct ddtk_err *err)
{
	const struct ddtk_config *cfg = m->cfg;
	for (unsigned i = 0; i <= cfg->n_clients; i++) {
		const char *vm = i == cfg->n_clients ? "dd" : cfg->clients[i].name;
		const char *state = vmm_state(m, vm);
		if (strcmp(state, "not running") != 0 && strcmp(state, "shut off") != 0)
			return ddtk_err_set(err, -EBUSY, "%s still runs: stop it first", vm);
	}
	pid_t pid;
	if (vmm_daemon_pid(m, VMM_DAEMON_DDTKD, &pid) == 0)
		return ddtk_err_set(err, -EBUSY, "ddtkd (pid %d) still runs: stop it first", (int)pid);
	if (vmm_daemon_pid(m, VMM_DAEMON_BRIDGE, &pid) == 0)
		return ddtk_err_set(err, -EBUSY, "ddtk-bridge (pid %d) still runs: stop it first", (int)pid);
	if (nftw(m->instance_dir, purge_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return ddtk_err_set(err, -errno, "cannot remove %s: %s", m->instance_dir, strerror(errno));
	return 0;
}

char *vmm_console_tail(const struct vmm *m, const char *vm, unsigned lines)
{
	struct vmm_vm v;
	if (vmm_vm_get(m, vm, &v, NULL) < 0)
		return NULL;
	return vmm_file_tail(v.console_log, lines);
}

char *vmm_file_tail(const char *path, unsigned lines)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	/* Logs of a boot are small; keep only the last 64 KiB to bound the work. */
	enum { TAIL_MAX = 64 * 1024 };
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > TAIL_MAX)
		fseek(f, -TAIL_MAX, SEEK_END);
	else
		rewind(f);
	char *buf = malloc(TAIL_MAX + 2);
	size_t n = buf ? fread(buf, 1, TAIL_MAX, f) : 0;
	fclose(f);
	if (!buf || n == 0) {
		free(buf);
		return NULL;
	}
	if (buf[n - 1] != '\n')
		buf[n++] = '\n';
	buf[n] = '\0';
	/* Walk back over `lines` line ends. */
	size_t start = n - 1;
	unsigned seen = 0;
	while (start > 0) {
		if (buf[start - 1] == '\n' && ++seen == lines)
			break;
		start--;
	}
	memmove(buf, buf + start, n - start + 1);
	/* Serial output carries carriage returns and the odd control byte: keep it printable. */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
			*p = ' ';
	return buf;
}
