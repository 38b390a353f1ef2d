#!/usr/bin/env bash
# Benchmark: the seed paper's own comparison (issue 5). In one run, the same fio jobs and iperf3
# TCP stream
#   (a) natively inside the driver domain (DD), on its /dev/sda and its e1000 (eth0),
#   (b) in a client VM whose disk and NIC are served by ddtk-blk/ddtk-net inside the DD (through
#       ddtk-bridge: a volume and a dd-nic),
#   (c) in a client VM whose disk and NIC are served by the same back-ends in host mode
#       (vhost-user-blk on a file, vhost-user-net on a veth),
# with the ratios b/a, c/a and b/c; the seed reports 2.5 % loss of (b) against (a) and that is the
# goal. Then --soak seconds of continuous I/O (fio and iperf3) from the client through the DD, with
# the DD QEMU process's RSS sampled before, during and after. The CPU time of every process on the
# path (DD QEMU's vCPU and its other threads, the clients' QEMUs, ddtk-bridge, the host-mode
# back-ends) and the busy share of the DD's own vCPU are recorded for every job: under TCG that is
# where the time goes. Medians of N rounds; the three systems take turns within each round.
#
# usage: bench/dd.sh [--rounds N] [--runtime S] [--soak S] [--clients N] [--size MIB]
#                    [--dd-memory MIB] [--systems 'native dd host'] [--perf] [--build DIR] [--out-dir DIR]
#   --rounds N       rounds (default 2); --runtime S: seconds per fio job and iperf3 run (default 10)
#   --soak S         seconds of I/O through the DD between the two RSS samples (default 300; 0: none)
#   --clients N      clients behind the DD (default 1); with N > 1 (b) runs in all of them at once and
#                    its result is their sum (one native stream and one host-mode client as before)
#   --size MIB       each volume, the native region and the host-mode file (default 512); fio's --size
#   --dd-memory MIB  the DD's memory (default 512: the bench image's initramfs holds fio's libraries)
#   --dd-poll-us N   the DD's back-ends' --poll-us (kernel command line ddtk.poll-us=N; default: the
#                    agent's, 50)
#   --systems LIST   which of native, dd, host to run (default all three)
#   --perf           after the rounds, one more pass of (b)'s jobs, not counted, with perf recording the
#                    DD's QEMU and the client's (top symbols in dd-perf-*.txt and the runs file)
#   --build DIR      the build tree whose ddtk, ddtk-bridge, back-ends and images run (default build/);
#                    the DD runs its bench image (images/dd-bench: meson compile -C DIR dd-bench-image)
# Writes dd-blk.json, dd-net.json, dd-cpu.json, dd-memory.json (benchmark, description, unit,
# higher_is_better, results, ratios[, goal]) and dd-runs.json (every sample, every CPU snapshot)
# into DIR/bench/ (or --out-dir) and prints the tables. Needs root; boots VMs (a TCG machine: run
# nothing else that boots VMs meanwhile).
#
# Where (a)'s fio runs: the region of the DD's disk right after the clients' volumes, as large as
# one volume, which no client uses: the native jobs never touch a client's data, whether the client
# is up or not, and read and write the same host file through the same QEMU AHCI disk as (b). The
# DD's disk image and the host-mode file are written in full before the VMs start (no holes, both in
# the host's page cache: QEMU's AHCI disk is cache=writeback, host-mode ddtk-blk is buffered).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=2
runtime=10
soak=300
nclients=1
size_mib=512
dd_memory=512
systems="native dd host"
perf=0
dd_poll_us=
build=$src/build
out_dir=
usage="usage: $0 [--rounds N] [--runtime S] [--soak S] [--clients N] [--size MIB] [--dd-memory MIB] [--dd-poll-us N] [--systems 'native dd host'] [--perf] [--build DIR] [--out-dir DIR]"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --soak) soak=$2; shift ;;
    --clients) nclients=$2; shift ;;
    --size) size_mib=$2; shift ;;
    --dd-memory) dd_memory=$2; shift ;;
    --dd-poll-us) dd_poll_us=$2; shift ;;
    --systems) systems=$2; shift ;;
    --perf) perf=1 ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --out-dir) out_dir=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
out_dir=${out_dir:-$build/bench}
die() { echo "dd-bench: $*" >&2; exit 1; }
for x in "$rounds" "$runtime" "$soak" "$nclients" "$size_mib" "$dd_memory"; do
  [[ $x =~ ^[0-9]+$ ]] || die "not a number: $x"
done
[ "$rounds" -ge 1 ] && [ "$runtime" -ge 1 ] && [ "$size_mib" -ge 16 ] || die "rounds, runtime >= 1, size >= 16"
[ "$nclients" -ge 1 ] && [ "$nclients" -le 8 ] || die "--clients: 1 to 8"
for s in $systems; do
  case $s in native|dd|host) ;; *) die "unknown system $s (native, dd, host)" ;; esac
