#!/usr/bin/env python3
"""Writes the seed inputs of the vhost-user, virtio-blk, virtio-net and DD topology fuzz targets
into tests/fuzz/corpus/: the message sequence QEMU 7.2's vhost-user-blk sends at start and at
reconnect, rings with good and hostile chains, blk requests of every type, the frames and control
commands a virtio-net client sends, and HELLO topologies (kick-vector ranges good and bad). Run it
again after changing a format."""
import os
import struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
V = 1  # version flag
NEED_REPLY = 8


def msg(req, payload=b"", flags=V):
    return struct.pack("<III", req, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def state(i, n):
    return struct.pack("<II", i, n)


UVA = 0x7F0000000000


def start_sequence(queues=1, num=128, inflight=True, event_idx=True):
    feats = (1 << 32) | (1 << 30) | (1 << 28) | (1 << 9) | (1 << 12) | ((1 << 29) if event_idx else 0)
    pf = (1 << 0) | (1 << 3) | (1 << 9) | ((1 << 12) if inflight else 0)
    out = msg(1) + msg(15) + msg(16, u64(pf)) + msg(17) + msg(3) + msg(2, u64(feats))
    out += msg(24, struct.pack("<III", 0, 60, 0) + bytes(60))
    if inflight:
        out += msg(31, struct.pack("<QQHHxxxx", 0, 0, queues, num))
        out += msg(32, struct.pack("<QQHHxxxx", 4096 * queues, 0, queues, num))
    out += msg(5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 20, UVA, 0), V | NEED_REPLY)
    for q in range(queues):
        base = q * 0x10000
        out += msg(8, state(q, num)) + msg(10, state(q, 0))
        out += msg(9, struct.pack("<IIQQQQ", q, 0, UVA + base, UVA + base + 0x2000, UVA + base + 0x1000, 0))
        out += msg(12, u64(q)) + msg(13, u64(q))
    for q in range(queues):
        out += msg(18, state(q, 1))
    for q in range(queues):
        out += msg(11, state(q, 0))
    return out


def write(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)


write("vu-msg", "qemu-start", start_sequence())
write("vu-msg", "qemu-start-mq", start_sequence(queues=4, num=256))
write("vu-msg", "no-inflight-no-event-idx", start_sequence(inflight=False, event_idx=False))
write("vu-msg", "bad-mem-table", msg(1) + msg(5, struct.pack("<II", 9, 0) + bytes(32 * 9)))
write("vu-msg", "oversized", struct.pack("<III", 2, V, 1 << 20) + bytes(64))
write("vu-msg", "reset", start_sequence() + msg(4) + start_sequence())

# vu-vq: [log2 num][flags: 1 event_idx, 2 indirect, 4 inflight][base u16] then guest memory from 0.
def vq_input(num_log2, flags, base, descs, avail, extra=b"", extra_at=0x10000):
    num = 1 << num_log2
    mem = bytearray(0x12000)
    for i, (addr, ln, fl, nx) in enumerate(descs):
        struct.pack_into("<QIHH", mem, 16 * i, addr, ln, fl, nx)
    avail_off = 16 * num
    struct.pack_into("<HH", mem, avail_off, 0, len(avail))
    for i, h in enumerate(avail):
        struct.pack_into("<H", mem, avail_off + 4 + 2 * i, h)
    mem[extra_at:extra_at + len(extra)] = extra
    return bytes([num_log2, flags]) + struct.pack("<H", base) + bytes(mem)


NEXT, WRITE, INDIRECT = 1, 2, 4
write("vu-vq", "good-chain", vq_input(4, 1, 0, [(0x10000, 16, NEXT, 1), (0x10100, 512, NEXT | WRITE, 2),
                                            (0x10400, 1, WRITE, 0)], [0]))
write("vu-vq", "loop", vq_input(4, 0, 0, [(0x10000, 16, NEXT, 1), (0x10000, 16, NEXT, 0)], [0]))
ind = b"".join(struct.pack("<QIHH", 0x11000 + 64 * i, 64, NEXT if i < 3 else WRITE, i + 1) for i in range(4))
write("vu-vq", "indirect", vq_input(3, 2 | 4, 0, [(0x10000, len(ind), INDIRECT, 0)], [0, 0], ind))
write("vu-vq", "inflight-many", vq_input(5, 1 | 4 | 0x30, 0, [(0x10000 + 32 * i, 32, WRITE, 0) for i in range(32)],
                                         list(range(32))))

