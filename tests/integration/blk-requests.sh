#!/usr/bin/env bash
# Every virtio-blk request type ddtk-blk supports, checked byte for byte (vu-blk-frontend
# --check-requests) on four exports of one ddtk-blk: a file on tmpfs (no FALLOC_FL_ZERO_RANGE:
# write-zeroes falls back to punching holes), a file on a disk file system at an offset that is
# not page-aligned, the same with cache=direct (O_DIRECT through bounce buffers), and a read-only
# export. Each volume lies between guard bytes that must not change; the process must live
# through it all. With cache=direct also: requests beyond the bounce-buffer budget wait and still
# verify, and (where tmpfs has O_DIRECT, Linux 6.6+: ddtk-blk then asks for 4 KiB blocks) sectors
# that are not whole blocks get IOERR and a log line. No VM, any user, a few seconds.
# DDTK_BLK_CACHE=direct|buffered: that cache mode for the disk and read-only exports too (the
# tmpfs one keeps the default: tmpfs does not report its O_DIRECT alignment, so ddtk-blk would
# ask for 4 KiB blocks, and --check-requests sends single sectors).
set -euo pipefail
. "$(dirname "$0")/../lib/stats.sh"
: "${DDTK_BLK:?DDTK_BLK must name the ddtk-blk binary}"
: "${VU_BLK_FRONTEND:?VU_BLK_FRONTEND must name the vu-blk-frontend binary}"
cache=${DDTK_BLK_CACHE:-}
case $cache in
  ''|direct|buffered) ;;
  *) echo "FAIL: DDTK_BLK_CACHE must be direct or buffered, not '$cache'" >&2; exit 1 ;;
esac

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
note() { echo "note: $*"; }
# log_wait REGEX: ddtk-blk's log reaches its file through a pipe (head), a moment after ddtk-blk
# wrote it: wait up to 5 s for a matching line.
log_wait() {
  local _
  for _ in $(seq 50); do
    grep -q "$1" "$disk/ddtk-blk.log" && return 0
    sleep 0.1
  done
  return 1
}

[ -d /dev/shm ] && [ -w /dev/shm ] || fail "/dev/shm is not a writable directory"
shm=$(mktemp -d /dev/shm/ddtk-blk-requests.XXXXXX)
disk=
blk_pid=
# Only what this test started, by PID; SIGKILL after 5 s for a ddtk-blk stuck in a system call.
cleanup() {
  local rc=$?
  if [ -n "$blk_pid" ] && kill "$blk_pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$blk_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$blk_pid" 2>/dev/null || true
    wait "$blk_pid" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ] && [ -n "$disk" ] && [ -f "$disk/ddtk-blk.log" ]; then
    echo "--- ddtk-blk.log"; tail -n 40 "$disk/ddtk-blk.log"
  fi
  rm -rf "$shm" ${disk:+"$disk"}
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
disk=$(mktemp -d /var/tmp/ddtk-blk-requests.XXXXXX)
disk_fs=$(stat -f -c %T "$disk")
case $disk_fs in
  tmpfs|overlayfs) note "$disk is on $disk_fs, not a disk file system; the second export tests that instead" ;;
esac

# O_DIRECT where the disk export lives: ddtk-blk refuses to start an export it cannot open so.
direct_ok=1
if ! dd if=/dev/zero of="$disk/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
  direct_ok=
  [ "$cache" = direct ] && { echo "skip: $disk ($disk_fs) does not support O_DIRECT, DDTK_BLK_CACHE=direct cannot run"; exit 77; }
  note "$disk ($disk_fs) does not support O_DIRECT: the cache=direct export is left out"
fi
rm -f "$disk/probe"
# tmpfs with O_DIRECT but no alignment reported (statx): ddtk-blk asks for the page size there.
tmpfs_direct=
dd if=/dev/zero of="$shm/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null && tmpfs_direct=1
rm -f "$shm/probe"

