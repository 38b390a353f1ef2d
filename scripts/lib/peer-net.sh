# shellcheck shell=bash
# The demo's network (scripts/demo, tests): a peer host at 10.77.0.1/24 in the network namespace
# ddtk-INSTANCE, at the far end of a veth pair. In host mode ddtk-net's uplink is the veth's host
# end; in driver-domain mode the DD's emulated e1000 sits on a persistent tap ([driver-domain]
# nic-tap) that tc wires to the veth's host end in both directions: no host bridge, no host address,
# so the host's own stack never sees the clients' traffic. Sourced, not run; needs root, ip and tc.
#
# peer_net_names INSTANCE  sets PEER_NS, PEER_UPLINK (veth, host end), PEER_IF (veth, in PEER_NS),
#                          PEER_TAP (the DD's tap), PEER_IP; names stay under 15 characters
# peer_net_up              the namespace and the veth pair with the peer's address (what is missing)
# peer_net_dd_up           peer_net_up, plus the tap wired to PEER_UPLINK
# peer_net_down            deletes the tap, the veth pair and the namespace, whichever exist

peer_net_names() {
  local id
  id=$(printf %s "$1" | cksum | cut -c1-6)
  PEER_NS=ddtk-$1
  PEER_UPLINK=ddtk${id}u
  PEER_IF=ddtk${id}p
  PEER_TAP=ddtk${id}d
  PEER_IP=10.77.0.1
}

# The host stays out of these links: no IPv6 (router solicitations, DAD) from its ends.
peer_net_quiet() {
  sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
}

peer_net_up() {
  : "${PEER_NS:?call peer_net_names first}"
  [ -e "/run/netns/$PEER_NS" ] || ip netns add "$PEER_NS"
  # Half made (the peer end never reached the namespace): start the pair again.
  if ip link show dev "$PEER_UPLINK" >/dev/null 2>&1 &&
     ! ip netns exec "$PEER_NS" ip link show dev "$PEER_IF" >/dev/null 2>&1; then
    ip link del "$PEER_UPLINK"
  fi
  if ! ip link show dev "$PEER_UPLINK" >/dev/null 2>&1; then
    ip link add "$PEER_UPLINK" type veth peer name "$PEER_IF"
    ip link set "$PEER_IF" netns "$PEER_NS"
  fi
  ip netns exec "$PEER_NS" ip link set lo up
  ip netns exec "$PEER_NS" ip link set "$PEER_IF" up
  ip netns exec "$PEER_NS" ip addr replace "$PEER_IP/24" dev "$PEER_IF"
  peer_net_quiet "$PEER_UPLINK"
  ip link set "$PEER_UPLINK" up
}

# peer_net_redirect FROM TO: every frame FROM receives leaves through TO. The filter matches all:
# matchall where the kernel has it, else u32 with an empty mask (kernels without cls_matchall,
# such as this project's build machines).
peer_net_redirect() {
  tc qdisc replace dev "$1" ingress
  tc filter del dev "$1" ingress 2>/dev/null || true
  tc filter add dev "$1" ingress matchall action mirred egress redirect dev "$2" 2>/dev/null ||
    tc filter add dev "$1" ingress protocol all u32 match u32 0 0 action mirred egress redirect dev "$2"
}

peer_net_dd_up() {
  peer_net_up
  # Persistent, so that it outlives the DD's QEMU: a restarted DD finds it again. libvirt (root)
  # opens it for QEMU (<interface type='ethernet'> with managed='no').
  ip link show dev "$PEER_TAP" >/dev/null 2>&1 || ip tuntap add dev "$PEER_TAP" mode tap
  peer_net_quiet "$PEER_TAP"
  ip link set "$PEER_TAP" up
  peer_net_redirect "$PEER_TAP" "$PEER_UPLINK"
  peer_net_redirect "$PEER_UPLINK" "$PEER_TAP"
}

peer_net_down() {
  : "${PEER_NS:?call peer_net_names first}"
  # Each step on its own: any of them may be missing. Deleting a link removes its tc rules.
  ip tuntap del dev "$PEER_TAP" mode tap 2>/dev/null || true
  ip link del "$PEER_UPLINK" 2>/dev/null || true
  ip netns del "$PEER_NS" 2>/dev/null || true
}
