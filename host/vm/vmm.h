/* ddtk's VMs through libvirt: turns the configuration into domains (driver domain "dd" and the
 * clients), starts them as transient domains, waits until their agent answers, stops them. */
#pragma once

/* The _LAST values, so that -Wswitch-enum sees libvirt enums in full. */
#define VIR_ENUM_SENTINELS
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "domxml.h"
#include "error.h"

struct vmm {
	const struct ddtk_config *cfg;
	virConnectPtr conn;
	enum vm_accel accel;                   /* resolved */
	char instance_dir[DDTK_PATH_MAX + 64]; /* STATE_DIR/INSTANCE */
};

/* Paths and strings of one VM, derived from the configuration. */
struct vmm_vm {
	enum vm_role role;
	char vm[DDTK_NAME_MAX + 1];            /* "dd" or the client's name */
	char domain[2 * DDTK_NAME_MAX + 16];   /* ddtk-INSTANCE-VM */
	char kernel[DDTK_PATH_MAX + 128], initrd[DDTK_PATH_MAX + 128];
	char image_kernel[DDTK_PATH_MAX + 64], image_initrd[DDTK_PATH_MAX + 64];
	char console_log[DDTK_PATH_MAX + 128];
	char disk_image[DDTK_PATH_MAX + 128];
	/* A client's disk or NIC served from the driver domain: ddtk-bridge's socket for it. */
	char bridge_blk_socket[DDTK_SOCKET_PATH_MAX], bridge_net_socket[DDTK_SOCKET_PATH_MAX];
	char cmdline[2 * DDTK_CMDLINE_MAX];
	struct vm_spec spec;
};

/* Resolves the accelerator; connects to libvirt only when connect is true (xml needs no daemon). */
int vmm_open(struct vmm *m, const struct ddtk_config *cfg, bool connect, struct ddtk_err *err);
void vmm_close(struct vmm *m);

/* vm is "dd" or a client's name. */
int vmm_vm_get(const struct vmm *m, const char *vm, struct vmm_vm *ret_vm, struct ddtk_err *err);
int vmm_xml(const struct vmm *m, const char *vm, char **ret_xml, struct ddtk_err *err);

/* Creates the instance folder and the DD's disk image when missing, stages the kernel and initrd,
 * and starts the domain. -EEXIST when it already runs. */
int vmm_start(struct vmm *m, const char *vm, struct ddtk_err *err);
/* Waits until the VM's agent answers. When the guest stops or the time runs out, err holds the
 * reason and the end of its console log. */
int vmm_wait_ready(struct vmm *m, const char *vm, unsigned timeout_s, struct ddtk_err *err);
/* Destroys the VM's domain; 0 when it was not running. */
int vmm_stop(struct vmm *m, const char *vm, struct ddtk_err *err);
/* "running", "shut off", ... or "not running" when libvirt has no such domain. */
const char *vmm_state(struct vmm *m, const char *vm);
/* The host end of the VM's agent port, from the live domain XML (free() it). */
int vmm_agent_socket(struct vmm *m, const char *vm, char **ret_path, struct ddtk_err *err);
/* Removes the instance folder (disk image, logs); every VM must be stopped. */
int vmm_purge(struct vmm *m, struct ddtk_err *err);
/* Sleeps ms milliseconds (the waits of the start and stop paths). */
void vmm_sleep_ms(unsigned ms);
/* Lines at the end of the VM's console log, for error messages (free() it; NULL if none). */
char *vmm_console_tail(const struct vmm *m, const char *vm, unsigned lines);
/* The same for any log file: its last `lines` lines (of at most its last 64 KiB), control
 * characters blanked, ending with a newline (free() it; NULL when missing or empty). */
char *vmm_file_tail(const char *path, unsigned lines);
/* mkdir -p: creates path and its missing parents with mode (less the umask). */
int vmm_mkdir_p(const char *path, mode_t mode);

/* ddtk's host daemons (vmm-daemon.c), each run as a detached process: ddtk-bridge, the host side
 * of the clients' DD-served devices (its pid in ddtk_bridge_pid_file(), its output appended to
 * ddtk_bridge_log_file(), its sockets in ddtk_bridge_dir(), created with mode 0711), and ddtkd,
 * the supervisor that restarts the DD (ddtk_ddtkd_*() files). */
enum vmm_daemon {
	VMM_DAEMON_BRIDGE,
	VMM_DAEMON_DDTKD,
	_VMM_DAEMON_LAST,
};
#define VMM_DAEMON_START_TIMEOUT_S 10
#define VMM_DAEMON_STOP_TIMEOUT_S 5
/* 0 and its pid when the pid file names a live process whose command line has an argument whose
 * file name is the program's name; -ESRCH when not (no pid file, a stale one, another program). */
int vmm_daemon_pid(const struct vmm *m, enum vmm_daemon which, pid_t *ret_pid);
/* Starts argv (argv[0]: the daemon binary's path) in a new session, stdin /dev/null, stdout and
 * stderr appended to the log; writes the pid file; waits up to VMM_DAEMON_START_TIMEOUT_S for its
 * status socket to accept a connection. When it exits or does not answer in time, it is stopped
 * and err holds why with the end of its log. -EEXIST (and *ret_pid) when one runs. */
int vmm_daemon_start(const struct vmm *m, enum vmm_daemon which, char *const argv[], pid_t *ret_pid,
		     struct ddtk_err *err);
/* SIGTERM to the daemon of the pid file, SIGKILL after VMM_DAEMON_STOP_TIMEOUT_S; removes the pid
 * file. 0 also when none runs. */
int vmm_daemon_stop(const struct vmm *m, enum vmm_daemon which, struct ddtk_err *err);
/* What the daemon's status socket answers (one connection, read to EOF, at most 1 MiB) within
 * timeout_ms, NUL-terminated (free() it). */
int vmm_daemon_status(const struct vmm *m, enum vmm_daemon which, unsigned timeout_ms, char **ret_text,
		      struct ddtk_err *err);
