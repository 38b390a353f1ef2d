/* ddtk-bridge: the host daemon between client VMs and the driver domain (see bridge.h). Reads the
 * same ddtk.conf as the CLI; `ddtk up` starts it before the VMs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "vu-backend.h"

#define TICK_MS 100

int64_t bridge_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *device_state_name(enum bridge_device_state s)
{
	switch (s) {
	case BRIDGE_DEVICE_NONE: return "none";
	case BRIDGE_DEVICE_PLUGGING: return "plugging";
	case BRIDGE_DEVICE_PLUGGED: return "plugged";
	case BRIDGE_DEVICE_READY: return "ready";
	case BRIDGE_DEVICE_UNPLUGGING: return "unplugging";
	case _BRIDGE_DEVICE_LAST: break;
	}
	return "unknown";
}

static const char *dd_session_name(enum bridge_dd_session s)
{
	switch (s) {
	case BRIDGE_DD_SESSION_DOWN: return "down";
	case BRIDGE_DD_SESSION_STARTING: return "starting";
	case BRIDGE_DD_SESSION_RUNNING: return "running";
	case BRIDGE_DD_SESSION_STOPPING: return "stopping";
	case _BRIDGE_DD_SESSION_LAST: break;
	}
	return "unknown";
}

/* The status socket: each connection gets the state as JSON (for `ddtk status` and the tests). */
static void on_status(struct vu_watch *w, uint32_t events)
{
	struct bridge *b = vu_container_of(w, struct bridge, status_watch);
	char buf[16384];
	size_t pos = 0;
	(void)events;

	int fd = accept4(b->status_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
#define OUT(...) do { int n_ = snprintf(buf + pos, sizeof(buf) - pos, __VA_ARGS__); \
		      if (n_ > 0 && (size_t)n_ < sizeof(buf) - pos) pos += (size_t)n_; } while (0)
	OUT("{\"dd\": {\"connected\": %s, \"boot_id\": \"%016" PRIx64 "\", \"boots_seen\": %u, \"healthy\": %s, "
	    "\"state_device\": \"%s\", \"anchor_device\": \"%s\"},\n \"sessions\": [",
	    b->hello_acked ? "true" : "false", b->boot_id, b->dd_boots_seen, b->dd_healthy ? "true" : "false",
	    device_state_name(b->state_device), device_state_name(b->anchor_device));
	for (unsigned i = 0; i < b->nsessions; i++) {
		const struct bridge_session *s = &b->sessions[i];
		OUT("%s\n  {\"id\": %u, \"kind\": \"%s\", \"client\": \"%s\", \"client_connected\": %s, "
		    "\"device\": \"%s\", \"dd_session\": \"%s\", \"served\": %s, \"builds\": %u, \"plugs\": %u, "
		    "\"memory_files\": %u, \"kick_vector\": %u, \"kicks\": %" PRIu64 "}",
		    i ? "," : "", s->id, s->spec.kind == DDCTL_KIND_BLK ? "blk" : "net", s->client_name,
		    s->conn_fd >= 0 ? "true" : "false", device_state_name(s->device), dd_session_name(s->dd),
		    s->built ? "true" : "false", s->builds, s->plugs, s->nfiles, s->spec.kick_vector,
		    bridge_kicks_forwarded(b, s->spec.kick_vector, s->nqueues));
	}
	OUT("\n ]}\n");
#undef OUT
	/* A reader that does not read gets nothing rather than stalling the bridge. */
	(void)agent_write_all(fd, buf, pos, agent_now_ms() + 500);
	close(fd);
}

