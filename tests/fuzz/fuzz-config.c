/* Fuzz target: the ddtk.conf parser. Whatever the input, it returns an error or a configuration
 * whose values are all within their limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ddctl-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	static struct ddtk_config cfg;
	struct ddtk_err err;
	ddtk_config_init(&cfg);
	if (ddtk_config_load_string(&cfg, text, &err) == 0) {
		if (!ddtk_name_valid(cfg.instance) || cfg.n_clients > DDTK_CLIENTS_MAX ||
		    cfg.dd.memory_mib < DDTK_MEMORY_MIB_MIN || cfg.dd.memory_mib > DDTK_MEMORY_MIB_MAX ||
		    cfg.dd.vcpus < 1 || cfg.dd.vcpus > DDTK_VCPUS_MAX || cfg.boot_timeout_s < 1 ||
		    cfg.dd.disk_size_mib > DDTK_DISK_MIB_MAX || (cfg.state_dir[0] != '/'))
			abort();
		uint64_t volumes_end = 0;
		for (unsigned i = 0; i < cfg.n_clients; i++) {
			const struct ddtk_client_config *c = &cfg.clients[i];
			if (!ddtk_name_valid(c->name) || c->memory_mib < DDTK_MEMORY_MIB_MIN || c->vcpus < 1 ||
			    c->volume_queues < 1 || c->volume_queues > DDTK_VOLUME_QUEUES_MAX ||
			    c->dd_nic_queues < 1 || c->dd_nic_queues > DDTK_NET_QUEUES_MAX ||
			    (c->vhost_user_blk[0] && c->volume_mib) || (c->vhost_user_net[0] && c->dd_nic))
				abort();
			/* Volumes follow each other, aligned, and end within the DD's disk. */
			uint64_t off, len;
			if (ddtk_config_volume(&cfg, i, &off, &len) == 0) {
				if (off < volumes_end || off % DDTK_VOLUME_ALIGN || len != c->volume_mib << 20 ||
				    off + len > cfg.dd.disk_size_mib << 20)
					abort();
				volumes_end = off + len;
			} else if (c->volume_mib) {
				abort();
			}
		}
		if (ddtk_config_uses_bridge(&cfg)) {
			char path[DDTK_SOCKET_PATH_MAX];
			if (cfg.n_clients > DDCTL_CLIENTS_MAX || ddtk_bridge_status_socket(&cfg, path) < 0 ||
			    ddtk_bridge_ivshmem_socket(&cfg, DDCTL_SESSIONS_MAX, path) < 0)
				abort();
		}
		if (cfg.dd.nic_tap[0] && cfg.dd.nic.kind != DDTK_DEVICE_EMULATED)
			abort();
	} else if (err.msg[0] == '\0') {
		abort(); /* every failure says why */
	}
	free(text);
	return 0;
}
