/* ddtk: the command line of the driver-domain toolkit. Brings an instance's VMs up and down through
 * libvirt, shows their state, runs commands inside them and prints their generated XML and MACs. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "config.h"
#include "ddctl-proto.h"
#include "ddtk-config.h"
#include "domxml.h"
#include "vmm.h"

/* Exit statuses of `ddtk exec` besides the command's own (as timeout(1) and env(1) use them). */
#define EXIT_EXEC_TIMEOUT 124
#define EXIT_EXEC_FAILED 125
#define DAEMON_STATUS_TIMEOUT_MS 2000

/* What of the command line ddtk-bridge and ddtkd get too. */
struct cli {
	char config_path[PATH_MAX];  /* absolute; "" when the built-in default is used */
	const char *accel;           /* --accel, or NULL */
	const char *bridge;          /* --bridge, or NULL */
};

static const char *daemon_name(enum vmm_daemon which)
{
	return which == VMM_DAEMON_BRIDGE ? "ddtk-bridge" : "ddtkd";
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ddtk [-c FILE] [-i INSTANCE] [--accel auto|kvm|tcg] [--bridge PATH] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  up                      start ddtk-bridge when a client has a volume or dd-nic, then the\n"
		"                          driver domain and every client; wait until each answers; then\n"
		"                          ddtkd, which restarts the DD when it hangs or dies\n"
		"  down [--purge]          stop ddtkd, every VM of the instance, then ddtk-bridge; --purge\n"
		"                          also removes its state folder (the DD's disk image, the logs)\n"
		"  start VM                start one VM (dd or a client's name) and wait until it answers\n"
		"  stop VM                 stop one VM (ddtkd leaves a DD stopped so alone until it starts)\n"
		"  restart VM              stop VM and start it again (a hung driver domain, say)\n"
		"  status                  the instance's VMs and their state; ddtk-bridge's and ddtkd's,\n"
		"                          with their status\n"
		"  exec [-t SEC] VM -- CMD run CMD with sh -c in VM; prints its output, exits with its status\n"
		"                          (124: timed out, 125: could not run it)\n"
		"  log [-n LINES] VM       the end of VM's console log\n"
		"  xml VM                  the libvirt domain XML ddtk generates for VM\n"
		"  xml --ivshmem S         the device XML ddtk-bridge hot-plugs into the DD for session S\n"
		"                          (0: the state device; 2i+1: client i's volume, 2i+2: its dd-nic)\n"
		"  mac CLIENT              the MAC of CLIENT's NIC (its mac =, else the one derived from\n"
		"                          the instance and client names)\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE       configuration (default $DDTK_CONFIG, else %s/ddtk.conf if it\n"
		"                          exists, else the built-in default topology: dd, clients a and b)\n"
		"  -i, --instance NAME     override [ddtk] instance\n"
		"      --accel MODE        override [ddtk] accel\n"
		"      --bridge PATH       the ddtk-bridge to run (default $DDTK_BRIDGE, else the one next\n"
		"                          to this ddtk); ddtkd: $DDTK_DDTKD, else the one next to ddtk\n"
		"  -h, --help              this text;  -V, --version  the version\n",
		DDTK_SYSCONFDIR);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const struct ddtk_err *err)
{
	fprintf(stderr, "ddtk: %s\n", err->msg);
	return 1;
}

static const char *vm_name(const struct ddtk_config *cfg, unsigned i)
{
	return i == 0 ? "dd" : cfg->clients[i - 1].name;
}

/* The DD is down on purpose while the hold file exists: ddtkd does not restart it then. */
static int dd_hold(const struct vmm *m, bool hold)
{
	char path[DDTK_STATE_PATH_MAX];
	if (ddtk_dd_hold_file(m->cfg, path) < 0)
		return -ENAMETOOLONG;
	if (!hold)
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	int r = vmm_mkdir_p(m->instance_dir, 0755);
	if (r < 0)
		return r;
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "stopped by ddtk (pid %d)\n", (int)getpid());
	return fclose(f) < 0 ? -errno : 0;
}