done
want() { [[ " $systems " == *" $1 "* ]]; }
[ "$(id -u)" -eq 0 ] || die "run as root (libvirt's system instance, network namespaces, a tap)"
ddtk_bin=$build/host/ddtk
ddtk_blk=$build/virtio-backends/ddtk-blk
ddtk_net=$build/virtio-backends/ddtk-net
for f in "$ddtk_bin" "$build/host/ddtk-bridge" "$ddtk_blk" "$ddtk_net"; do
  [ -x "$f" ] || die "$f is missing: build first (ninja -C $build)"
done
for f in "$build/images/client/initrd.gz" "$build/images/dd-bench/initrd.gz"; do
  [ -f "$f" ] || die "$f is missing: meson compile -C $build dd-bench-image client-image"
done
command -v iperf3 >/dev/null || die "iperf3 is missing on the host"
[ $perf -eq 0 ] || command -v perf >/dev/null || die "--perf: perf is missing (Debian linux-perf)"
# libvirtd and virtlogd, when this starts them, must not inherit our fds: a lock held around this
# script (flock FILE bench/dd.sh) would stay held by the daemons after it ends.
(
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
  exec "$src/scripts/start-libvirt"
)
. "$src/scripts/lib/peer-net.sh"

instance="bdd$$"
work=$(mktemp -d /tmp/ddtk-bench-dd.XXXXXX)
chmod 0711 "$work" # QEMU (libvirt-qemu) reaches the sockets and the DD's disk image through it
conf=$work/ddtk.conf
letters=(a b c d e f g h)
clients=("${letters[@]:0:nclients}")
hm=hm # the host-mode client, there only for (c)
all_vms=("${clients[@]}")
if want host; then all_vms+=("$hm"); fi
hm_blk_pid="" hm_net_pid=""
disk_mib=$(( (nclients + 1) * size_mib ))
native_offset_mib=$(( nclients * size_mib ))
port=5201
# Two peers at 10.77.0.1, each in its own namespace: one behind the DD's e1000 (tap), one behind
# host-mode ddtk-net's uplink (veth). Names from peer-net.sh; the host one is a second "instance".
peer_net_names "$instance-h"
h_ns=$PEER_NS h_uplink=$PEER_UPLINK
peer_net_names "$instance"
dd_ns=$PEER_NS
backend_pids=()
server_pids=()
bg_pids=()

ddtk() { "$ddtk_bin" -c "$conf" "$@"; }
cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ -f "/var/lib/ddtk/$instance/bridge.log" ]; then
    echo "--- dd-bench failed (exit $rc); the end of ddtk-bridge's log:" >&2
    tail -n 30 "/var/lib/ddtk/$instance/bridge.log" >&2
  fi
  for p in ${bg_pids[@]+"${bg_pids[@]}"}; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  # The VMs first (the DD's QEMU holds the tap), then the bridge (ddtk down), the back-ends, the peers.
  [ -f "$conf" ] && ddtk down --purge >/dev/null 2>&1
  for p in ${backend_pids[@]+"${backend_pids[@]}"} ${server_pids[@]+"${server_pids[@]}"}; do
    kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  peer_net_names "$instance"; peer_net_down
  peer_net_names "$instance-h"; peer_net_down
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- setup: images, disks, networks, back-ends, configuration ---------------------------------
# images-dir with the bench DD image as "dd" and the usual client image: ddtk starts what it finds.
mkdir -p "$work/images"
ln -s "$build/images/dd-bench" "$work/images/dd"
ln -s "$build/images/client" "$work/images/client"
echo "writing the DD's disk image (${disk_mib} MiB)$(if want host; then echo " and the host-mode file (${size_mib} MiB)"; fi) in full" >&2
dd if=/dev/zero of="$work/dd-disk.img" bs=1M count="$disk_mib" status=none
if want host; then dd if=/dev/zero of="$work/hm-disk.img" bs=1M count="$size_mib" status=none; fi

if want host; then
  peer_net_names "$instance-h"
  peer_net_up
  ip netns exec "$h_ns" iperf3 -s -p $port >"$work/iperf3-host-peer.log" 2>&1 &
  server_pids+=($!)
fi
peer_net_names "$instance"
peer_net_dd_up
for i in $(seq 0 "$nclients"); do # one server per DD client (they run at once) and one for (a)
  ip netns exec "$dd_ns" iperf3 -s -p $((port + i)) >"$work/iperf3-dd-peer-$i.log" 2>&1 &
  server_pids+=($!)
done

