#!/usr/bin/env bash
# Benchmark: virtio-blk over vhost-user. ddtk-blk and qemu-storage-daemon's vhost-user-blk export,
# both driven by bench/vu-blk-frontend, side by side with fio on io_uring straight on the backing
# file (the limit), on tmpfs and on ext4. Medians of N rounds. The system ddtk-blk-direct (not in
# the default list) is ddtk-blk with --cache=direct (O_DIRECT through bounce buffers, the driver
# domain's default), to set beside ddtk-blk's buffered default.
# usage: bench/blk.sh [--rounds N] [--runtime S] [--ddtk-blk PATH] [--frontend PATH] [--size MIB]
#                     [--systems LIST] [--backings LIST] [--out-dir DIR]
# Writes blk-{iops,throughput,latency-p50,latency-p99,cpu}.json (benchmark, description, unit,
# higher_is_better, results, ratios) and blk-runs.json (every sample) into build/bench/ and prints
# the tables.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
runtime=5
ddtk_blk=$src/build/virtio-backends/ddtk-blk
frontend=$src/build/bench/vu-blk-frontend
size_mib=256
systems="ddtk-blk qemu-storage-daemon io_uring"
backings="tmpfs ext4"
out_dir=$src/build/bench
usage="usage: $0 [--rounds N] [--runtime S] [--ddtk-blk PATH] [--frontend PATH] [--size MIB] [--systems 'ddtk-blk [ddtk-blk-direct] qemu-storage-daemon io_uring'] [--backings 'tmpfs ext4'] [--out-dir DIR]"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --ddtk-blk) ddtk_blk=$2; shift ;;
    --frontend) frontend=$2; shift ;;
    --size) size_mib=$2; shift ;;
    --systems) systems=$2; shift ;;
    --backings) backings=$2; shift ;;
    --out-dir) out_dir=$2; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done

# name:rw:bs:iodepth. The sequential jobs run at QD8, where one queue is throughput-bound.
workloads=(
  "4k randread QD1:randread:4096:1"
  "4k randwrite QD1:randwrite:4096:1"
  "4k randread QD32:randread:4096:32"
  "4k randwrite QD32:randwrite:4096:32"
  "128k read QD8:read:131072:8"
  "128k write QD8:write:131072:8"
)
size=$((size_mib << 20))
warn() { echo "blk: $*" >&2; }
die() { echo "blk: $*" >&2; exit 1; }

[ -x "$frontend" ] || die "$frontend is missing: build first (ninja -C build)"
enabled=()
for s in $systems; do
  case $s in
    ddtk-blk|ddtk-blk-direct) [ -x "$ddtk_blk" ] || { warn "warning: $ddtk_blk is missing, $s is skipped"; continue; } ;;
    qemu-storage-daemon) command -v qemu-storage-daemon >/dev/null || { warn "warning: no qemu-storage-daemon, skipped"; continue; } ;;
    io_uring) command -v fio >/dev/null || { warn "warning: no fio, the io_uring limit is skipped"; continue; } ;;
    *) die "unknown system $s (ddtk-blk, ddtk-blk-direct, qemu-storage-daemon, io_uring)" ;;
  esac
  enabled+=("$s")
done
[ ${#enabled[@]} -gt 0 ] || die "no system to measure"

work=$(mktemp -d)
backend_pid=
mounts=()
cleanup() {
  backend_stop
  for m in ${mounts[@]+"${mounts[@]}"}; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work" ${scratch_tmpfs:+"$scratch_tmpfs"} ${scratch_ext4:+"$scratch_ext4"}
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

# QEMU 7.2 has aio=io_uring for the file driver when built with liburing; older or other builds
# fall back to its default, the thread pool.
qsd_aio=threads
probe=$work/probe.img
truncate -s 1M "$probe"
if qemu-img info --image-opts "driver=file,filename=$probe,aio=io_uring" >/dev/null 2>&1; then
  qsd_aio=io_uring
fi
rm -f "$probe"

# backend_start SYSTEM FILE SOCKET LOG: starts a fresh back-end and waits for its socket.
backend_start() {
  local system=$1 file=$2 sock=$3 log=$4
  rm -f "$sock"
  case $system in
    ddtk-blk)
      "$ddtk_blk" --socket-path "$sock" --blk-file "$file" >"$log" 2>&1 &
      ;;
    ddtk-blk-direct)
      "$ddtk_blk" --socket-path "$sock" --blk-file "$file" --cache=direct >"$log" 2>&1 &
      ;;
    qemu-storage-daemon)
      qemu-storage-daemon \
        --blockdev "driver=file,node-name=file0,filename=$file,cache.direct=off,aio=$qsd_aio" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,writable=on,num-queues=1" \
        >"$log" 2>&1 &
      ;;
  esac
  backend_pid=$!
  for _ in $(seq 100); do
    [ -S "$sock" ] && return 0
    alive "$backend_pid" || break
    sleep 0.1
  done
  cat "$log" >&2
  die "$system did not create $sock"
}

