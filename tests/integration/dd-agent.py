#!/usr/bin/env python3
"""ddtk-agent without a VM: this script plays ddtk-bridge on a pty in place of the virtio-serial
port, and the agent runs the host builds of ddtk-blk and ddtk-net in a private run folder (no
ivshmem devices, no watchdog, no uplink; any user). Checks HELLO and the back-ends' readiness, the
relay of vhost-user messages, refusals, a back-end killed (FAILED naming the exit, restart, the
session starts again), a stalled back-end (HEALTH 0 and back), a new HELLO that keeps or restarts
back-ends, a host that goes away (no spinning), and SIGTERM."""
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tty

MAGIC = 0x4C434444
VERSION = 2   # DDCTL_VERSION: the frames' and HELLO's
HELLO, HELLO_ACK, SESSION_START, SESSION_STOP, SESSION_STATE, VU, DEVICE_ADDED, DEVICE_REMOVED, HEALTH, ERROR = range(1, 11)
STOPPED, RUNNING, FAILED = 0, 1, 2
VU_GET_FEATURES, VU_FLAG_VERSION, VU_FLAG_REPLY = 1, 1, 4


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg)


class Bridge:
    """The host end: frames over the pty's master side."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def send(self, ftype, fid, payload=b""):
        os.write(self.fd, struct.pack("<IBBHII", MAGIC, VERSION, ftype, 0, fid, len(payload)) + payload)

    def recv(self, timeout):
        end = time.monotonic() + timeout
        while True:
            while len(self.buf) >= 16:
                magic, _, ftype, _, fid, length = struct.unpack("<IBBHII", self.buf[:16])
                if magic != MAGIC:
                    fail("garbage from the agent: %r" % self.buf[:16])
                if len(self.buf) < 16 + length:
                    break
                payload, self.buf = self.buf[16:16 + length], self.buf[16 + length:]
                return ftype, fid, payload
            left = end - time.monotonic()
            if left <= 0:
                return None
            if select.select([self.fd], [], [], left)[0]:
                self.buf += os.read(self.fd, 65536)

    def expect(self, what, pred, timeout=5):
        """The first frame for which pred is true, skipping HEALTH and others; fails after timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            f = self.recv(end - time.monotonic())
            if f and pred(*f):
                return f
        fail("no %s within %d s" % (what, timeout))

    def state(self, session, timeout=5):
        _, _, p = self.expect("SESSION_STATE of session %d" % session,
                              lambda t, i, p: t == SESSION_STATE and i == session, timeout)
        st, err = struct.unpack("<Ii", p[:8])
        return st, err, p[8:].decode()

    def health(self, want, timeout=6):
        return self.expect("HEALTH %d" % want, lambda t, i, p: t == HEALTH and struct.unpack("<I", p[:4])[0] == want,
                           timeout)[2][4:].decode()


def vu(request, flags, payload=b""):
    return struct.pack("<III", request, flags, len(payload)) + payload


