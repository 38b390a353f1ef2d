#!/usr/bin/env bash
# The driver domain serving two clients, and what may happen to it: both clients write and verify
# their volumes (fio crc32c) and reach a peer host through the DD's e1000; a client cannot reach past
# its volume; the DD is destroyed (virsh destroy) in the middle of both clients' write jobs and
# ddtkd, the supervisor, starts it again; ddtk-blk inside the DD is killed with SIGKILL in the
# middle of them; a process that sends garbage on a client's socket loses that client its
# connection, nobody else anything; a client's QEMU is replaced (its devices unplugged and plugged
# anew in the running DD); a front-end writing hostile descriptors through the DD gets its device
# given up. Through all of it the clients' fio jobs finish with no verify error and no I/O error in
# their kernels, and every client boot plugs each device once. Client a has two NUMA nodes: its
# memory is two files, so each of its devices is two ivshmem devices in the DD.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
. "$DDTK_SOURCE_ROOT/scripts/lib/peer-net.sh"
peer_net_names "$INSTANCE"
# The VMs first: the DD's QEMU holds the tap, which cannot go before it.
test_extra_cleanup() { "$DDTK" down --purge >/dev/null 2>&1 || true; peer_net_down; }

write_config "clients = a b"
cat >> "$DDTK_CONFIG" <<CONF
[driver-domain]
nic-tap = $PEER_TAP
disk-size = 512M
[client.a]
volume = 128M
dd-nic = yes
vcpus = 2
numa-nodes = 2
[client.b]
volume = 128M
dd-nic = yes
CONF
peer_net_dd_up
"$DDTK" up
# bridge_json: the bridge's status document on one line (a few tries: a bridge busy with a DD boot
# may miss ddtk's 2 s status timeout, and ddtk then prints an error line instead).
bridge_json() {
  local j= _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    j=$("$DDTK" status | awk '/^ddtk-bridge status:/ { on = 1; next } /^supervisor / { on = 0 } on' | tr -d ' \n' || true)
    case $j in '{'*'}') break ;; esac
    sleep 0.5
  done
  echo "$j"
}
# bridge_field KEY: the values of KEY in it, one a line (empty when there is none).
bridge_field() { grep -o "\"$1\":[0-9a-z]*" <<<"$(bridge_json)" | cut -d: -f2 || true; }
dd_domain="ddtk-$INSTANCE-dd"

wait_served() { # BOOTS_AT_LEAST
  for _ in $(seq 240); do
    st=$(bridge_json)
    boots=$(grep -o '"boots_seen":[0-9]*' <<<"$st" | cut -d: -f2 || true)
    if [ "${boots:-0}" -ge "$1" ] && [ "$(grep -o '"served":true' <<<"$st" | wc -l)" -eq 4 ]; then return; fi
    sleep 0.5
  done
  fail "the DD does not serve every device again: $(bridge_json)"
}

# The clients are up when their agents answer; their devices reach the DD a few seconds later.
wait_served 1
pass "the DD serves all four devices"
# Every client boot restarts its disk's rings (SeaBIOS, then Linux): that restarts the DD's session,
# never its device (an unplug per boot is what QEMU 7.2's ivshmem did not survive under TCG).
expect_eq "each device plugged once" "$(bridge_field plugs | tr '\n' ' ')" "1 1 1 1 "
# a has two NUMA nodes, so its memory is two files: its devices have one more device each in the DD.
expect_eq "memory files per device" "$(bridge_field memory_files | tr '\n' ' ')" "2 2 1 1 "
expect_eq "a's disk (sectors)" "$(in_vm a 'cat /sys/block/vda/size')" $((128 * 2048))
in_vm a 'ip link set eth0 up && ip addr add 10.77.0.11/24 dev eth0' >/dev/null
in_vm b 'ip link set eth0 up && ip addr add 10.77.0.12/24 dev eth0' >/dev/null
expect_match "a pings the peer through the DD" "$(in_vm a "ping -c 3 -W 5 $PEER_IP")" "3 packets received"
expect_match "a pings b" "$(in_vm a 'ping -c 3 -W 5 10.77.0.12')" "3 packets received"
# TCP both ways through the DD: a to the peer host, a to b (ddtk-net switches it inside the DD).
ip netns exec "$PEER_NS" timeout 30 iperf3 -s -1 -B "$PEER_IP" >/dev/null 2>&1 &
iperf_pid=$!
in_vm b '(timeout 30 iperf3 -s -1 -B 10.77.0.12 >/dev/null 2>&1 &)' >/dev/null
listen_wait_ns "$PEER_NS"
listen_wait_vm b
expect_match "iperf3 a -> peer through the DD" "$(in_vm a "iperf3 -c $PEER_IP -t 2 -f m 2>&1 | grep receiver")" "Mbits/sec"
expect_match "iperf3 a -> b through the DD" "$(in_vm a 'iperf3 -c 10.77.0.12 -t 2 -f m 2>&1 | grep receiver')" "Mbits/sec"
wait "$iperf_pid" 2>/dev/null || true

