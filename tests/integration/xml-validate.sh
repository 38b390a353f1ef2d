#!/usr/bin/env bash
# Every domain XML ddtk generates passes libvirt's schema (virt-xml-validate): the DD with emulated
# devices and with passed-through ones, with the bridge's hot-plug bus and with its ivshmem devices
# plugged, under KVM and TCG, and the clients. Starts no VM.
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
# The same on real hardware: the passed-through devices get fixed root-bus slots.
cat > "$tmp/bridge-hw.conf" <<CONF
[ddtk]
instance = xmlcheck-ddhw
accel = tcg
clients = web
[driver-domain]
nic = pci:0000:03:00.0
disk = pci:0000:00:1f.2
[client.web]
volume = 256M
dd-nic = yes
CONF
# Devices served from the driver domain through ddtk-bridge; the DD's e1000 on a tap.
cat > "$tmp/bridge.conf" <<CONF
[ddtk]
instance = xmlcheck-dd
accel = tcg
state-dir = $tmp/state
clients = a b
[driver-domain]
disk-size = 2G
nic-tap = ddtk000000d
[client.a]
volume = 1G
volume-queues = 2
dd-nic = yes
dd-nic-queues = 3
[client.b]
memory = 700
volume = 512M
volume-read-only = yes
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
# The bridge's configuration: the DD's fixed hot-plug bus, its window and the tap ...
dd_xml=$("$DDTK" -c "$tmp/bridge.conf" xml dd)
grep -q "<controller type=\"pci\" index=\"3\" model=\"pci-bridge\">" <<<"$dd_xml" &&
  grep -q "<qemu:arg value=\"pci-bridge.pref64-reserve=4294967296\"/>" <<<"$dd_xml" &&
  grep -q "<target dev=\"ddtk000000d\" managed=\"no\"/>" <<<"$dd_xml" ||
  { echo "FAIL: the DD lacks its hot-plug bus, window or tap"; echo "$dd_xml"; exit 1; }
# ... the clients' devices on the bridge's sockets (a with the TCG workaround for its NIC) ...
a_xml=$("$DDTK" -c "$tmp/bridge.conf" xml a)
grep -q "<source type=\"unix\" path=\"$tmp/state/xmlcheck-dd/bridge/a-blk.sock\">" <<<"$a_xml" &&
  grep -q "<driver name=\"qemu\" type=\"raw\" queues=\"2\"/>" <<<"$a_xml" &&
  grep -q "<source type=\"unix\" path=\"$tmp/state/xmlcheck-dd/bridge/a-net.sock\" mode=\"client\">" <<<"$a_xml" &&
  grep -q "<driver queues=\"3\"" <<<"$a_xml" && grep -q "pci=nomsi" <<<"$a_xml" ||
  { echo "FAIL: client a's volume or dd-nic"; echo "$a_xml"; exit 1; }
b_xml=$("$DDTK" -c "$tmp/bridge.conf" xml b)
grep -q "bridge/b-blk.sock" <<<"$b_xml" && ! grep -q "<interface" <<<"$b_xml" ||
  { echo "FAIL: client b's volume"; echo "$b_xml"; exit 1; }
# ... and the DD with every ivshmem device the bridge would plug (state device, a's two, b's volume).
sessions=""
for s in 0 1 2 3; do sessions+=$("$DDTK" -c "$tmp/bridge.conf" xml --ivshmem "$s"); sessions+=$'\n'; done
grep -q "<address type=\"pci\" domain=\"0x0000\" bus=\"0x03\" slot=\"0x1f\" function=\"0x0\"/>" <<<"$sessions" &&
  grep -q "<server path=\"$tmp/state/xmlcheck-dd/bridge/ivshmem-2.sock\"/>" <<<"$sessions" &&
  grep -q "<msi vectors=\"6\" ioeventfd=\"on\"/>" <<<"$sessions" ||
  { echo "FAIL: ivshmem devices"; echo "$sessions"; exit 1; }
{ sed '/<\/devices>/,$d' <<<"$dd_xml"; printf '%s' "$sessions"; sed -n '/<\/devices>/,$p' <<<"$dd_xml"; } > "$tmp/dd-plugged.xml"
if ! out=$(virt-xml-validate "$tmp/dd-plugged.xml" domain 2>&1); then
  echo "FAIL: DD with its ivshmem devices: $out"; cat "$tmp/dd-plugged.xml"; exit 1
fi
echo "ok: bridge.conf dd with 4 ivshmem devices validates"
n=$((n + 1))
# Session 4 would be b's dd-nic, which b does not have.
if out=$("$DDTK" -c "$tmp/bridge.conf" xml --ivshmem 4 2>&1) || ! grep -q "session 4 is unused: client b has no dd-nic" <<<"$out"; then
  echo "FAIL: an unused session gave: $out"; exit 1
fi
# A client's disk comes from one place: the error names the client and both keys.
printf '[client.b]\nvhost-user-blk = /run/ddtk/b.sock\n' >> "$tmp/bridge.conf"
if out=$("$DDTK" -c "$tmp/bridge.conf" xml b 2>&1) || ! grep -q "\[client.b\] has both vhost-user-blk and volume" <<<"$out"; then
  echo "FAIL: vhost-user-blk and volume together gave: $out"; exit 1
fi
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
