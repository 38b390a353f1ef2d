#!/usr/bin/env bash
# Every virtio-blk request type ddtk-blk supports, checked byte for byte (vu-blk-frontend
# --check-requests) on three exports of one ddtk-blk: a file on tmpfs (no FALLOC_FL_ZERO_RANGE:
# write-zeroes falls back to punching holes), a file on a disk file system at an offset that is
# not page-aligned, and a read-only export. Each volume lies between guard bytes that must not
# change; the process must live through it all. No VM, any user, a few seconds.
set -euo pipefail
: "${DDTK_BLK:?DDTK_BLK must name the ddtk-blk binary}"
: "${VU_BLK_FRONTEND:?VU_BLK_FRONTEND must name the vu-blk-frontend binary}"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
note() { echo "note: $*"; }

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

mib=1048576
size=$((8 * mib))
# name, backing file, volume offset (bytes), serial, extra export keys
names=(tmpfs disk ro)
declare -A file offset serial extra
file[tmpfs]=$shm/tmpfs.img; offset[tmpfs]=$mib;               serial[tmpfs]=req-tmpfs;            extra[tmpfs]=
file[disk]=$disk/disk.img;  offset[disk]=$((mib + 7 * 512));  serial[disk]=req-disk;              extra[disk]=
file[ro]=$disk/ro.img;      offset[ro]=$((2 * mib));          serial[ro]=ddtk-ro-20-chars-xyz;    extra[ro]=,read-only

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
# At most 4 MiB of log: a ddtk-blk that loops on an error message must not fill the disk.
"$DDTK_BLK" "${args[@]}" 2> >(head -c $((4 * mib)) >"$disk/ddtk-blk.log") &
blk_pid=$!
for _ in $(seq 100); do
  all=1
  for n in "${names[@]}"; do [ -S "$disk/$n.sock" ] || all=; done
  [ -n "$all" ] && break
  sleep 0.05
done
[ -n "$all" ] || fail "ddtk-blk did not create its sockets"

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

for n in "${names[@]}"; do
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
  case $n:$disk_fs in
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
