#!/usr/bin/env bash
# ddtk-net in host mode under two real client VMs (<interface type='vhostuser'>) and an uplink peer
# in a network namespace this test creates: ARP and ping every way, iperf3 both directions to the
# peer and between the clients, forged source MACs dropped and counted, and a client in
# promiscuous mode never sees the other client's unicast.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
: "${DDTK_NET:?DDTK_NET must name the ddtk-net binary}"
: "${DDTK_RAWSEND:?DDTK_RAWSEND must name the ddtk-rawsend binary}"

chmod 0711 "$TEST_TMP"
ns="ddtk-$INSTANCE"
up="dn$$u"
peer="dn$$p"
mac_a=02:dd:00:00:00:0a
mac_b=02:dd:00:00:00:0b
mac_peer=02:77:00:00:00:01
ip_a=10.77.0.11 ip_b=10.77.0.12 ip_peer=10.77.0.1
stats="$TEST_TMP/net-stats.sock"
net_pid= iperf_pid=

test_extra_cleanup() {
  [ -n "$iperf_pid" ] && { kill "$iperf_pid" 2>/dev/null || true; wait "$iperf_pid" 2>/dev/null || true; }
  if [ -n "$net_pid" ]; then kill "$net_pid" 2>/dev/null || true; wait "$net_pid" 2>/dev/null || true; fi
  ip link del "$up" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  if [ -f "$TEST_TMP/ddtk-net.log" ]; then echo "--- ddtk-net log"; tail -n 40 "$TEST_TMP/ddtk-net.log"; fi
}

# The peer: a veth whose far end lives in our namespace, with an address and an iperf3 server.
ip netns add "$ns"
ip link add "$up" type veth peer name "$peer"
ip link set "$peer" netns "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip link set "$peer" address "$mac_peer" up
ip netns exec "$ns" ip addr add "$ip_peer/24" dev "$peer"
sysctl -qw "net.ipv6.conf.$up.disable_ipv6=1"
ip link set "$up" up
ip netns exec "$ns" iperf3 -s -B "$ip_peer" >/dev/null 2>&1 &
iperf_pid=$!

"$DDTK_NET" --uplink "$up" --socket-group kvm --stats-socket "$stats" --verbose \
  --client "name=a,socket=$TEST_TMP/a-net.sock,mac=$mac_a" \
  --client "name=b,socket=$TEST_TMP/b-net.sock,mac=$mac_b,queues=2" 2>>"$TEST_TMP/ddtk-net.log" &
net_pid=$!
for _ in $(seq 100); do [ -S "$TEST_TMP/b-net.sock" ] && break; sleep 0.1; done
[ -S "$TEST_TMP/b-net.sock" ] || fail "ddtk-net did not start: $(cat "$TEST_TMP/ddtk-net.log")"

# counter CLIENT FIELD: one of ddtk-net's per-client counters, from its stats socket (retried:
# with two TCG guests on the cores ddtk-net may answer late).
. "$DDTK_SOURCE_ROOT/tests/lib/stats.sh"
counter() {
  local v
  v=$(stats_counter "$stats" "$1" "$2" || true)
  [ -n "$v" ] || fail "ddtk-net's stats socket gave no $2 for $1"
  echo "$v"
}

write_config "clients = a b"
cat >> "$DDTK_CONFIG" <<CONF
[client.a]
vhost-user-net = $TEST_TMP/a-net.sock
mac = $mac_a
[client.b]
vhost-user-net = $TEST_TMP/b-net.sock
vhost-user-net-queues = 2
vcpus = 2
mac = $mac_b
CONF
"$DDTK" start a
"$DDTK" start b
expect_match "domain XML" "$(virsh -q dumpxml "ddtk-$INSTANCE-a" | tr -d '\n ')" "<interfacetype='vhostuser'>"
in_vm a "ip link set eth0 up && ip addr add $ip_a/24 dev eth0" >/dev/null
in_vm b "ip link set eth0 up && ip addr add $ip_b/24 dev eth0" >/dev/null
expect_eq "client a's MAC in the guest" "$(in_vm a 'cat /sys/class/net/eth0/address')" "$mac_a"
# Under TCG, QEMU 7.2 needs the clients on INTx (see host/vm/vmm.c); under KVM they keep MSI-X.
if "$DDTK" xml a | grep -q '<domain type="qemu">'; then
  expect_match "client a's kernel command line (TCG)" "$(in_vm a 'cat /proc/cmdline')" "pci=nomsi"
fi
expect_eq "client b's queue pairs" "$(in_vm b 'ls -d /sys/class/net/eth0/queues/rx-* | wc -l')" 2

in_vm a "ping -c 3 -W 5 $ip_peer" >/dev/null
pass "a pings the peer"
in_vm b "ping -c 3 -W 5 $ip_peer" >/dev/null
pass "b pings the peer"
in_vm a "ping -c 3 -W 5 $ip_b" >/dev/null
pass "a pings b (switched inside ddtk-net)"
ip netns exec "$ns" busybox ping -c 3 -W 5 "$ip_a" >/dev/null || fail "the peer cannot ping a"
pass "the peer pings a"
expect_match "a's ARP entry for b" "$(in_vm a "ip neigh show $ip_b")" "$mac_b"
expect_match "the peer's ARP entry for b" "$(ip netns exec "$ns" ip neigh show "$ip_b")" "$mac_b"