static int cmd_stop(struct vmm *m, const char *vm)
{
	struct ddtk_err err;
	bool dd = strcmp(vm, "dd") == 0;
	int r;
	if (dd && (r = dd_hold(m, true)) < 0) {
		fprintf(stderr, "ddtk: cannot write the DD's hold file in %s: %s\n", m->instance_dir, strerror(-r));
		return 1;
	}
	if (vmm_stop(m, vm, &err) < 0) {
		if (dd)
			dd_hold(m, false); /* it still runs: still ddtkd's */
		return fail(&err);
	}
	return 0;
}

static int cmd_start(struct vmm *m, const char *vm)
{
	struct ddtk_err err;
	double t0 = now_s();
	printf("starting %s (domain ddtk-%s-%s, %s)\n", vm, m->cfg->instance, vm,
	       m->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
	/* The DD stays held while this command watches its boot (ddtkd keeps away from a DD that
	 * fails to come up; this command reports it); it is ddtkd's once it answers. */
	bool dd = strcmp(vm, "dd") == 0;
	if (dd)
		dd_hold(m, true);
	int r = vmm_start(m, vm, &err);
	if (r < 0) {
		if (dd && r == -EEXIST)
			dd_hold(m, false); /* it runs already, and stays ddtkd's */
		return fail(&err);
	}
	if (vmm_wait_ready(m, vm, m->cfg->boot_timeout_s, &err) < 0) {
		fail(&err);
		/* A DD that does not come up stays down (held): ddtkd does not try it again. */
		vmm_stop(m, vm, NULL);
		return 1;
	}
	if (dd)
		dd_hold(m, false);
	printf("%s is up (agent answered %.1f s after start)\n", vm, now_s() - t0);
	return 0;
}

/* The bridge: --bridge, else $DDTK_BRIDGE; ddtkd: $DDTK_DDTKD; else the program in the folder of
 * this very ddtk. */
static int daemon_binary(const struct cli *cli, enum vmm_daemon which, char buf[static PATH_MAX])
{
	const char *path = which == VMM_DAEMON_BRIDGE ? (cli->bridge ? cli->bridge : getenv("DDTK_BRIDGE")) :
			   getenv("DDTK_DDTKD");
	snprintf(buf, PATH_MAX, "(the folder of ddtk unknown)");
	if (path && path[0]) {
		snprintf(buf, PATH_MAX, "%s", path);
		return 0;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -errno;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	if (snprintf(buf, PATH_MAX, "%s/%s", self, daemon_name(which)) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Starts a daemon with this command line's configuration, instance and accelerator; *ret_started
 * tells whether this call started it (false when one already ran). */
static int daemon_start(struct vmm *m, const struct cli *cli, enum vmm_daemon which, bool *ret_started)
{
	char binary[PATH_MAX], log_file[DDTK_STATE_PATH_MAX];
	const char *name = daemon_name(which);
	struct ddtk_err err;
	pid_t pid;
	*ret_started = false;
	if (daemon_binary(cli, which, binary) < 0 || access(binary, X_OK) < 0) {
		if (which == VMM_DAEMON_BRIDGE)
			fprintf(stderr, "ddtk: no ddtk-bridge at %s; a client has a volume or dd-nic, which it serves "
				"(build it, or give --bridge PATH or DDTK_BRIDGE)\n", binary);
		else
			fprintf(stderr, "ddtk: no ddtkd at %s; it supervises the driver domain (build it, give "
				"DDTK_DDTKD, or set [driver-domain] supervise = no)\n", binary);
		return -ENOENT;
	}
	char *argv[8];
	size_t n = 0;
	argv[n++] = binary;
	/* Without a file ddtk runs on the built-in default, which the daemons know too. */
	if (cli->config_path[0]) {
		argv[n++] = (char *)"-c";
		argv[n++] = (char *)cli->config_path;
	}
	argv[n++] = (char *)"-i";
	argv[n++] = (char *)m->cfg->instance;
	if (cli->accel) {
		argv[n++] = (char *)"--accel";
		argv[n++] = (char *)cli->accel;
	}
	argv[n] = NULL;
	if (which == VMM_DAEMON_BRIDGE)
		ddtk_bridge_log_file(m->cfg, log_file);
	else
		ddtk_ddtkd_log_file(m->cfg, log_file);
	printf("starting %s (%s, log %s)\n", name, binary, log_file);
	int r = vmm_daemon_start(m, which, argv, &pid, &err);
	if (r == -EEXIST) {
		printf("%s already runs (pid %d)\n", name, (int)pid);
		return 0;
	}
	if (r < 0) {
		fail(&err);
		return r;
	}
	printf("%s is up (pid %d)\n", name, (int)pid);
	*ret_started = true;
	return 0;
}

static int daemon_stop(struct vmm *m, enum vmm_daemon which)
{
	struct ddtk_err err;
	pid_t pid;
	if (vmm_daemon_pid(m, which, &pid) == 0)
		printf("stopping %s (pid %d)\n", daemon_name(which), (int)pid);
	return vmm_daemon_stop(m, which, &err) < 0 ? fail(&err) : 0;
}

static int cmd_up(struct vmm *m, const struct cli *cli)
{
	const struct ddtk_config *cfg = m->cfg;
	struct ddtk_err err;
	unsigned n = cfg->n_clients + 1;
	bool started[DDTK_CLIENTS_MAX + 1] = { false };
	bool bridge_started = false;
	double t0 = now_s();
	/* The bridge first: the clients' QEMUs connect to its sockets as they start. */
	if (ddtk_config_uses_bridge(cfg) && daemon_start(m, cli, VMM_DAEMON_BRIDGE, &bridge_started) < 0)
		return 1;
	/* Held while `up` watches the boot (a ddtkd of an earlier `up` keeps away). */
	dd_hold(m, true);
	/* Start all, then wait for all: the guests boot side by side. */
	for (unsigned i = 0; i < n; i++) {
		printf("starting %s (domain ddtk-%s-%s, %s)\n", vm_name(cfg, i), cfg->instance,
		       vm_name(cfg, i), m->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
		if (vmm_start(m, vm_name(cfg, i), &err) < 0) {
			fail(&err);
			goto undo;
		}
		started[i] = true;
	}
	for (unsigned i = 0; i < n; i++) {
		if (vmm_wait_ready(m, vm_name(cfg, i), cfg->boot_timeout_s, &err) < 0) {
			fail(&err);
			goto undo;
		}
		printf("%s is up (%.1f s)\n", vm_name(cfg, i), now_s() - t0);
	}
	/* The supervisor last: the DD's boot is `up`'s to watch, its later life ddtkd's. */
	dd_hold(m, false);
	bool ddtkd_started = false;
	if (cfg->dd.supervise && daemon_start(m, cli, VMM_DAEMON_DDTKD, &ddtkd_started) < 0)
		goto undo;
	return 0;
undo:
	/* Only what this command started: VMs that ran before keep running. */
	fprintf(stderr, "ddtk: stopping the VMs this command started; console logs stay in %s\n",
		m->instance_dir);
	for (unsigned i = n; i-- > 0;)
		if (started[i])
			vmm_stop(m, vm_name(cfg, i), NULL);
	if (bridge_started)
		daemon_stop(m, VMM_DAEMON_BRIDGE);
	return 1;
}

static int cmd_down(struct vmm *m, bool purge)
{
	struct ddtk_err err;
	int ret = 0;
	/* The supervisor first, or it would start the DD again; the hold as well, should a ddtkd run
	 * that its pid file does not name. */
	dd_hold(m, true);
	if (daemon_stop(m, VMM_DAEMON_DDTKD) != 0)
		ret = 1;
	/* Clients first: they use the driver domain's devices. */
	for (unsigned i = m->cfg->n_clients + 1; i-- > 0;) {
		const char *vm = vm_name(m->cfg, i);
		if (vmm_stop(m, vm, &err) < 0)
			ret = fail(&err);
	}
	/* After the VMs: the clients' QEMUs would reconnect to a bridge stopped under them. */
	if (daemon_stop(m, VMM_DAEMON_BRIDGE) != 0)
		ret = 1;
	if (purge && ret == 0 && vmm_purge(m, &err) < 0)
		ret = fail(&err);
	return ret;
}

/* A line for a daemon (when it runs or should run), and what its status socket answers. */
static void daemon_status(struct vmm *m, enum vmm_daemon which, bool expected, const char *label)
{
	const char *name = daemon_name(which);
	pid_t pid;
	bool running = vmm_daemon_pid(m, which, &pid) == 0;
	if (!running && !expected)
		return;
	char state[64] = "not running";
	if (running)
		snprintf(state, sizeof(state), "running (pid %d)", (int)pid);
	printf("%-12s %-8s %-32s %s\n", label, "host", name, state);
	if (!running)
		return;
	struct ddtk_err err;
	char *json = NULL;
	if (vmm_daemon_status(m, which, DAEMON_STATUS_TIMEOUT_MS, &json, &err) == 0) {
		size_t len = strlen(json);
		printf("%s status:\n%s%s", name, json, len && json[len - 1] == '\n' ? "" : "\n");
	} else {
		printf("%s status: %s\n", name, err.msg);
	}
	free(json);
}

static int cmd_status(struct vmm *m)
{
	printf("instance %s (accel %s, state %s)\n", m->cfg->instance, vm_accel_name(m->accel), m->instance_dir);
	printf("%-12s %-8s %-32s %s\n", "VM", "ROLE", "DOMAIN", "STATE");
	for (unsigned i = 0; i <= m->cfg->n_clients; i++) {
		const char *vm = vm_name(m->cfg, i);
		char domain[2 * DDTK_NAME_MAX + 16];
		snprintf(domain, sizeof(domain), "ddtk-%s-%s", m->cfg->instance, vm);
		printf("%-12s %-8s %-32s %s\n", vm, i == 0 ? "dd" : "client", domain, vmm_state(m, vm));
	}
	daemon_status(m, VMM_DAEMON_BRIDGE, ddtk_config_uses_bridge(m->cfg), "bridge");
	daemon_status(m, VMM_DAEMON_DDTKD, m->cfg->dd.supervise, "supervisor");
	return 0;
}

static int cmd_restart(struct vmm *m, const char *vm)
{
	printf("stopping %s\n", vm);
	if (cmd_stop(m, vm) != 0)
		return 1;
	return cmd_start(m, vm);
}

static int cmd_exec(struct vmm *m, int argc, char **argv)
{
	double timeout_s = 0;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "+t:")) != -1) {
		if (c != 't') {
			usage(stderr);
			return 2;
		}
		char *end;
		timeout_s = strtod(optarg, &end);
		if (*end || timeout_s < 0 || timeout_s > 24 * 3600) {
			fprintf(stderr, "ddtk: exec: invalid timeout '%s'\n", optarg);
			return 2;
		}
	}
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (argc - optind < 2) {
		fprintf(stderr, "ddtk: exec needs a VM and a command\n");
		return 2;
	}
	const char *vm = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	/* Words are joined with spaces, as ssh does: quote for the guest's shell as for ssh. */
	size_t len = 1;
	for (int i = optind; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *command = calloc(1, len);
	if (!command)
		return EXIT_EXEC_FAILED;
	char *end = command;
	for (int i = optind; i < argc; i++) {
		end = stpcpy(end, argv[i]);
		if (i + 1 < argc)
			*end++ = ' ';
	}

	struct ddtk_err err;
	char *path = NULL;
	struct agent_client *client = NULL;
	struct agent_result res;
	int status = EXIT_EXEC_FAILED;
	bool ok = vmm_agent_socket(m, vm, &path, &err) == 0 && agent_client_connect(path, &client, &err) == 0 &&
		  agent_client_ping(client, 10000, NULL, 0, &err) == 0 &&
		  agent_client_exec(client, command, (uint32_t)(timeout_s * 1000), STDOUT_FILENO,
				    STDERR_FILENO, &res, &err) == 0;
	if (!ok) {
		fprintf(stderr, "ddtk: exec %s: %s\n", vm, err.msg);
	} else {
		status = agent_result_status(&res);
		if (res.kind == AGENT_EXIT_TIMEOUT)
			fprintf(stderr, "ddtk: exec %s: killed after its timeout of %g s\n", vm, timeout_s);
	}
	agent_client_free(client);
	free(path);
	free(command);
	return status;
}

static int cmd_log(struct vmm *m, int argc, char **argv)
{
	long lines = 50;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "+n:")) != -1) {
		if (c != 'n' || (lines = strtol(optarg, NULL, 10)) <= 0) {
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	struct vmm_vm v;
	struct ddtk_err err;
	if (vmm_vm_get(m, argv[optind], &v, &err) < 0)
		return fail(&err);
	char *tail = vmm_console_tail(m, argv[optind], (unsigned)lines);
	if (!tail) {
		fprintf(stderr, "ddtk: no console log at %s\n", v.console_log);
		return 1;
	}
	fputs(tail, stdout);
	free(tail);
	return 0;
}

static int cmd_xml(struct vmm *m, const char *vm)
{
	struct ddtk_err err;
	char *xml = NULL;
	if (vmm_xml(m, vm, &xml, &err) < 0)
		return fail(&err);
	fputs(xml, stdout);
	free(xml);
	return 0;
}

/* The <shmem> device of session S as ddtk-bridge plugs it: its vectors are one per virtqueue of the
 * session's device (a volume's queues; a dd-nic's queue pairs), for the state device (S = 0) one
 * per virtqueue of every session (the kicks). */
static int cmd_xml_ivshmem(const struct ddtk_config *cfg, const char *arg)
{
	char *end, path[DDTK_SOCKET_PATH_MAX];
	unsigned long session = strtoul(arg, &end, 10);
	if (!arg[0] || *end || session > DDCTL_SESSIONS_MAX) {
		fprintf(stderr, "ddtk: xml --ivshmem: session must be 0 to %d, not '%s'\n", DDCTL_SESSIONS_MAX, arg);
		return 2;
	}
	unsigned vectors = ddtk_config_kick_vectors(cfg, DDCTL_SESSIONS_MAX + 1);
	if (vectors == 0)
		vectors = 1;
	if (session > 0) {
		unsigned index = (unsigned)(session - 1) / 2;
		bool net = session % 2 == 0;
		if (index >= cfg->n_clients) {
			fprintf(stderr, "ddtk: xml --ivshmem: session %lu is unused: it would be client #%u's, and "
				"there are %u clients\n", session, index + 1, cfg->n_clients);
			return 1;
		}
		const struct ddtk_client_config *c = &cfg->clients[index];
		if (!(net ? c->dd_nic : c->volume_mib != 0)) {
			fprintf(stderr, "ddtk: xml --ivshmem: session %lu is unused: client %s has no %s\n", session,
				c->name, net ? "dd-nic" : "volume");
			return 1;
		}
		/* One vector per virtqueue the client starts: QEMU keeps a vhost-user NIC's control queue. */
		vectors = net ? 2 * c->dd_nic_queues : c->volume_queues;
	}
	struct ddtk_err err;
	char *xml = NULL;
	if (ddtk_bridge_ivshmem_socket(cfg, (unsigned)session, path) < 0) {
		fprintf(stderr, "ddtk: ddtk-bridge's socket path is too long\n");
		return 1;
	}
	if (vm_xml_ivshmem((unsigned)session, path, vectors, &xml, &err) < 0)
		return fail(&err);
	puts(xml);
	free(xml);
	return 0;
}

static int cmd_mac(const struct ddtk_config *cfg, const char *name)
{
	const struct ddtk_client_config *c = ddtk_config_client(cfg, name);
	if (!c) {
		fprintf(stderr, "ddtk: mac: no client named '%s' in instance %s\n", name, cfg->instance);
		return 1;
	}
	struct ddtk_mac mac;
	char text[DDTK_MAC_STR_LEN];
	ddtk_config_client_mac(cfg, c, &mac);
	printf("%s\n", ddtk_mac_format(&mac, text));
	return 0;
}

static int config_read(const char *path, const char *instance, const char *accel, struct ddtk_config *cfg,
		       struct cli *cli)
{
	struct ddtk_err err;
	char system_path[DDTK_PATH_MAX];
	if (!path)
		path = getenv("DDTK_CONFIG");
	if (!path) {
		snprintf(system_path, sizeof(system_path), "%s/ddtk.conf", DDTK_SYSCONFDIR);
		if (access(system_path, F_OK) == 0)
			path = system_path;
	}
	/* The same steps as the daemons', which get this file, instance and accelerator from `up`. */
	if (ddtk_config_daemon(cfg, path, instance, accel, &err) < 0)
		return fail(&err);
	/* The daemons get the file's absolute path (or the name as given when it has none, a pipe). */
	cli->config_path[0] = '\0';
	if (path && !realpath(path, cli->config_path))
		snprintf(cli->config_path, sizeof(cli->config_path), "%s", path);
	cli->accel = accel;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "accel", required_argument, NULL, 'a' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *config_path = NULL, *instance = NULL, *accel = NULL;
	static struct cli cli;
	int c;
	/* Progress lines and errors interleave in the order they happen. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "+c:i:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'i': instance = optarg; break;
		case 'a': accel = optarg; break;
		case 'b': cli.bridge = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("ddtk %s\n", DDTK_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	/* Subcommands see their own argv, with the command as argv[0]. */
	char *cmd = argv[optind];
	int sub_argc = argc - optind;
	char **sub_argv = argv + optind;

	struct ddtk_config cfg;
	if (config_read(config_path, instance, accel, &cfg, &cli))
		return 1;
	/* Only the configuration: no accelerator to resolve, no libvirt. */
	if (strcmp(cmd, "mac") == 0 && sub_argc == 2)
		return cmd_mac(&cfg, sub_argv[1]);
	if (strcmp(cmd, "xml") == 0 && sub_argc == 3 && strcmp(sub_argv[1], "--ivshmem") == 0)
		return cmd_xml_ivshmem(&cfg, sub_argv[2]);
	bool needs_libvirt = strcmp(cmd, "xml") != 0 && strcmp(cmd, "log") != 0;
	struct vmm m;
	struct ddtk_err err;
	if (vmm_open(&m, &cfg, needs_libvirt, &err) < 0)
		return fail(&err);

	int ret;
	if (strcmp(cmd, "up") == 0 && sub_argc == 1)
		ret = cmd_up(&m, &cli);
	else if (strcmp(cmd, "down") == 0 && sub_argc <= 2 &&
		 (sub_argc == 1 || strcmp(sub_argv[1], "--purge") == 0))
		ret = cmd_down(&m, sub_argc == 2);
	else if (strcmp(cmd, "start") == 0 && sub_argc == 2)
		ret = cmd_start(&m, sub_argv[1]);
	else if (strcmp(cmd, "stop") == 0 && sub_argc == 2)
		ret = cmd_stop(&m, sub_argv[1]);
	else if (strcmp(cmd, "restart") == 0 && sub_argc == 2)
		ret = cmd_restart(&m, sub_argv[1]);
	else if (strcmp(cmd, "status") == 0 && sub_argc == 1)
		ret = cmd_status(&m);
	else if (strcmp(cmd, "exec") == 0)
		ret = cmd_exec(&m, sub_argc, sub_argv);
	else if (strcmp(cmd, "log") == 0)
		ret = cmd_log(&m, sub_argc, sub_argv);
	else if (strcmp(cmd, "xml") == 0 && sub_argc == 2)
		ret = cmd_xml(&m, sub_argv[1]);
	else {
		fprintf(stderr, "ddtk: unknown command or wrong arguments: %s\n", cmd);
		usage(stderr);
		ret = 2;
	}
	vmm_close(&m);
	return ret;
}
