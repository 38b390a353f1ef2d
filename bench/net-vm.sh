#!/usr/bin/env bash
# Benchmark: iperf3 (TCP) from a client VM whose NIC is a vhost-user-net socket served by ddtk-net,
# to an iperf3 server in a network namespace behind a veth pair (ddtk-net's uplink is the host
# end), both directions; then the same VM with QEMU's own tap back-end (what users run today) to an
# iperf3 server on the host bound to the tap. One after the other in the same run, medians of N
# rounds. Under TCG the guest's CPU is the bottleneck: the ratio says whether the back-end costs
# the guest anything, not how fast the back-end is (bench/net.sh).
# usage: bench/net-vm.sh [--rounds N] [--runtime S] [--build DIR] [--ddtk PATH] [--ddtk-net PATH]
#                        [--ddtk-net-args ARGS] [--systems 'ddtk-net tap'] [--out-dir DIR]
# --build DIR: the build tree whose ddtk (and images) and ddtk-net run (default build/).
# Writes net-vm.json (and net-vm-ddtk-net.log, ddtk-net's log) into build/bench/ and prints the table.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=2
runtime=15
build=$src/build
ddtk_bin=
ddtk_net=
ddtk_net_args=
systems="ddtk-net tap"
out_dir=
usage="usage: $0 [--rounds N] [--runtime S] [--build DIR] [--ddtk PATH] [--ddtk-net PATH] [--ddtk-net-args ARGS] [--systems 'ddtk-net tap'] [--out-dir DIR]"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --build) build=$2; shift ;;
    --ddtk) ddtk_bin=$2; shift ;;
    --ddtk-net) ddtk_net=$2; shift ;;
    --ddtk-net-args) ddtk_net_args=$2; shift ;;
    --systems) systems=$2; shift ;;
    --out-dir) out_dir=$2; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
ddtk_bin=${ddtk_bin:-$build/host/ddtk}
ddtk_net=${ddtk_net:-$build/virtio-backends/ddtk-net}
out_dir=${out_dir:-$build/bench}
die() { echo "net-vm: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (libvirt's system instance, a network namespace, a tap)"
for s in $systems; do
  case $s in ddtk-net|tap) ;; *) die "unknown system $s (ddtk-net, tap)" ;; esac
done
[ -x "$ddtk_bin" ] || die "$ddtk_bin is missing: build first (ninja -C build)"
[ -x "$ddtk_net" ] || die "$ddtk_net is missing: build first (ninja -C build)"
command -v iperf3 >/dev/null || die "iperf3 is missing on the host"
"$src/scripts/start-libvirt"

instance="benchnet$$"
guest_mac=02:dd:4e:00:01:0a
peer_mac=02:dd:4e:00:01:02
ns=ddtknetvm$$
host_if=dnvm$$h
peer_if=dnvm$$p
tap_if=dnvm$$t
net_vu=10.77.0      # ddtk-net: the server in the namespace is .1, the guest .2
net_tap=10.78.0     # tap: the server on the host (the tap) is .1, the guest .2
port=5239           # not iperf3's default: another iperf3 on the host must not be in the way
work=$(mktemp -d)
chmod 0711 "$work" # QEMU (libvirt-qemu) reaches the socket through it
conf=$work/ddtk.conf
sock=$work/net.sock
stats_sock=$work/stats.sock
backend_pid=
server_pids=()
tap_domain=