{
  printf '[ddtk]\ninstance = %s\naccel = %s\nboot-timeout = 300\nimages-dir = %s\nclients = %s\n' \
    "$instance" "${DDTK_BENCH_ACCEL:-auto}" "$work/images" "${all_vms[*]}"
  printf '[driver-domain]\nmemory = %s\nnic-tap = %s\ndisk-size = %sM\ndisk-image = %s\n' \
    "$dd_memory" "$PEER_TAP" "$disk_mib" "$work/dd-disk.img"
  [ -z "$dd_poll_us" ] || printf 'cmdline-append = ddtk.poll-us=%s\n' "$dd_poll_us"
  for c in "${clients[@]}"; do printf '[client.%s]\nvolume = %sM\ndd-nic = yes\n' "$c" "$size_mib"; done
  if want host; then
    printf '[client.%s]\nvhost-user-blk = %s\nvhost-user-net = %s\n' "$hm" "$work/hm-blk.sock" "$work/hm-net.sock"
  fi
} >"$conf"

if want host; then
  # The host-mode back-ends, as the DD's agent runs them (default --poll-us), before the client's QEMU.
  hm_mac=$(ddtk mac $hm)
  "$ddtk_blk" --socket-path "$work/hm-blk.sock" --blk-file "$work/hm-disk.img" --socket-group kvm \
    2>"$work/hm-ddtk-blk.log" &
  backend_pids+=($!); hm_blk_pid=$!
  "$ddtk_net" --uplink "$h_uplink" --socket-group kvm --client "name=$hm,socket=$work/hm-net.sock,mac=$hm_mac" \
    >"$work/hm-ddtk-net.log" 2>&1 &
  backend_pids+=($!); hm_net_pid=$!
  for s in hm-blk hm-net; do
    for _ in $(seq 100); do [ -S "$work/$s.sock" ] && break; sleep 0.1; done
    [ -S "$work/$s.sock" ] || { cat "$work"/hm-ddtk-*.log >&2; die "host-mode $s back-end did not start"; }
  done
fi

echo "bringing up instance $instance: ddtk-bridge, the DD (bench image), clients ${all_vms[*]} (${clients[*]} through the DD)" >&2
t0=$(date +%s)
ddtk up >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "ddtk up failed"; }
echo "up in $(( $(date +%s) - t0 )) s" >&2
pid_of_domain() { cat "/run/libvirt/qemu/ddtk-$instance-$1.pid"; }
dd_pid=$(pid_of_domain dd)
declare -A qemu_pid
for c in "${all_vms[@]}"; do qemu_pid[$c]=$(pid_of_domain "$c"); done
bridge_pid=$(cat "/var/lib/ddtk/$instance/bridge.pid")
bridge_json() { ddtk status | awk '/^ddtk-bridge status:/ { on = 1; next } /^supervisor / { on = 0 } on' | tr -d ' \n'; }

# (b) needs every device served by the DD; the DD side may be broken: then (b) is skipped, reported.
dd_ok=1
if want dd; then
  for _ in $(seq 240); do
    [ "$(bridge_json | grep -o '"served":true' | wc -l)" -ge $((2 * nclients)) ] && break
    sleep 0.5
  done
  if [ "$(bridge_json | grep -o '"served":true' | wc -l)" -lt $((2 * nclients)) ]; then
    echo "dd-bench: the DD does not serve every client device after 120 s: (b) skipped. Bridge status:" >&2
    bridge_json >&2; echo >&2
    tail -n 20 "/var/lib/ddtk/$instance/bridge.log" >&2
    dd_ok=0
  fi
fi

