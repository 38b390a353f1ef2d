#!/usr/bin/env bash
# The driver domain boots and its unmodified Linux drivers own its devices: eth0 by e1000, sda by
# ahci, /dev/watchdog by i6300esb, pvpanic; the vIOMMU and VFIO are ready, the control port exists.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
write_config "clients ="

"$DDTK" start dd
expect_eq "dd state" "$("$DDTK" status | awk '$1 == "dd" { print $4 }')" running

expect_eq "eth0 driver" "$(in_vm dd 'basename $(readlink /sys/class/net/eth0/device/driver)')" e1000
# The e1000 carrier comes a moment after init sets the link up.
expect_eq "eth0 operstate" "$(in_vm dd 'for i in $(seq 50); do [ "$(cat /sys/class/net/eth0/operstate)" = up ] && break; sleep 0.1; done; cat /sys/class/net/eth0/operstate')" up
expect_match "sda controller" "$(in_vm dd 'readlink -f /sys/block/sda')" "/ata[0-9]+/"
expect_eq "sda's PCI driver" \
  "$(in_vm dd 'd=$(readlink -f /sys/block/sda); while [ ! -e $d/driver ] || [ $(basename $(readlink $d/driver)) = sd ]; do d=${d%/*}; done; basename $(readlink $d/driver)')" ahci
expect_eq "sda size (sectors of 512 B, 1 GiB)" "$(in_vm dd 'cat /sys/block/sda/size')" 2097152
expect_eq "watchdog" "$(in_vm dd 'cat /sys/class/watchdog/watchdog0/identity')" "i6300ESB timer"
in_vm dd 'test -c /dev/watchdog' >/dev/null && pass "/dev/watchdog is a character device"
expect_match "pvpanic" "$(in_vm dd 'ls /sys/bus/platform/drivers/pvpanic-mmio/')" "QEMU0001"
expect_match "vfio" "$(in_vm dd 'ls /dev/vfio; cat /proc/modules | cut -d" " -f1')" "vfio_pci"
expect_match "iommu groups" "$(in_vm dd 'ls /sys/kernel/iommu_groups | wc -l')" "^[1-9][0-9]*$"
expect_match "virtio-serial ports" "$(in_vm dd 'cat /sys/class/virtio-ports/*/name')" "org.ddtk.control.0"
# ddtk-agent runs, has armed the watchdog, and waits for the bridge without spinning (a port
# without a host reports POLLIN|POLLHUP; an agent that only reads would use all the CPU).
expect_match "ddtk-agent" "$(in_vm dd 'pidof ddtk-agent')" "^[0-9]+$"
expect_match "back-ends in the image" "$(in_vm dd 'ls /usr/bin/ddtk-blk /usr/bin/ddtk-net')" "ddtk-net"
expect_match "watchdog armed" "$(in_vm dd 'cat /sys/class/watchdog/watchdog0/state')" "active"
expect_eq "watchdog timeout" "$(in_vm dd 'cat /sys/class/watchdog/watchdog0/timeout')" 10
in_vm dd 'test -d /run/ddtk/ivshmem' >/dev/null && pass "/run/ddtk/ivshmem exists"
agent_cpu=$(in_vm dd 'p=$(pidof ddtk-agent); t0=$(awk "{print \$14 + \$15}" /proc/$p/stat); sleep 3; echo $(( $(awk "{print \$14 + \$15}" /proc/$p/stat) - t0 ))')
[ "$agent_cpu" -lt 100 ] && pass "ddtk-agent idle without a bridge ($agent_cpu ticks in 3 s)" ||
  fail "ddtk-agent busy without a bridge: $agent_cpu ticks of CPU in 3 s"

# `up` on a running instance fails and leaves the running VM alone.
set +e
out=$("$DDTK" up 2>&1)
rc=$?
set -e
expect_eq "up while running: status" "$rc" 1
expect_match "up while running: message" "$out" "already runs"
expect_eq "dd still runs" "$("$DDTK" status | awk '$1 == "dd" { print $4 }')" running

"$DDTK" stop dd
expect_eq "dd state after stop" "$("$DDTK" status | awk '$1 == "dd" { print $4, $5 }')" "not running"
