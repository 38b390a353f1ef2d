/* Unit tests of software TCP segmentation (net-gso.c): a 64 KiB-style GSO packet cut into MSS-sized
 * frames whose headers (lengths, IPv4 id and checksum, sequence numbers, FIN/PSH/CWR) and TCP
 * checksums are checked independently; packets that are not plain TCP GSO are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "net-frame.h"
#include "net-gso.h"
#include "net-vnet.h"

#define SEGS_MAX 8

struct collected {
	unsigned n;
	size_t len[SEGS_MAX];
	uint8_t frame[SEGS_MAX][2048];
};

static void collect(void *opaque, const uint8_t *frame, size_t len)
{
	struct collected *c = opaque;

	assert_true(c->n < SEGS_MAX);
	assert_true(len <= sizeof(c->frame[0]));
	memcpy(c->frame[c->n], frame, len);
	c->len[c->n++] = len;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)be16(p) << 16 | be16(p + 2);
}

/* The one's-complement sum, folded: 0xffff over data that includes a correct checksum. */
static uint16_t fold(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sum += i % 2 ? p[i] : (uint32_t)p[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint8_t frame[NET_MAX_FRAME], scratch[NET_MAX_FRAME];

/* Ethernet + IPv4 (id 0x1234, DF) or IPv6 + TCP (seq 1000, flags) + payload of n pattern bytes. */
static size_t build(bool v4, uint8_t tcp_flags, size_t n)
{
	size_t l3 = 14, l4 = l3 + (v4 ? 20 : 40), off = l4 + 20;

	memset(frame, 0, off);
	memset(frame, 0x02, 12);
	frame[12] = v4 ? 0x08 : 0x86;
	frame[13] = v4 ? 0x00 : 0xdd;
	if (v4) {
		frame[l3] = 0x45;
		frame[l3 + 2] = (uint8_t)((20 + 20 + n) >> 8);
		frame[l3 + 3] = (uint8_t)(20 + 20 + n);
		frame[l3 + 4] = 0x12;
		frame[l3 + 5] = 0x34;
		frame[l3 + 6] = 0x40;
		frame[l3 + 8] = 64;
		frame[l3 + 9] = 6;
		memcpy(frame + l3 + 12, "\x0a\x00\x00\x0a\x0a\x00\x00\x0b", 8);
	} else {
		frame[l3] = 0x60;
		frame[l3 + 6] = 6;
		frame[l3 + 7] = 64;
		frame[l3 + 8] = 0xfd;
		frame[l3 + 23] = 1;
		frame[l3 + 24] = 0xfd;
		frame[l3 + 39] = 2;
	}
	frame[l4] = 0x9c;     /* ports 40000 -> 5201 */
	frame[l4 + 1] = 0x40;
	frame[l4 + 2] = 0x14;
	frame[l4 + 3] = 0x51;
	frame[l4 + 7] = 0xe8; /* seq 1000 */
	frame[l4 + 6] = 0x03;
	frame[l4 + 12] = 5 << 4;
	frame[l4 + 13] = tcp_flags;
	for (size_t i = 0; i < n; i++)
		frame[off + i] = (uint8_t)(i * 7 + 3);
	return off + n;
}

static struct net_vnet_hdr tso(bool v4, uint16_t mss)
{
	return (struct net_vnet_hdr){ .flags = NET_HDR_F_NEEDS_CSUM,
				      .gso_type = v4 ? NET_HDR_GSO_TCPV4 : NET_HDR_GSO_TCPV6,
				      .hdr_len = v4 ? 54 : 74, .gso_size = mss,
				      .csum_start = v4 ? 34 : 54, .csum_offset = 16 };
}

static void check_segments(bool v4, const struct collected *c, size_t payload, size_t mss, uint8_t orig_flags)
{
	size_t l3 = 14, l4 = l3 + (v4 ? 20 : 40), off = l4 + 20, done = 0;

	for (unsigned i = 0; i < c->n; i++) {
		const uint8_t *f = c->frame[i];
		size_t seg = c->len[i] - off;
		uint8_t flags = f[l4 + 13];
		uint32_t pseudo;

		assert_int_equal(seg, payload - done < mss ? payload - done : mss);
		if (v4) {
			assert_int_equal(be16(f + l3 + 2), 20 + 20 + seg);
			assert_int_equal(be16(f + l3 + 4), 0x1234 + i);
			assert_int_equal(fold(0, f + l3, 20), 0xffff);
			pseudo = fold(0, f + l3 + 12, 8);
		} else {
			assert_int_equal(be16(f + l3 + 4), 20 + seg);
			pseudo = fold(0, f + l3 + 8, 32);
		}
		assert_int_equal(fold(pseudo + 6 + 20 + (uint32_t)seg, f + l4, 20 + seg), 0xffff);
		assert_int_equal(be32(f + l4 + 4), 1000 + done);
		assert_int_equal(flags & 0x80, i == 0 ? orig_flags & 0x80 : 0);          /* CWR: first only */
		assert_int_equal(flags & 0x09, i + 1 == c->n ? orig_flags & 0x09 : 0);   /* FIN, PSH: last only */
		assert_true(flags & 0x10);                                   /* ACK: all */
		assert_memory_equal(f + off, frame + off + done, seg);
		done += seg;
	}
	assert_int_equal(done, payload);
}

static void test_gso_tcp4(void **state)
{
	struct collected c = { 0 };
	size_t len = build(true, 0x80 | 0x10 | 0x08 | 0x01, 2500);
	struct net_vnet_hdr h = tso(true, 1000);

	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), 3);
	assert_int_equal(c.n, 3);
	check_segments(true, &c, 2500, 1000, 0x80 | 0x10 | 0x08 | 0x01);
}