# Addresses: the DD's own .2 only during (a) (its e1000 otherwise carries the clients' frames only),
# DD clients .11, .12, ..., the host-mode client .21 (its own peer, its own L2).
guest_ip() { # VM IP IFACE-MAC(empty: the e1000)
  ddtk exec -t 60 "$1" -- "dev=''
    for d in /sys/class/net/*; do
      if [ -n '$3' ]; then [ \"\$(cat \$d/address)\" = '$3' ] && dev=\${d##*/}
      else [ \"\$(basename \$(readlink \$d/device/driver 2>/dev/null) 2>/dev/null)\" = e1000 ] && dev=\${d##*/}; fi
    done
    [ -n \"\$dev\" ] || { echo 'no NIC' >&2; exit 1; }
    ip link set \$dev up && ip addr replace $2/24 dev \$dev || exit 1
    i=0
    while [ \$i -lt 30 ]; do ping -c 1 -W 1 10.77.0.1 >/dev/null 2>&1 && exit 0; i=\$((i + 1)); done
    echo \"10.77.0.1 does not answer over \$dev\" >&2; exit 1" >/dev/null
}
if want dd && [ $dd_ok -eq 1 ]; then
  for i in "${!clients[@]}"; do
    guest_ip "${clients[$i]}" "10.77.0.$((11 + i))" "$(ddtk mac "${clients[$i]}")" ||
      { echo "dd-bench: ${clients[$i]} cannot reach the peer through the DD: (b) skipped" >&2; dd_ok=0; }
  done
fi
if want host; then guest_ip $hm 10.77.0.21 "$hm_mac"; fi

# --- measurement helpers -------------------------------------------------------------------------
cat >"$work/snap.py" <<'PY'
# One CPU snapshot: for each LABEL=PID the process's ticks (utime+stime, threads that ended
# included) and its vCPU threads' ("CPU N/TCG" or "CPU N/KVM"), and the host's /proc/stat.
import json, os, sys
def ticks(path):
    st = open(path).read()
    f = st[st.rindex(")") + 2:].split()
    return st[st.index("(") + 1:st.rindex(")")], int(f[11]) + int(f[12])
out = {"t": float(open("/proc/uptime").read().split()[0]), "host": [int(x) for x in open("/proc/stat").readline().split()[1:]],
       "procs": {}}
for arg in sys.argv[1:]:
    label, pid = arg.split("=")
    try:
        total = ticks(f"/proc/{pid}/stat")[1]
    except OSError:
        continue
    vcpu = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm, t = ticks(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        if comm.startswith("CPU "):
            vcpu += t
    out["procs"][label] = {"total": total, "vcpu": vcpu}
print(json.dumps(out))
PY
snap_procs() {
  local a=("dd-qemu=$dd_pid" "bridge=$bridge_pid") c
  if want host; then a+=("hm-ddtk-blk=$hm_blk_pid" "hm-ddtk-net=$hm_net_pid"); fi
  for c in "${all_vms[@]}"; do a+=("qemu-$c=${qemu_pid[$c]}"); done
  python3 "$work/snap.py" "${a[@]}"
}
# Inside a guest: its CPU line of /proc/stat, and the ticks of the back-ends (DD).
guest_cpu() {
  ddtk exec -t 30 "$1" -- 'head -n 1 /proc/stat; for p in $(pidof ddtk-blk ddtk-net ddtk-agent); do
    echo "proc $(cut -d" " -f2,14,15 /proc/$p/stat)"; done' 2>/dev/null | tr '\n' ';' || echo "none"
}
rss() { awk '/^VmRSS|^VmHWM/ { printf "%s%s", sep, $2; sep = " " }' "/proc/$dd_pid/status"; } # kB: RSS HWM

samples=$work/samples.jsonl # one JSON object per job
: >"$samples"
fio_cmd() { # FILE OFFSET-MIB RW BS QD
  echo "fio --name=b --filename=$1 --offset=${2}M --size=${size_mib}M --ioengine=libaio --direct=1 \
--rw=$3 --bs=$4 --iodepth=$5 --runtime=$runtime --time_based=1 --ramp_time=2 --norandommap=1 --randrepeat=0 \
--output-format=json"
}
# name:rw:bs:iodepth, as bench/blk-vm.sh
workloads=(
  "4k randread QD32:randread:4k:32"
  "4k randwrite QD32:randwrite:4k:32"
  "128k read QD8:read:128k:8"
  "128k write QD8:write:128k:8"
)

# run_job SYSTEM CASE KIND ROUND [perf] -- runs one job on every VM of SYSTEM at once, with snapshots
# around it; with perf, under perf record (DD QEMU, first client QEMU) and not counted.
run_job() {
  local system=$1 case=$2 kind=$3 round=$4 mode=${5:-} vms=() cmds=() i rw bs qd perf_pids=() out=$samples
  case $system in
    native) vms=(dd) ;;
    dd) vms=("${clients[@]}") ;;
    host) vms=("$hm") ;;
  esac
  for i in "${!vms[@]}"; do
    if [ "$kind" = net ]; then
      local p=$port; [ "$system" = dd ] && p=$((port + 1 + i))
      cmds+=("iperf3 -c 10.77.0.1 -p $p -t $runtime -J")
    else
      local wl name
      for wl in "${workloads[@]}"; do
        IFS=: read -r name rw bs qd <<<"$wl"
        [ "$name" = "$case" ] && break
      done
      case $system in
        native) cmds+=("$(fio_cmd /dev/sda "$native_offset_mib" "$rw" "$bs" "$qd")") ;;
        *) cmds+=("$(fio_cmd /dev/vda 0 "$rw" "$bs" "$qd")") ;;
      esac
    fi
  done
  local g0_dd g1_dd g0_vm g1_vm s0 s1 pids=()
  g0_dd=$(guest_cpu dd)
  if [ "$system" != native ]; then g0_vm=$(guest_cpu "${vms[0]}"); fi
  if [ "$mode" = perf ]; then
    out=$work/perf-samples.jsonl
    local slug
    slug=$(tr -cs 'A-Za-z0-9' - <<<"$case" | tr A-Z a-z); slug=${slug%-}
    perf record -q -F 499 -p "$dd_pid" -o "$work/perf-dd-qemu-$slug.data" >/dev/null 2>&1 &
    perf_pids+=($!)
    perf record -q -F 499 -p "${qemu_pid[${vms[0]}]}" -o "$work/perf-client-qemu-$slug.data" >/dev/null 2>&1 &
    perf_pids+=($!)
  fi
  s0=$(snap_procs)
  for i in "${!vms[@]}"; do
    ddtk exec -t $((runtime * 3 + 60)) "${vms[$i]}" -- "${cmds[$i]}" >"$work/out.$i" 2>"$work/err.$i" &
    pids+=($!)
  done
  local failed=0
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed=1; done
  s1=$(snap_procs)
  for i in ${perf_pids[@]+"${perf_pids[@]}"}; do kill -INT "$i" 2>/dev/null; wait "$i" 2>/dev/null || true; done
  g1_dd=$(guest_cpu dd)
  if [ "$system" != native ]; then g1_vm=$(guest_cpu "${vms[0]}"); fi
  if [ $failed -ne 0 ]; then
    for i in "${!vms[@]}"; do echo "--- ${vms[$i]}: ${cmds[$i]}" >&2; cat "$work/err.$i" "$work/out.$i" >&2; done
    return 1
  fi
  python3 - "$system" "$case" "$kind" "$round" "${#vms[@]}" "$work" "$s0" "$s1" "$g0_dd" "$g1_dd" \
    "${g0_vm:-}" "${g1_vm:-}" >>"$out" <<'PY'