ddtk() { "$ddtk_bin" -c "$conf" "$@"; }
backend_stop() {
  if [ -n "$backend_pid" ]; then
    kill -TERM "$backend_pid" 2>/dev/null || true
    wait "$backend_pid" 2>/dev/null || true
  fi
  backend_pid=
}
cleanup() {
  [ -n "$tap_domain" ] && virsh -q -c qemu:///system destroy "$tap_domain" >/dev/null 2>&1
  ddtk down --purge >/dev/null 2>&1 || true
  backend_stop
  for p in ${server_pids[@]+"${server_pids[@]}"}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ip link del "$host_if" 2>/dev/null || true
  ip link del "$tap_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '[ddtk]\ninstance = %s\nclients = a\n[client.a]\nvhost-user-net = %s\nmac = %s\n' \
  "$instance" "$sock" "$guest_mac" >"$conf"

# ddtk-net's side: the uplink is the host end of a veth pair, the server sits at the other end.
ip netns add "$ns"
ip link add "$host_if" type veth peer name "$peer_if"
ip link set "$peer_if" netns "$ns"
ip link set "$host_if" up
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip link set "$peer_if" address "$peer_mac" up
ip netns exec "$ns" ip addr add "$net_vu.1/24" dev "$peer_if"
ip netns exec "$ns" iperf3 -s -B "$net_vu.1" -p "$port" >"$work/iperf3-ns.log" 2>&1 &
server_pids+=($!)

# QEMU's tap back-end: a tap on the host with the server's address; libvirt opens it (managed='no').
ip tuntap add dev "$tap_if" mode tap
ip addr add "$net_tap.1/24" dev "$tap_if"
ip link set "$tap_if" up
iperf3 -s -B "$net_tap.1" -p "$port" >"$work/iperf3-tap.log" 2>&1 &
server_pids+=($!)

backend_start() {
  rm -f "$sock" "$stats_sock"
  # shellcheck disable=SC2086
  "$ddtk_net" --uplink "$host_if" --socket-group kvm --stats-socket "$stats_sock" \
    --client "name=a,socket=$sock,mac=$guest_mac" $ddtk_net_args >>"$work/ddtk-net.log" 2>&1 &
  backend_pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.1; done
  cat "$work/ddtk-net.log" >&2
  die "ddtk-net did not start"
}

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

# The domain XML ddtk generates for the vhost-user NIC, with that NIC replaced by QEMU's tap back-end.
tap_xml() {
  ddtk xml a | python3 -c '
import re, sys
tap, mac = sys.argv[1], sys.argv[2]
nic = (f"<interface type=\"ethernet\">\n      <mac address=\"{mac}\"/>\n      <target dev=\"{tap}\" managed=\"no\"/>\n"
       "      <model type=\"virtio\"/>\n    </interface>")
xml, n = re.subn(r"<interface type=\"vhostuser\">.*?</interface>", lambda m: nic, sys.stdin.read(), flags=re.S)
if n != 1:
    sys.exit("net-vm: the XML of ddtk xml has no vhostuser interface to replace")
print(xml, end="")' "$tap_if" "$guest_mac"
}

vm_start() {
  if [ "$1" = ddtk-net ]; then
    ddtk start a >/dev/null
    return
  fi
  # `ddtk start` has staged the kernel and initrd the XML names (the ddtk-net system runs first in
  # every round; with --systems tap alone, one start and stop stages them).
  tap_xml >"$work/tap.xml"
  tap_domain=$(python3 -c 'import sys, xml.etree.ElementTree as ET; print(ET.parse(sys.argv[1]).find("name").text)' "$work/tap.xml")
  virsh -q -c qemu:///system create "$work/tap.xml" >/dev/null
  for _ in $(seq 300); do
    ddtk exec -t 5 a -- true >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "the tap VM's agent did not answer"
}

vm_stop() {
  ddtk stop a >/dev/null 2>&1 || true
  if [ -n "$tap_domain" ]; then
    virsh -q -c qemu:///system destroy "$tap_domain" >/dev/null 2>&1 || true
    tap_domain=
  fi
}

# guest_net PREFIX: the NIC (found by its MAC) gets PREFIX.2/24, and the server PREFIX.1 must answer.
guest_net() {
  ddtk exec -t 60 a -- "dev=''
    for d in /sys/class/net/*; do if [ \"\$(cat \$d/address)\" = $guest_mac ]; then dev=\${d##*/}; fi; done
    [ -n \"\$dev\" ] || { echo 'no NIC with MAC $guest_mac' >&2; exit 1; }
    ip addr add $1.2/24 dev \$dev && ip link set \$dev up || exit 1
    i=0
    while [ \$i -lt 30 ]; do ping -c 1 -W 1 $1.1 >/dev/null 2>&1 && exit 0; i=\$((i + 1)); done
    echo \"$1.1 does not answer over \$dev\" >&2; exit 1" >/dev/null
}

if [[ " $systems " == *" tap "* ]] && [[ " $systems " != *" ddtk-net "* ]]; then
  backend_start; ddtk start a >/dev/null; ddtk stop a >/dev/null; backend_stop
fi

samples=$work/samples.tsv
: >"$samples"
for round in $(seq 1 "$rounds"); do
  for system in $systems; do
    if [ "$system" = ddtk-net ]; then backend_start; prefix=$net_vu; else prefix=$net_tap; fi
    vm_start "$system"
    guest_net "$prefix"
    for dir in tx rx; do
      flag=; [ "$dir" = rx ] && flag=-R
      json=$(ddtk exec -t $((runtime + 60)) a -- "iperf3 -c $prefix.1 -p $port $flag -t $runtime -J") ||
        { echo "$json" >&2; die "iperf3 ($system, $dir) failed"; }
      mbps=$(python3 -c 'import json, sys; print("%.1f" % (json.loads(sys.stdin.read())["end"]["sum_received"]["bits_per_second"] / 1e6))' <<<"$json")
      retr=$(python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["end"]["sum_sent"].get("retransmits", 0))' <<<"$json")
      printf '%s\t%s\t%s\t%s\n' "$system" "$dir" "$mbps" "$retr" >>"$samples"
      echo "round $round, $system, $dir: $mbps Mbit/s ($retr retransmits)" >&2
    done
    if [ "$system" = ddtk-net ]; then
      echo "round $round: ddtk-net stats: $(read_stats)" >&2
    fi
    vm_stop
    if [ "$system" = ddtk-net ]; then backend_stop; fi
  done
done

if grep -qiE 'error|warn|drop|fail|broken' "$work/ddtk-net.log" 2>/dev/null; then
  echo "net-vm: ddtk-net's log mentions errors, warnings or drops; the first lines:" >&2
  grep -iE 'error|warn|drop|fail|broken' "$work/ddtk-net.log" | head -n 5 >&2
fi

mkdir -p "$out_dir"
cp "$work/ddtk-net.log" "$out_dir/net-vm-ddtk-net.log" 2>/dev/null || true
python3 - "$samples" "$out_dir" "$runtime" <<'PY'
import collections, json, statistics, sys
samples, out_dir, runtime = sys.argv[1], sys.argv[2], sys.argv[3]
names = {"ddtk-net": "ddtk-net", "tap": "QEMU tap"}
cases = {"tx": "guest -> host (iperf3 -c)", "rx": "host -> guest (iperf3 -c -R)"}
data = collections.defaultdict(list)
retrans = collections.defaultdict(list)
for line in open(samples):
    system, d, mbps, retr = line.rstrip("\n").split("\t")
    data[(names[system], cases[d])].append(float(mbps))
    retrans[(names[system], cases[d])].append(int(retr))
results, ratios = {}, {}
for (system, case), xs in data.items():
    results[f"{system}: {case}"] = {"system": system, "case": case, "median": round(statistics.median(xs), 1),
                                    "min": round(min(xs), 1), "max": round(max(xs), 1), "samples": xs,
                                    "retransmits": retrans[(system, case)]}
for case in cases.values():
    a, b = results.get(f"ddtk-net: {case}"), results.get(f"QEMU tap: {case}")
    if a and b and b["median"]:
        ratios[f"ddtk-net / QEMU tap ({case})"] = round(a["median"] / b["median"], 3)
doc = {"benchmark": "net-vm",
       "description": f"iperf3 TCP, {runtime} s, one stream, from a client VM (TCG, 1 vCPU, virtio-net, rings of 256); "
                      "ddtk-net: vhost-user-net NIC, ddtk-net's uplink a veth whose peer (in a network namespace) runs the server; "
                      "QEMU tap: the same VM and guest with <interface type='ethernet'> on a host tap, the server on the host bound to it",
       "unit": "Mbit/s", "higher_is_better": True, "results": results, "ratios": ratios}
json.dump(doc, open(f"{out_dir}/net-vm.json", "w"), indent=2)
PY
"$src/bench/report" "$out_dir/net-vm.json"
