/* ddtk's VMs through libvirt: turns the configuration into domains (driver domain "dd" and the
 * clients), starts them as transient domains, waits until their agent answers, stops them. */
#pragma once

/* The _LAST values, so that -Wswitch-enum sees libvirt enums in full. */
#define VIR_ENUM_SENTINELS
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>

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
/* Lines at the end of the VM's console log, for error messages (free() it; NULL if none). */
char *vmm_console_tail(const struct vmm *m, const char *vm, unsigned lines);
