#!/usr/bin/env bash
# Benchmark: Ethernet frames from a vhost-user-net client (bench/vu-blk-frontend net, playing QEMU and
# the guest at native speed) through ddtk-net onto its uplink, a veth whose peer sits in a network
# namespace; side by side with the same frames written straight into an AF_PACKET socket on the same
# veth end (bench/raw-pktgen, the limit). A frame counts when the peer's rx_packets saw it.
# Medians of N rounds.
# usage: bench/net.sh [--rounds N] [--runtime S] [--build DIR] [--ddtk-net PATH] [--sizes '60 1514']
#                     [--batch B] [--ddtk-net-args ARGS] [--frontend-args ARGS] [--out-dir DIR]
# --build DIR: the build tree whose ddtk-net, vu-blk-frontend and raw-pktgen run (default build/).
# Writes net-{rate,throughput,cpu}.json (benchmark, description, unit, higher_is_better, results,
# ratios) and net-runs.json (every sample) into build/bench/ and prints the tables.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
runtime=5
build=$src/build
ddtk_net=
sizes="60 1514"
batch=32
ddtk_net_args=
frontend_args=
out_dir=
usage="usage: $0 [--rounds N] [--runtime S] [--build DIR] [--ddtk-net PATH] [--sizes '60 1514'] [--batch B] [--ddtk-net-args ARGS] [--frontend-args ARGS] [--out-dir DIR]"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --build) build=$2; shift ;;
    --ddtk-net) ddtk_net=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --batch) batch=$2; shift ;;
    --ddtk-net-args) ddtk_net_args=$2; shift ;;
    --frontend-args) frontend_args=$2; shift ;;
    --out-dir) out_dir=$2; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
