/* The back-end processes: one ddtk-blk for all blk sessions, one ddtk-net for all net sessions.
 * A new topology restarts a back-end whose sessions changed (SIGTERM, SIGKILL after
 * BACKEND_STOP_MS); one that exits by itself is started again after a backoff, and the sessions it
 * served that were running are failed so that the bridge starts them again. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long a back-end may take to go after SIGTERM. */
#define BACKEND_STOP_MS 3000

extern char **environ;

void backend_init_all(struct agent *a)
{
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++) {
		struct backend *b = &a->backends[k];
		b->kind = (enum backend_kind)k;
		b->state = BACKEND_IDLE;
		b->nspecs = 0;
		b->pid = 0;
		b->last_exit[0] = '\0';
		backoff_reset(&b->backoff);
		progress_reset(&b->progress);
		b->fetch.fd = -1;
		b->healthy = true;
	}
}

static const char *backend_program(const struct agent *a, const struct backend *b)
{
	return a->opt.backend.program[b->kind];
}

static bool spec_equal(const struct ddctl_session_spec *x, const struct ddctl_session_spec *y)
{
	return x->session == y->session && x->kind == y->kind && !strcmp(x->name, y->name) &&
	       x->offset == y->offset && x->size == y->size && x->read_only == y->read_only &&
	       !memcmp(x->mac, y->mac, sizeof(x->mac)) && x->queues == y->queues;
}

/* The interface whose driver is e1000 (the DD's NIC); "" when there is none. */
static void find_uplink(char *ret, size_t cap)
{
	DIR *d = opendir("/sys/class/net");
	const struct dirent *de;

	ret[0] = '\0';
	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[300], target[256];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%s/device/driver", de->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		const char *base = strrchr(target, '/');
		if (strcmp(base ? base + 1 : target, "e1000") == 0 && strlen(de->d_name) < cap) {
			snprintf(ret, cap, "%s", de->d_name);
			break;
		}
	}
	closedir(d);
}

/* Stale sockets of an earlier process would look ready: remove them before a start. */
static void backend_unlink_sockets(const struct agent *a, const struct backend *b)
{
	char path[BACKEND_RUN_DIR_MAX + 16];

	for (unsigned i = 0; i < b->nspecs; i++) {
		backend_socket_path(a->opt.backend.run_dir, b->specs[i].session, path, sizeof(path));
		(void)unlink(path);
	}
	backend_stats_path(a->opt.backend.run_dir, b->kind, path, sizeof(path));
	(void)unlink(path);
}