# The shell's cutime + cstime (fields 16, 17 of /proc/PID/stat): CPU of the children it has reaped.
children_ticks() {
  local stat
  stat=$(cat "/proc/$$/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $(( ${14} + ${15} ))
}
clk_tck=$(getconf CLK_TCK)

runs=$work/runs.tsv
: >"$runs"
nruns=0

# run_vu SYSTEM BACKING FILE WORKLOAD ROUND RW BS QD
run_vu() {
  local system=$1 backing=$2 file=$3 wl=$4 round=$5 rw=$6 bs=$7 qd=$8
  local sock=$work/vu.sock log=$work/backend.log out=$work/run.$((++nruns)).json
  backend_start "$system" "$file" "$sock" "$log"
  if ! "$frontend" --socket "$sock" --rw "$rw" --bs "$bs" --iodepth "$qd" --runtime "$runtime" \
      --size "$size" --backend-pid "$backend_pid" >"$out" 2>"$work/frontend.log"; then
    cat "$work/frontend.log" "$log" >&2
    die "$system, $backing, $wl: the front-end failed"
  fi
  backend_stop
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$backing" "$wl" "$round" vu "$out" "" >>"$runs"
}

# run_fio BACKING FILE WORKLOAD ROUND RW BS QD
run_fio() {
  local backing=$1 file=$2 wl=$3 round=$4 rw=$5 bs=$6 qd=$7
  local out=$work/run.$((++nruns)).json t0 t1
  t0=$(children_ticks)
  # --thread keeps the job and io_uring's io-wq workers in one process, so the shell's
  # children CPU covers all of fio's work. --invalidate=0: fio would otherwise drop the file's page
  # cache first, and its buffered reads would go to the disk while the back-ends' hit the cache.
  if ! fio --name=limit --filename="$file" --ioengine=io_uring --direct=0 --invalidate=0 --thread \
      --rw="$rw" --bs="$bs" --iodepth="$qd" --size="$size" --runtime="$runtime" --time_based=1 \
      --norandommap=1 --randrepeat=0 --lat_percentiles=1 \
      --output-format=json --output="$out" >"$work/fio.log" 2>&1; then
    cat "$work/fio.log" >&2
    die "fio, $backing, $wl failed"
  fi
  t1=$(children_ticks)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' io_uring "$backing" "$wl" "$round" fio "$out" \
    "$(awk "BEGIN { printf \"%.2f\", ($t1 - $t0) / $clk_tck }")" >>"$runs"
}

# The file system a path is on; the last line is the top-most of stacked mounts.
fs_type() { findmnt -n -o FSTYPE --target "$1" 2>/dev/null | tail -n 1; }

# backing_dir BACKING: a directory on that file system (mounting one when needed).
backing_dir() {
  local dir
  case $1 in
    tmpfs)
      if [ "$(fs_type /dev/shm)" = tmpfs ]; then
        scratch_tmpfs=$(mktemp -d /dev/shm/ddtk-blk-bench.XXXXXX)
        dir=$scratch_tmpfs
        where[tmpfs]="tmpfs: /dev/shm"
      else
        [ "$(id -u)" -eq 0 ] || die "/dev/shm is not tmpfs and mounting one needs root"
        scratch_tmpfs=$(mktemp -d)
        mount -t tmpfs -o size=$((size_mib + 64))m ddtk-blk-bench "$scratch_tmpfs"
        mounts+=("$scratch_tmpfs")
        dir=$scratch_tmpfs
        where[tmpfs]="tmpfs: a tmpfs mounted for the run"
      fi
      ;;
    ext4)
      scratch_ext4=$(mktemp -d /var/tmp/ddtk-blk-bench.XXXXXX)
      dir=$scratch_ext4
      where[ext4]="ext4: /var/tmp"
      if [ "$(fs_type "$scratch_ext4")" != ext4 ]; then
        [ "$(id -u)" -eq 0 ] || die "/var/tmp is not ext4 and a loop mount needs root"
        truncate -s $((size_mib + 128))M "$scratch_ext4/ext4.img"
        mkfs.ext4 -q -F "$scratch_ext4/ext4.img"
        mkdir "$scratch_ext4/mnt"
        mount -o loop "$scratch_ext4/ext4.img" "$scratch_ext4/mnt"
        mounts+=("$scratch_ext4/mnt")
        dir=$scratch_ext4/mnt
        where[ext4]="ext4: a loop-mounted image"
      fi
      ;;
    *) die "unknown backing $1 (tmpfs, ext4)" ;;
  esac
  echo "$dir"
}

