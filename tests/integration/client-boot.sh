#!/usr/bin/env bash
# A client boots (shared memfd RAM, ready for vhost-user) and runs commands through the harness:
# output streams, exit status, stderr, timeouts, background processes; its tools are present.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
write_config "clients = a"

"$DDTK" start a
dom="ddtk-$INSTANCE-a"
expect_match "memory backing" "$(virsh -q dumpxml "$dom" | tr -d '\n ')" "<memoryBacking><sourcetype='memfd'/><accessmode='shared'/>"

expect_eq "hostname" "$(in_vm a hostname)" a
set +e
out=$("$DDTK" exec a -- 'echo to-stdout; echo to-stderr >&2; exit 7' 2>"$TEST_TMP/err")
rc=$?
set -e
expect_eq "exit status" "$rc" 7
expect_eq "stdout" "$out" to-stdout
expect_eq "stderr" "$(cat "$TEST_TMP/err")" to-stderr

# Large output arrives whole (many frames).
expect_eq "1 MiB of output" "$("$DDTK" exec a -- 'head -c 1048576 /dev/zero | tr "\0" x' | wc -c)" 1048576

set +e
start=$(date +%s)
"$DDTK" exec -t 2 a -- 'sleep 600' 2>"$TEST_TMP/err"
rc=$?
took=$(( $(date +%s) - start ))
set -e
expect_eq "timeout status" "$rc" 124
[ "$took" -lt 60 ] || fail "a 2 s timeout took ${took} s"
expect_match "timeout message" "$(cat "$TEST_TMP/err")" "killed after its timeout"
set +e
"$DDTK" exec a -- 'kill -TERM $$'
rc=$?
set -e
expect_eq "signal status" "$rc" 143
# The agent is free again after a timeout, and a background process does not hold the reply.
expect_eq "background job" "$(in_vm a 'sleep 300 & echo started')" started
expect_match "fio" "$(in_vm a 'fio --version')" "^fio-"
expect_match "iperf3" "$(in_vm a 'iperf3 --version')" "^iperf 3"
expect_match "mkfs.ext4" "$(in_vm a 'mkfs.ext4 -V 2>&1')" "mke2fs"
expect_match "virtio modules" "$(in_vm a 'cut -d" " -f1 /proc/modules')" "virtio_blk"

set +e
out=$("$DDTK" exec nosuchvm -- true 2>&1)
rc=$?
set -e
expect_eq "unknown VM status" "$rc" 125
expect_match "unknown VM message" "$out" "no VM named 'nosuchvm'"
set +e
out=$("$DDTK" start a 2>&1)
rc=$?
set -e
expect_eq "second start status" "$rc" 1
expect_match "second start message" "$out" "already runs"