static void on_timer(struct vu_watch *w, uint32_t events)
{
	struct bridge *b = vu_container_of(w, struct bridge, timer_watch);
	uint64_t n;
	(void)events;

	if (read(b->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	bridge_dd_tick(b);
}

static int state_memfd(struct bridge *b)
{
	b->state_fd = memfd_create("ddtk-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (b->state_fd < 0)
		return -errno;
	if (ftruncate(b->state_fd, (off_t)DDCTL_STATE_SIZE) < 0)
		return -errno;
	/* Neither the DD's QEMU nor anyone else may shrink it under the mappings. */
	(void)fcntl(b->state_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	b->state_map = mmap(NULL, DDCTL_STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, b->state_fd, 0);
	return b->state_map == MAP_FAILED ? -errno : 0;
}

/* The sessions the configuration asks for: a disk and/or a NIC per client, served in the DD. */
static int topology_from_config(struct bridge *b)
{
	const struct ddtk_config *cfg = &b->cfg;

	for (unsigned i = 0; i < cfg->n_clients && i < DDCTL_CLIENTS_MAX; i++) {
		const struct ddtk_client_config *c = &cfg->clients[i];
		for (int kind = DDCTL_KIND_BLK; kind <= DDCTL_KIND_NET; kind++) {
			struct ddctl_session_spec spec = { .kind = (enum ddctl_session_kind)kind };
			char path[DDTK_SOCKET_PATH_MAX];
			if (kind == DDCTL_KIND_BLK) {
				if (ddtk_config_volume(cfg, i, &spec.offset, &spec.size) < 0)
					continue;
				spec.session = ddctl_session_blk(i);
				spec.read_only = c->volume_read_only;
				spec.queues = c->volume_queues;
			} else {
				if (!c->dd_nic)
					continue;
				struct ddtk_mac mac;
				ddtk_config_client_mac(cfg, c, &mac);
				memcpy(spec.mac, mac.bytes, sizeof(spec.mac));
				spec.session = ddctl_session_net(i);
				spec.queues = c->dd_nic_queues;
			}
			snprintf(spec.name, sizeof(spec.name), "%s", c->name);
			spec.kick_vector = ddtk_config_kick_vectors(cfg, spec.session);
			int r = kind == DDCTL_KIND_BLK ? ddtk_bridge_blk_socket(cfg, i, path) : ddtk_bridge_net_socket(cfg, i, path);
			if (r < 0)
				return r;
			struct bridge_session *s = &b->sessions[b->nsessions++];
			s->id = spec.session;
			s->spec = spec;
			s->nqueues = kind == DDCTL_KIND_BLK ? spec.queues : 2 * spec.queues;
			snprintf(s->client_name, sizeof(s->client_name), "%s", c->name);
			snprintf(s->socket_path, sizeof(s->socket_path), "%s", path);
			b->by_id[s->id] = s;
		}
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ddtk-bridge [-c FILE] [-i INSTANCE]\n"
		"\n"
		"The host side of ddtk's driver domain: owns the clients' vhost-user sockets (the disks\n"
		"and NICs ddtk.conf gives them from the DD), plugs one ivshmem device per device into\n"
		"the DD and has the back-ends there serve it; when the DD restarts the clients stay\n"
		"connected and their devices are handed to the new DD. `ddtk up` starts it.\n"
		"\n"
		"  -c, --config FILE     configuration (default: $DDTK_CONFIG, else the built-in default)\n"
		"  -i, --instance NAME   override [ddtk] instance\n"
		"      --accel MODE      override [ddtk] accel (checked, otherwise unused)\n"
		"  -h, --help            this text\n"
		"\n"
		"Sockets, all in STATE-DIR/INSTANCE/bridge/: CLIENT-blk.sock and CLIENT-net.sock (the\n"
		"clients' vhost-user devices), ivshmem-N.sock (the DD's devices), bridge.sock (status as\n"
		"JSON: socat -u UNIX-CONNECT:PATH -).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "accel", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct bridge bridge;
	struct bridge *b = &bridge;
	const char *instance = NULL, *accel = NULL;
	struct ddtk_err err = { 0 };
	char path[DDTK_STATE_PATH_MAX], status_path[DDTK_SOCKET_PATH_MAX];
	int c, r;

	b->config_path = getenv("DDTK_CONFIG");
	while ((c = getopt_long(argc, argv, "c:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': b->config_path = optarg; break;
		case 'i': instance = optarg; break;
		case 'A': accel = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (ddtk_config_daemon(&b->cfg, b->config_path, instance, accel, &err) < 0) {
		fprintf(stderr, "ddtk-bridge: %s\n", err.msg);
		return 1;
	}
	if (ddtk_bridge_dir(&b->cfg, b->dir) < 0 || ddtk_bridge_status_socket(&b->cfg, status_path) < 0) {
		fprintf(stderr, "ddtk-bridge: the state folder's path is too long\n");
		return 1;
	}
	/* Names and the bridge folder were checked for length above and by the configuration. */
	if (snprintf(b->dd_domain, sizeof(b->dd_domain), "ddtk-%s-dd", b->cfg.instance) >= (int)sizeof(b->dd_domain))
		return 1;
	/* STATE-DIR/INSTANCE: the bridge folder's parent. */
	memcpy(path, b->dir, sizeof(path));
	*strrchr(path, '/') = '\0';
	(void)mkdir(b->cfg.state_dir, 0755);
	(void)mkdir(path, 0711);
	if (mkdir(b->dir, 0711) < 0 && errno != EEXIST) {
		fprintf(stderr, "ddtk-bridge: cannot create %s: %s\n", b->dir, strerror(errno));
		return 1;
	}
	/* The QEMU user must reach the sockets inside (the sockets themselves are group kvm). */
	(void)chmod(b->dir, 0711);

	b->ctl_fd = b->status_fd = b->timer_fd = b->state_fd = -1;
	r = vu_loop_init(&b->loop);
	if (r == 0)
		r = vu_signals_setup(&b->loop);
	if (r == 0)
		r = state_memfd(b);
	if (r == 0)
		r = topology_from_config(b);
	if (r == 0) {
		/* ddtk_config_check kept the total in range. */
		unsigned kicks = ddtk_config_kick_vectors(&b->cfg, DDCTL_SESSIONS_MAX + 1);
		r = bridge_kicks_start(b, kicks ? kicks : 1);
	}
	for (unsigned i = 0; r == 0 && i < b->nsessions; i++)
		r = bridge_session_init(b, &b->sessions[i]);
	if (r == 0) {
		char iv_path[DDTK_SOCKET_PATH_MAX];
		r = ddtk_bridge_ivshmem_socket(&b->cfg, DDCTL_STATE_IVPOSITION, iv_path);
		if (r == 0)
			r = bridge_ivshmem_init(b, &b->state_iv, DDCTL_STATE_IVPOSITION, iv_path);
		if (r == 0)
			r = ddtk_bridge_ivshmem_socket(&b->cfg, DDCTL_MEM_ANCHOR_IVPOSITION, iv_path);
		if (r == 0)
			r = bridge_ivshmem_init(b, &b->anchor_iv, DDCTL_MEM_ANCHOR_IVPOSITION, iv_path);
		b->anchor_iv.mem_only = true;
	}
	if (r < 0) {
		fprintf(stderr, "ddtk-bridge: cannot set up: %s\n", strerror(-r));
		return 1;
	}
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L }, .it_value = { 0, TICK_MS * 1000000L } };
	if (b->timer_fd < 0 || timerfd_settime(b->timer_fd, 0, &its, NULL) < 0 ||
	    vu_loop_add(&b->loop, &b->timer_watch, b->timer_fd, EPOLLIN, on_timer) < 0 ||
	    bridge_worker_start(b) < 0) {
		fprintf(stderr, "ddtk-bridge: cannot set up: %s\n", strerror(errno));
		return 1;
	}
	/* The status socket last: its existence tells `ddtk up` that the clients' sockets listen. */
	r = vu_socket_listen(status_path, &b->status_fd);
	if (r == 0)
		r = vu_loop_add(&b->loop, &b->status_watch, b->status_fd, EPOLLIN, on_status);
	if (r < 0) {
		fprintf(stderr, "ddtk-bridge: cannot listen on %s: %s\n", status_path, strerror(-r));
		return 1;
	}
	fprintf(stderr, "ddtk-bridge: instance %s: %u sessions, waiting for the driver domain %s\n", b->cfg.instance,
		b->nsessions, b->dd_domain);

	while (!b->loop.stop) {
		r = vu_loop_run_once(&b->loop, -1);
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "ddtk-bridge: event loop: %s\n", strerror(-r));
			break;
		}
	}
	fprintf(stderr, "ddtk-bridge: stopping\n");
	b->stop = true;
	bridge_worker_stop(b);
	for (unsigned i = 0; i < b->nsessions; i++)
		bridge_session_close(&b->sessions[i]);
	bridge_ivshmem_close(&b->state_iv);
	bridge_ivshmem_close(&b->anchor_iv);
	bridge_kicks_stop(b);
	unlink(status_path);
	return 0;
}