# blk-req: [n_out][n_in][len of each iovec...][buffer bytes]
def blk_input(lens_out, lens_in, buf):
    return bytes([len(lens_out), len(lens_in)] + lens_out + lens_in) + buf


hdr = lambda t, s: struct.pack("<IIQ", t, 0, s)
write("blk-req", "read", blk_input([16], [255, 1], hdr(0, 8)))
write("blk-req", "write", blk_input([16, 200], [1], hdr(1, 16) + bytes(200) + b"\0"))
write("blk-req", "split-header", blk_input([5, 11], [1], hdr(1, 3)))
write("blk-req", "discard", blk_input([16, 32], [1], hdr(11, 0) + struct.pack("<QII", 8, 8, 0) * 2))
write("blk-req", "no-status", blk_input([16], [], hdr(0, 0)))
write("blk-req", "get-id", blk_input([16], [20, 1], hdr(8, 0)))


# net-frame: [tx features][rx features][from | filters << 2][vnet header][frame]; fuzz-net-frame.c.
# tx feature bits: CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN, HOST_UFO, MRG_RXBUF, VERSION_1, CTRL_VQ;
# rx: GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN, GUEST_UFO, MRG_RXBUF, VERSION_1, CTRL_RX.
# from: 0..2 a port (MACs 02:00:00:00:00:0a..0c), 3 the uplink. The vnet header is 12 bytes with
# MRG_RXBUF or VERSION_1, 10 without.
TX_CSUM, TX_TSO4, TX_TSO6, TX_ECN, TX_UFO, TX_MRG, TX_V1 = 1, 2, 4, 8, 16, 32, 64
RX_CSUM, RX_TSO4, RX_TSO6 = 1, 2, 4
PORT = [bytes([2, 0, 0, 0, 0, 0x0a + i]) for i in range(3)]
OUTSIDE = bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56])
BCAST = b"\xff" * 6
UPLINK = 3
NEEDS_CSUM = 1


def fuzz_net_frame_input(tx, rx, frm, hdr, frame):
    return bytes([tx, rx, frm]) + hdr + frame


def vnet(tx, flags=0, gso=0, hdr_len=0, gso_size=0, start=0, off=0):
    h = struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, start, off)
    return h + (struct.pack("<H", 1) if tx & (TX_MRG | TX_V1) else b"")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def eth(dst, src, etype, tags=()):
    out = dst + src
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", etype)


def ipv4(proto, src, dst, payload, options=b"", frag=0):
    ihl = 5 + len(options) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), 1, frag, 64, proto, 0,
                    bytes(src), bytes(dst)) + options
    return h[:10] + struct.pack("!H", 0xFFFF ^ csum(h)) + h[12:] + payload


def ipv6(nxt, src, dst, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nxt, 1, bytes(src), bytes(dst)) + payload


A4, B4 = [10, 0, 0, 10], [10, 0, 0, 11]
A6 = bytes([0xFE, 0x80] + [0] * 13 + [0x0A])
B6 = bytes([0xFE, 0x80] + [0] * 13 + [0x0B])


def l4_partial(proto, src, dst, seg, csum_at):
    """seg with the pseudo-header sum in its checksum field, as a driver with CSUM leaves it."""
    if len(src) == 4:
        pseudo = bytes(src) + bytes(dst) + struct.pack("!BBH", 0, proto, len(seg))
    else:
        pseudo = bytes(src) + bytes(dst) + struct.pack("!IxxxB", len(seg), proto)
    return seg[:csum_at] + struct.pack("!H", csum(pseudo)) + seg[csum_at + 2:]


def tcp(sport, dport, payload, flags=0x18):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def arp(op, sha, spa, tha, tpa, htype=1):
    return struct.pack("!HHBBH6s4s6s4s", htype, 0x0800, 6, 4, op, sha, bytes(spa), tha, bytes(tpa))


def net(name, data):
    write("net-frame", name, data)


V1 = TX_V1
# ARP: a request, a gratuitous reply naming another client (spoofed), the same with the IEEE 802
# hardware type Linux also takes, and an outside host's request from the uplink
net("arp-request", fuzz_net_frame_input(V1, 0, 0, vnet(V1), eth(BCAST, PORT[0], 0x0806) +
                                        arp(1, PORT[0], A4, b"\0" * 6, B4) + bytes(18)))
