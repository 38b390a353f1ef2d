/* ddtk-agent: the driver domain's control agent. It serves ddtk-bridge over the virtio-serial port
 * org.ddtk.control.0: runs the back-ends (ddtk-blk, ddtk-net) for the topology the bridge gives,
 * relays each session's vhost-user messages to them, binds the ivshmem devices the bridge plugs in,
 * and pets the watchdog while every back-end makes progress (docs/ddtk-agent.md). */
#include "agent.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

#define AGENT_DEFAULT_POLL_US 50
#define AGENT_DEFAULT_WATCHDOG_TIMEOUT_S 10
#define AGENT_DEFAULT_HELLO_TIMEOUT_MS 20000

void agent_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	va_start(ap, fmt);
	/* The analyzer of clang 14 misreads va_start here (a known false positive). */
	vsnprintf(line, sizeof(line), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	/* One write per line: the console interleaves whole lines of the back-ends and the kernel. */
	fprintf(stderr, "[%5lld.%03ld] ddtk-agent: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000, line);
}

/* Random, new on every start: the bridge tells a restarted DD by it. Uniqueness is what matters,
 * not secrecy, so an early boot without entropy does not wait for it. */
static uint64_t boot_id_new(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id) &&
	    getrandom(&id, sizeof(id), GRND_INSECURE) != (ssize_t)sizeof(id)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		id = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 48;
	}
	return id;
}

static int signals_setup(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void on_signal(struct agent *a, void *ctx, uint64_t tag, short revents)
{
	struct signalfd_siginfo si;

	while (read(a->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			backend_reap(a);
		} else {
			agent_log("signal %u: stopping the back-ends and exiting (the watchdog stays armed)", si.ssi_signo);
			a->quit = true;
		}
	}
}

static void on_broker(struct agent *a, void *ctx, uint64_t tag, short revents)
{
	vfio_broker_handle(&a->broker);
}

static int agent_run(struct agent *a)
{
	static struct loop l;

	while (!a->quit) {
		int64_t now = agent_now_ms();
		loop_reset(&l);
		port_timers(a, now);
		if (a->opt.devices)
			devices_timers(a, &l, now);
		backend_timers(a, &l, now);
		session_timers(a, &l, now);
		control_timers(a, &l, now);
		health_timers(a, &l, now);

		loop_add(&l, a->signal_fd, POLLIN, on_signal, NULL, 0);
		if (a->broker_up)
			loop_add(&l, vfio_broker_fd(&a->broker), POLLIN, on_broker, NULL, 0);
		port_prepare(a, &l, now);
		session_prepare(a, &l);
		health_prepare(a, &l);
		int r = loop_run_once(&l, a);
		if (r < 0)
			return r;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: ddtk-agent [OPTIONS]\n"
"The driver domain's control agent: serves ddtk-bridge on a virtio-serial port, runs ddtk-blk and\n"
"ddtk-net for the sessions the bridge configures, relays their vhost-user messages, binds the\n"
"ivshmem devices to vfio-pci and pets the watchdog while the back-ends make progress.\n"
"\n"
"  --port=NAME              the virtio-serial port (default " DDCTL_PORT_NAME ")\n"
"  --disk=PATH              the disk whose byte ranges are the clients' volumes (default /dev/sda)\n"
"  --uplink=IFNAME          ddtk-net's uplink (default: the interface whose driver is e1000)\n"
"  --blk=PATH --net=PATH    the back-ends (default /usr/bin/ddtk-blk, /usr/bin/ddtk-net)\n"
"  --poll-us=N              the back-ends' --poll-us (default %u)\n"
"  --watchdog=PATH          the watchdog device, or 'none' (default /dev/watchdog)\n"
"  --watchdog-timeout=S     its timeout in seconds (default %u)\n"
"  --hello-timeout-ms=N     how long HELLO waits for the back-ends' sockets (default %u)\n"
"For tests outside a driver domain:\n"
"  --port=PATH              a device path instead of a port name\n"
"  --run-dir=DIR            sockets and links in DIR instead of " DDCTL_RUN_DIR "\n"
"  --no-devices             leave PCI devices alone (no ivshmem binding)\n"
"For people in the DD (no socat there):\n"
"  --stats=SOCKET           print what a back-end's stats socket answers, and exit\n"
"                           (" DDCTL_RUN_DIR "/blk.stats, " DDCTL_RUN_DIR "/net.stats)\n",
		(unsigned)AGENT_DEFAULT_POLL_US, (unsigned)AGENT_DEFAULT_WATCHDOG_TIMEOUT_S,
		(unsigned)AGENT_DEFAULT_HELLO_TIMEOUT_MS);
}

static int parse_unsigned(const char *opt, const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		fprintf(stderr, "ddtk-agent: --%s: a number from %u to %u\n", opt, min, max);
		return -EINVAL;
	}
	*ret = (unsigned)v;
	return 0;
}

/* --stats: one connection to a back-end's stats socket, its answer to stdout. */
static int print_stats(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096];
	ssize_t n;
	int fd;

	size_t len = strlen(path);

	if (len >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ddtk-agent: %s: path too long\n", path);
		return 1;
	}
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "ddtk-agent: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return 1;
	close(fd);
	return n < 0 ? 1 : 0;
}

