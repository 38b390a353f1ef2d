/* ddtk: the command line of the driver-domain toolkit. Brings an instance's VMs up and down through
 * libvirt, shows their state, runs commands inside them and prints their generated XML and MACs. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "config.h"
#include "ddtk-config.h"
#include "vmm.h"

/* Exit statuses of `ddtk exec` besides the command's own (as timeout(1) and env(1) use them). */
#define EXIT_EXEC_TIMEOUT 124
#define EXIT_EXEC_FAILED 125

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ddtk [-c FILE] [-i INSTANCE] [--accel auto|kvm|tcg] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  up                      start the driver domain and every client; wait until each answers\n"
		"  down [--purge]          stop every VM of the instance; --purge also removes its state\n"
		"                          folder (the DD's disk image and the console logs)\n"
		"  start VM                start one VM (dd or a client's name) and wait until it answers\n"
		"  stop VM                 stop one VM\n"
		"  status                  the instance's VMs and their state\n"
		"  exec [-t SEC] VM -- CMD run CMD with sh -c in VM; prints its output, exits with its status\n"
		"                          (124: timed out, 125: could not run it)\n"
		"  log [-n LINES] VM       the end of VM's console log\n"
		"  xml VM                  the libvirt domain XML ddtk generates for VM\n"
		"  mac CLIENT              the MAC of CLIENT's NIC (its mac =, else the one derived from\n"
		"                          the instance and client names)\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE       configuration (default $DDTK_CONFIG, else %s/ddtk.conf if it\n"
		"                          exists, else the built-in default topology: dd, clients a and b)\n"
		"  -i, --instance NAME     override [ddtk] instance\n"
		"      --accel MODE        override [ddtk] accel\n"
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

static int cmd_start(struct vmm *m, const char *vm)
{
	struct ddtk_err err;
	double t0 = now_s();
	printf("starting %s (domain ddtk-%s-%s, %s)\n", vm, m->cfg->instance, vm,
	       m->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
	if (vmm_start(m, vm, &err) < 0)
		return fail(&err);
	if (vmm_wait_ready(m, vm, m->cfg->boot_timeout_s, &err) < 0) {
		fail(&err);
		vmm_stop(m, vm, NULL);
		return 1;
	}
	printf("%s is up (agent answered %.1f s after start)\n", vm, now_s() - t0);
	return 0;
}

static int cmd_up(struct vmm *m)
{
	const struct ddtk_config *cfg = m->cfg;
	struct ddtk_err err;
	unsigned n = cfg->n_clients + 1;
	bool started[DDTK_CLIENTS_MAX + 1] = { false };
	double t0 = now_s();
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
	return 0;
undo:
	/* Only what this command started: VMs that ran before keep running. */
	fprintf(stderr, "ddtk: stopping the VMs this command started; console logs stay in %s\n",
		m->instance_dir);
	for (unsigned i = 0; i < n; i++)
		if (started[i])
			vmm_stop(m, vm_name(cfg, i), NULL);
	return 1;
}

static int cmd_down(struct vmm *m, bool purge)
{
	struct ddtk_err err;
	int ret = 0;
	/* Clients first: they use the driver domain's devices. */
	for (unsigned i = m->cfg->n_clients + 1; i-- > 0;) {
		const char *vm = vm_name(m->cfg, i);
		if (vmm_stop(m, vm, &err) < 0)
			ret = fail(&err);
	}
	if (purge && ret == 0 && vmm_purge(m, &err) < 0)
		ret = fail(&err);
	return ret;
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
	return 0;
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

static int config_read(const char *path, const char *instance, const char *accel, struct ddtk_config *cfg)
{
	struct ddtk_err err;
	char system_path[DDTK_PATH_MAX];
	ddtk_config_init(cfg);
	if (!path)
		path = getenv("DDTK_CONFIG");
	if (!path) {
		snprintf(system_path, sizeof(system_path), "%s/ddtk.conf", DDTK_SYSCONFDIR);
		if (access(system_path, F_OK) == 0)
			path = system_path;
	}
	if (path && ddtk_config_load(cfg, path, &err) < 0)
		return fail(&err);
	if (instance) {
		if (!ddtk_name_valid(instance)) {
			fprintf(stderr, "ddtk: invalid instance name '%s'\n", instance);
			return 1;
		}
		snprintf(cfg->instance, sizeof(cfg->instance), "%s", instance);
	}
	if (accel && vm_accel_parse(accel, &cfg->accel) < 0) {
		fprintf(stderr, "ddtk: --accel must be auto, kvm or tcg\n");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "accel", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *config_path = NULL, *instance = NULL, *accel = NULL;
	int c;
	/* Progress lines and errors interleave in the order they happen. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "+c:i:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'i': instance = optarg; break;
		case 'a': accel = optarg; break;
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
	if (config_read(config_path, instance, accel, &cfg))
		return 1;
	/* Only the configuration: no accelerator to resolve, no libvirt. */
	if (strcmp(cmd, "mac") == 0 && sub_argc == 2)
		return cmd_mac(&cfg, sub_argv[1]);
	bool needs_libvirt = strcmp(cmd, "xml") != 0 && strcmp(cmd, "log") != 0;
	struct vmm m;
	struct ddtk_err err;
	if (vmm_open(&m, &cfg, needs_libvirt, &err) < 0)
		return fail(&err);

	int ret;
	if (strcmp(cmd, "up") == 0 && sub_argc == 1)
		ret = cmd_up(&m);
	else if (strcmp(cmd, "down") == 0 && sub_argc <= 2 &&
		 (sub_argc == 1 || strcmp(sub_argv[1], "--purge") == 0))
		ret = cmd_down(&m, sub_argc == 2);
	else if (strcmp(cmd, "start") == 0 && sub_argc == 2)
		ret = cmd_start(&m, sub_argv[1]);
	else if (strcmp(cmd, "stop") == 0 && sub_argc == 2)
		ret = vmm_stop(&m, sub_argv[1], &err) < 0 ? fail(&err) : 0;
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
