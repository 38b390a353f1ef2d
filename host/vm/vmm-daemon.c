/* ddtk's host daemons (ddtk-bridge, ddtkd) as `ddtk up`, `down` and `status` run them: a detached
 * process found through its pid file, ready once its status socket accepts a connection. See
 * vmm.h. */
#include "agent-proto.h"
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DAEMON_STATUS_MAX (1u << 20)
#define DAEMON_LOG_TAIL_LINES 25

/* One daemon's program name and files. */
struct daemon {
	const char *program;
	/* A folder of its own for its sockets, mode 0711 (QEMU, running as another user, reaches the
	 * sockets by their names but cannot list the folder); "" when they live in the instance's. */
	char dir[DDTK_STATE_PATH_MAX];
	char pid_file[DDTK_STATE_PATH_MAX], log_file[DDTK_STATE_PATH_MAX];
	char socket[DDTK_SOCKET_PATH_MAX];
};

static int daemon_get(const struct vmm *m, enum vmm_daemon which, struct daemon *d)
{
	const struct ddtk_config *cfg = m->cfg;
	int r;

	memset(d, 0, sizeof(*d));
	if (which == VMM_DAEMON_BRIDGE) {
		d->program = "ddtk-bridge";
		r = ddtk_bridge_dir(cfg, d->dir) < 0 || ddtk_bridge_pid_file(cfg, d->pid_file) < 0 ||
		    ddtk_bridge_log_file(cfg, d->log_file) < 0 || ddtk_bridge_status_socket(cfg, d->socket) < 0;
	} else {
		d->program = "ddtkd";
		r = ddtk_ddtkd_pid_file(cfg, d->pid_file) < 0 || ddtk_ddtkd_log_file(cfg, d->log_file) < 0 ||
		    ddtk_ddtkd_status_socket(cfg, d->socket) < 0;
	}
	return r ? -ENAMETOOLONG : 0;
}


/* Whether pid is a live daemon d: its command line (argv[0], or the script an interpreter runs)
 * names the program. A zombie's command line is empty, so a daemon that exited but was not
 * reaped yet counts as gone; so does a pid the kernel gave to another program since. */
static bool daemon_alive(const struct daemon *d, pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return false;
	/* An argument whose file name is the program's name (argv[0], or the script an interpreter
	 * runs). The buffer may end without a NUL when the command line is longer. */
	buf[n < (ssize_t)sizeof(buf) ? n : n - 1] = '\0';
	for (const char *p = buf; p < buf + n; p += strlen(p) + 1) {
		const char *base = strrchr(p, '/');
		base = base ? base + 1 : p;
		if (strcmp(base, d->program) == 0)
			return true;
	}
	return false;
}

static int pid_file_read(const char *path, pid_t *ret_pid)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EBADMSG;
	buf[n] = '\0';
	char *end;
	long pid = strtol(buf, &end, 10);
	if (pid <= 1 || pid > 0x3fffffff || (*end != '\0' && *end != '\n'))
		return -EBADMSG;
	*ret_pid = (pid_t)pid;
	return 0;
}