ddtk_net=${ddtk_net:-$build/virtio-backends/ddtk-net}
frontend=$build/bench/vu-blk-frontend
pktgen=$build/bench/raw-pktgen
out_dir=${out_dir:-$build/bench}
warn() { echo "net: $*" >&2; }
die() { echo "net: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (a network namespace and a veth pair)"
for b in "$ddtk_net" "$frontend" "$pktgen"; do
  [ -x "$b" ] || die "$b is missing: build first (ninja -C build)"
done
for s in $sizes; do
  if ! [ "$s" -ge 60 ] 2>/dev/null || [ "$s" -gt 1514 ]; then die "frame sizes are 60..1514 bytes (no FCS), not $s"; fi
done

# Fixed addresses: the client's (the source of every frame), the namespace end's (their destination).
client_mac=02:dd:4e:00:00:0a
host_mac=02:dd:4e:00:00:01
peer_mac=02:dd:4e:00:00:02
ns=ddtknet$$
host_if=dnet$$h
peer_if=dnet$$p
work=$(mktemp -d)
backend_pid=
cleanup() {
  backend_stop
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A child that has exited but not been waited for is a zombie: it counts as gone.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

backend_stop() {
  [ -n "$backend_pid" ] || return 0
  kill -TERM "$backend_pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$backend_pid" || break; sleep 0.1; done
  alive "$backend_pid" && kill -KILL "$backend_pid" 2>/dev/null
  wait "$backend_pid" 2>/dev/null || true
  backend_pid=
}

# The peer end has no IP and IPv6 is off on both ends: nothing but the benchmark's frames crosses
# the pair, so rx_packets counts exactly them.
ip netns add "$ns"
ip link add "$host_if" type veth peer name "$peer_if"
ip link set "$peer_if" netns "$ns"
sysctl -qw "net.ipv6.conf.$host_if.disable_ipv6=1"
ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$peer_if.disable_ipv6=1"
ip link set "$host_if" address "$host_mac" up
ip netns exec "$ns" ip link set "$peer_if" address "$peer_mac" up
peer_rx() { ip netns exec "$ns" cat "/sys/class/net/$peer_if/statistics/rx_packets"; }

sock=$work/net.sock
stats_sock=$work/stats.sock
backend_start() {
  rm -f "$sock" "$stats_sock"
  # shellcheck disable=SC2086
  "$ddtk_net" --uplink "$host_if" --stats-socket "$stats_sock" \
    --client "name=bench,socket=$sock,mac=$client_mac" $ddtk_net_args >>"$work/ddtk-net.log" 2>&1 &
  backend_pid=$!
  for _ in $(seq 100); do
    [ -S "$sock" ] && return 0
    alive "$backend_pid" || break
    sleep 0.1
  done
  cat "$work/ddtk-net.log" >&2
  die "ddtk-net did not create $sock"
}

# The stats socket answers each connection with one JSON object and closes it.
read_stats() {
  python3 - "$stats_sock" <<'PY' 2>/dev/null || echo null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.decode().strip() or "null")
PY
}

clk_tck=$(getconf CLK_TCK)
runs=$work/runs.tsv
: >"$runs"
nruns=0

# run_ddtk_net SIZE ROUND MODE: MODE polling (the guest polls its rings, as a DPDK virtio PMD does)
# or interrupts (it sleeps until ddtk-net signals used buffers, as Linux's driver does).
run_ddtk_net() {
  local size=$1 round=$2 mode=$3 out=$work/run.$((++nruns)).json rx0 rx1 stats poll=
  [ "$mode" = polling ] && poll="--poll-us 1000"
  backend_start
  rx0=$(peer_rx)
  # shellcheck disable=SC2086 # word splitting of the option lists is meant
  if ! "$frontend" net --socket "$sock" --mac "$client_mac" --dst "$peer_mac" --frame-size "$size" \
      --seconds "$runtime" --batch "$batch" --backend-pid "$backend_pid" $poll ${frontend_args:-} --json >"$out" 2>>"$work/frontend.log"; then
    tail -n 20 "$work/frontend.log" "$work/ddtk-net.log" >&2
    die "ddtk-net, $size B: the front-end failed"
  fi
  rx1=$(peer_rx)
  stats=$(read_stats)
  echo "$stats" >"$out.stats"
  backend_stop
  printf '%s\t%s\t%s\t%s\t%s\n' "ddtk-net-$mode" "$size" "$round" "$out" "$((rx1 - rx0))" >>"$runs"
}

# run_raw SIZE ROUND
run_raw() {
  local size=$1 round=$2 out=$work/run.$((++nruns)).json rx0 rx1
  rx0=$(peer_rx)
  "$pktgen" --dev "$host_if" --size "$size" --seconds "$runtime" --src "$client_mac" --dst "$peer_mac" \
    --json >"$out" || die "raw-pktgen, $size B failed"
  rx1=$(peer_rx)
  printf '%s\t%s\t%s\t%s\t%s\n' raw "$size" "$round" "$out" "$((rx1 - rx0))" >>"$runs"
}

for round in $(seq 1 "$rounds"); do
  for size in $sizes; do
    run_ddtk_net "$size" "$round" polling
    run_ddtk_net "$size" "$round" interrupts
    run_raw "$size" "$round"
    echo "round $round, $size B: $(tail -n 3 "$runs" | awk -F'\t' -v t="$runtime" '{ printf "%s %.0f frames/s  ", $1, $5 / t }')" >&2
  done
done

log_lines=$(grep -ciE 'error|warn|drop|fail' "$work/ddtk-net.log" || true)
if [ "$log_lines" -gt 0 ]; then
  warn "ddtk-net's log has $log_lines line(s) about errors, warnings or drops; the first:"
  grep -iE 'error|warn|drop|fail' "$work/ddtk-net.log" | head -n 5 >&2
fi

mkdir -p "$out_dir"
cp "$work/ddtk-net.log" "$out_dir/net-ddtk-net.log"
description="frames of one size (no FCS; 60 B is 64 B on the wire) from one client to the namespace end of a veth pair, type 0x88b5; \
ddtk-net: vu-blk-frontend net (queue pair 0, rings of 256, EVENT_IDX, batches of $batch per kick, 12-byte zero header, one descriptor per frame${frontend_args:+, $frontend_args}) -> ddtk-net${ddtk_net_args:+ $ddtk_net_args} -> AF_PACKET on the host veth end, with a guest that polls its rings (--poll-us 1000, as a DPDK virtio PMD does) and one that sleeps until signalled (as Linux's virtio-net does: each signal is a cross-CPU wakeup); \
AF_PACKET limit: raw-pktgen, sendmmsg() of 64 frames on the host veth end; \
a frame counts when the peer's rx_packets saw it; ${runtime} s per run, ${rounds} round(s); kernel $(uname -r), $(nproc) CPUs"
python3 - "$runs" "$out_dir" "$description" "$clk_tck" <<'PY'
import json, statistics, sys
runs_path, out_dir, description, _ = sys.argv[1:]
names = {"ddtk-net-polling": "ddtk-net, polling guest", "ddtk-net-interrupts": "ddtk-net, interrupt-driven guest",
         "raw": "AF_PACKET limit"}

samples = []
problems = []
for line in open(runs_path):
    system, size, rnd, path, delivered = line.rstrip("\n").split("\t")
    doc = json.load(open(path))
    delivered = int(delivered)
    s = {"system": names[system], "case": f"{size} B frames", "round": int(rnd), "frame_size": int(size),
         "seconds": doc["seconds"], "sent": doc["frames"], "delivered": delivered}
    s["frames_per_s"] = delivered / doc["seconds"]
    s["mbit_per_s"] = s["frames_per_s"] * int(size) * 8 / 1e6
    if system.startswith("ddtk-net"):
        s.update(backend_cpu_s=doc["backend_cpu_s"], frontend_cpu_s=doc["frontend_cpu_s"], kicks=doc["kicks"],
                 calls=doc["calls"], rx_frames=doc["rx_frames"], tx_incomplete=doc["tx_incomplete"])
        cpu = doc["backend_cpu_s"]
        try:
            s["ddtk_net_stats"] = json.load(open(path + ".stats"))
        except (OSError, ValueError):
            s["ddtk_net_stats"] = None
    else:
        s.update(send_errors=doc["send_errors"])
        cpu = doc["cpu_s"]
    s["cpu_s"] = cpu
    s["cpu_ns_per_frame"] = cpu * 1e9 / delivered if cpu is not None and delivered else None
    if delivered < s["sent"]:
        problems.append(f"{s['system']}, {s['case']}, round {rnd}: {s['sent']} frames sent, {delivered} arrived")
    if delivered > s["sent"] * 1.001 + 10:
        problems.append(f"{s['system']}, {s['case']}, round {rnd}: {delivered} frames arrived, only {s['sent']} sent")
    samples.append(s)
json.dump({"description": description, "runs": samples}, open(f"{out_dir}/net-runs.json", "w"), indent=1)
for p in problems:
    print(f"net: warning: {p}", file=sys.stderr)

def family(name, unit, higher, key, digits, what=""):
    results = {}
    for s in samples:
        if s[key] is None:
            continue
        r = results.setdefault(f"{s['system']} ({s['case']})", {"system": s["system"], "case": s["case"], "samples": []})
        r["samples"].append(round(s[key], digits) if digits else round(s[key]))
    for r in results.values():
        xs = r["samples"]
        median = statistics.median(xs)
        r.update(median=round(median, digits) if digits else round(median), min=min(xs), max=max(xs))
    ratios = {}
    for case in dict.fromkeys(r["case"] for r in results.values()):
        rb = results.get(f"AF_PACKET limit ({case})")
        for system in ("ddtk-net, polling guest", "ddtk-net, interrupt-driven guest"):
            ra = results.get(f"{system} ({case})")
            if ra and rb and rb["median"]:
                ratios[f"{system} / AF_PACKET limit ({case})"] = round(ra["median"] / rb["median"], 2)
    doc = {"benchmark": f"net-{name}", "description": (what + "; " if what else "") + description,
           "unit": unit, "higher_is_better": higher,
           "results": {k: {"median": v["median"], "min": v["min"], "max": v["max"], "samples": v["samples"],
                           "system": v["system"], "case": v["case"]} for k, v in results.items()},
           "ratios": ratios}
    path = f"{out_dir}/net-{name}.json"
    json.dump(doc, open(path, "w"), indent=2)
    print(f"wrote {path}", file=sys.stderr)
    return ratios

rate = family("rate", "frames/s", True, "frames_per_s", 0, "frames that arrived per second")
family("throughput", "Mbit/s", True, "mbit_per_s", 1, "frame bytes that arrived (no FCS, no preamble)")
family("cpu", "CPU ns/frame", False, "cpu_ns_per_frame", 0,
       "CPU per frame that arrived: the ddtk-net process (front-end excluded, see net-runs.json), the whole raw-pktgen process; "
       "both include the kernel's veth transmit and the peer's receive, done in the sender's context")
for k, v in rate.items():
    print(f"net: {k}: {v} (goal >= 0.70: {'met' if v >= 0.70 else 'NOT met'})", file=sys.stderr)
PY
"$src/bench/report" "$out_dir"/net-{rate,throughput,cpu}.json