import json, sys
system, case, kind, rnd, n, work, s0, s1, g0, g1, v0, v1 = sys.argv[1:]
vals, extra = [], {}
for i in range(int(n)):
    doc = json.load(open(f"{work}/out.{i}"))
    if kind == "net":
        vals.append(doc["end"]["sum_received"]["bits_per_second"] / 1e6)
        extra.setdefault("retransmits", []).append(doc["end"]["sum_sent"].get("retransmits", 0))
    else:
        j = doc["jobs"][0]
        side = j["read"] if j["read"]["io_bytes"] else j["write"]
        vals.append(side["iops"] if case.startswith("4k") else side["bw_bytes"] / 1e6)
        extra.setdefault("clat_p50_us", []).append(side["clat_ns"]["percentile"]["50.000000"] / 1000)
        extra.setdefault("errors", []).append(j["error"])
print(json.dumps({"system": system, "case": case, "kind": kind, "round": int(rnd), "value": sum(vals),
                  "per_vm": vals, **extra, "snap0": json.loads(s0), "snap1": json.loads(s1),
                  "dd_guest0": g0, "dd_guest1": g1, "vm_guest0": v0, "vm_guest1": v1}))
PY
  python3 -c 'import json,sys; d=json.loads(sys.stdin.readlines()[-1]); print("%s, %s, %s: %.1f %s" % ("round %d" % d["round"] if d["round"] else "perf pass", d["system"], d["case"], d["value"], "Mbit/s" if d["kind"]=="net" else ("IOPS" if d["case"].startswith("4k") else "MB/s")))' <"$out" >&2
}