mib=1048576
size=$((8 * mib))
# name, kind, backing file, volume offset (bytes), serial, extra export keys
names=(tmpfs disk ro)
[ -n "$direct_ok" ] && names+=(direct)
[ -n "$tmpfs_direct" ] && names+=(misaligned)
declare -A kind file offset serial extra
kind[tmpfs]=tmpfs; file[tmpfs]=$shm/tmpfs.img;   offset[tmpfs]=$mib;                 serial[tmpfs]=req-tmpfs;         extra[tmpfs]=
kind[disk]=disk;   file[disk]=$disk/disk.img;    offset[disk]=$((mib + 7 * 512));    serial[disk]=req-disk;           extra[disk]=${cache:+,cache=$cache}
kind[ro]=ro;       file[ro]=$disk/ro.img;        offset[ro]=$((2 * mib));            serial[ro]=ddtk-ro-20-chars-xyz; extra[ro]=,read-only${cache:+,cache=$cache}
kind[direct]=disk; file[direct]=$disk/direct.img; offset[direct]=$((3 * mib + 5 * 512)); serial[direct]=req-direct;    extra[direct]=,cache=direct
kind[misaligned]=misaligned; file[misaligned]=$shm/misaligned.img; offset[misaligned]=$mib; serial[misaligned]=req-4k; extra[misaligned]=,cache=direct

# Guard bytes everywhere, then (read-only export only) its own content inside the volume.
for n in "${names[@]}"; do
  { yes "ddtk-guard-$n" || true; } | head -c $((offset[$n] + size + mib)) >"${file[$n]}"
done
{ yes ddtk-read-only-content || true; } | head -c $size |
  dd of="${file[ro]}" bs=$mib seek=$((offset[ro])) oflag=seek_bytes conv=notrunc status=none
guard_sum() {
  local f=${file[$1]} o=${offset[$1]}
  { head -c "$o" "$f"; tail -c +$((o + size + 1)) "$f"; } | sha256sum | cut -d' ' -f1
}
volume_sum() {
  dd if="${file[$1]}" iflag=skip_bytes,count_bytes skip="${offset[$1]}" count=$size status=none |
    sha256sum | cut -d' ' -f1
}
declare -A guard_before
for n in "${names[@]}"; do guard_before[$n]=$(guard_sum "$n"); done
ro_before=$(volume_sum ro)

args=()
for n in "${names[@]}"; do
  args+=(--export "socket=$disk/$n.sock,file=${file[$n]},offset=${offset[$n]},size=$size,serial=${serial[$n]}${extra[$n]}")
done
args+=(--stats-socket "$disk/stats.sock")
# At most 4 MiB of log: a ddtk-blk that loops on an error message must not fill the disk. Line
# buffered: the checks below read it while ddtk-blk runs.
"$DDTK_BLK" "${args[@]}" 2> >(stdbuf -oL head -c $((4 * mib)) >"$disk/ddtk-blk.log") &
blk_pid=$!
for _ in $(seq 100); do
  all=1
  for n in "${names[@]}"; do [ -S "$disk/$n.sock" ] || all=; done
  [ -n "$all" ] && break
  sleep 0.05