def main():
    agent = os.environ.get("DDTK_AGENT")
    blk = os.environ.get("DDTK_BLK")
    net = os.environ.get("DDTK_NET")
    if not (agent and blk and net):
        fail("DDTK_AGENT, DDTK_BLK and DDTK_NET must name the programs")
    tmp = tempfile.mkdtemp(prefix="ddtk-agent.")
    run = os.path.join(tmp, "run")
    disk = os.path.join(tmp, "disk")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    master, slave = os.openpty()
    tty.setraw(slave)
    log = open(os.path.join(tmp, "agent.log"), "w+")
    env = dict(os.environ, DDTK_IVSHMEM_DIR=os.path.join(run, "ivshmem"))
    proc = subprocess.Popen([agent, "--port=" + os.ttyname(slave), "--run-dir=" + run, "--no-devices",
                             "--watchdog=none", "--uplink=", "--disk=" + disk, "--blk=" + blk, "--net=" + net,
                             "--poll-us=0"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        run_checks(Bridge(master), proc, log, run, master)
    except SystemExit:
        log.seek(0)
        print("--- ddtk-agent's log\n" + log.read()[-4000:], file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in backend_pids(log).values():
            # Only a back-end of ours: the pid may be gone and reused by now.
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"ddtk-" not in f.read().split(b"\0")[0]:
                        continue
                os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        subprocess.run(["rm", "-rf", tmp])


def backend_pids(log):
    """kind -> pid of the last start of each back-end, from the agent's log."""
    log.flush()
    log.seek(0)
    pids = {}
    for line in log.read().splitlines():
        if "ddtk-agent: started " in line:
            words = line.split("ddtk-agent: started ")[1].split()
            pids[words[0]] = int(words[2].rstrip("):"))
    return pids


def started_cmdlines(log):
    """kind -> the command line of the last start of each back-end, from the agent's log."""
    log.flush()
    log.seek(0)
    lines = {}
    for line in log.read().splitlines():
        if "ddtk-agent: started " in line:
            kind = line.split("ddtk-agent: started ")[1].split()[0]
            lines[kind] = line
    return lines


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run_checks(b, proc, log, run, master):
    # kick-vector: each session's range of the state device's vectors, one per virtqueue.
    topo = (b"blk 1 name=a offset=0 size=16777216 read-only=0 queues=1 kick-vector=0\n"
            b"net 2 name=a mac=02:dd:00:00:00:0a queues=1 kick-vector=1\n"
            b"blk 3 name=b offset=16777216 size=16777216 read-only=1 queues=2 kick-vector=3\n")
    b.send(HELLO, 0, struct.pack("<I", VERSION) + topo)
    _, _, p = b.expect("HELLO_ACK", lambda t, i, p: t == HELLO_ACK, 20)
    boot_id = struct.unpack("<Q", p[:8])[0]
    if not p[8:].startswith(b"ddtk-agent "):
        fail("HELLO_ACK text: %r" % p[8:])
    ok("HELLO_ACK, boot id %016x" % boot_id)
    for s in (1, 2, 3):
        if not os.path.exists(os.path.join(run, "s%d.sock" % s)):
            fail("session %d's socket missing after HELLO_ACK" % s)
    ok("every session's socket exists")
    cmdlines = started_cmdlines(log)
    for want in ("ivshmem=1,kick-vector=0", "ivshmem=3,kick-vector=3"):
        if want not in cmdlines.get("blk", ""):
            fail("ddtk-blk's command line lacks %s: %r" % (want, cmdlines.get("blk")))
    if "ivshmem=2,kick-vector=1" not in cmdlines.get("net", ""):
        fail("ddtk-net's command line lacks ivshmem=2,kick-vector=1: %r" % cmdlines.get("net"))
    ok("the back-ends got each session's kick vector")
    pids = backend_pids(log)
    if set(pids) != {"blk", "net"}:
        fail("back-ends started: %r" % pids)
    lines = b.health(1)
    if "blk: running" not in lines or "net: running" not in lines:
        fail("HEALTH lines: %r" % lines)
    ok("HEALTH 1: " + lines.replace("\n", " | "))

    # The relay: a request goes to ddtk-blk, its reply comes back as it is.
    b.send(SESSION_START, 1)
    st, err, why = b.state(1)
    if st != RUNNING:
        fail("SESSION_START 1: state %d %d %s" % (st, err, why))
    b.send(VU, 1, vu(VU_GET_FEATURES, VU_FLAG_VERSION))
    _, _, p = b.expect("VU reply", lambda t, i, p: t == VU and i == 1)
    req, flags, size = struct.unpack("<III", p[:12])
    if req != VU_GET_FEATURES or not flags & VU_FLAG_REPLY or size != 8 or len(p) != 20:
        fail("GET_FEATURES reply: %r" % p)
    ok("GET_FEATURES relayed: features %#x" % struct.unpack("<Q", p[12:])[0])

    # Refusals.
    b.send(VU, 1, struct.pack("<III", VU_GET_FEATURES, VU_FLAG_VERSION, 8))
    b.expect("ERROR for a VU frame shorter than its size", lambda t, i, p: t == ERROR and i == 1)
    b.send(VU, 2, vu(VU_GET_FEATURES, VU_FLAG_VERSION))
    b.expect("ERROR for VU to a session not started", lambda t, i, p: t == ERROR and i == 2)
    b.send(SESSION_START, 9)
    st, err, why = b.state(9)
    if st != FAILED or err != -2:
        fail("SESSION_START 9 (not in the topology): %d %d %s" % (st, err, why))
    b.send(HEALTH, 0, b"")
    b.expect("ERROR for HEALTH from the bridge", lambda t, i, p: t == ERROR)
    ok("malformed VU, VU before START, a session not in the topology, HEALTH from the bridge: refused")

    # A back-end killed: the running session fails naming the exit, the back-end comes back.
    b.send(SESSION_START, 3)
    if b.state(3)[0] != RUNNING:
        fail("SESSION_START 3")
    os.kill(pids["blk"], signal.SIGKILL)
    for s in (1, 3):
        st, err, why = b.state(s)
        # The report names the exit when the agent hears of it within its grace time after
        # the socket closed (SESSION_BROKEN_GRACE_MS); on a loaded machine it may say only that.
        if st != FAILED or ("killed by signal 9" not in why and "closed the connection" not in why):
            fail("session %d after kill -9 of ddtk-blk: %d %d %s" % (s, st, err, why))
    ok("kill -9 of ddtk-blk: sessions 1 and 3 FAILED (%s)" % why)
    b.health(1, timeout=8)
    new = backend_pids(log)
    if new["blk"] == pids["blk"] or new["net"] != pids["net"]:
        fail("after the kill: %r, before %r" % (new, pids))
    for _ in range(50):
        b.send(SESSION_START, 1)
        st, err, why = b.state(1)
        if st == RUNNING:
            break
        time.sleep(0.1)
    else:
        fail("session 1 does not start again: %s" % why)
    b.send(VU, 1, vu(VU_GET_FEATURES, VU_FLAG_VERSION))
    b.expect("VU reply after the restart", lambda t, i, p: t == VU and i == 1)
    ok("ddtk-blk restarted (pid %d), session 1 runs again" % new["blk"])
    pids = new

    # A back-end that does not answer its stats socket makes the DD unhealthy, until it does.
    os.kill(pids["net"], signal.SIGSTOP)
    lines = b.health(0)
    os.kill(pids["net"], signal.SIGCONT)
    if "net: running" not in lines or "stats:" not in lines:
        fail("HEALTH 0 lines: %r" % lines)
    ok("stopped ddtk-net: HEALTH 0 (%s)" % lines.strip().splitlines()[-1])
    b.health(1)
    ok("continued ddtk-net: HEALTH 1")

    # A new HELLO: same sessions keep their process; changed ones restart it. Sessions stop.
    b.send(HELLO, 0, struct.pack("<I", VERSION) + topo)
    b.expect("HELLO_ACK", lambda t, i, p: t == HELLO_ACK, 20)
    if backend_pids(log) != pids:
        fail("HELLO with the same topology restarted a back-end: %r, before %r" % (backend_pids(log), pids))
    b.send(VU, 1, vu(VU_GET_FEATURES, VU_FLAG_VERSION))
    b.expect("ERROR for VU after a new HELLO stopped the session", lambda t, i, p: t == ERROR and i == 1)
    b.send(HELLO, 0, struct.pack("<I", VERSION) + topo.split(b"\n")[0] + b"\n" + topo.split(b"\n")[1] + b"\n")
    b.expect("HELLO_ACK", lambda t, i, p: t == HELLO_ACK, 20)
    new = backend_pids(log)
    if new["blk"] == pids["blk"] or new["net"] != pids["net"]:
        fail("HELLO without session 3: %r, before %r" % (new, pids))
    if os.path.exists(os.path.join(run, "s3.sock")):
        fail("session 3's socket is still there")
    ok("new HELLO: unchanged back-ends kept, ddtk-blk restarted for its new sessions, sessions stopped")
    b.send(HELLO, 0, struct.pack("<I", VERSION - 1) + topo)
    b.expect("ERROR for protocol version %d" % (VERSION - 1), lambda t, i, p: t == ERROR)
    b.send(HELLO, 0, struct.pack("<I", VERSION) + b"blk 1 name=a offset=0 size=100 read-only=0 queues=1 kick-vector=0\n")
    b.expect("ERROR for a malformed topology", lambda t, i, p: t == ERROR)
    # Version 1's topology (no kick vectors), and two sessions kicked by one vector.
    b.send(HELLO, 0, struct.pack("<I", VERSION) + b"blk 1 name=a offset=0 size=16777216 read-only=0 queues=1\n")
    b.expect("ERROR for a topology without kick-vector", lambda t, i, p: t == ERROR)
    b.send(HELLO, 0, struct.pack("<I", VERSION) + b"blk 1 name=a offset=0 size=16777216 read-only=0 queues=2 kick-vector=0\n"
           b"net 2 name=a mac=02:dd:00:00:00:0a queues=1 kick-vector=1\n")
    b.expect("ERROR for overlapping kick vectors", lambda t, i, p: t == ERROR)
    if backend_pids(log) != new:
        fail("a refused HELLO changed the back-ends")
    ok("HELLO with another version, a malformed topology, none or shared kick vectors: ERROR, nothing changed")

    # The host end goes away: the agent waits without spinning.
    os.close(master)
    time.sleep(0.5)
    t0 = cpu_ticks(proc.pid)
    time.sleep(2)
    used = cpu_ticks(proc.pid) - t0
    if used > 50:
        fail("the agent used %d ticks of CPU in 2 s without a host" % used)
    ok("no host: %d ticks of CPU in 2 s" % used)

    # SIGTERM: the agent stops its back-ends and exits.
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        fail("the agent does not exit on SIGTERM")
    # The agent signals its back-ends and exits; they go a moment later (5 s at most).
    end = time.monotonic() + 5
    while True:
        alive = []
        for kind, pid in new.items():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(kind)
            except FileNotFoundError:
                pass
        if not alive or time.monotonic() >= end:
            break
        time.sleep(0.1)
    if rc != 0 or alive:
        fail("SIGTERM: exit %d, back-ends still running: %r" % (rc, alive))
    ok("SIGTERM: exit 0, back-ends stopped")


if __name__ == "__main__":
    main()