# (a) needs the DD's own address on its e1000, only while it runs.
dd_native_ip() { # add|del
  ddtk exec -t 60 dd -- "for d in /sys/class/net/*; do
      [ \"\$(basename \$(readlink \$d/device/driver 2>/dev/null) 2>/dev/null)\" = e1000 ] && dev=\${d##*/}; done
    ip addr $1 10.77.0.2/24 dev \$dev" >/dev/null
}

rss_start=$(rss)
echo "DD QEMU (pid $dd_pid) VmRSS/VmHWM at the start: $rss_start kB" >&2
for round in $(seq 1 "$rounds"); do
  for system in native dd host; do
    want "$system" || continue
    [ "$system" = dd ] && [ $dd_ok -eq 0 ] && continue
    if [ "$system" = native ]; then
      dd_native_ip add
      guest_ip dd 10.77.0.2 "" || die "the DD cannot reach its peer over its e1000"
    fi
    for wl in "${workloads[@]}"; do run_job "$system" "${wl%%:*}" blk "$round"; done
    run_job "$system" "TCP client -> peer" net "$round"
    if [ "$system" = native ]; then dd_native_ip del; fi
  done
done
if [ $perf -eq 1 ] && want dd && [ $dd_ok -eq 1 ]; then
  for wl in "${workloads[@]}"; do run_job dd "${wl%%:*}" blk 0 perf; done
  run_job dd "TCP client -> peer" net 0 perf
fi
rss_before=$(rss)

# --- soak: continuous I/O through the DD, RSS sampled every 10 s -----------------------------------
rss_log=$work/rss.tsv
printf '%s\t%s\n' 0 "$rss_before" >"$rss_log"
soak_done=0
if [ "$soak" -gt 0 ] && want dd && [ $dd_ok -eq 1 ]; then
  echo "soak: ${soak} s of fio (4k randrw QD32) and iperf3 in ${clients[*]} through the DD" >&2
  for i in "${!clients[@]}"; do
    ddtk exec -t $((soak + 120)) "${clients[$i]}" -- "fio --name=soak --filename=/dev/vda --size=${size_mib}M \
      --ioengine=libaio --direct=1 --rw=randrw --bs=4k --iodepth=32 --runtime=$soak --time_based=1 \
      --norandommap=1 --randrepeat=0 --output-format=json >/tmp/soak-fio.json 2>&1 &
      iperf3 -c 10.77.0.1 -p $((port + 1 + i)) -t $soak -J >/tmp/soak-iperf3.json 2>&1; wait" >"$work/soak.$i" 2>&1 &
    bg_pids+=($!)
  done
  t0=$(date +%s)
  while :; do
    alive=0
    for p in "${bg_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 1 ] || break
    sleep 10
    printf '%s\t%s\n' $(( $(date +%s) - t0 )) "$(rss)" >>"$rss_log"
  done
  soak_failed=0
  for p in "${bg_pids[@]}"; do wait "$p" || soak_failed=1; done
  bg_pids=()
  [ $soak_failed -eq 0 ] || { cat "$work"/soak.* >&2; die "the soak's fio or iperf3 failed"; }
  soak_mbps=$(ddtk exec a -- 'cat /tmp/soak-iperf3.json' | python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))' || echo "?")
  soak_iops=$(ddtk exec a -- 'cat /tmp/soak-fio.json' | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print("%.0f" % (j["read"]["iops"]+j["write"]["iops"]))' || echo "?")
  echo "soak done: a: fio $soak_iops IOPS (read+write), iperf3 $soak_mbps Mbit/s" >&2
  soak_done=1
fi
rss_after=$(rss)
echo "DD QEMU VmRSS/VmHWM: start $rss_start, before the soak $rss_before, after $rss_after kB" >&2

if [ $perf -eq 1 ]; then
  for f in "$work"/perf-*.data; do
    [ -f "$f" ] || continue
    b=$(basename "$f" .data)
    { echo "by DSO ([JIT] = guest code translated by TCG, qemu-system-x86_64 = TCG helpers and device emulation):"
      perf report -q -i "$f" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 6
      echo "by symbol:"
      perf report -q -i "$f" --no-children --sort dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 20
    } >"$work/$b.txt" || true
  done
fi

# --- results -------------------------------------------------------------------------------------
mkdir -p "$out_dir"
rm -f "$out_dir"/dd-perf-*.txt
for f in "$work"/perf-*.txt; do if [ -f "$f" ]; then cp "$f" "$out_dir/dd-${f##*/}"; fi; done
kernel=$(cat "$build/images/client/kernel-version")
accel=$(ddtk status | awk "NR == 1" | grep -o 'accel [a-z]*' | cut -d' ' -f2)
description="fio $(fio --version) (libaio, direct=1, ${runtime} s after 2 s ramp, ${size_mib} MiB region) and iperf3 TCP (${runtime} s, one stream, to a peer in a network namespace); \
native: inside the DD (bench image, ${dd_memory} MiB, 1 vCPU) on /dev/sda (ahci; the ${size_mib} MiB after the clients' volumes) and its e1000 (tap wired to the peer's veth); \
through the DD: $nclients client(s) (1 vCPU, 512 MiB) with a volume and a dd-nic served by ddtk-blk/ddtk-net inside the DD via ddtk-bridge$(if [ "$nclients" -gt 1 ]; then echo ", all at once, summed"; fi); \
$(if want host; then echo "host mode: a client (1 vCPU, 512 MiB) on host ddtk-blk (buffered, on a file) and ddtk-net (uplink: a veth to its own peer); "; fi)\
$accel, $(nproc) host CPUs, guest kernel $kernel, ${rounds} round(s)"
python3 - "$samples" "$out_dir" "$description" "$rss_log" "$rss_start" "$rss_before" "$rss_after" "$soak" "$soak_done" \
  "$dd_ok" "$nclients" "$work" "${clients[*]}" "$dd_memory" <<'PY'
import collections, glob, json, os, statistics, sys
(samples_path, out_dir, description, rss_log, rss_start, rss_before, rss_after, soak, soak_done, dd_ok, nclients, work,
 clients, dd_memory) = sys.argv[1:]
clients = clients.split()
names = {"native": "native (in the DD)", "dd": "client through the DD", "host": "client, host mode"}
samples = [json.loads(l) for l in open(samples_path)]
GOAL = 0.025  # the seed's loss against native (TTCP)

def family(kind, bench, unit, what):
    data = collections.defaultdict(list)
    for s in samples:
        if s["kind"] == kind:
            data[(names[s["system"]], s["case"])].append(round(s["value"], 1))
    results, ratios = {}, {}
    for (system, case), xs in data.items():
        results[f"{system}: {case}"] = {"system": system, "case": case, "median": round(statistics.median(xs), 1),
                                        "min": min(xs), "max": max(xs), "samples": xs}
    goal = {"max_loss_vs_native": GOAL, "cases": {}}
    for case in dict.fromkeys(c for _, c in data):
        m = {k: results.get(f"{v}: {case}") for k, v in names.items()}
        for a, b in (("dd", "native"), ("host", "native"), ("dd", "host")):
            if m[a] and m[b] and m[b]["median"]:
                ratios[f"{names[a]} / {names[b]} ({case})"] = round(m[a]["median"] / m[b]["median"], 3)
        if m["dd"] and m["native"] and m["native"]["median"]:
            loss = 1 - m["dd"]["median"] / m["native"]["median"]
            goal["cases"][case] = {"loss": round(loss, 3), "met": loss <= GOAL}
    goal["met"] = bool(goal["cases"]) and all(c["met"] for c in goal["cases"].values())
    if dd_ok != "1":
        goal["note"] = "(b) did not run: the DD did not serve the client's devices"
    doc = {"benchmark": bench, "description": what + "; " + description, "unit": unit, "higher_is_better": True,
           "results": results, "ratios": ratios, "goal": goal}
    json.dump(doc, open(f"{out_dir}/{bench}.json", "w"), indent=2)
    return goal

g_blk = family("blk", "dd-blk", "IOPS or MB/s", "fio: IOPS for 4k, MB/s (10^6 B) for 128k")
g_net = family("net", "dd-net", "Mbit/s", "iperf3 TCP, received at the peer")

# CPU: cores used (CPU s per wall s) per part of the path, median over rounds.
def parts(snap, label):
    p = snap["procs"].get(label, {"total": 0, "vcpu": 0})
    return p["vcpu"], p["total"] - p["vcpu"]
def guest_busy(g0, g1):
    try:
        a = [int(x) for x in g0.split(";")[0].split()[1:]]
        b = [int(x) for x in g1.split(";")[0].split()[1:]]
    except (ValueError, IndexError):
        return None
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])
    return None if total <= 0 else 1 - (d[3] + d[4]) / total  # idle + iowait