# Isolation: a's last sector and b's first are neighbours on the DD's disk.
in_vm a 'printf "ddtk-a-was-here" | dd of=/dev/vda bs=512 seek=262143 conv=sync,notrunc oflag=direct 2>/dev/null' >/dev/null
expect_eq "b's first sector is not a's" "$(in_vm b 'dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | grep -c ddtk-a-was-here || true')" 0
set +e
out=$("$DDTK" exec a -- 'dd if=/dev/vda of=/dev/null bs=512 skip=262144 count=1 iflag=direct 2>&1')
set -e
expect_match "a reads past its end: nothing" "$out" "0\+0 records in"

fio_start() { # CLIENT SIZE
  in_vm "$1" "rm -f /root/fio.rc; dmesg -c >/dev/null; (fio --name=dd --filename=/dev/vda --ioengine=libaio --direct=1 \
    --rw=randwrite --bs=4k --iodepth=8 --size=$2 --verify=crc32c --output-format=terse --terse-version=3 \
    > /root/fio.out 2>&1; echo \$? > /root/fio.rc) >/dev/null 2>&1 &" >/dev/null
}
wait_writes_in_flight() {
  for _ in $(seq 120); do
    busy=0
    for c in a b; do
      w=$("$DDTK" exec "$c" -- 'cat /sys/block/vda/inflight' | awk '{print $2}' || true)
      [ "${w:-0}" -gt 0 ] && busy=$((busy + 1))
    done
    [ $busy -eq 2 ] && return
    sleep 0.5
  done
  fail "the fio jobs never had writes in flight"
}
fio_check() { # WHAT
  for _ in $(seq 300); do
    n=0
    for c in a b; do "$DDTK" exec "$c" -- 'test -f /root/fio.rc' && n=$((n + 1)); done
    [ $n -eq 2 ] && break
    sleep 2
  done
  for c in a b; do
    expect_eq "$1: $c's fio exit status" "$(in_vm "$c" 'cat /root/fio.rc')" 0
    expect_match "$1: $c's fio error field (verify included)" "$(in_vm "$c" 'cut -d";" -f5 /root/fio.out')" '^0$'
    if in_vm "$c" 'dmesg' | grep -Eiq 'I/O error|blk_update_request|Buffer I/O'; then
      fail "$1: $c's kernel logged I/O errors"
    fi
    pass "$1: no I/O error in $c's kernel log"
  done
}
# 1. virsh destroy in the middle of both write jobs: ddtkd starts a new DD.
for c in a b; do fio_start "$c" 32M; done
wait_writes_in_flight
boots=$(bridge_field boots_seen)
virsh -q destroy "$dd_domain" >/dev/null
pass "DD destroyed while both clients write"
wait_served $((boots + 1))
pass "the new DD serves every device"
sup=$("$DDTK" status | sed -n '/^ddtkd status:/,$p' | tr -d ' \n')
expect_match "ddtkd restarted it" "$sup" '"state":"running","restarts":1,'
expect_match "ddtkd's reason" "$sup" '"last_reason":"itwasdestroyed\(notbyddtkstop\)"'
fio_check "DD destroyed"
expect_match "a reaches the peer again" "$(in_vm a "ping -c 3 -W 5 $PEER_IP")" "3 packets received"

# 2. kill -9 of ddtk-blk inside the DD in the middle of both write jobs.
for c in a b; do fio_start "$c" 32M; done
wait_writes_in_flight
in_vm dd 'kill -9 $(pidof ddtk-blk)' >/dev/null
pass "ddtk-blk killed with SIGKILL inside the DD while both clients write"
fio_check "ddtk-blk killed"
expect_match "the agent restarted ddtk-blk" "$(in_vm dd 'pidof ddtk-blk')" '^[0-9]+$'

