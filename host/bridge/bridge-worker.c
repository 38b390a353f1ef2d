/* libvirt calls of the bridge, on a thread of their own: attaching an ivshmem device blocks until
 * the DD's QEMU has connected to the bridge's ivshmem server and got its memory, which the main
 * loop must be free to answer; lookups must not stall the clients' vhost-user traffic either. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VIR_ENUM_SENTINELS
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "bridge.h"

enum job_type {
	JOB_FIND_CONTROL,   /* the Unix socket of the DD's control port, from its live XML */
	JOB_ATTACH,
	JOB_DETACH,
	_JOB_LAST,
};

struct bridge_job {
	struct bridge_job *next;
	enum job_type type;
	unsigned id;
	char *xml;
	int result;
	char *path;
	char error[512];
};

struct bridge_worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct bridge_job *todo, *done;
	bool quit;
	int event_fd;
	char uri[256];
	char domain[2 * DDTK_NAME_MAX + 16];
	virConnectPtr conn;
};

static void list_append(struct bridge_job **head, struct bridge_job *j)
{
	j->next = NULL;
	while (*head)
		head = &(*head)->next;
	*head = j;
}

static void job_free(struct bridge_job *j)
{
	if (!j)
		return;
	free(j->xml);
	free(j->path);
	free(j);
}

static void quiet_errors(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

static virDomainPtr worker_domain(struct bridge_worker *w, struct bridge_job *j)
{
	if (w->conn && virConnectIsAlive(w->conn) != 1) {
		virConnectClose(w->conn);
		w->conn = NULL;
	}
	if (!w->conn)
		w->conn = virConnectOpen(w->uri);
	if (!w->conn) {
		snprintf(j->error, sizeof(j->error), "cannot connect to %s: %s", w->uri, virGetLastErrorMessage());
		j->result = -ECONNREFUSED;
		return NULL;
	}
	virDomainPtr dom = virDomainLookupByName(w->conn, w->domain);
	if (!dom || virDomainIsActive(dom) != 1) {
		snprintf(j->error, sizeof(j->error), "%s is not running", w->domain);
		j->result = -ESRCH;
		if (dom)
			virDomainFree(dom);
		return NULL;
	}
	return dom;
}

static void job_find_control(struct bridge_worker *w, struct bridge_job *j, virDomainPtr dom)
{
	char *xml = virDomainGetXMLDesc(dom, 0);
	if (!xml) {
		snprintf(j->error, sizeof(j->error), "cannot read the XML of %s", w->domain);
		j->result = -EIO;
		return;
	}
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, XML_PARSE_NONET);
	free(xml);
	j->result = -ENOENT;
	snprintf(j->error, sizeof(j->error), "%s has no port %s", w->domain, DDCTL_PORT_NAME);
	if (!doc)
		return;
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr obj = ctx ? xmlXPathEvalExpression(BAD_CAST "string(/domain/devices/channel"
				"[target/@name='" DDCTL_PORT_NAME "']/source/@path)", ctx) : NULL;
	if (obj && obj->type == XPATH_STRING && obj->stringval && obj->stringval[0]) {
		j->path = strdup((const char *)obj->stringval);
		j->result = j->path ? 0 : -ENOMEM;
	}
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
}