done
[ -n "$all" ] || fail "ddtk-blk did not create its sockets"
# Each export says its cache mode at start (just after its socket appears): the direct ones must
# really be direct.
for _ in $(seq 100); do
  [ "$(grep -c ': serving ' "$disk/ddtk-blk.log")" -ge ${#names[@]} ] && break
  sleep 0.05
done
for n in "${names[@]}"; do
  want=buffered
  case ${extra[$n]} in *cache=direct*) want=direct ;; esac
  grep -q "\[$disk/$n.sock\]: serving .*cache=$want" "$disk/ddtk-blk.log" ||
    fail "$n: ddtk-blk does not say cache=$want: $(grep -F "$n.sock" "$disk/ddtk-blk.log" | head -n 1)"
done
# ... and hold their backing open with O_DIRECT (040000 in /proc's octal flags), the others without.
for n in "${names[@]}"; do
  want=0
  case ${extra[$n]} in *cache=direct*) want=1 ;; esac
  got=
  for fd in "/proc/$blk_pid/fd/"*; do
    [ "$(readlink "$fd")" = "${file[$n]}" ] || continue
    flags=$(awk '/^flags:/ { print $2 }' "/proc/$blk_pid/fdinfo/${fd##*/}")
    got=$(( (8#$flags & 8#40000) != 0 ))
  done
  [ "$got" = "$want" ] || fail "$n: O_DIRECT on its backing is '$got', expected $want"
done
pass "cache modes:$(for n in "${names[@]}"; do case ${extra[$n]} in *cache=direct*) printf ' %s=direct' "$n" ;; *) printf ' %s=buffered' "$n" ;; esac; done) (log lines and O_DIRECT flags agree)"

# Alive and not a zombie (a crashed child we have not reaped is still a PID).
blk_alive() { [ -r "/proc/$blk_pid/stat" ] && ! grep -Eq '^[0-9]+ \(.*\) [ZX] ' "/proc/$blk_pid/stat"; }

# Runs --check-requests against export $1 with extra options; sets out (the JSON line) and rc.
check_requests() {
  local n=$1; shift
  set +e
  out=$("$VU_BLK_FRONTEND" --socket "$disk/$n.sock" --check-requests "$@" 2>"$disk/$n.log")
  rc=$?
  set -e
}

# counter EXPORT KEY: one of ddtk-blk's per-export counters, from its stats socket.
counter() { stats_counter "$disk/stats.sock" "$disk/$1.sock" "$2"; }

for n in "${names[@]}"; do
  [ "$n" = misaligned ] && continue
  opts=(--expect-serial "${serial[$n]}")
  [ "$n" = ro ] && opts+=(--expect-read-only)
  check_requests "$n" "${opts[@]}"
  echo "$n: $out"
  if [ $rc -ne 0 ] || ! grep -q '"failed":0,' <<<"$out"; then
    grep -E 'FAIL' "$disk/$n.log" | head -n 20 >&2 || true
    fail "$n: --check-requests exit $rc"
  fi
  pass "$n: $(grep -o '"checks":[0-9]*' <<<"$out" | cut -d: -f2) checks passed"
  # A hole in a regular file reads as zeroes: ddtk-blk punches one for DISCARD.
  reads=$(grep -o '"discard_reads_as":"[a-z]*"' <<<"$out" | cut -d'"' -f4)
  case ${kind[$n]}:$disk_fs in
    ro:*) ;;
    tmpfs:*|disk:ext2/ext3|disk:xfs|disk:btrfs|disk:tmpfs)
      [ "$reads" = zeroes ] || fail "$n: discarded sectors read as $reads, not zeroes"
      pass "$n: discarded sectors read as zeroes" ;;
    *) note "$n: discarded sectors read as $reads on $disk_fs" ;;
  esac
  blk_alive || fail "ddtk-blk is gone after the checks on $n"
  [ "$(guard_sum "$n")" = "${guard_before[$n]}" ] || fail "$n: the guard bytes around the volume changed"
  pass "$n: guard bytes unchanged, ddtk-blk alive"
done
[ "$(volume_sum ro)" = "$ro_before" ] || fail "ro: the read-only volume changed in the backing file"
pass "ro: the read-only volume is unchanged in the backing file"

