/* ddtk-guest-agent: runs inside every ddtk guest (driver domain and clients) and executes shell
 * commands for the host harness over a virtio-serial port, streaming their output back. */
#include "agent-proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Output is streamed in chunks of at most this size: small enough to keep frames short. */
#define AGENT_OUTPUT_CHUNK 4096
/* How long a write to the port may wait for the host to read before the output is dropped. */
#define AGENT_WRITE_STALL_MS 5000
/* A command that leaves a background process holding its stdout (`daemon &`) is reported as ended
 * this long after its own exit; output written later is not forwarded. */
#define AGENT_DRAIN_MS 200
/* How often the agent looks for the command's exit while it runs. */
#define AGENT_TICK_MS 100
/* A command without a timeout still ends: the host can always wait this long at most. */
#define AGENT_TIMEOUT_MAX_MS (24u * 3600u * 1000u)

struct agent_job {
	pid_t pid;             /* 0 when no command runs */
	uint32_t id;
	int out_fd, err_fd;    /* -1 once closed */
	uint64_t deadline_ms;
	bool timed_out;
	bool exited;           /* reaped; its status is in `status` */
	int status;
	uint64_t drain_until_ms; /* after the exit: how long to wait for output still in the pipes */
};

struct agent {
	int port_fd;
	bool host_gone;        /* writes failed: drop output until the host talks again */
	struct agent_decoder dec;
	struct agent_job job;
};

static void agent_send(struct agent *a, uint8_t type, uint32_t id, const void *payload, uint32_t len)
{
	static uint8_t buf[AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_PAYLOAD_MAX];
	if (a->host_gone)
		return;
	int n = agent_frame_encode(type, id, payload, len, buf, sizeof(buf));
	if (n < 0)
		return;
	if (agent_write_all(a->port_fd, buf, (size_t)n, agent_now_ms() + AGENT_WRITE_STALL_MS) < 0)
		/* Nobody reads the port; keep the command running, drop its output. */
		a->host_gone = true;
}

static void agent_send_text(struct agent *a, uint8_t type, uint32_t id, const char *text)
{
	agent_send(a, type, id, text, (uint32_t)strlen(text));
}