static void test_gso_tcp6(void **state)
{
	struct collected c = { 0 };
	size_t len = build(false, 0x10 | 0x08, 2896);
	struct net_vnet_hdr h = tso(false, 1448);

	h.gso_type |= NET_HDR_GSO_ECN;
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), 2);
	check_segments(false, &c, 2896, 1448, 0x10 | 0x08);
}

static void test_gso_exact_and_empty(void **state)
{
	struct collected c = { 0 };
	size_t len = build(true, 0x10, 2000);
	struct net_vnet_hdr h = tso(true, 1000);

	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), 2);
	check_segments(true, &c, 2000, 1000, 0x10);
	memset(&c, 0, sizeof(c));
	len = build(true, 0x10 | 0x01, 0); /* a bare FIN still goes out, once */
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), 1);
	assert_int_equal(c.len[0], 54);
}

static void test_gso_refused(void **state)
{
	struct collected c = { 0 };
	size_t len = build(true, 0x10, 3000);
	struct net_vnet_hdr h = tso(true, 0);

	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL); /* no MSS */
	h = tso(true, 10);
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL); /* 300 segments */
	h = tso(true, 1000);
	h.csum_start = 38;
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL); /* not the TCP header */
	h = tso(true, 1000);
	h.gso_type = NET_HDR_GSO_UDP;
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL);
	h = tso(false, 1000); /* an IPv4 packet called TCPV6 */
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL);
	len = build(false, 0x10, 3000);
	frame[14 + 6] = 0; /* a hop-by-hop header first */
	h = tso(false, 1000);
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL);
	len = build(true, 0x10, 20);
	frame[34 + 12] = 15 << 4; /* a 60-byte TCP header in a packet with 40 bytes after the IP header */
	h = tso(true, 1000);
	assert_int_equal(net_gso_segment(&h, frame, len, scratch, collect, &c), -EINVAL);
	assert_int_equal(c.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gso_tcp4),
		cmocka_unit_test(test_gso_tcp6),
		cmocka_unit_test(test_gso_exact_and_empty),
		cmocka_unit_test(test_gso_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