net("arp-spoofed", fuzz_net_frame_input(V1, 0, 0, vnet(V1), eth(BCAST, PORT[0], 0x0806) +
                                        arp(2, PORT[1], A4, BCAST, A4)))
net("arp-ieee802-spoofed", fuzz_net_frame_input(0, 0, 0, vnet(0), eth(BCAST, PORT[0], 0x0806) +
                                                arp(2, PORT[2], A4, BCAST, A4, htype=6)))
net("arp-uplink", fuzz_net_frame_input(0, 0, UPLINK, vnet(0), eth(BCAST, OUTSIDE, 0x0806) +
                                       arp(1, OUTSIDE, [10, 0, 0, 1], b"\0" * 6, A4)))

# TCP/IPv4 with a partial checksum to a receiver without GUEST_CSUM (completed in software), and
# as a TSO packet to one with GUEST_TSO4 and one without
seg = l4_partial(6, A4, B4, tcp(40000, 5201, bytes(range(200))), 16)
frame = eth(PORT[1], PORT[0], 0x0800) + ipv4(6, A4, B4, seg)
net("tcp4-partial-csum", fuzz_net_frame_input(TX_CSUM | V1, 0, 0, vnet(V1, NEEDS_CSUM, 0, 0, 0, 34, 16), frame))
seg = l4_partial(6, A4, B4, tcp(40000, 5201, bytes(i & 0xFF for i in range(2896))), 16)
frame = eth(PORT[1], PORT[0], 0x0800) + ipv4(6, A4, B4, seg)
tso = vnet(V1, NEEDS_CSUM, 1, 54, 1448, 34, 16)
net("tcp4-tso", fuzz_net_frame_input(TX_CSUM | TX_TSO4 | V1, RX_CSUM | RX_TSO4, 0, tso, frame))
net("tcp4-tso-unsupported", fuzz_net_frame_input(TX_CSUM | TX_TSO4 | V1, RX_CSUM, 0, tso, frame))
seg = l4_partial(17, A4, B4, udp(5353, 9999, b"hello, odd length"), 6)
net("udp4-partial-csum", fuzz_net_frame_input(TX_CSUM, 0, 0, vnet(0, NEEDS_CSUM, 0, 0, 0, 34, 6),
                                              eth(OUTSIDE, PORT[0], 0x0800) + ipv4(17, A4, B4, seg)))
seg = l4_partial(6, A6, B6, tcp(22, 50000, b"x" * 33), 16)
net("tcp6-partial-csum", fuzz_net_frame_input(TX_CSUM | V1, RX_TSO6, UPLINK, vnet(V1, NEEDS_CSUM, 0, 0, 0, 54, 16),
                                              eth(PORT[2], OUTSIDE, 0x86DD) + ipv6(6, B6, A6, seg)))
net("ipv4-fragment", fuzz_net_frame_input(0, RX_CSUM, 1, vnet(0), eth(PORT[2], PORT[1], 0x0800) +
                                          ipv4(17, A4, B4, udp(1, 2, bytes(64)), frag=0x2000)))

# IGMP: v2 report and leave, a v3 report (join, leave, allow with sources, block), and MLD with the
# hop-by-hop header carrying the router alert: v1 report, v2 report
RA = b"\x94\x04\x00\x00"


def igmp(typ, group, body=b""):
    m = struct.pack("!BBH4s", typ, 0, 0, bytes(group)) + body
    return m[:2] + struct.pack("!H", 0xFFFF ^ csum(m)) + m[4:]