static void job_close_pipe(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void job_start(struct agent *a, uint32_t id, uint32_t timeout_ms, const char *cmd, size_t cmd_len)
{
	if (a->job.pid > 0) {
		agent_send_text(a, AGENT_MSG_ERROR, id, "busy: another command is running");
		return;
	}
	char *command = strndup(cmd, cmd_len);
	int out[2], err[2];
	if (!command || pipe2(out, O_CLOEXEC) < 0) {
		free(command);
		agent_send_text(a, AGENT_MSG_ERROR, id, strerror(errno));
		return;
	}
	if (pipe2(err, O_CLOEXEC) < 0) {
		int e = errno;
		close(out[0]);
		close(out[1]);
		free(command);
		agent_send_text(a, AGENT_MSG_ERROR, id, strerror(e));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(out[0]); close(out[1]); close(err[0]); close(err[1]);
		free(command);
		agent_send_text(a, AGENT_MSG_ERROR, id, strerror(e));
		return;
	}
	if (pid == 0) {
		/* Own process group, so a timeout kills the command and all it started. */
		setsid();
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	free(command);
	close(out[1]);
	close(err[1]);
	if (timeout_ms == 0 || timeout_ms > AGENT_TIMEOUT_MAX_MS)
		timeout_ms = AGENT_TIMEOUT_MAX_MS;
	a->job = (struct agent_job){
		.pid = pid, .id = id, .out_fd = out[0], .err_fd = err[0],
		.deadline_ms = (uint64_t)agent_now_ms() + timeout_ms,
	};
}

static void job_forward_output(struct agent *a, int *fd, uint8_t type)
{
	uint8_t buf[AGENT_OUTPUT_CHUNK];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n > 0)
		agent_send(a, type, a->job.id, buf, (uint32_t)n);
	else if (n == 0 || errno != EINTR)
		job_close_pipe(fd);
}

/* Reaps the command, and reports how it ended once its output is drained: both pipes at EOF, or
 * AGENT_DRAIN_MS after its exit when something it started in the background keeps them open. */
static void job_try_finish(struct agent *a)
{
	struct agent_job *j = &a->job;
	if (j->pid <= 0)
		return;
	if (!j->exited) {
		if (waitpid(j->pid, &j->status, WNOHANG) != j->pid)
			return;
		j->exited = true;
		j->drain_until_ms = (uint64_t)agent_now_ms() + AGENT_DRAIN_MS;
	}
	if ((j->out_fd >= 0 || j->err_fd >= 0) && (uint64_t)agent_now_ms() < j->drain_until_ms)
		return;
	job_close_pipe(&j->out_fd);
	job_close_pipe(&j->err_fd);

	uint8_t payload[8];
	uint32_t kind = AGENT_EXIT_EXITED;
	int32_t code = 0;
	if (j->timed_out) {
		kind = AGENT_EXIT_TIMEOUT;
	} else if (WIFSIGNALED(j->status)) {
		kind = AGENT_EXIT_SIGNALED;
		code = WTERMSIG(j->status);
	} else {
		code = WEXITSTATUS(j->status);
	}
	agent_u32_put(payload, kind);
	agent_u32_put(payload + 4, (uint32_t)code);
	agent_send(a, AGENT_MSG_EXIT, j->id, payload, sizeof(payload));
	j->pid = 0;
}

static void agent_handle_frame(struct agent *a, const struct agent_frame *f)
{
	switch ((enum agent_msg_type)f->type) {
	case AGENT_MSG_PING: {
		struct utsname u;
		char text[256];
		uname(&u);
		snprintf(text, sizeof(text), "ddtk-guest-agent %s on %s %s", DDTK_VERSION, u.nodename, u.release);
		agent_send_text(a, AGENT_MSG_PONG, f->id, text);
		break;
	}
	case AGENT_MSG_EXEC: {
		uint32_t timeout_ms;
		const char *cmd;
		size_t cmd_len;
		if (agent_exec_parse(f, &timeout_ms, &cmd, &cmd_len) < 0) {
			agent_send_text(a, AGENT_MSG_ERROR, f->id, "malformed EXEC request");
			break;
		}
		job_start(a, f->id, timeout_ms, cmd, cmd_len);
		break;
	}
	case AGENT_MSG_PONG:
	case AGENT_MSG_STDOUT:
	case AGENT_MSG_STDERR:
	case AGENT_MSG_EXIT:
	case AGENT_MSG_ERROR:
	case _AGENT_MSG_LAST:
		agent_send_text(a, AGENT_MSG_ERROR, f->id, "unexpected message type");
		break;
	}
}

/* Returns the bytes read: 0 (or -1) when there was nothing. */
static ssize_t agent_read_port(struct agent *a)
{
	uint8_t buf[4096];
	ssize_t n = read(a->port_fd, buf, sizeof(buf));
	if (n <= 0)
		return n;
	a->host_gone = false;
	size_t off = 0;
	while (off < (size_t)n) {
		size_t take = (size_t)n - off;
		agent_decoder_feed(&a->dec, buf + off, &take);
		off += take;
		struct agent_frame f;
		while (agent_decoder_next(&a->dec, &f) == 1)
			agent_handle_frame(a, &f);
	}
	return n;
}

static int agent_run(struct agent *a)
{
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = a->port_fd, .events = POLLIN },
			{ .fd = a->job.pid > 0 ? a->job.out_fd : -1, .events = POLLIN },
			{ .fd = a->job.pid > 0 ? a->job.err_fd : -1, .events = POLLIN },
		};
		int timeout = -1;
		if (a->job.pid > 0)
			timeout = AGENT_TICK_MS;
		int r = poll(pfd, 3, timeout);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (a->job.pid > 0 && !a->job.exited && !a->job.timed_out &&
		    (uint64_t)agent_now_ms() >= a->job.deadline_ms) {
			kill(-a->job.pid, SIGKILL);
			a->job.timed_out = true;
		}
		/* A port without a host reports POLLIN and POLLHUP with nothing to read: only a read
		 * that got something means the host is there (else this loop would spin a vCPU). */
		if ((pfd[0].revents & (POLLIN | POLLHUP)) && agent_read_port(a) <= 0 && (pfd[0].revents & POLLHUP)) {
			/* No host connected: a half-received frame will never complete. Start afresh
			 * when the host comes back; poll would report HUP at once, so wait a little. */
			agent_decoder_init(&a->dec);
			a->host_gone = true;
			struct timespec ts = { 0, 100L * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (pfd[1].revents)
			job_forward_output(a, &a->job.out_fd, AGENT_MSG_STDOUT);
		if (pfd[2].revents)
			job_forward_output(a, &a->job.err_fd, AGENT_MSG_STDERR);
		job_try_finish(a);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ddtk-guest-agent [--port NAME] [--wait SECONDS]\n"
		   "Runs commands from the ddtk host harness, received on the virtio-serial port NAME\n"
		   "(default " AGENT_PORT_NAME "). Waits up to SECONDS (default 30) for the port.\n");
}

int main(int argc, char **argv)
{
	const char *port_name = AGENT_PORT_NAME;
	long wait_s = 30;
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "p:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port_name = optarg; break;
		case 'w': wait_s = strtol(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	char path[300];
	uint64_t give_up = (uint64_t)agent_now_ms() + (uint64_t)(wait_s > 0 ? wait_s : 0) * 1000u;
	while (agent_port_find(port_name, path, sizeof(path)) < 0) {
		if ((uint64_t)agent_now_ms() >= give_up) {
			fprintf(stderr, "ddtk-guest-agent: no virtio-serial port named %s\n", port_name);
			return 1;
		}
		usleep(100 * 1000);
	}
	static struct agent a;
	a.port_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (a.port_fd < 0) {
		fprintf(stderr, "ddtk-guest-agent: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	a.job.pid = 0;
	a.job.out_fd = a.job.err_fd = -1;
	agent_decoder_init(&a.dec);
	fprintf(stderr, "ddtk-guest-agent: serving %s on %s\n", port_name, path);
	int r = agent_run(&a);
	fprintf(stderr, "ddtk-guest-agent: %s\n", strerror(-r));
	return 1;
}