declare -A where=()
for backing in $backings; do
  # backing_dir sets scratch_* for cleanup, so it must not run in a subshell.
  backing_dir "$backing" >"$work/dir"
  file=$(cat "$work/dir")/disk.img
  # Written out in full: every system reads real, allocated data, not holes.
  dd if=/dev/zero of="$file" bs=1M count="$size_mib" conv=fsync status=none

  # Correctness first: numbers from a back-end that returns wrong data mean nothing.
  for system in "${enabled[@]}"; do
    [ "$system" = io_uring ] && continue
    backend_start "$system" "$file" "$work/vu.sock" "$work/backend.log"
    if ! "$frontend" --socket "$work/vu.sock" --verify --rw randwrite --iodepth 32 --size $((size_mib < 32 ? size_mib : 32))M \
        >/dev/null 2>"$work/frontend.log"; then
      cat "$work/frontend.log" "$work/backend.log" >&2
      die "$system failed --verify on $backing"
    fi
    backend_stop
    echo "verified $system on $backing" >&2
  done

  for round in $(seq 1 "$rounds"); do
    for w in "${workloads[@]}"; do
      IFS=: read -r wl rw bs qd <<<"$w"
      for system in "${enabled[@]}"; do
        # Each job starts with no dirty pages from the one before and the whole file in the page
        # cache: proactive reclaim (DAMON pageout, for one) may have evicted what sat idle.
        # (ddtk-blk-direct does not use that cache: its reads go to the device.)
        sync "$file"
        cat "$file" >/dev/null
        if [ "$system" = io_uring ]; then
          run_fio "$backing" "$file" "$wl" "$round" "$rw" "$bs" "$qd"
        else
          run_vu "$system" "$backing" "$file" "$wl" "$round" "$rw" "$bs" "$qd"
        fi
      done
      echo "round $round, $backing, $wl: done" >&2
    done
  done
  rm -f "$file"
done

mkdir -p "$out_dir"
places=$(IFS=';'; echo "${where[*]}")
cache_note="buffered I/O for every system (tmpfs has no O_DIRECT; ext4 the same so the two compare)"
case " ${enabled[*]} " in
  *" ddtk-blk-direct "*) cache_note="buffered I/O for every system but ddtk-blk-direct (--cache=direct: O_DIRECT through bounce buffers, reads from the device)" ;;
esac
description="backing file ${size_mib} MiB (${places//;/; }), ${cache_note}, page cache warmed before every job; \
ddtk-blk defaults (one io_uring, busy-polls the rings up to 200 µs after work, adaptive); \
qemu-storage-daemon $(qemu-storage-daemon --version 2>/dev/null | head -n 1 | awk '{print $3}') vhost-user-blk export, cache.direct=off, aio=$qsd_aio, 1 queue, main loop; \
vhost-user systems driven by vu-blk-frontend (1 queue of 256, EVENT_IDX and INDIRECT_DESC as the back-end offers); \
io_uring limit: fio $(fio --version 2>/dev/null) ioengine=io_uring direct=0 invalidate=0 thread norandommap on the backing file; \
${runtime} s per job, ${rounds} round(s); kernel $(uname -r), $(nproc) CPUs"
python3 - "$runs" "$out_dir" "$description" <<'PY'
import json, statistics, sys
runs_path, out_dir, description = sys.argv[1:]
names = {"ddtk-blk": "ddtk-blk", "ddtk-blk-direct": "ddtk-blk cache=direct", "qemu-storage-daemon": "qemu-storage-daemon",
         "io_uring": "io_uring limit"}

