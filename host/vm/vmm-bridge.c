/* ddtk-bridge as `ddtk up`, `down` and `status` run it: a detached process found through its pid
 * file, ready once its status socket accepts a connection. See vmm.h. */
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

#define BRIDGE_PROGRAM "ddtk-bridge"
#define BRIDGE_STATUS_MAX (1u << 20)
#define BRIDGE_LOG_TAIL_LINES 25


/* Whether pid is a live ddtk-bridge: its command line (argv[0], or the script an interpreter
 * runs) names the program. A zombie's command line is empty, so a bridge that exited but was not
 * reaped yet counts as gone; so does a pid the kernel gave to another program since. */
static bool bridge_alive(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 && memmem(buf, (size_t)n, BRIDGE_PROGRAM, strlen(BRIDGE_PROGRAM)) != NULL;
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

int vmm_bridge_pid(const struct vmm *m, pid_t *ret_pid)
{
	char path[DDTK_STATE_PATH_MAX];
	pid_t pid = 0;
	if (ddtk_bridge_pid_file(m->cfg, path) < 0 || pid_file_read(path, &pid) < 0 || !bridge_alive(pid))
		return -ESRCH;
	*ret_pid = pid;
	return 0;
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
static bool bridge_wait_gone(pid_t pid, unsigned timeout_ms)
{
	int64_t deadline = agent_now_ms() + (int64_t)timeout_ms;
	for (;;) {
		waitpid(pid, NULL, WNOHANG); /* fails with ECHILD for a bridge an earlier ddtk started */
		if (!bridge_alive(pid))
			return true;
		if (agent_now_ms() >= deadline)
			return false;
		vmm_sleep_ms(50);
	}
}

static int bridge_terminate(pid_t pid, const char *pid_file, struct ddtk_err *err)
{
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
		return ddtk_err_set(err, -errno, "cannot stop ddtk-bridge (pid %d): %s", (int)pid, strerror(errno));
	if (!bridge_wait_gone(pid, (unsigned)VMM_BRIDGE_STOP_TIMEOUT_S * 1000)) {
		fprintf(stderr, "ddtk: ddtk-bridge (pid %d) did not stop within %d s of SIGTERM: SIGKILL\n", (int)pid,
			VMM_BRIDGE_STOP_TIMEOUT_S);
		kill(pid, SIGKILL);
		if (!bridge_wait_gone(pid, 2000))
			return ddtk_err_set(err, -EBUSY, "ddtk-bridge (pid %d) does not die, even of SIGKILL", (int)pid);
	}
	unlink(pid_file);
	return 0;
}

int vmm_bridge_stop(const struct vmm *m, struct ddtk_err *err)
{
	char pid_file[DDTK_STATE_PATH_MAX];
	pid_t pid;
	if (ddtk_bridge_pid_file(m->cfg, pid_file) < 0)
		return 0; /* no such path, so no such file */
	if (vmm_bridge_pid(m, &pid) < 0) {
		unlink(pid_file); /* stale, if there is one */
		return 0;
	}
	return bridge_terminate(pid, pid_file, err);
}

/* The child's side of the start: only async-signal-safe calls between fork and exec. */
static void __attribute__((noreturn)) bridge_exec(char *const argv[], int null_fd, int log_fd)
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
	char *tail = vmm_file_tail(log_file, BRIDGE_LOG_TAIL_LINES);
	ddtk_err_set(err, r, "%s\n--- last lines of its log %s ---\n%s--- end of log ---", why, log_file,
		     tail ? tail : "(empty)\n");
	free(tail);
	return r;
}

/* One line in the log before the bridge's own output: which start this is. */
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

int vmm_bridge_start(const struct vmm *m, char *const argv[], pid_t *ret_pid, struct ddtk_err *err)
{
	char dir[DDTK_STATE_PATH_MAX], pid_file[DDTK_STATE_PATH_MAX], log_file[DDTK_STATE_PATH_MAX];
	char status[DDTK_SOCKET_PATH_MAX];
	pid_t pid;
	int r;

	if (ddtk_bridge_dir(m->cfg, dir) < 0 || ddtk_bridge_pid_file(m->cfg, pid_file) < 0 ||
	    ddtk_bridge_log_file(m->cfg, log_file) < 0 || ddtk_bridge_status_socket(m->cfg, status) < 0)
		return ddtk_err_set(err, -ENAMETOOLONG, "ddtk-bridge's paths under %s are too long", m->instance_dir);
	if (vmm_bridge_pid(m, &pid) == 0) {
		*ret_pid = pid;
		return ddtk_err_set(err, -EEXIST, "ddtk-bridge already runs (pid %d)", (int)pid);
	}
	if ((r = vmm_mkdir_p(m->instance_dir, 0755)) < 0)
		return ddtk_err_set(err, r, "cannot create %s: %s", m->instance_dir, strerror(-r));
	/* 0711: QEMU, running as another user, reaches the sockets by their names but cannot list
	 * the folder. chmod because mkdir's mode passes through the umask, and the folder may exist. */
	if ((mkdir(dir, 0711) < 0 && errno != EEXIST) || chmod(dir, 0711) < 0)
		return ddtk_err_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));

	int log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0)
		return ddtk_err_set(err, -errno, "cannot open ddtk-bridge's log %s: %s", log_file, strerror(errno));
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0) {
		r = ddtk_err_set(err, -errno, "cannot open /dev/null: %s", strerror(errno));
		close(log_fd);
		return r;
	}
	log_header(log_fd, argv);
	pid = fork();
	if (pid == 0)
		bridge_exec(argv, null_fd, log_fd);
	r = pid < 0 ? -errno : 0;
	close(null_fd);
	close(log_fd);
	if (r < 0)
		return ddtk_err_set(err, r, "cannot start ddtk-bridge: %s", strerror(-r));
	if ((r = pid_file_write(pid_file, pid)) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return ddtk_err_set(err, r, "cannot write %s: %s", pid_file, strerror(-r));
	}

	char why[DDTK_SOCKET_PATH_MAX + 128];
	int64_t deadline = agent_now_ms() + (int64_t)VMM_BRIDGE_START_TIMEOUT_S * 1000;
	for (;;) {
		int status_fd = -1, wstatus;
		if (waitpid(pid, &wstatus, WNOHANG) == pid) {
			unlink(pid_file);
			if (WIFEXITED(wstatus))
				snprintf(why, sizeof(why), "ddtk-bridge exited with status %d as it started",
					 WEXITSTATUS(wstatus));
			else
				snprintf(why, sizeof(why), "ddtk-bridge was killed by signal %d as it started",
					 WTERMSIG(wstatus));
			return fail_with_log(-ECHILD, log_file, err, why);
		}
		if (status_connect(status, &status_fd) == 0) {
			close(status_fd);
			*ret_pid = pid;
			return 0;
		}
		if (agent_now_ms() >= deadline)
			break;
		vmm_sleep_ms(100);
	}
	snprintf(why, sizeof(why), "ddtk-bridge (pid %d) did not accept connections on %s within %d s; stopped it",
		 (int)pid, status, VMM_BRIDGE_START_TIMEOUT_S);
	bridge_terminate(pid, pid_file, NULL);
	return fail_with_log(-ETIMEDOUT, log_file, err, why);
}

int vmm_bridge_status(const struct vmm *m, unsigned timeout_ms, char **ret_text, struct ddtk_err *err)
{
	char path[DDTK_SOCKET_PATH_MAX];
	int fd = -1, r;
	if (ddtk_bridge_status_socket(m->cfg, path) < 0)
		return ddtk_err_set(err, -ENAMETOOLONG, "ddtk-bridge's status socket path is too long");
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
			char *bigger = cap < BRIDGE_STATUS_MAX ? realloc(buf, cap * 2) : NULL;
			if (!bigger) {
				r = cap < BRIDGE_STATUS_MAX ? -ENOMEM : -EMSGSIZE;
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
