/* The virtio-net header in front of every frame: checking what a client's driver put there before
 * the kernel or another client acts on it, and adapting it to what a receiver negotiated. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Feature bits (virtio spec 5.1.3). */
#define NET_F_CSUM 0
#define NET_F_GUEST_CSUM 1
#define NET_F_MTU 3
#define NET_F_MAC 5
#define NET_F_GUEST_TSO4 7
#define NET_F_GUEST_TSO6 8
#define NET_F_GUEST_ECN 9
#define NET_F_GUEST_UFO 10
#define NET_F_HOST_TSO4 11
#define NET_F_HOST_TSO6 12
#define NET_F_HOST_ECN 13
#define NET_F_HOST_UFO 14
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS 16
#define NET_F_CTRL_VQ 17
#define NET_F_CTRL_RX 18
#define NET_F_CTRL_VLAN 19
#define NET_F_GUEST_ANNOUNCE 21
#define NET_F_MQ 22
#define NET_F_CTRL_MAC_ADDR 23

#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_F_DATA_VALID 2
#define NET_HDR_GSO_NONE 0
#define NET_HDR_GSO_TCPV4 1
#define NET_HDR_GSO_UDP 3
#define NET_HDR_GSO_TCPV6 4
#define NET_HDR_GSO_ECN 0x80

/* The largest frame that crosses ddtk-net: a 64 KiB GSO packet with its link header. */
#define NET_MAX_FRAME (65535 + 14 + 4)

/* The header in host byte order; num_buffers only exists with MRG_RXBUF or VERSION_1. On the wire
 * it is little-endian (VERSION_1, or a legacy little-endian guest: ddtk-net runs on x86/arm64). */
struct net_vnet_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

#define NET_VNET_HDR_LEN 10     /* without num_buffers: also what AF_PACKET's PACKET_VNET_HDR uses */
#define NET_VNET_HDR_MRG_LEN 12

/* The header length a driver with these features uses. */
size_t net_vnet_hdr_len(uint64_t features);

void net_vnet_hdr_decode(const uint8_t *wire, size_t hdr_len, struct net_vnet_hdr *ret);
void net_vnet_hdr_encode(const struct net_vnet_hdr *h, size_t hdr_len, uint8_t *wire);

/* Checks the header a client sent with a frame of frame_len bytes against the features it
 * negotiated: -EINVAL for a header no honest driver writes (the frame is dropped), 0 otherwise.
 * Flags only a device may set are cleared. */
int net_vnet_check_tx(struct net_vnet_hdr *h, size_t frame_len, uint64_t features);

/* Adapts h and the frame for a receiver with these features: completes a partial checksum in
 * software when it cannot take one, clears DATA_VALID when it does not know the flag. Returns
 * -EOPNOTSUPP for a GSO packet the receiver cannot take (dropped), 0 otherwise. */
int net_vnet_fixup_rx(struct net_vnet_hdr *h, uint8_t *frame, size_t frame_len, uint64_t features);

/* Whether fixing up for these features would write to the frame. */
int net_vnet_rx_needs_fixup(const struct net_vnet_hdr *h, uint64_t features);

/* The Internet checksum of p[0..len), folded, not inverted. */
uint16_t net_csum_fold(const uint8_t *p, size_t len);
