#!/usr/bin/env bash
# Every domain XML ddtk generates passes libvirt's schema (virt-xml-validate): the DD with emulated
# devices and with passed-through ones, under KVM and TCG, and the clients. Starts no VM.
set -euo pipefail
: "${DDTK:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/emulated.conf" <<CONF
[ddtk]
instance = xmlcheck
accel = tcg
clients = a b
[driver-domain]
watchdog-action = none
CONF
cat > "$tmp/passthrough.conf" <<CONF
[ddtk]
instance = xmlcheck-hw
accel = tcg
emulator = /usr/bin/qemu-system-x86_64
clients = web
[driver-domain]
nic = pci:0000:03:00.0
disk = pci:0000:00:1f.2
watchdog-action = reset
[client.web]
memory = 1G
vcpus = 2
vhost-user-blk = /run/ddtk/web-blk.sock
vhost-user-blk-queues = 2
vhost-user-net = /run/ddtk/web-net.sock
vhost-user-net-queues = 2
mac = 02:00:00:00:00:0b
CONF

n=0
for conf in "$tmp"/*.conf; do
  for vm in dd $(sed -n 's/^clients = //p' "$conf"); do
    "$DDTK" -c "$conf" xml "$vm" > "$tmp/$vm.xml"
    if ! out=$(virt-xml-validate "$tmp/$vm.xml" domain 2>&1); then
      echo "FAIL: $(basename "$conf") $vm: $out"; cat "$tmp/$vm.xml"; exit 1
    fi
    echo "ok: $(basename "$conf") $vm validates"
    n=$((n + 1))
  done
done
# The XML really carries what the configuration asked for (a check that could fail).
# (grep reads variables, not pipes: grep -q would quit early, and ddtk's SIGPIPE fail the pipeline)
dd_xml=$("$DDTK" -c "$tmp/passthrough.conf" xml dd)
grep -q "<address domain=\"0x0000\" bus=\"0x03\" slot=\"0x00\" function=\"0x0\"/>" <<<"$dd_xml" ||
  { echo "FAIL: passthrough NIC address missing"; exit 1; }
web_xml=$("$DDTK" -c "$tmp/passthrough.conf" xml web)
grep -q "<source type=\"unix\" path=\"/run/ddtk/web-blk.sock\">" <<<"$web_xml" ||
  { echo "FAIL: the client's vhost-user disk is missing"; exit 1; }
grep -q "<source type=\"unix\" path=\"/run/ddtk/web-net.sock\" mode=\"client\">" <<<"$web_xml" &&
  grep -q "<mac address=\"02:00:00:00:00:0b\"/>" <<<"$web_xml" ||
  { echo "FAIL: the client's vhost-user NIC is missing"; exit 1; }
# Under TCG a client with a vhost-user NIC boots with pci=nomsi (QEMU 7.2, see host/vm/vmm.c).
grep -q "pci=nomsi" <<<"$web_xml" || { echo "FAIL: TCG client with a vhost-user NIC lacks pci=nomsi"; exit 1; }
# A KVM domain where /dev/kvm is usable; elsewhere `accel = kvm` must be refused with a clear error.
sed -i 's/^accel = tcg/accel = kvm/' "$tmp/emulated.conf"
if out=$("$DDTK" -c "$tmp/emulated.conf" xml dd 2>&1); then
  printf '%s\n' "$out" > "$tmp/kvm.xml"
  virt-xml-validate "$tmp/kvm.xml" domain >/dev/null && grep -q "type=\"kvm\"" "$tmp/kvm.xml" ||
    { echo "FAIL: kvm domain XML"; exit 1; }
  echo "ok: kvm dd validates"
else
  grep -q "/dev/kvm is not usable" <<<"$out" || { echo "FAIL: unclear error: $out"; exit 1; }
  echo "ok: accel=kvm refused without /dev/kvm: $out"
fi
echo "$n domain XMLs validated"
