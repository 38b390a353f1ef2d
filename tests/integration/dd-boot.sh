#!/usr/bin/env bash
# The driver domain boots and its unmodified Linux drivers own its devices: eth0 by e1000, sda by
# ahci, /dev/watchdog by i6300esb, pvpanic; the vIOMMU and VFIO are ready, the control port exists.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
write_config "clients ="

"$DDTK" start dd
expect_eq "dd state" "$("$DDTK" status | awk '$1 == "dd" { print $4 }')" running

expect_eq "eth0 driver" "$(in_vm dd 'basename $(readlink /sys/class/net/eth0/device/driver)')" e1000
expect_eq "eth0 operstate" "$(in_vm dd 'cat /sys/class/net/eth0/operstate')" up
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
