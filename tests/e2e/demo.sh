#!/usr/bin/env bash
# The README's main job, end to end on the default topology (the driver domain and two clients):
# runs scripts/demo on the existing build and checks what it reports: each VM's devices, the
# clients' disks and NICs served from inside the driver domain, networking through its e1000, a hung
# disk back-end in the DD, the watchdog, the DD's restart, and no I/O lost; then that the instance is
# gone (domains, bridge, state folder, network).
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
write_config

out=$("$DDTK_SOURCE_ROOT/scripts/demo" --no-build --instance "$INSTANCE" \
      --builddir "$DDTK_BUILD_ROOT" 2>&1) || { echo "$out"; fail "scripts/demo failed"; }
echo "$out"
expect_match "all three up" "$out" "b is up"
expect_match "dd NIC" "$out" "NIC: +eth0, driver e1000"
expect_match "dd disk" "$out" "disk: +sda, 1024 MiB, controller driver ahci"
expect_match "dd watchdog" "$out" "watchdog: +i6300ESB timer"
expect_match "client a" "$out" "hostname a,"
expect_match "client b" "$out" "hostname b,"
expect_match "dd ivshmem" "$out" "ivshmem: +0=0000:[0-9a-f:.]+ 1=0000:[0-9a-f:.]+ 2="
expect_match "dd back-ends" "$out" "back-ends: ddtk-blk \\(pid [0-9]+\\) ddtk-net \\(pid [0-9]+\\)"
expect_match "client a disk" "$out" "disk: +vda, 384 MiB \\(vhost-user-blk: ddtk-blk in the DD"
expect_match "client a NIC" "$out" "NIC: +eth0, MAC 02:[0-9a-f:]+, driver virtio_net \\(vhost-user-net: ddtk-net in the DD\\)"
expect_match "a pings the peer" "$out" "client a -> peer \\(10.77.0.1\\): 3/3 replies"
expect_match "b pings the peer" "$out" "client b -> peer \\(10.77.0.1\\): 3/3 replies"
expect_match "a pings b" "$out" "client a -> client b \\(10.77.0.12\\): 3/3 replies"
expect_match "iperf3" "$out" "iperf3 client a -> peer: [0-9.]+ Mbit/s"
expect_match "spoofing stopped" "$out" "ddtk-net dropped 20 as spoofed"
expect_match "hang" "$out" "ddtk-blk in the DD stopped \\(SIGSTOP\\) while both clients write"
expect_match "watchdog" "$out" "watchdog fired after [0-9]+ s: ddtkd restarts the driver domain"
expect_match "ddtkd restarted it" "$out" "ddtkd restarted the driver domain \\(restart 1, reason: its watchdog fired \\(action none\\)\\); it is running"
expect_match "served again" "$out" "the new DD serves every client device again"
expect_match "client a lost nothing" "$out" "client a: 24 MiB written and read back \\(crc32c\\): verified, nothing lost"
expect_match "client b lost nothing" "$out" "client b: 24 MiB written and read back \\(crc32c\\): verified, nothing lost"
expect_match "taken down" "$out" "Taking the topology down"
for vm in dd a b; do
  virsh -q domstate "ddtk-$INSTANCE-$vm" >/dev/null 2>&1 && fail "domain ddtk-$INSTANCE-$vm still exists"
done
[ ! -e "/var/lib/ddtk/$INSTANCE" ] || fail "/var/lib/ddtk/$INSTANCE still exists"
pgrep -f "ddtk-bridge .*-i $INSTANCE" >/dev/null && fail "the demo's ddtk-bridge still runs"
pgrep -f "ddtkd .*-i $INSTANCE" >/dev/null && fail "the demo's ddtkd still runs"
ip netns list | grep -qw "ddtk-$INSTANCE" && fail "the demo's network namespace ddtk-$INSTANCE is left behind"
. "$DDTK_SOURCE_ROOT/scripts/lib/peer-net.sh"
peer_net_names "$INSTANCE"
for link in "$PEER_UPLINK" "$PEER_TAP"; do
  ip link show dev "$link" >/dev/null 2>&1 && fail "the demo's link $link is left behind"
done
pass "no domain and no state left"