static void backend_spawn(struct agent *a, struct backend *b, int64_t now)
{
	static struct backend_cmd cmd;
	struct backend_config cfg = a->opt.backend;
	char uplink[64];
	int r;

	if (a->opt.uplink_option) {
		cfg.uplink = a->opt.uplink_option;
	} else {
		find_uplink(uplink, sizeof(uplink));
		if (b->kind == BACKEND_NET && !uplink[0])
			agent_log("no e1000 interface: ddtk-net runs without an uplink");
		cfg.uplink = uplink;
	}
	r = backend_cmd_build(b->kind, &cfg, b->specs, b->nspecs, &cmd);
	if (r <= 0) {
		agent_log("%s: cannot build its command line: %s", backend_program(a, b), strerror(r ? -r : EINVAL));
		b->state = BACKEND_WAITING;
		b->restart_at_ms = now + BACKOFF_MAX_MS;
		return;
	}
	backend_unlink_sockets(a, b);

	/* The agent blocks SIGCHLD (signalfd) and ignores SIGPIPE: the child must not inherit either. */
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
	pid_t pid;
	r = posix_spawn(&pid, cmd.argv[0], NULL, &attr, cmd.argv, environ);
	posix_spawnattr_destroy(&attr);
	if (r != 0) {
		unsigned delay = backoff_next(&b->backoff, 0);
		agent_log("%s: cannot start: %s; trying again in %u ms", cmd.argv[0], strerror(r), delay);
		snprintf(b->last_exit, sizeof(b->last_exit), "could not start: %s", strerror(r));
		b->state = BACKEND_WAITING;
		b->restart_at_ms = now + delay;
		return;
	}
	b->pid = pid;
	b->state = BACKEND_RUNNING;
	b->started_ms = now;
	health_forget(b);
	/* One line with the whole command: the console then shows what each session is. */
	char line[1024];
	size_t pos = 0;
	for (unsigned i = 0; i < cmd.argc && pos < sizeof(line); i++) {
		int n = snprintf(line + pos, sizeof(line) - pos, "%s%s", i ? " " : "", cmd.argv[i]);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
	agent_log("started %s (pid %d): %s", backend_kind_name(b->kind), (int)pid, line);
}

static void backend_signal(struct backend *b, int sig)
{
	if (b->pid > 0)
		kill(b->pid, sig);
}

void backend_configure(struct agent *a, struct backend *b, const struct ddctl_session_spec *specs, unsigned n)
{
	struct ddctl_session_spec want[DDCTL_SESSIONS_MAX];
	unsigned nwant = 0;
	int64_t now = agent_now_ms();

	for (unsigned i = 0; i < n && nwant < DDCTL_SESSIONS_MAX; i++)
		if (backend_serves(b->kind, &specs[i]))
			want[nwant++] = specs[i];
	bool same = nwant == b->nspecs;
	for (unsigned i = 0; same && i < nwant; i++)
		same = spec_equal(&want[i], &b->specs[i]);
	b->restarts = 0;
	b->quick_exits = 0;
	backoff_reset(&b->backoff);
	if (same && b->state == BACKEND_RUNNING) {
		agent_log("%s: sessions unchanged, keeping pid %d", backend_kind_name(b->kind), (int)b->pid);
		return;
	}
	memcpy(b->specs, want, sizeof(want[0]) * nwant);
	b->nspecs = nwant;
	switch (b->state) {
	case BACKEND_RUNNING:
		agent_log("%s: new sessions, stopping pid %d", backend_kind_name(b->kind), (int)b->pid);
		backend_signal(b, SIGTERM);
		b->state = BACKEND_STOPPING;
		b->kill_at_ms = now + BACKEND_STOP_MS;
		break;
	case BACKEND_STOPPING:
		break;   /* started with the new specs once reaped */
	case BACKEND_IDLE:
	case BACKEND_WAITING:
		if (nwant > 0) {
			backend_spawn(a, b, now);
		} else {
			b->state = BACKEND_IDLE;
		}
		break;
	}
}

static void describe_status(int status, char *buf, size_t cap)
{
	if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
}

static void backend_exited(struct agent *a, struct backend *b, int status)
{
	int64_t now = agent_now_ms();
	int64_t ran = now - b->started_ms;

	describe_status(status, b->last_exit, sizeof(b->last_exit));
	b->pid = 0;
	health_forget(b);
	if (b->state == BACKEND_STOPPING) {
		agent_log("%s stopped (%s)", backend_kind_name(b->kind), b->last_exit);
		b->state = BACKEND_IDLE;
		if (b->nspecs > 0)
			backend_spawn(a, b, now);
		return;
	}
	unsigned delay = backoff_next(&b->backoff, ran);
	b->restarts++;
	b->quick_exits = ran < BACKOFF_STABLE_MS ? b->quick_exits + 1 : 1;
	b->state = BACKEND_WAITING;
	b->restart_at_ms = now + delay;
	agent_log("%s %s after %lld.%01lld s; starting it again in %u ms", backend_kind_name(b->kind), b->last_exit,
		  (long long)(ran / 1000), (long long)(ran % 1000 / 100), delay);
	char why[160];
	snprintf(why, sizeof(why), "back-end exited: %s", b->last_exit);
	session_fail_backend(a, b->kind, why);
}

void backend_reap(struct agent *a)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		bool ours = false;
		for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++) {
			struct backend *b = &a->backends[k];
			if (b->pid == pid) {
				ours = true;
				backend_exited(a, b, status);
			}
		}
		if (!ours)
			agent_log("reaped pid %d", (int)pid);
	}
}

void backend_timers(struct agent *a, struct loop *l, int64_t now)
{
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++) {
		struct backend *b = &a->backends[k];
		if (b->state == BACKEND_WAITING) {
			if (now >= b->restart_at_ms)
				backend_spawn(a, b, now);
			else
				loop_wake_at(l, b->restart_at_ms);
		}
		if (b->state == BACKEND_STOPPING) {
			if (now >= b->kill_at_ms) {
				agent_log("%s (pid %d) did not stop: SIGKILL", backend_kind_name(b->kind), (int)b->pid);
				backend_signal(b, SIGKILL);
				b->kill_at_ms = now + BACKEND_STOP_MS;
			}
			loop_wake_at(l, b->kill_at_ms);
		}
	}
}

bool backend_ready(const struct agent *a, const struct backend *b)
{
	struct stat st;
	char path[BACKEND_RUN_DIR_MAX + 16];

	if (b->nspecs == 0)
		return b->state == BACKEND_IDLE;
	if (b->state != BACKEND_RUNNING)
		return false;
	for (unsigned i = 0; i < b->nspecs; i++) {
		backend_socket_path(a->opt.backend.run_dir, b->specs[i].session, path, sizeof(path));
		if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
			return false;
	}
	return true;
}

void backend_stop_all(struct agent *a)
{
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++) {
		struct backend *b = &a->backends[k];
		if (b->pid > 0) {
			backend_signal(b, SIGTERM);
			b->state = BACKEND_STOPPING;
		}
		b->nspecs = 0;
	}
}