if [ -n "$direct_ok" ]; then
  # 4 queues x 8 requests of 4 MiB is 128 MiB in flight against a 16 MiB bounce budget: most wait
  # for room, none fails, and what was written reads back. (--check-requests's own error cases
  # counted before.)
  errors_before=$(counter direct errors)
  "$VU_BLK_FRONTEND" --socket "$disk/direct.sock" --rw randwrite --bs 4M --iodepth 8 --queues 4 --ios 64 \
    >/dev/null 2>"$disk/direct-budget.log" || fail "direct: large writes beyond the bounce budget failed"
  "$VU_BLK_FRONTEND" --socket "$disk/direct.sock" --verify --rw randwrite --bs 1M --iodepth 16 --queues 2 \
    >/dev/null 2>>"$disk/direct-budget.log" || fail "direct: --verify after the large writes failed"
  waits=$(counter direct bounce_waits)
  [ "${waits:-0}" -gt 0 ] || fail "direct: no request waited for bounce-buffer room (bounce_waits '${waits}')"
  if [ "$(counter direct bounce_bytes)" != 0 ] || [ "$(counter direct inflight)" != 0 ]; then
    fail "direct: bounce buffers or requests left over: $(counter direct bounce_bytes) bytes, $(counter direct inflight) requests"
  fi
  [ "$(counter direct errors)" = "$errors_before" ] ||
    fail "direct: $(( $(counter direct errors) - errors_before )) requests failed"
  [ "$(guard_sum direct)" = "${guard_before[direct]}" ] || fail "direct: the guard bytes around the volume changed"
  pass "direct: $waits requests waited for bounce room, none failed, data verified, every buffer returned"
fi

if [ -n "$tmpfs_direct" ]; then
  # Whole 4 KiB blocks (all --check-requests sends) work; single sectors and requests off a block
  # boundary must fail cleanly (IOERR, no data, a log line), nothing else.
  check_requests misaligned --expect-serial "${serial[misaligned]}"
  echo "misaligned: $out"
  if [ $rc -ne 0 ] || ! grep -q '"failed":0,' <<<"$out"; then
    fail "misaligned: --check-requests on 4 KiB O_DIRECT blocks exit $rc"
  fi
  errors_before=$(counter misaligned errors)
  set +e
  out=$("$VU_BLK_FRONTEND" --socket "$disk/misaligned.sock" --hostile unaligned --backend-pid "$blk_pid" 2>>"$disk/misaligned.log")
  rc=$?
  set -e
  echo "misaligned: $out"
  if [ $rc -ne 0 ] || ! grep -q '"outcome":"ioerr","expected":"ioerr"' <<<"$out"; then
    fail "misaligned: requests that are not whole 4 KiB blocks were not all refused (exit $rc)"
  fi
  log_wait "\[$disk/misaligned.sock\]: .* refused: O_DIRECT on .* needs multiples of 4096 bytes" ||
    fail "misaligned: no log line refusing a request that is not whole 4 KiB blocks"
  refused=$(( $(counter misaligned errors) - errors_before ))
  [ "$refused" -eq 4 ] || fail "misaligned: $refused requests ended with an error, expected 4"
  [ "$(counter misaligned bounce_bytes)" = 0 ] || fail "misaligned: bounce buffers left over"
  blk_alive || fail "ddtk-blk is gone after requests that are not whole blocks"
  [ "$(guard_sum misaligned)" = "${guard_before[misaligned]}" ] || fail "misaligned: the guard bytes around the volume changed"
  pass "misaligned: 4 KiB blocks pass every check; $refused requests that are not whole blocks got IOERR and a log line; guard bytes unchanged, ddtk-blk alive"
else
  note "tmpfs has no O_DIRECT here (Linux before 6.6): the misaligned-request check is left out"
fi

# The checks must be able to fail: a wrong serial, and a read-only disk not announced as one.
check_requests ro --expect-serial "${serial[ro]%?}" --expect-read-only
[ $rc -eq 1 ] && grep -q '"first_failure":"GET_ID returns' <<<"$out" ||
  fail "a wrong --expect-serial was not reported as a failure (exit $rc): $out"
pass "a wrong serial fails"
check_requests ro --expect-serial "${serial[ro]}"
[ $rc -eq 1 ] && grep -q 'VIRTIO_BLK_F_RO' <<<"$out" ||
  fail "a read-only disk without --expect-read-only was not reported as a failure (exit $rc): $out"
pass "a read-only disk without --expect-read-only fails"

blk_alive || fail "ddtk-blk died"
trouble=$(grep -E 'broken|rejected|bad message' "$disk/ddtk-blk.log" || true)
[ -z "$trouble" ] || fail "ddtk-blk reports trouble: $(head -n 3 <<<"$trouble")"
pass "ddtk-blk is alive and reports no trouble"