static void job_run(struct bridge_worker *w, struct bridge_job *j)
{
	virDomainPtr dom = worker_domain(w, j);
	char alias[32];

	if (!dom)
		return;
	j->result = 0;
	switch (j->type) {
	case JOB_FIND_CONTROL:
		job_find_control(w, j, dom);
		break;
	case JOB_ATTACH:
		if (virDomainAttachDeviceFlags(dom, j->xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
			snprintf(j->error, sizeof(j->error), "%s", virGetLastErrorMessage());
			j->result = -EIO;
		}
		break;
	case JOB_DETACH:
		if (j->id >= DDCTL_MEM_IVPOSITION_BASE)
			snprintf(alias, sizeof(alias), "ua-ddtk-s%u-m%u",
				 (j->id - DDCTL_MEM_IVPOSITION_BASE) / (DDCTL_MEM_FILES_MAX - 1) + 1,
				 (j->id - DDCTL_MEM_IVPOSITION_BASE) % (DDCTL_MEM_FILES_MAX - 1) + 1);
		else
			snprintf(alias, sizeof(alias), "ua-ddtk-s%u", j->id);
		/* Returns once the guest was asked; the device is gone when QEMU closes its
		 * connection to the ivshmem server. */
		if (virDomainDetachDeviceAlias(dom, alias, VIR_DOMAIN_AFFECT_LIVE) < 0) {
			snprintf(j->error, sizeof(j->error), "%s", virGetLastErrorMessage());
			j->result = -EIO;
		}
		break;
	case _JOB_LAST:
		break;
	}
	virDomainFree(dom);
}

static void *worker_main(void *opaque)
{
	struct bridge_worker *w = opaque;
	uint64_t one = 1;

	virSetErrorFunc(NULL, quiet_errors);
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->todo && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->quit)
			break;
		struct bridge_job *j = w->todo;
		w->todo = j->next;
		pthread_mutex_unlock(&w->lock);
		job_run(w, j);
		pthread_mutex_lock(&w->lock);
		list_append(&w->done, j);
		if (write(w->event_fd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow in practice; the loop drains the list anyway. */
		}
	}
	pthread_mutex_unlock(&w->lock);
	if (w->conn)
		virConnectClose(w->conn);
	return NULL;
}

static void on_done(struct vu_watch *watch, uint32_t events)
{
	struct bridge *b = vu_container_of(watch, struct bridge, worker_watch);
	struct bridge_worker *w = b->worker;
	uint64_t v;
	(void)events;

	if (read(w->event_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&w->lock);
	struct bridge_job *done = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->lock);
	while (done) {
		struct bridge_job *j = done;
		done = j->next;
		switch (j->type) {
		case JOB_FIND_CONTROL:
			b->connect_job_pending = false;
			if (j->result == 0 && !b->stop) {
				int fd = bridge_connect_unix(j->path);
				if (fd >= 0)
					bridge_ctl_connected(b, fd);
			}
			break;
		case JOB_ATTACH:
			bridge_device_attached(b, j->id, j->result, j->error);
			break;
		case JOB_DETACH:
			if (j->result < 0)
				fprintf(stderr, "ddtk-bridge: detaching device %u: %s\n", j->id, j->error);
			break;
		case _JOB_LAST:
			break;
		}
		job_free(j);
	}
}

int bridge_worker_start(struct bridge *b)
{
	struct bridge_worker *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	snprintf(w->uri, sizeof(w->uri), "%s", b->cfg.libvirt_uri);
	snprintf(w->domain, sizeof(w->domain), "%s", b->dd_domain);
	w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->event_fd < 0) {
		r = -errno;
		free(w);
		return r;
	}
	b->worker = w;
	r = vu_loop_add(&b->loop, &b->worker_watch, w->event_fd, EPOLLIN, on_done);
	if (r < 0)
		return r;
	r = -pthread_create(&w->thread, NULL, worker_main, w);
	return r;
}

void bridge_worker_stop(struct bridge *b)
{
	struct bridge_worker *w = b->worker;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	vu_loop_del(&b->loop, &b->worker_watch);
	for (struct bridge_job *j = w->todo, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	for (struct bridge_job *j = w->done, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	close(w->event_fd);
	free(w);
	b->worker = NULL;
}

static int submit(struct bridge *b, enum job_type type, unsigned id, const char *xml)
{
	struct bridge_worker *w = b->worker;
	struct bridge_job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->type = type;
	j->id = id;
	if (xml && !(j->xml = strdup(xml))) {
		free(j);
		return -ENOMEM;
	}
	pthread_mutex_lock(&w->lock);
	list_append(&w->todo, j);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int bridge_worker_find_control(struct bridge *b)
{
	return submit(b, JOB_FIND_CONTROL, 0, NULL);
}

int bridge_worker_attach(struct bridge *b, unsigned id, const char *xml)
{
	return submit(b, JOB_ATTACH, id, xml);
}

int bridge_worker_detach(struct bridge *b, unsigned id)
{
	return submit(b, JOB_DETACH, id, NULL);
}
