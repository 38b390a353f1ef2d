#!/usr/bin/env bash
# ddtk-blk in host mode under a real client VM (<disk type='vhostuser'>): fio writes and verifies,
# ext4 survives a remount, the volume's neighbours in the backing file stay untouched, and a
# `kill -9` of the back-end in the middle of a fio write job loses nothing: QEMU reconnects, the
# new back-end re-submits what was in flight, fio verifies clean, the guest logs no I/O error.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
: "${DDTK_BLK:?DDTK_BLK must name the ddtk-blk binary}"

# QEMU runs as libvirt-qemu: it must reach the socket (group kvm, mode 0660) through this folder.
chmod 0711 "$TEST_TMP"
backing="$TEST_TMP/backing.img"
sock="$TEST_TMP/blk.sock"
mib=1048576
# The volume is [64 MiB, 64+192 MiB) of a 320 MiB file; the rest holds a known pattern.
truncate -s $((320 * mib)) "$backing"
{ yes ddtk-guard || true; } | head -c $((64 * mib)) | dd of="$backing" conv=notrunc status=none
{ yes ddtk-guard || true; } | head -c $((64 * mib)) | dd of="$backing" bs=$mib seek=256 conv=notrunc status=none
guard_sum() { { head -c $((64 * mib)) "$backing"; tail -c $((64 * mib)) "$backing"; } | sha256sum | cut -d' ' -f1; }
guard_before=$(guard_sum)

blk_pid=
# start_blk [VAR=VALUE...]: (re)starts the back-end, with extra environment.
start_blk() {
  env "$@" "$DDTK_BLK" --socket-group kvm --export "socket=$sock,file=$backing,offset=64M,size=192M,serial=ddtk-test-vol,num-queues=2" \
    2>>"$TEST_TMP/ddtk-blk.log" &
  blk_pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && [ "$(stat -c %G "$sock")" = kvm ] && return; sleep 0.1; done
  fail "ddtk-blk did not create $sock: $(cat "$TEST_TMP/ddtk-blk.log")"
}
stop_blk() {
  if [ -n "$blk_pid" ]; then kill "$blk_pid" 2>/dev/null || true; wait "$blk_pid" 2>/dev/null || true; fi
  blk_pid=
}
test_extra_cleanup() {
  stop_blk || true
  if [ -f "$TEST_TMP/ddtk-blk.log" ]; then echo "--- ddtk-blk log"; cat "$TEST_TMP/ddtk-blk.log"; fi
}

start_blk
write_config "clients = a"
cat >> "$DDTK_CONFIG" <<CONF
[client.a]
vhost-user-blk = $sock
vhost-user-blk-queues = 2
vcpus = 2
CONF
"$DDTK" start a
dom="ddtk-$INSTANCE-a"
expect_match "domain XML" "$(virsh -q dumpxml "$dom" | tr -d '\n ')" "<disktype='vhostuser'device='disk'"

expect_eq "disk size (sectors)" "$(in_vm a 'cat /sys/block/vda/size')" $((192 * 2048))
expect_eq "queues" "$(in_vm a 'ls /sys/block/vda/mq | wc -l')" 2
expect_eq "serial" "$(in_vm a 'cat /sys/block/vda/serial')" ddtk-test-vol
expect_match "discard" "$(in_vm a 'cat /sys/block/vda/queue/discard_max_bytes')" '^[1-9]'

fio_common="--filename=/dev/vda --ioengine=libaio --direct=1 --verify=crc32c --output-format=terse --terse-version=3"
in_vm a "fio --name=randverify $fio_common --rw=randwrite --bs=4k --iodepth=16 --size=32M --offset=0" >/dev/null
pass "fio 4k random write + crc32c verify"
in_vm a "fio --name=seqverify $fio_common --rw=write --bs=128k --iodepth=4 --size=64M --offset=64M" >/dev/null
pass "fio 128k sequential write + crc32c verify"
# A request past the end of the volume gets an error, not the neighbour's bytes.
set +e
out=$("$DDTK" exec a -- 'dd if=/dev/vda of=/dev/null bs=512 skip=393216 count=1 2>&1')
set -e
expect_match "read past the end" "$out" "0\+0 records in"
expect_eq "guard regions after fio" "$(guard_sum)" "$guard_before"

