#!/usr/bin/env bash
# A guest that cannot boot gives a clear failure with its console log, not a hang: a kernel panic
# (no init) is seen as soon as the domain stops, a guest whose agent never answers when the boot
# timeout runs out. Either way the domain is gone afterwards. The panic's boot timeout is long (a
# TCG boot to the panic on a loaded machine may take a while): the reason named proves the stop
# was seen, not the timeout; the silent guest's is short.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
DDTK_TEST_BOOT_TIMEOUT=120 write_config "clients = a"
cat >> "$DDTK_CONFIG" <<CONF
[driver-domain]
cmdline-append = rdinit=/no/such/init
[client.a]
cmdline-append = rdinit=/bin/sh
CONF

set +e
start=$(date +%s)
out=$(timeout 300 "$DDTK" start dd 2>&1)
rc=$?
took=$(( $(date +%s) - start ))
set -e
echo "$out" | tail -n 8
expect_eq "panic: start status" "$rc" 1
expect_match "panic: reason" "$out" "dd \(domain ddtk-$INSTANCE-dd\) stopped while booting"
expect_match "panic: console log shown" "$out" "Kernel panic"
[ "$took" -lt 120 ] || fail "a panicking guest took ${took} s to report (the boot timeout is 120 s)"
pass "panic reported after ${took} s, before the boot timeout"
expect_eq "panic: dd state" "$("$DDTK" status | awk '$1 == "dd" { print $4, $5 }')" "not running"

sed -i 's/^boot-timeout = .*/boot-timeout = 20/' "$DDTK_CONFIG"
grep -q '^boot-timeout = 20$' "$DDTK_CONFIG" || fail "could not shorten the boot timeout in $DDTK_CONFIG"
set +e
out=$(timeout 300 "$DDTK" start a 2>&1)
rc=$?
set -e
echo "$out" | tail -n 4
expect_eq "silent guest: start status" "$rc" 1
expect_match "silent guest: reason" "$out" "did not answer within 20 s"
expect_match "silent guest: console log" "$out" "last lines of its console log"
expect_eq "silent guest: state" "$("$DDTK" status | awk '$1 == "a" { print $4, $5 }')" "not running"
