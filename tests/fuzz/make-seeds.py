#!/usr/bin/env python3
"""Writes the seed inputs of the vhost-user and virtio-blk fuzz targets into tests/fuzz/corpus/:
the message sequence QEMU 7.2's vhost-user-blk sends at start and at reconnect, rings with good
and hostile chains, and blk requests of every type. Run it again after changing a format."""
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