samples = []
for line in open(runs_path):
    system, backing, wl, rnd, kind, path, fio_cpu = line.rstrip("\n").split("\t")
    doc = json.load(open(path))
    if kind == "vu":
        s = {"iops": doc["iops"], "mbps": doc["mbps"], "p50": doc["lat_p50_us"], "p99": doc["lat_p99_us"],
             "cpu_s": doc["backend_cpu_s"], "bytes": doc["bytes"], "frontend_cpu_s": doc["frontend_cpu_s"],
             "errors": doc["errors"]}
    else:
        job = doc["jobs"][0]
        d = job["read"] if job["read"]["io_bytes"] else job["write"]
        pct = d["lat_ns"].get("percentile", {})
        s = {"iops": d["iops"], "mbps": d["bw_bytes"] / 1e6, "p50": pct.get("50.000000", 0) / 1000,
             "p99": pct.get("99.000000", 0) / 1000, "cpu_s": float(fio_cpu), "bytes": d["io_bytes"],
             "errors": job["error"]}
    s.update(system=names[system], backing=backing, workload=wl, round=int(rnd))
    s["cpu_per_gib"] = s["cpu_s"] / (s["bytes"] / 2**30) if s["bytes"] and s["cpu_s"] is not None else None
    samples.append(s)
json.dump({"description": description, "runs": samples}, open(f"{out_dir}/blk-runs.json", "w"), indent=1)

def family(name, unit, higher, key, digits, only=None, what=""):
    results = {}
    for s in samples:
        if only and not only(s["workload"]) or s[key] is None:
            continue
        case = f"{s['backing']} {s['workload']}"
        r = results.setdefault(f"{s['system']} ({case})", {"system": s["system"], "case": case, "samples": []})
        r["samples"].append(round(s[key], digits) if digits else round(s[key]))
    for r in results.values():
        xs = r["samples"]
        median = statistics.median(xs)
        r.update(median=round(median, digits) if digits else round(median), min=min(xs), max=max(xs))
    ratios = {}
    pairs = [("ddtk-blk", "qemu-storage-daemon"), ("ddtk-blk", "io_uring limit"),
             ("qemu-storage-daemon", "io_uring limit"), ("ddtk-blk cache=direct", "ddtk-blk")]
    for case in dict.fromkeys(r["case"] for r in results.values()):
        for a, b in pairs:
            ra, rb = results.get(f"{a} ({case})"), results.get(f"{b} ({case})")
            if ra and rb and rb["median"]:
                ratios[f"{a} / {b} ({case})"] = round(ra["median"] / rb["median"], 2)
    doc = {"benchmark": f"blk-{name}", "description": (what + "; " if what else "") + description,
           "unit": unit, "higher_is_better": higher,
           "results": {k: {"median": v["median"], "min": v["min"], "max": v["max"], "samples": v["samples"],
                           "system": v["system"], "case": v["case"]} for k, v in results.items()},
           "ratios": ratios}
    path = f"{out_dir}/blk-{name}.json"
    json.dump(doc, open(path, "w"), indent=2)
    print(f"wrote {path}", file=sys.stderr)

small = lambda wl: wl.startswith("4k")
large = lambda wl: wl.startswith("128k")
family("iops", "IOPS", True, "iops", 0, small)
family("throughput", "MB/s", True, "mbps", 1, large, "MB = 10^6 bytes")
family("latency-p50", "µs", False, "p50", 1, None,
       "per-request latency, median; vhost-user: from the kick to the used entry seen by the front-end; fio: lat (submission to completion)")
family("latency-p99", "µs", False, "p99", 1, None, "per-request latency, 99th percentile; same definition as blk-latency-p50")
family("cpu", "CPU s/GiB", False, "cpu_per_gib", 3, None,
       "CPU seconds per GiB moved: the back-end process for vhost-user systems (front-end excluded, see blk-runs.json), the whole fio process for the limit")
PY
"$src/bench/report" "$out_dir"/blk-{iops,throughput,latency-p50,latency-p99,cpu}.json
