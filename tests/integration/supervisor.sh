#!/usr/bin/env bash
# ddtkd, the supervisor `ddtk up` starts: it restarts a driver domain whose watchdog fired (its
# agent frozen, so nobody pets it) and one whose QEMU died (kill -9 by PID), within its restart
# budget (2 here); the next failure leaves the DD down, "failed", until `ddtk start dd`. A DD that
# `ddtk stop dd` stopped stays down. `ddtk down` stops ddtkd. A DD alone: no clients.
. "$DDTK_SOURCE_ROOT/tests/lib/vmtest.sh"
write_config "clients ="
cat >> "$DDTK_CONFIG" <<CONF
[driver-domain]
restart-budget = 2
restart-window = 3600
restart-delay-max = 2
CONF
dom="ddtk-$INSTANCE-dd"
log="/var/lib/ddtk/$INSTANCE/ddtkd.log"

# ddtkd's status document on one line (a few tries: it may be busy starting the DD).
sup_json() {
  local j= _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    j=$("$DDTK" status | sed -n '/^ddtkd status:/,$p' | sed 1d | tr -d ' \n' || true)
    case $j in '{'*'}') break ;; esac
    sleep 0.5
  done
  echo "$j"
}
sup_field() { grep -o "\"$1\":\"\\?[a-z0-9-]*" <<<"$(sup_json)" | head -n 1 | cut -d: -f2 | tr -d '"' || true; }
domid() { virsh -q domid "$dom" 2>/dev/null | tr -d ' ' || true; }
# wait_restarts N: until ddtkd has restarted the DD N times and its agent answers.
wait_restarts() {
  local _
  for _ in $(seq 240); do
    if [ "$(sup_field restarts)" = "$1" ] && [ "$(sup_field state)" = running ] &&
       "$DDTK" exec -t 10 dd -- true 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  fail "ddtkd did not restart the DD (restart $1): $(sup_json); log: $(tail -n 8 "$log" 2>/dev/null)"
}

"$DDTK" up
expect_match "ddtkd runs" "$("$DDTK" status)" "supervisor +host +ddtkd +running \(pid [0-9]+\)"
ddtkd_pid=$(cat "/var/lib/ddtk/$INSTANCE/ddtkd.pid")
expect_eq "ddtkd's view of the DD" "$(sup_field state)" running
expect_eq "no restart yet" "$(sup_field restarts)" 0

# 1. The agent frozen: nobody pets the watchdog (10 s, and as long again for its second stage).
id=$(domid)
in_vm dd '(sleep 1; kill -STOP $(pidof ddtk-agent)) >/dev/null 2>&1 &' >/dev/null
pass "ddtk-agent in the DD frozen (SIGSTOP)"
wait_restarts 1
[ "$(domid)" != "$id" ] || fail "the DD's domain id did not change ($id)"
expect_match "ddtkd's reason" "$(sup_json)" '"last_reason":"itswatchdogfired\(actionnone\)"'
expect_match "ddtkd's log" "$(cat "$log")" "watchdog fired"
pass "watchdog -> restart 1 (domain id $id -> $(domid))"

# 2. The DD's QEMU killed.
id=$(domid)
qemu_pid=$(cat "/run/libvirt/qemu/$dom.pid")
kill -9 "$qemu_pid"
pass "the DD's QEMU (pid $qemu_pid) killed with SIGKILL"
wait_restarts 2
[ "$(domid)" != "$id" ] || fail "the DD's domain id did not change ($id)"
expect_match "ddtkd's reason" "$(sup_json)" '"last_reason":"its(QEMU)?(crashed|failed)'
pass "QEMU killed -> restart 2 (domain id $id -> $(domid))"

# 3. The budget is spent: a third failure leaves the DD down, and ddtkd says why.
virsh -q destroy "$dom" >/dev/null
for _ in $(seq 60); do [ "$(sup_field state)" = failed ] && break; sleep 0.5; done
expect_eq "ddtkd after a third failure" "$(sup_field state)" failed
sleep 3
expect_eq "the DD stays down" "$("$DDTK" status | awk '$1 == "dd" { print $4, $5 }')" "not running"
expect_match "ddtkd's log says it gives up" "$(cat "$log")" "giving up: 2 restarts within 3600 s"
# Started by hand: supervised again, with the budget full.
"$DDTK" start dd
for _ in $(seq 20); do [ "$(sup_field state)" = running ] && break; sleep 0.5; done
expect_eq "ddtkd after ddtk start dd" "$(sup_field state)" running
expect_eq "recent restarts forgiven" "$(sup_field recent_restarts)" 0

# 4. Stopped on purpose: left down.
"$DDTK" stop dd
sleep 3
expect_eq "ddtkd after ddtk stop dd" "$(sup_field state)" stopped-by-ddtk
expect_eq "the stopped DD stays down" "$("$DDTK" status | awk '$1 == "dd" { print $4, $5 }')" "not running"
"$DDTK" start dd
expect_eq "ddtkd after ddtk start dd again" "$(sup_field state)" running
expect_eq "restarts in all" "$(sup_field restarts)" 2

echo "--- ddtkd.log"; cat "$log"

# 5. ddtk down stops ddtkd before the DD (else it would start it again).
"$DDTK" down
for _ in $(seq 20); do [ -d "/proc/$ddtkd_pid" ] || break; sleep 0.2; done
[ ! -d "/proc/$ddtkd_pid" ] || fail "ddtkd (pid $ddtkd_pid) still runs after ddtk down"
expect_eq "the DD after ddtk down" "$("$DDTK" status | awk '$1 == "dd" { print $4, $5 }')" "not running"
pass "ddtk down stopped ddtkd and the DD"
