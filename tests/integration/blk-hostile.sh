#!/usr/bin/env bash
# One ddtk-blk, two exports of one backing file: a hostile front-end runs every --hostile mode of
# vu-blk-frontend against export B while a good front-end writes and verifies export A. Every mode
# must get its expected outcome, A must see no error, the process must live, B must serve a fresh
# device after it all, and the guard bytes around and between the volumes must not change.
# No VM, any user, about 20 s.
# DDTK_BLK_CACHE=direct|buffered: both exports in that cache mode (direct needs O_DIRECT where
# TMPDIR, default /tmp, lives: the test is skipped without it).
set -euo pipefail
: "${DDTK_BLK:?DDTK_BLK must name the ddtk-blk binary}"
: "${VU_BLK_FRONTEND:?VU_BLK_FRONTEND must name the vu-blk-frontend binary}"
cache=${DDTK_BLK_CACHE:-}
case $cache in
  ''|direct|buffered) ;;
  *) echo "FAIL: DDTK_BLK_CACHE must be direct or buffered, not '$cache'" >&2; exit 1 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddtk-blk-hostile.XXXXXX")
blk_pid=
good_pid=
# A ddtk-blk stuck in a system call never reads its SIGTERM: SIGKILL after 5 s.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  # Only what this test started, by PID.
  [ -n "$good_pid" ] && stop_pid "$good_pid"
  [ -n "$blk_pid" ] && stop_pid "$blk_pid"
  if [ $rc -ne 0 ]; then
    for f in ddtk-blk.log good.log good.json hostile.log; do
      [ -f "$tmp/$f" ] && { echo "--- $f"; tail -n 60 "$tmp/$f"; }
    done
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
# Alive and not a zombie: a ddtk-blk that crashed is a pid until it is reaped.
blk_alive() { [ -r "/proc/$blk_pid/stat" ] && ! grep -Eq '^[0-9]+ \(.*\) [ZX] ' "/proc/$blk_pid/stat"; }
pass() { echo "ok: $*"; }

# Guard | volume A | guard | volume B | guard, 4 MiB of guard each, 16 MiB volumes.
mib=1048576
backing="$tmp/backing.img"
sock_a="$tmp/a.sock"
sock_b="$tmp/b.sock"
truncate -s $((44 * mib)) "$backing"
for at in 0 20 40; do
  { yes ddtk-guard || true; } | head -c $((4 * mib)) | dd of="$backing" bs=$mib seek=$at conv=notrunc status=none
done
guard_sum() {
  for at in 0 20 40; do dd if="$backing" bs=$mib skip=$at count=4 status=none; done | sha256sum | cut -d' ' -f1
}
guard_before=$(guard_sum)
if [ "$cache" = direct ] && ! dd if=/dev/zero of="$tmp/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
  echo "skip: $tmp ($(stat -f -c %T "$tmp")) does not support O_DIRECT: set TMPDIR for DDTK_BLK_CACHE=direct"
  exit 77
fi
rm -f "$tmp/probe"

"$DDTK_BLK" --export "socket=$sock_a,file=$backing,offset=4M,size=16M,serial=good${cache:+,cache=$cache}" \
            --export "socket=$sock_b,file=$backing,offset=24M,size=16M,serial=hostile${cache:+,cache=$cache}" \
            2>"$tmp/ddtk-blk.log" &
blk_pid=$!
for _ in $(seq 100); do [ -S "$sock_a" ] && [ -S "$sock_b" ] && break; sleep 0.05; done
if [ ! -S "$sock_a" ] || [ ! -S "$sock_b" ]; then fail "ddtk-blk did not create its sockets"; fi
[ -n "$cache" ] && echo "cache=$cache for both exports"