def guest_parts(g0, g1):
    # Shares of the DD's vCPU: interrupts (irq + softirq: the e1000's and ahci's, ivshmem's MSI-X) and
    # the back-ends' processes, from /proc/stat and /proc/PID/stat inside the DD.
    def parse(g):
        lines = g.split(";")
        cpu = [int(x) for x in lines[0].split()[1:]]
        procs = {}
        for l in lines[1:]:
            f = l.split()
            if len(f) == 4 and f[0] == "proc":
                procs[f[1].strip("()")] = procs.get(f[1].strip("()"), 0) + int(f[2]) + int(f[3])
        return cpu, procs
    try:
        (c0, p0), (c1, p1) = parse(g0), parse(g1)
    except (ValueError, IndexError):
        return {}
    d = [y - x for x, y in zip(c0, c1)]
    total = sum(d[:8])
    if total <= 0:
        return {}
    out = {"DD guest: irq+softirq": (d[5] + d[6]) / total}
    for name in ("ddtk-blk", "ddtk-net"):
        if name in p0 and name in p1:
            out[f"DD guest: {name}"] = max(0, p1[name] - p0[name]) / total
    return out
cpu = collections.defaultdict(list)
for s in samples:
    s0, s1 = s["snap0"], s["snap1"]
    wall = s1["t"] - s0["t"]
    active = {"native": [], "dd": [f"qemu-{c}" for c in clients], "host": ["qemu-hm"]}[s["system"]]
    row = collections.defaultdict(float)
    for label in s1["procs"]:
        v0, o0 = parts(s0, label); v1, o1 = parts(s1, label)
        vcpu, other = (v1 - v0) / 100 / wall, (o1 - o0) / 100 / wall
        if label == "dd-qemu":
            row["DD QEMU vCPU"] += vcpu; row["DD QEMU other threads"] += other
        elif label in active:
            row["client QEMU vCPU"] += vcpu; row["client QEMU other threads"] += other
        elif label.startswith("qemu-"):
            row["idle clients' QEMUs"] += vcpu + other
        elif label == "bridge":
            row["ddtk-bridge"] += vcpu + other
        else:
            row["host-mode back-ends"] += vcpu + other
    hd = [y - x for x, y in zip(s0["host"], s1["host"])]
    busy = (1 - (hd[3] + hd[4]) / sum(hd[:8])) * os.cpu_count() if sum(hd[:8]) else 0
    row["host: everything else"] = max(0.0, busy - sum(row.values()))
    row["host busy (all CPUs)"] = busy
    b = guest_busy(s["dd_guest0"], s["dd_guest1"])
    if b is not None:
        row["DD guest busy (its vCPU)"] = b
        row.update(guest_parts(s["dd_guest0"], s["dd_guest1"]))
    b = guest_busy(s["vm_guest0"], s["vm_guest1"]) if s["vm_guest0"] else None
    if b is not None:
        row["client guest busy"] = b
    for k, v in row.items():
        cpu[(names[s["system"]] + ": " + s["case"], k)].append(v)