# iperf3's summary line of the receiving side, in Mbit/s (the agent's output is kept short).
mbps() { awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") printf "%d", $(i - 1) }'; }
up_mbps=$(in_vm a "iperf3 -c $ip_peer -t 4 -f m | grep receiver" | mbps)
[ "${up_mbps:-0}" -gt 0 ] || fail "iperf3 a -> peer moved nothing"
pass "iperf3 a -> peer: $up_mbps Mbit/s"
down_mbps=$(in_vm a "iperf3 -c $ip_peer -t 4 -R -f m | grep receiver" | mbps)
[ "${down_mbps:-0}" -gt 0 ] || fail "iperf3 peer -> a moved nothing"
pass "iperf3 peer -> a: $down_mbps Mbit/s"
in_vm b "iperf3 -s -D -B $ip_b" >/dev/null
listen_wait_vm b
c2c_mbps=$(in_vm a "iperf3 -c $ip_b -t 4 -f m | grep receiver" | mbps)
[ "${c2c_mbps:-0}" -gt 0 ] || fail "iperf3 a -> b moved nothing"
pass "iperf3 a -> b: $c2c_mbps Mbit/s"

# recv_start WHERE TAG [--promisc]: counts tagged frames for 14 s, in a client (a or b) or at the
# peer. The window must cover the agent round trips that start the later receivers and send (a few
# seconds each under TCG on a busy machine): the peer's receivers, which start at once, go last.
recv_start() {
  local where=$1 tag=$2; shift 2
  if [ "$where" = peer ]; then
    ip netns exec "$ns" "$DDTK_RAWSEND" --recv --dev "$peer" --seconds 14 --payload-tag "$tag" "$@" \
      > "$TEST_TMP/recv-peer-$tag" 2>&1 &
  else
    in_vm "$where" "rm -f /root/recv-$tag; (ddtk-rawsend --recv --dev eth0 --seconds 14 --payload-tag $tag $* \
      > /root/recv-$tag 2>&1 &)" >/dev/null
  fi
}
recv_count() {
  local where=$1 tag=$2 out
  # Called in $(...): a subshell cannot wait for the receivers, so look for their last line.
  for _ in $(seq 80); do
    if [ "$where" = peer ]; then out=$(cat "$TEST_TMP/recv-peer-$tag")
    else out=$(in_vm "$where" "cat /root/recv-$tag"); fi
    grep -q received <<<"$out" && break
    sleep 0.5
  done
  grep -q received <<<"$out" || echo "receiver $where/$tag: $out" >&2
  grep -o 'received [0-9]*' <<<"$out" | cut -d' ' -f2
}

# Forged source MAC (b's), broadcast: neither the peer nor b may see one. The same frames with a's
# own MAC are the control: both see them, so the counting itself works.
spoofed_before=$(counter a tx_spoofed)
recv_start b spoof --promisc; recv_start b honest
recv_start peer spoof; recv_start peer honest
sleep 2
in_vm a "ddtk-rawsend --dev eth0 --src $mac_b --dst ff:ff:ff:ff:ff:ff --count 50 --payload-tag spoof" >/dev/null
in_vm a "ddtk-rawsend --dev eth0 --src self --dst ff:ff:ff:ff:ff:ff --count 50 --payload-tag honest" >/dev/null
expect_eq "honest broadcasts at the peer" "$(recv_count peer honest)" 50
expect_eq "forged frames at the peer" "$(recv_count peer spoof)" 0
expect_eq "honest broadcasts at b" "$(recv_count b honest)" 50
expect_eq "forged frames at b (promiscuous)" "$(recv_count b spoof)" 0
spoofed_after=$(counter a tx_spoofed)
[ $((spoofed_after - spoofed_before)) -ge 50 ] || fail "a's spoof counter rose by $((spoofed_after - spoofed_before)), want >= 50"
pass "a's spoof counter rose by $((spoofed_after - spoofed_before))"
expect_match "ddtk-net logged the forgery" "$(cat "$TEST_TMP/ddtk-net.log")" "forged source MAC or ARP sender \($mac_b\)"

# A client in promiscuous mode sees no unicast of the other client: a sends to the peer and to an
# unknown MAC, the peer sends to a; b, promiscuous, must see none of it while a and the peer do.
in_vm b "ip link set eth0 promisc on" >/dev/null
recv_start b uni-a --promisc; recv_start b uni-peer --promisc; recv_start a uni-peer
recv_start peer uni-a
sleep 2
in_vm a "ddtk-rawsend --dev eth0 --src self --dst $mac_peer --count 40 --payload-tag uni-a" >/dev/null
in_vm a "ddtk-rawsend --dev eth0 --src self --dst 02:66:66:66:66:66 --count 10 --payload-tag uni-a" >/dev/null
ip netns exec "$ns" "$DDTK_RAWSEND" --dev "$peer" --src self --dst "$mac_a" --count 40 --payload-tag uni-peer >/dev/null
expect_eq "a's unicast at the peer (40 to it, 10 to an unknown MAC)" "$(recv_count peer uni-a)" 50
expect_eq "the peer's unicast at a" "$(recv_count a uni-peer)" 40
expect_eq "a's unicast at promiscuous b" "$(recv_count b uni-a)" 0
expect_eq "the peer's unicast to a at promiscuous b" "$(recv_count b uni-peer)" 0

# The back-end is still the same process, and both clients still talk.
kill -0 "$net_pid" || fail "ddtk-net died"
in_vm b "ping -c 2 -W 5 $ip_a" >/dev/null
pass "b pings a at the end"
echo "counters: $(socat -u "UNIX-CONNECT:$stats" - | tr -d '\n')"
