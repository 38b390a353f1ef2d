#!/usr/bin/env bash
# The README's main job, end to end on the default topology (the driver domain and two clients):
# runs scripts/demo on the existing build and checks what it reports each VM sees; then checks the
# instance is gone (domains and state folder).
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
expect_match "client tools" "$out" "fio-3"
expect_match "taken down" "$out" "Taking the topology down"
for vm in dd a b; do
  virsh -q domstate "ddtk-$INSTANCE-$vm" >/dev/null 2>&1 && fail "domain ddtk-$INSTANCE-$vm still exists"
done
[ ! -e "/var/lib/ddtk/$INSTANCE" ] || fail "/var/lib/ddtk/$INSTANCE still exists"
pass "no domain and no state left"
