/* Fuzz target: the ddtk.conf parser. Whatever the input, it returns an error or a configuration
 * whose values are all within their limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

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
		for (unsigned i = 0; i < cfg.n_clients; i++)
			if (!ddtk_name_valid(cfg.clients[i].name) ||
			    cfg.clients[i].memory_mib < DDTK_MEMORY_MIB_MIN || cfg.clients[i].vcpus < 1)
				abort();
	} else if (err.msg[0] == '\0') {
		abort(); /* every failure says why */
	}
	free(text);
	return 0;
}
