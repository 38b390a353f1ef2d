# Shared part of the VM tests (integration, e2e): a private ddtk instance per test, removed with
# its domains and files when the test ends, however it ends. Sourced by the test scripts.
# Environment (set by meson): DDTK = the ddtk binary, DDTK_SOURCE_ROOT = the source tree.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: VM tests need root (libvirt's system instance)"
  exit 77
fi
: "${DDTK:?DDTK must name the ddtk binary}"
"$DDTK_SOURCE_ROOT/scripts/start-libvirt"

# Instance names are unique per test run, so runs never see each other's domains or files.
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
INSTANCE="t$$-${TEST_NAME:0:20}"
TEST_TMP=$(mktemp -d "/tmp/ddtk-$TEST_NAME.XXXXXX")
export DDTK_CONFIG="$TEST_TMP/ddtk.conf"

test_cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    echo "--- $TEST_NAME failed (exit $rc); console logs of instance $INSTANCE:"
    for log in /var/lib/ddtk/"$INSTANCE"/*.console.log /var/lib/ddtk/"$INSTANCE"/bridge.log; do
      [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
    done
  fi
  # A test's own processes (back-ends) go first: define test_extra_cleanup to stop them.
  if declare -F test_extra_cleanup >/dev/null; then test_extra_cleanup || true; fi
  "$DDTK" down --purge >/dev/null 2>&1 || "$DDTK" down >/dev/null 2>&1 || true
  rm -rf "$TEST_TMP"
  exit $rc
}
trap test_cleanup EXIT
trap 'exit 130' INT TERM

# write_config [extra lines for [ddtk]] -- the test's configuration; more sections can be appended.
write_config() {
  {
    echo "[ddtk]"
    echo "instance = $INSTANCE"
    echo "accel = ${DDTK_TEST_ACCEL:-auto}"
    echo "boot-timeout = ${DDTK_TEST_BOOT_TIMEOUT:-180}"
    printf '%s\n' "$@"
  } > "$DDTK_CONFIG"
}

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; pass "$1 = '$3'"; }
# expect_match WHAT TEXT REGEX
expect_match() { grep -Eq -- "$3" <<<"$2" || fail "$1: '$2' does not match /$3/"; pass "$1 ~ /$3/"; }

# in_vm VM COMMAND -- the command's stdout; fails the test when the command fails.
in_vm() {
  local out
  out=$("$DDTK" exec -t 120 "$1" -- "$2") || fail "in $1: '$2' failed: $out"
  printf '%s' "$out"
}

# A TCP server started in the background listens a moment later: wait (5 s at most) for port 5201
# (iperf3's) before a client connects. listen_wait_ns NETNS, listen_wait_vm VM.
listen_wait_ns() {
  local _
  for _ in $(seq 50); do
    ip netns exec "$1" ss -Hltn 'sport = :5201' | grep -q . && return 0
    sleep 0.1
  done
  fail "nothing listens on port 5201 in network namespace $1"
}
listen_wait_vm() {
  in_vm "$1" 'for i in $(seq 50); do grep -q ":1451 00000000:0000 0A" /proc/net/tcp && exit 0; sleep 0.1; done; exit 1' \
    >/dev/null
}