def record(typ, group, sources=(), aux=b""):
    return struct.pack("!BBH", typ, len(aux) // 4, len(sources)) + bytes(group) + b"".join(map(bytes, sources)) + aux


G = [239, 1, 2, 3]
net("igmpv2-report", fuzz_net_frame_input(0, 0, 0, vnet(0), eth(bytes([1, 0, 0x5E, 1, 2, 3]), PORT[0], 0x0800) +
                                          ipv4(2, A4, G, igmp(0x16, G), RA)))
net("igmpv2-leave", fuzz_net_frame_input(0, 0, 1, vnet(0), eth(bytes([1, 0, 0x5E, 0, 0, 2]), PORT[1], 0x0800) +
                                         ipv4(2, B4, [224, 0, 0, 2], igmp(0x17, G), RA)))
recs = (record(2, [239, 1, 2, 4]) + record(3, G) + record(5, [239, 5, 5, 5], [[10, 0, 0, 1], [10, 0, 0, 2]]) +
        record(6, [239, 6, 6, 6], [[10, 0, 0, 1]]) + record(4, [224, 0, 0, 251], aux=b"\0" * 4))
m = struct.pack("!BBHHH", 0x22, 0, 0, 0, 5) + recs
m = m[:2] + struct.pack("!H", 0xFFFF ^ csum(m)) + m[4:]
net("igmpv3-report", fuzz_net_frame_input(V1, 0, 0, vnet(V1), eth(bytes([1, 0, 0x5E, 0, 0, 0x16]), PORT[0], 0x0800) +
                                          ipv4(2, A4, [224, 0, 0, 22], m, RA)))


def icmp6(src, dst, m):
    pseudo = bytes(src) + bytes(dst) + struct.pack("!IxxxB", len(m), 58)
    return m[:2] + struct.pack("!H", 0xFFFF ^ csum(pseudo + m)) + m[4:]


HBH = bytes([58, 0, 5, 2, 0, 0, 1, 0])
G6 = bytes([0xFF, 0x05] + [0] * 11 + [1, 0, 3])
MLD2 = bytes([0xFF, 0x02] + [0] * 13 + [0x16])
m = icmp6(A6, G6, struct.pack("!BBHHH", 131, 0, 0, 0, 0) + G6)
net("mldv1-report", fuzz_net_frame_input(0, 0, 0, vnet(0), eth(bytes([0x33, 0x33, 0, 1, 0, 3]), PORT[0], 0x86DD) +
                                         ipv6(0, A6, G6, HBH + m)))
recs = (record(4, G6) + record(3, bytes([0xFF, 0x02] + [0] * 13 + [0xFB])) +
        record(5, bytes([0xFF, 0x0E] + [0] * 13 + [7]), [B6]))
m = icmp6(A6, MLD2, struct.pack("!BBHHH", 143, 0, 0, 0, 3) + recs)
net("mldv2-report", fuzz_net_frame_input(V1, 0, 2, vnet(V1), eth(bytes([0x33, 0x33, 0, 0, 0, 0x16]), PORT[2], 0x86DD) +
                                         ipv6(0, A6, MLD2, HBH + m)))

# VLAN: an 802.1Q-tagged UDP frame, a QinQ ARP, multicast and a spoofed source from the uplink
net("vlan-udp", fuzz_net_frame_input(0, 0, 0, vnet(0), eth(PORT[1], PORT[0], 0x0800, [(0x8100, 100)]) +
                                     ipv4(17, A4, B4, udp(1000, 2000, b"tagged"))))
net("qinq-arp", fuzz_net_frame_input(0, 0, 1, vnet(0), eth(BCAST, PORT[1], 0x0806, [(0x88A8, 5), (0x8100, 6)]) +
                                     arp(1, PORT[1], B4, b"\0" * 6, A4)))
net("uplink-multicast", fuzz_net_frame_input(0, 0, UPLINK | 0x04 << 2, vnet(0),
                                             eth(bytes([1, 0, 0x5E, 1, 2, 3]), OUTSIDE, 0x0800) +
                                             ipv4(17, [10, 0, 0, 1], G, udp(5000, 5000, bytes(20)))))
net("uplink-spoofed", fuzz_net_frame_input(0, 0, UPLINK, vnet(0), eth(PORT[1], PORT[0], 0x0800) +
                                           ipv4(1, A4, B4, bytes(16))))

# Control commands: the input after the first three bytes is the command
def ctrl_input(cmd, pairs=4):
    return bytes([0, (pairs - 1) << 5, 0]) + cmd


net("ctrl-rx-allmulti", ctrl_input(bytes([0, 1, 1])))
net("ctrl-rx-promisc", ctrl_input(bytes([0, 0, 1])))
net("ctrl-mac-table", ctrl_input(bytes([1, 0]) + struct.pack("<I", 1) + OUTSIDE + struct.pack("<I", 3) +
                                 bytes([1, 0, 0x5E, 1, 2, 3]) + bytes([0x33, 0x33, 0, 0, 0, 0xFB]) +
                                 bytes([1, 0, 0x5E, 0x7F, 0, 1])))
net("ctrl-mac-addr", ctrl_input(bytes([1, 1]) + PORT[0]))
net("ctrl-mq-pairs", ctrl_input(bytes([4, 0, 3, 0])))
net("ctrl-offloads", ctrl_input(bytes([5, 0]) + struct.pack("<Q", 0x87)))
# more groups than a port keeps (NET_MAX_GROUPS 64): all multicast
net("ctrl-mac-table-overflow", ctrl_input(bytes([1, 0]) + struct.pack("<II", 0, 70) +
                                          b"".join(bytes([1, 0, 0x5E, 0x40, 0, i]) for i in range(70))))
recs = b"".join(record(2, [239, 64, 0, i]) for i in range(70))
m = struct.pack("!BBHHH", 0x22, 0, 0, 0, 70) + recs
m = m[:2] + struct.pack("!H", 0xFFFF ^ csum(m)) + m[4:]
net("igmpv3-many-groups", fuzz_net_frame_input(0, 0, 0, vnet(0), eth(bytes([1, 0, 0x5E, 0, 0, 0x16]), PORT[0], 0x0800) +
                                               ipv4(2, A4, [224, 0, 0, 22], m, RA)))

# net-tx: [hdr_len bit][tx features][mtu: 68 + 16 * b][k - 1][k cut weights][header + frame];
# fuzz-net-tx.c. The same frames, cut over descriptors as drivers do (header alone, header with
# the frame, a frame split mid-header) and as no driver does.
def tx_input(tx, mtu_b, weights, hdr, frame):
    return bytes([1 if tx & (TX_MRG | TX_V1) else 0, tx, mtu_b, len(weights) - 1]) + bytes(weights) + hdr + frame


small = eth(OUTSIDE, PORT[0], 0x0800) + ipv4(17, A4, B4, udp(1, 2, bytes(18)))
write("net-tx", "one-descriptor", tx_input(V1, 87, [1], vnet(V1), small))
write("net-tx", "header-alone", tx_input(V1, 87, [12, 200], vnet(V1), small))
write("net-tx", "split-in-header", tx_input(0, 87, [3, 5, 9, 255], vnet(0), small))
write("net-tx", "empty-descriptors", tx_input(V1, 87, [0, 12, 0, 0, 100, 0], vnet(V1), small))
seg = l4_partial(6, A4, B4, tcp(40000, 5201, bytes(i & 0xFF for i in range(2896))), 16)
big = eth(PORT[1], PORT[0], 0x0800) + ipv4(6, A4, B4, seg)
write("net-tx", "tso", tx_input(TX_CSUM | TX_TSO4 | V1, 87, [12, 1, 100, 100, 100], vnet(V1, NEEDS_CSUM, 1, 54, 1448, 34, 16), big))
write("net-tx", "too-long-for-mtu", tx_input(TX_CSUM | V1, 87, [1], vnet(V1), big))
write("net-tx", "vlan", tx_input(V1, 87, [1], vnet(V1), eth(OUTSIDE, PORT[0], 0x0800, [(0x8100, 7)]) + bytes(46)))
write("net-tx", "runt", tx_input(V1, 87, [1], vnet(V1), PORT[1] + PORT[0]))


# HELLO's topology (ddctl-proto.h): what the bridge sends, and lines the agent must refuse.
def blk_line(s, off, queues, kv, name="a", size=1 << 30, ro=0):
    return b"blk %d name=%s offset=%d size=%d read-only=%d queues=%d kick-vector=%d\n" % (s, name.encode(), off, size, ro, queues, kv)


def net_line(s, queues, kv, name="a", mac="02:dd:00:00:00:0a"):
    return b"net %d name=%s mac=%s queues=%d kick-vector=%d\n" % (s, name.encode(), mac.encode(), queues, kv)


write("ddctl-topology", "two-clients", blk_line(1, 0, 2, 0) + net_line(2, 1, 2) + blk_line(3, 1 << 30, 1, 4, "b", ro=1)
      + net_line(4, 4, 5, "b", "02:dd:00:00:00:0b"))
write("ddctl-topology", "empty", b"")
write("ddctl-topology", "last-vectors", net_line(2, 16, 96) + blk_line(1, 0, 16, 80))
write("ddctl-topology", "past-the-vectors", blk_line(1, 0, 2, 127))
write("ddctl-topology", "overlap", blk_line(1, 0, 2, 0) + net_line(2, 1, 1))
write("ddctl-topology", "no-kick-vector", b"blk 1 name=a offset=0 size=1048576 read-only=0 queues=1\n")
write("ddctl-topology", "kick-vector-twice", b"net 2 name=a mac=02:dd:00:00:00:0a queues=1 kick-vector=0 kick-vector=2\n")
write("ddctl-topology", "huge-kick-vector", net_line(2, 1, 4294967296))