/* Written whole under a temporary name, then renamed: a reader never sees half a pid. */
static int pid_file_write(const char *path, pid_t pid)
{
	char tmp[DDTK_STATE_PATH_MAX + 8], text[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int len = snprintf(text, sizeof(text), "%d\n", (int)pid);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write(fd, text, (size_t)len) == len ? 0 : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int daemon_pid(const struct daemon *d, pid_t *ret_pid)
{
	pid_t pid = 0;
	if (pid_file_read(d->pid_file, &pid) < 0 || !daemon_alive(d, pid))
		return -ESRCH;
	*ret_pid = pid;
	return 0;
}

int vmm_daemon_pid(const struct vmm *m, enum vmm_daemon which, pid_t *ret_pid)
{
	struct daemon d;
	return daemon_get(m, which, &d) < 0 ? -ESRCH : daemon_pid(&d, ret_pid);
}

static int status_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Waits up to timeout_ms for pid to be gone (reaping it when it is this process's child). */
static bool daemon_wait_gone(const struct daemon *d, pid_t pid, unsigned timeout_ms)
{
	int64_t deadline = agent_now_ms() + (int64_t)timeout_ms;
	for (;;) {
		waitpid(pid, NULL, WNOHANG); /* fails with ECHILD for a daemon an earlier ddtk started */
		if (!daemon_alive(d, pid))
			return true;
		if (agent_now_ms() >= deadline)
			return false;
		vmm_sleep_ms(50);
	}
}

static int daemon_terminate(const struct daemon *d, pid_t pid, struct ddtk_err *err)
{
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
		return ddtk_err_set(err, -errno, "cannot stop %s (pid %d): %s", d->program, (int)pid, strerror(errno));
	if (!daemon_wait_gone(d, pid, (unsigned)VMM_DAEMON_STOP_TIMEOUT_S * 1000)) {
		fprintf(stderr, "ddtk: %s (pid %d) did not stop within %d s of SIGTERM: SIGKILL\n", d->program,
			(int)pid, VMM_DAEMON_STOP_TIMEOUT_S);
		kill(pid, SIGKILL);
		if (!daemon_wait_gone(d, pid, 2000))
			return ddtk_err_set(err, -EBUSY, "%s (pid %d) does not die, even of SIGKILL", d->program, (int)pid);
	}
	unlink(d->pid_file);
	return 0;
}

int vmm_daemon_stop(const struct vmm *m, enum vmm_daemon which, struct ddtk_err *err)
{
	struct daemon d;
	pid_t pid;
	if (daemon_get(m, which, &d) < 0)
		return 0; /* no such path, so no such file */
	if (daemon_pid(&d, &pid) < 0) {
		unlink(d.pid_file); /* stale, if there is one */
		return 0;
	}
	return daemon_terminate(&d, pid, err);
}

/* The child's side of the start: only async-signal-safe calls between fork and exec. */
static void __attribute__((noreturn)) daemon_exec(char *const argv[], int null_fd, int log_fd)
{
	setsid(); /* no terminal, no signals of ddtk's process group (a ^C at `ddtk up`) */
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0)
		_exit(127);
	/* Every fd of ddtk is close-on-exec; this also covers any a library forgot. */
	close_range(3, ~0u, 0);
	execv(argv[0], argv);
	const char *parts[] = { "ddtk: cannot execute ", argv[0], ": ", strerrorname_np(errno), "\n" };
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (parts[i] && write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0)
			break;
	_exit(127);
}

static int fail_with_log(int r, const char *log_file, struct ddtk_err *err, const char *why)
{
	char *tail = vmm_file_tail(log_file, DAEMON_LOG_TAIL_LINES);
	ddtk_err_set(err, r, "%s\n--- last lines of its log %s ---\n%s--- end of log ---", why, log_file,
		     tail ? tail : "(empty)\n");
	free(tail);
	return r;
}

/* One line in the log before the daemon's own output: which start this is. */
static void log_header(int log_fd, char *const argv[])
{
	char stamp[64] = "";
	time_t t = time(NULL);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	dprintf(log_fd, "--- %s ddtk starts:", stamp);
	for (size_t i = 0; argv[i]; i++)
		dprintf(log_fd, " %s", argv[i]);
	dprintf(log_fd, "\n");
}

int vmm_daemon_start(const struct vmm *m, enum vmm_daemon which, char *const argv[], pid_t *ret_pid,
		     struct ddtk_err *err)
{
	struct daemon d;
	pid_t pid;
	int r;

	if (daemon_get(m, which, &d) < 0)
		return ddtk_err_set(err, -ENAMETOOLONG, "the paths of %s under %s are too long",
				    which == VMM_DAEMON_BRIDGE ? "ddtk-bridge" : "ddtkd", m->instance_dir);
	if (daemon_pid(&d, &pid) == 0) {
		*ret_pid = pid;
		return ddtk_err_set(err, -EEXIST, "%s already runs (pid %d)", d.program, (int)pid);
	}
	if ((r = vmm_mkdir_p(m->instance_dir, 0755)) < 0)
		return ddtk_err_set(err, r, "cannot create %s: %s", m->instance_dir, strerror(-r));
	/* chmod because mkdir's mode passes through the umask, and the folder may exist. */
	if (d.dir[0] && ((mkdir(d.dir, 0711) < 0 && errno != EEXIST) || chmod(d.dir, 0711) < 0))
		return ddtk_err_set(err, -errno, "cannot create %s: %s", d.dir, strerror(errno));

	int log_fd = open(d.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0)
		return ddtk_err_set(err, -errno, "cannot open %s's log %s: %s", d.program, d.log_file, strerror(errno));
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0) {
		r = ddtk_err_set(err, -errno, "cannot open /dev/null: %s", strerror(errno));
		close(log_fd);
		return r;
	}
	log_header(log_fd, argv);
	pid = fork();
	if (pid == 0)
		daemon_exec(argv, null_fd, log_fd);
	r = pid < 0 ? -errno : 0;
	close(null_fd);
	close(log_fd);
	if (r < 0)
		return ddtk_err_set(err, r, "cannot start %s: %s", d.program, strerror(-r));
	if ((r = pid_file_write(d.pid_file, pid)) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return ddtk_err_set(err, r, "cannot write %s: %s", d.pid_file, strerror(-r));
	}

	char why[DDTK_SOCKET_PATH_MAX + 128];
	int64_t deadline = agent_now_ms() + (int64_t)VMM_DAEMON_START_TIMEOUT_S * 1000;
	for (;;) {
		int status_fd = -1, wstatus;
		if (waitpid(pid, &wstatus, WNOHANG) == pid) {
			unlink(d.pid_file);
			if (WIFEXITED(wstatus))
				snprintf(why, sizeof(why), "%s exited with status %d as it started", d.program,
					 WEXITSTATUS(wstatus));
			else
				snprintf(why, sizeof(why), "%s was killed by signal %d as it started", d.program,
					 WTERMSIG(wstatus));
			return fail_with_log(-ECHILD, d.log_file, err, why);
		}
		if (status_connect(d.socket, &status_fd) == 0) {
			close(status_fd);
			*ret_pid = pid;
			return 0;
		}
		if (agent_now_ms() >= deadline)
			break;
		vmm_sleep_ms(100);
	}
	snprintf(why, sizeof(why), "%s (pid %d) did not accept connections on %s within %d s; stopped it", d.program,
		 (int)pid, d.socket, VMM_DAEMON_START_TIMEOUT_S);
	daemon_terminate(&d, pid, NULL);
	return fail_with_log(-ETIMEDOUT, d.log_file, err, why);
}

int vmm_daemon_status(const struct vmm *m, enum vmm_daemon which, unsigned timeout_ms, char **ret_text,
		      struct ddtk_err *err)
{
	struct daemon d;
	int fd = -1, r;
	if (daemon_get(m, which, &d) < 0)
		return ddtk_err_set(err, -ENAMETOOLONG, "the status socket path of %s is too long",
				    which == VMM_DAEMON_BRIDGE ? "ddtk-bridge" : "ddtkd");
	const char *path = d.socket;
	if ((r = status_connect(path, &fd)) < 0)
		return ddtk_err_set(err, r, "cannot connect to %s: %s", path, strerror(-r));
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int64_t deadline = agent_now_ms() + timeout_ms;
	r = buf ? 0 : -ENOMEM;
	while (r == 0) {
		int64_t left = deadline - agent_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			r = -ETIMEDOUT;
			break;
		}
		if (len + 1 == cap) {
			char *bigger = cap < DAEMON_STATUS_MAX ? realloc(buf, cap * 2) : NULL;
			if (!bigger) {
				r = cap < DAEMON_STATUS_MAX ? -ENOMEM : -EMSGSIZE;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n == 0)
			break;
		else if (n > 0)
			len += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return ddtk_err_set(err, r, "%s: %s", path, r == -ETIMEDOUT ? "no complete answer in time" : strerror(-r));
	}
	buf[len] = '\0';
	*ret_text = buf;
	return 0;
}
