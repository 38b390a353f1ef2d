#!/usr/bin/env bash
# Benchmark: fio inside a client VM whose disk is a vhost-user-blk socket, served by ddtk-blk and
# by qemu-storage-daemon (what users run today), one after the other in the same run, on the same
# tmpfs backing file. Medians of N rounds. Under TCG the guest's CPU is the bottleneck: the ratio
# says whether the back-end costs the guest anything, not how fast the back-end is (bench/blk.sh).
# usage: bench/blk-vm.sh [--rounds N] [--runtime S] [--ddtk PATH] [--ddtk-blk PATH] [--out-dir DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=2
runtime=15
ddtk_bin=$src/build/host/ddtk
ddtk_blk=$src/build/virtio-backends/ddtk-blk
out_dir=$src/build/bench
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --ddtk) ddtk_bin=$2; shift ;;
    --ddtk-blk) ddtk_blk=$2; shift ;;
    --out-dir) out_dir=$2; shift ;;
    *) echo "usage: $0 [--rounds N] [--runtime S] [--ddtk PATH] [--ddtk-blk PATH] [--out-dir DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "blk-vm: run as root (libvirt's system instance)" >&2; exit 1; }
"$src/scripts/start-libvirt"

# name:rw:bs:iodepth
workloads=(
  "4k randread QD32:randread:4k:32"
  "4k randwrite QD32:randwrite:4k:32"
  "128k read QD8:read:128k:8"
  "128k write QD8:write:128k:8"
)
instance="benchvm$$"
work=$(mktemp -d)
chmod 0711 "$work" # QEMU (libvirt-qemu) reaches the socket through it
backing=$(mktemp /dev/shm/ddtk-blk-vm.XXXXXX)
conf=$work/ddtk.conf
sock=$work/blk.sock
backend_pid=
backend_stop() {
  if [ -n "$backend_pid" ]; then
    kill -TERM "$backend_pid" 2>/dev/null || true
    wait "$backend_pid" 2>/dev/null || true
  fi
  backend_pid=
}
cleanup() {
  "$ddtk_bin" -c "$conf" down --purge >/dev/null 2>&1 || true
  backend_stop
  rm -rf "$work" "$backing"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ddtk() { "$ddtk_bin" -c "$conf" "$@"; }
printf '[ddtk]\ninstance = %s\nclients = a\n[client.a]\nvhost-user-blk = %s\n' "$instance" "$sock" > "$conf"
truncate -s 1G "$backing"

backend_start() {
  rm -f "$sock"
  case $1 in
    ddtk-blk)
      "$ddtk_blk" --socket-path "$sock" --blk-file "$backing" --socket-group kvm 2>"$work/backend.log" &
      ;;
    qemu-storage-daemon)
      qemu-storage-daemon \
        --blockdev "driver=file,node-name=file0,filename=$backing,cache.direct=off,aio=io_uring" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,writable=on,num-queues=1" \
        2>"$work/backend.log" &
      ;;
  esac
  backend_pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { cat "$work/backend.log" >&2; echo "blk-vm: $1 did not start" >&2; exit 1; }
  # qemu-storage-daemon has no socket-group option: give QEMU's group access the same way.
  chgrp kvm "$sock"; chmod 0660 "$sock"
}

samples=$work/samples.tsv
: > "$samples"
for round in $(seq 1 "$rounds"); do
  for system in ddtk-blk qemu-storage-daemon; do
    backend_start "$system"
    ddtk start a >/dev/null
    for wl in "${workloads[@]}"; do
      IFS=: read -r name rw bs qd <<<"$wl"
      json=$(ddtk exec -t $((runtime * 4 + 60)) a -- "fio --name=b --filename=/dev/vda --ioengine=libaio --direct=1 \
        --rw=$rw --bs=$bs --iodepth=$qd --size=512M --runtime=$runtime --time_based=1 --ramp_time=2 \
        --norandommap=1 --randrepeat=0 --output-format=json")
      python3 -c '
import json, sys
j = json.loads(sys.stdin.read())["jobs"][0]
side = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f\t%.1f" % (side["iops"], side["bw_bytes"] / 1e6))' <<<"$json" |
        while IFS=$'\t' read -r iops mbps; do
          printf '%s\t%s\t%s\t%s\n' "$system" "$name" "$iops" "$mbps" >> "$samples"
          echo "round $round, $system, $name: $iops IOPS, $mbps MB/s" >&2
        done
    done
    ddtk stop a
    backend_stop
  done
done

mkdir -p "$out_dir"
python3 - "$samples" "$out_dir" "$runtime" <<'PY'
import collections, json, statistics, sys
samples, out_dir, runtime = sys.argv[1], sys.argv[2], sys.argv[3]
data = collections.defaultdict(list)
for line in open(samples):
    system, case, iops, mbps = line.rstrip("\n").split("\t")
    value = float(mbps) if case.startswith("128k") else float(iops)
    data[(system, case)].append(value)
results, ratios = {}, {}
for (system, case), xs in data.items():
    results[f"{system}: {case}"] = {"system": system, "case": case, "median": round(statistics.median(xs), 1),
                                    "min": round(min(xs), 1), "max": round(max(xs), 1), "samples": xs}
for case in dict.fromkeys(c for _, c in data):
    a, b = results.get(f"ddtk-blk: {case}"), results.get(f"qemu-storage-daemon: {case}")
    if a and b and b["median"]:
        ratios[f"ddtk-blk / qemu-storage-daemon ({case})"] = round(a["median"] / b["median"], 3)
doc = {"benchmark": "blk-vm",
       "description": f"fio (libaio, direct=1, {runtime} s) in a client VM (TCG, 1 vCPU) on a vhost-user-blk disk; "
                      "backing: a 1 GiB file on tmpfs; IOPS for 4k, MB/s for 128k",
       "unit": "IOPS or MB/s", "higher_is_better": True, "results": results, "ratios": ratios}
json.dump(doc, open(f"{out_dir}/blk-vm.json", "w"), indent=2)
PY
"$src/bench/report" "$out_dir/blk-vm.json"