static int parse_options(int argc, char **argv, struct agent_options *o)
{
	enum {
		OPT_PORT = 256, OPT_DISK, OPT_UPLINK, OPT_BLK, OPT_NET, OPT_POLL, OPT_WD, OPT_WD_TIMEOUT, OPT_HELLO,
		OPT_RUN_DIR, OPT_NO_DEVICES, OPT_STATS,
	};
	static const struct option opts[] = {
		{ "port", required_argument, NULL, OPT_PORT },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "uplink", required_argument, NULL, OPT_UPLINK },
		{ "blk", required_argument, NULL, OPT_BLK },
		{ "net", required_argument, NULL, OPT_NET },
		{ "poll-us", required_argument, NULL, OPT_POLL },
		{ "watchdog", required_argument, NULL, OPT_WD },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "watchdog-timeout", required_argument, NULL, OPT_WD_TIMEOUT },
		{ "hello-timeout-ms", required_argument, NULL, OPT_HELLO },
		{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
		{ "no-devices", no_argument, NULL, OPT_NO_DEVICES },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;

	*o = (struct agent_options){
		.port_name = DDCTL_PORT_NAME,
		.backend = {
			.run_dir = DDCTL_RUN_DIR,
			.program = { [BACKEND_BLK] = "/usr/bin/ddtk-blk", [BACKEND_NET] = "/usr/bin/ddtk-net" },
			.disk = "/dev/sda",
			.uplink = "",
			.poll_us = AGENT_DEFAULT_POLL_US,
		},
		.devices = true,
		.watchdog_path = "/dev/watchdog",
		.watchdog_timeout_s = AGENT_DEFAULT_WATCHDOG_TIMEOUT_S,
		.hello_timeout_ms = AGENT_DEFAULT_HELLO_TIMEOUT_MS,
	};
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case OPT_PORT: o->port_name = optarg; break;
		case OPT_DISK: o->backend.disk = optarg; break;
		case OPT_UPLINK: o->uplink_option = optarg; break;
		case OPT_BLK: o->backend.program[BACKEND_BLK] = optarg; break;
		case OPT_NET: o->backend.program[BACKEND_NET] = optarg; break;
		case OPT_POLL:
			if (parse_unsigned("poll-us", optarg, 0, 1000000, &o->backend.poll_us) < 0)
				return -EINVAL;
			break;
		case OPT_WD: o->watchdog_path = strcmp(optarg, "none") ? optarg : NULL; break;
		case OPT_WD_TIMEOUT:
			if (parse_unsigned("watchdog-timeout", optarg, 2, 600, &o->watchdog_timeout_s) < 0)
				return -EINVAL;
			break;
		case OPT_HELLO:
			if (parse_unsigned("hello-timeout-ms", optarg, 100, 600000, &o->hello_timeout_ms) < 0)
				return -EINVAL;
			break;
		case OPT_RUN_DIR: o->backend.run_dir = optarg; break;
		case OPT_NO_DEVICES: o->devices = false; break;
		case OPT_STATS: exit(print_stats(optarg));
		case 'h': usage(stdout); exit(0);
		case 'V': printf("ddtk-agent %s\n", DDTK_VERSION); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -EINVAL;
	}
	/* getopt gives every required argument; the analyzer does not know that. */
	if (!o->backend.disk || !o->backend.run_dir)
		return -EINVAL;
	/* These go into a back-end's key=value,... list. */
	if (strchr(o->backend.disk, ',') || (o->uplink_option && strchr(o->uplink_option, ',')) ||
	    strchr(o->backend.run_dir, ',')) {
		fprintf(stderr, "ddtk-agent: --disk, --uplink and --run-dir cannot contain ','\n");
		return -EINVAL;
	}
	if (o->backend.run_dir[0] != '/' || strlen(o->backend.run_dir) > BACKEND_RUN_DIR_MAX) {
		fprintf(stderr, "ddtk-agent: --run-dir: an absolute path of at most %d characters\n", BACKEND_RUN_DIR_MAX);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct agent a;

	if (parse_options(argc, argv, &a.opt) < 0)
		return 2;
	/* Line-buffered even on a console that is not a terminal. */
	setvbuf(stderr, NULL, _IOLBF, 0);
	a.signal_fd = signals_setup();
	if (a.signal_fd < 0) {
		fprintf(stderr, "ddtk-agent: signalfd: %s\n", strerror(-a.signal_fd));
		return 1;
	}
	char ivshmem_dir[BACKEND_RUN_DIR_MAX + 16];
	snprintf(ivshmem_dir, sizeof(ivshmem_dir), "%s/ivshmem", a.opt.backend.run_dir);
	if ((mkdir(a.opt.backend.run_dir, 0755) < 0 && errno != EEXIST) || (mkdir(ivshmem_dir, 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "ddtk-agent: mkdir %s: %s\n", ivshmem_dir, strerror(errno));
		return 1;
	}
	char broker_path[BACKEND_RUN_DIR_MAX + 16];
	snprintf(broker_path, sizeof(broker_path), "%s/vfio.sock", a.opt.backend.run_dir);
	int br = vfio_broker_init(&a.broker, broker_path);
	a.broker_up = br == 0;
	if (br < 0)
		fprintf(stderr, "ddtk-agent: VFIO broker on %s: %s\n", broker_path, a.broker.error);
	a.boot_id = boot_id_new();
	a.healthy = true;
	port_init(&a.port);
	session_init_all(&a);
	backend_init_all(&a);
	agent_log("%s starting, boot id %016llx", DDTK_VERSION, (unsigned long long)a.boot_id);
	(void)watchdog_open(&a);

	int r = agent_run(&a);
	if (r < 0)
		agent_log("event loop: %s", strerror(-r));
	backend_stop_all(&a);
	vfio_broker_close(&a.broker);
	/* The watchdog fd is left open to the exit, without the magic close: the DD is reset when the
	 * timeout runs out, as it must be when its agent is gone. */
	return r < 0 ? 1 : 0;
}