# 3. A peer sending garbage on a's socket: it replaces a's connection and is dropped; b goes on.
bridge_dir=/var/lib/ddtk/$INSTANCE/bridge
fio_start b 16M
head -c 4096 /dev/urandom | socat -u - "UNIX-CONNECT:$bridge_dir/a-blk.sock" || true
sleep 1
expect_match "the bridge still runs" "$("$DDTK" status)" "ddtk-bridge +running \\(pid"
for _ in $(seq 150); do "$DDTK" exec b -- 'test -f /root/fio.rc' && break; sleep 2; done
expect_eq "b's fio after a's garbage" "$(in_vm b 'cat /root/fio.rc')" 0
expect_match "b's fio error field" "$(in_vm b 'cut -d";" -f5 /root/fio.out')" '^0$'

# 4. a's QEMU replaced (destroyed, started again: new memory, so its devices are unplugged and
# plugged anew) while b writes: the DD's QEMU lives on (no new DD boot), b's fio is clean, a's
# disk works again.
boots=$(bridge_field boots_seen)
plugs_sum() { bridge_field plugs | awk '{ s += $1 } END { print s + 0 }'; }
plugs=$(plugs_sum)
fio_start b 16M
virsh -q destroy "ddtk-$INSTANCE-a" >/dev/null
"$DDTK" start a >/dev/null
# a's two devices plugged again, and all four served.
for _ in $(seq 240); do
  [ "$(plugs_sum)" -ge $((plugs + 2)) ] && [ "$(bridge_field served | grep -c true)" -eq 4 ] && break
  sleep 0.5
done
[ "$(plugs_sum)" -ge $((plugs + 2)) ] || fail "a's devices were not plugged again: $(bridge_json)"
wait_served "$boots"
pass "a's new QEMU got new devices"
expect_eq "the same DD throughout (boots seen)" "$(bridge_field boots_seen)" "$boots"
for _ in $(seq 150); do "$DDTK" exec b -- 'test -f /root/fio.rc' && break; sleep 2; done
expect_eq "b's fio while a was replaced" "$(in_vm b 'cat /root/fio.rc')" 0
expect_match "b's fio error field" "$(in_vm b 'cut -d";" -f5 /root/fio.out')" '^0$'
fio_start a 8M
for _ in $(seq 150); do "$DDTK" exec a -- 'test -f /root/fio.rc' && break; sleep 2; done
expect_eq "the new a's fio" "$(in_vm a 'cat /root/fio.rc')" 0
expect_match "the new a's fio error field" "$(in_vm a 'cut -d";" -f5 /root/fio.out')" '^0$'

# 5. A guest writing hostile descriptors: a front-end of our own takes a's disk socket (a is off)
# and, once a good read has come back through the DD, misbehaves on its rings. The DD's ddtk-blk
# gives that device up (or fails the requests), nothing else: b's fio is clean, the DD lives on.
# Every connection is new memory, so each mode also unplugs and plugs a's device again.
virsh -q destroy "ddtk-$INSTANCE-a" >/dev/null
fio_start b 16M
for mode in loop out-of-range avail-overrun nested-indirect beyond-volume; do
  out=$("$VU_BLK_FRONTEND" --socket "$bridge_dir/a-blk.sock" --hostile "$mode" --warmup 120 --wait-ms 6000 \
    --connect-timeout 10) ||
    fail "hostile $mode through the DD: $out"
  pass "hostile $mode through the DD: $(sed 's/.*"outcome":"\([a-z-]*\)".*/\1/' <<<"$out")"
done
expect_eq "the same DD throughout the hostile modes (boots seen)" \
  "$(bridge_field boots_seen)" "$boots"
for _ in $(seq 150); do "$DDTK" exec b -- 'test -f /root/fio.rc' && break; sleep 2; done
expect_eq "b's fio beside the hostile front-end" "$(in_vm b 'cat /root/fio.rc')" 0
expect_match "b's fio error field" "$(in_vm b 'cut -d";" -f5 /root/fio.out')" '^0$'
# A device given up is no hung back-end: the DD stays healthy (its watchdog petted). The agent
# reports a period unhealthy when a back-end's stats come late (a busy TCG DD), so give it a few
# periods; a real hang would also have restarted the DD (boots seen, above).
for _ in $(seq 30); do grep -q '"healthy":true' <<<"$(bridge_json)" && break; sleep 0.5; done
expect_match "the DD is healthy after the hostile modes" "$(bridge_json)" '"healthy":true'