in_vm a 'mkfs.ext4 -q -F /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt &&
  for i in 1 2 3 4 5 6 7 8; do head -c 3000000 /dev/urandom > /mnt/f$i; done &&
  sha256sum /mnt/f* > /root/sums && umount /mnt && echo 3 > /proc/sys/vm/drop_caches' >/dev/null
in_vm a 'mount /dev/vda /mnt && sha256sum -c /root/sums >/dev/null && umount /mnt && e2fsck -fn /dev/vda' >/dev/null
pass "ext4: files written, remounted, checksums match, fsck clean"
# fstrim: the guest's discards punch holes in the backing file, inside the volume only.
blocks_before=$(stat -c %b "$backing")
in_vm a 'mount /dev/vda /mnt && rm /mnt/f* && sync && fstrim /mnt && umount /mnt' >/dev/null
blocks_after=$(stat -c %b "$backing")
[ "$blocks_after" -lt "$blocks_before" ] || fail "fstrim freed nothing in the backing file ($blocks_before -> $blocks_after blocks)"
pass "fstrim freed $(( (blocks_before - blocks_after) / 2048 )) MiB of the backing file"
expect_eq "guard regions after fstrim" "$(guard_sum)" "$guard_before"

# kill -9 in the middle of a write job. The job writes and verifies 96 MiB at 4k QD8; the
# back-end dies a few seconds in and comes back a second later. So that requests are certainly in
# flight at the kill, the back-end that gets killed holds each request 20 ms after its I/O
# (fault injection); it replaces the first one with a plain restart, which QEMU also rides out.
stop_blk
start_blk DDTK_BLK_FAULT_DELAY_MS=20
# Until QEMU has reconnected (within a second), requests would wait in the guest, not in ddtk-blk.
for _ in $(seq 100); do
  [ "$(grep -c 'front-end connected' "$TEST_TMP/ddtk-blk.log")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c 'front-end connected' "$TEST_TMP/ddtk-blk.log")" -ge 2 ] || fail "QEMU did not reconnect to the new ddtk-blk"
in_vm a "dmesg -c >/dev/null; (fio --name=crash $fio_common --rw=randwrite --bs=4k --iodepth=8 --size=96M --offset=0 \
  > /root/fio.out 2>&1; echo \$? > /root/fio.rc) >/dev/null 2>&1 &" >/dev/null
# Kill only once the guest has writes in flight (fio under TCG takes a while to start).
for _ in $(seq 120); do
  inflight=$("$DDTK" exec a -- 'cat /sys/block/vda/inflight' | awk '{print $2}' || true)
  [ "${inflight:-0}" -gt 0 ] && break
  sleep 0.5
done
[ "${inflight:-0}" -gt 0 ] || fail "the fio job never had writes in flight"
in_vm a 'test ! -f /root/fio.rc' || fail "the fio job ended before the back-end was killed"
kill -9 "$blk_pid"
wait "$blk_pid" 2>/dev/null || true
blk_pid=
pass "ddtk-blk killed with SIGKILL in the middle of the job"
sleep 1
start_blk
pass "ddtk-blk started again"
for _ in $(seq 300); do "$DDTK" exec a -- 'test -f /root/fio.rc' && break; sleep 2; done
expect_eq "fio exit status after the restart" "$(in_vm a 'cat /root/fio.rc')" 0
expect_match "fio error field (verify included)" "$(in_vm a 'cut -d";" -f5 /root/fio.out')" '^0$'
dmesg_out=$(in_vm a 'dmesg')
if grep -Eiq 'I/O error|blk_update_request|Buffer I/O' <<<"$dmesg_out"; then
  fail "guest kernel logged I/O errors: $(grep -Ei 'I/O error|blk_update_request|Buffer I/O' <<<"$dmesg_out" | head -5)"
fi
pass "no I/O error in the guest's kernel log"
expect_match "requests re-submitted after the kill" "$(cat "$TEST_TMP/ddtk-blk.log")" "re-submitting [1-9][0-9]* requests"
expect_eq "front-end connections over the three back-end runs" "$(grep -c 'front-end connected' "$TEST_TMP/ddtk-blk.log")" 3
expect_eq "guard regions at the end" "$(guard_sum)" "$guard_before"
