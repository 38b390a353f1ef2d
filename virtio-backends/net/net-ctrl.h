/* The virtio-net control queue's commands, for front-ends that hand the control queue to the
 * back-end (QEMU keeps it for itself and never does: there, the switch learns multicast groups by
 * snooping the client's IGMP/MLD reports instead). A command never widens what a client may
 * receive beyond its own MAC, broadcast and multicast: promiscuous mode is accepted and changes
 * nothing, and the MAC address cannot be changed away from the configured one. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "net-switch.h"

#define NET_CTRL_OK 0
#define NET_CTRL_ERR 1

/* Applies one command (class, command, data: the device-readable part of the chain) to port p.
 * *io_pairs is the number of queue pairs in use, changed by MQ_VQ_PAIRS_SET within 1..max_pairs.
 * Returns the ack byte for the driver. */
uint8_t net_ctrl_apply(struct net_port *p, unsigned max_pairs, const uint8_t *cmd, size_t len, unsigned *io_pairs);