order = ["DD QEMU vCPU", "DD QEMU other threads", "client QEMU vCPU", "client QEMU other threads", "ddtk-bridge",
         "host-mode back-ends", "idle clients' QEMUs", "host: everything else", "host busy (all CPUs)",
         "DD guest busy (its vCPU)", "DD guest: irq+softirq", "DD guest: ddtk-blk", "DD guest: ddtk-net", "client guest busy"]
results = {}
for (case, part), xs in sorted(cpu.items(), key=lambda kv: order.index(kv[0][1])):
    xs = [round(x, 3) for x in xs]
    results[f"{part} ({case})"] = {"system": part, "case": case, "median": round(statistics.median(xs), 2),
                                   "min": min(xs), "max": max(xs), "samples": xs}
json.dump({"benchmark": "dd-cpu",
           "description": "cores in use during each job (CPU seconds / wall seconds; 1.0 = one host CPU busy): the DD's QEMU "
                          "(vCPU thread = the DD's emulated CPU under TCG; other threads = device emulation, I/O, main loop), "
                          "the measured client's QEMU (all of them with --clients N), the idle clients' QEMUs, ddtk-bridge, the "
                          "host-mode ddtk-blk and ddtk-net, the rest of the host (kernel threads: the host's I/O and network "
                          "stack; and anything else running), the whole host; 'guest busy' = the share of the guest's own "
                          "vCPU time not idle (/proc/stat inside it), 'DD guest: X' = X's share of it; " + description,
           "unit": "cores", "higher_is_better": False, "results": results, "ratios": {}},
          open(f"{out_dir}/dd-cpu.json", "w"), indent=2)

# Memory of the DD's QEMU.
rss = [tuple(l.split("\t")) for l in open(rss_log).read().split("\n") if l]
def kb(pair, i): return int(pair.split()[i]) / 1024
mem = {}
for label, pair in (("start", rss_start), ("after the measurements, before the soak", rss_before),
                    (f"after the soak ({soak} s)" if soak_done == "1" else "end (no soak)", rss_after)):
    mem[f"VmRSS: {label}"] = {"system": "VmRSS", "case": label, "median": round(kb(pair, 0), 1),
                              "min": round(kb(pair, 0), 1), "max": round(kb(pair, 0), 1), "samples": [round(kb(pair, 0), 1)]}
    mem[f"VmHWM: {label}"] = {"system": "VmHWM (peak)", "case": label, "median": round(kb(pair, 1), 1),
                              "min": round(kb(pair, 1), 1), "max": round(kb(pair, 1), 1), "samples": [round(kb(pair, 1), 1)]}
during = [round(kb(p, 0), 1) for _, p in rss]
doc = {"benchmark": "dd-memory",
       "description": f"the DD QEMU process's VmRSS and VmHWM (MiB, /proc/PID/status; the DD's RAM is {dd_memory} MiB) at the start, before and after {soak} s of "
                      f"continuous fio (4k randrw QD32) and iperf3 from {nclients} client(s) through the DD; VmRSS every 10 s "
                      f"of the soak: {during}; " + description,
       "unit": "MiB", "higher_is_better": False, "results": mem,
       "ratios": {"VmRSS after the soak / before": round(kb(rss_after, 0) / kb(rss_before, 0), 3)}}
json.dump(doc, open(f"{out_dir}/dd-memory.json", "w"), indent=2)

perf = {os.path.basename(p): open(p).read() for p in glob.glob(f"{work}/perf-*.txt")}
json.dump({"description": description, "runs": samples, "rss_during_soak_kb": rss, "perf": perf},
          open(f"{out_dir}/dd-runs.json", "w"), indent=1)

for what, g in (("blk", g_blk), ("net", g_net)):
    if not g["cases"]:
        print(f"goal ({what}): not measured (no (b) and (a) results)", file=sys.stderr)
        continue
    worst = max(g["cases"].items(), key=lambda kv: kv[1]["loss"])
    print(f"goal ({what}): loss of (b) against (a) at most {GOAL:.1%}: {'met' if g['met'] else 'MISSED'} "
          f"(worst: {worst[0]}, loss {worst[1]['loss']:.1%})", file=sys.stderr)
PY
"$src/bench/report" "$out_dir"/dd-{blk,net,cpu,memory}.json
for f in "$out_dir"/dd-perf-*.txt; do
  [ -f "$f" ] || continue
  echo "### $(basename "$f" .txt): where the QEMU process spends its CPU (perf, by DSO; symbols in $f)"
  echo; sed -n '2,/^by symbol/p' "$f" | grep -v '^by symbol' | sed 's/^/    /'; echo
done