# The good front-end: verify, then random writes in 2-second runs for as long as the hostile one
# works, then verify again. Each run's exit status and JSON go to good.json.
(
  set +e
  fe_pid=
  # In the background and waited for, so that a TERM from the cleanup ends the run at once.
  trap '[ -n "$fe_pid" ] && kill "$fe_pid" 2>/dev/null; exit 1' TERM
  good() {
    "$VU_BLK_FRONTEND" --socket "$sock_a" "$@" >>"$tmp/good.json" 2>>"$tmp/good.log" &
    fe_pid=$!
    wait "$fe_pid"
    echo "rc=$? $*" >>"$tmp/good.json"
    fe_pid=
  }
  good --verify --rw randwrite --iodepth 16
  while [ ! -e "$tmp/hostile.done" ]; do good --rw randwrite --iodepth 8 --runtime 2; done
  good --verify --rw randread --iodepth 4
) &
good_pid=$!

# The hostile front-end, every mode on its own connection, one after the other.
modes=$("$VU_BLK_FRONTEND" --socket "$sock_b" --list-hostile)
[ "$(wc -w <<<"$modes")" -ge 11 ] || fail "vu-blk-frontend lists too few hostile modes: $modes"
failed=
for mode in $modes; do
  set +e
  out=$("$VU_BLK_FRONTEND" --socket "$sock_b" --hostile "$mode" --backend-pid "$blk_pid" 2>>"$tmp/hostile.log")
  rc=$?
  set -e
  echo "$out"
  grep -q "^{\"mode\":\"$mode\",\"outcome\":" <<<"$out" || fail "$mode: no JSON line from the front-end (exit $rc)"
  [ $rc -eq 0 ] || failed="$failed $mode"
  # Every later mode would only wait out its timeouts on a back-end that is stuck or gone.
  if grep -Eq '"outcome":"(hung|backend-died)"' <<<"$out" || ! blk_alive; then
    fail "ddtk-blk is stuck or gone after mode $mode"
  fi
done
touch "$tmp/hostile.done"
[ -z "$failed" ] || fail "unexpected outcome for:$failed"
pass "every hostile mode got its expected outcome"

# The same front-end must be able to tell a wrong expectation: otherwise the loop above proves nothing.
set +e
out=$("$VU_BLK_FRONTEND" --socket "$sock_b" --hostile beyond-volume --expect ok --backend-pid "$blk_pid" \
  2>>"$tmp/hostile.log")
rc=$?
set -e
if [ $rc -ne 1 ] || ! grep -q '"outcome":"ioerr","expected":"ok"' <<<"$out"; then
  fail "a wrong expectation was not reported as a failure (exit $rc): $out"
fi
pass "a wrong expectation fails"

wait "$good_pid" || true
good_pid=
runs=$(grep -c '^rc=' "$tmp/good.json")
[ "$runs" -ge 3 ] || fail "the good front-end ran only $runs time(s)"
if grep '^rc=' "$tmp/good.json" | grep -vq '^rc=0 '; then
  fail "a good front-end run failed: $(grep '^rc=' "$tmp/good.json" | grep -v '^rc=0 ' | head -n 3)"
fi
if grep '^{' "$tmp/good.json" | grep -vq '"errors": 0,'; then
  fail "the good front-end saw I/O errors"
fi
pass "export A: $runs runs (verify, random writes, verify), no error"

blk_alive || fail "ddtk-blk died"
pass "ddtk-blk is alive"
trouble=$(grep -F "[$sock_a]" "$tmp/ddtk-blk.log" | grep -E 'broken|rejected|bad message|cannot' || true)
[ -z "$trouble" ] || fail "ddtk-blk reports trouble on export A: $(head -n 3 <<<"$trouble")"
pass "ddtk-blk reports no trouble on export A"

# A reconnect gets a fresh device, whatever the last one did to the old.
"$VU_BLK_FRONTEND" --socket "$sock_b" --verify --rw randwrite --iodepth 8 --size 4M >/dev/null 2>>"$tmp/hostile.log" ||
  fail "export B does not serve a normal front-end after the hostile ones"
pass "export B serves a fresh device"

[ "$(guard_sum)" = "$guard_before" ] || fail "the guard regions of the backing file changed"
pass "guard regions unchanged"
