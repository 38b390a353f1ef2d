# Sourced by tests that read a back-end's --stats-socket (ddtk-blk, ddtk-net).
# stats_json SOCKET: the document it answers, on one line without blanks (socat, else python3);
# empty when nothing answers.
stats_json() {
  local json= i
  # A few tries: a back-end busy with a burst answers its stats socket a moment later.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    json=$(socat -u "UNIX-CONNECT:$1" - 2>/dev/null || true)
    [ -n "$json" ] || json=$(python3 - "$1" 2>/dev/null <<'PY' || true
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(s.recv(1 << 20).decode())
PY
)
    case $json in *'}'*) break ;; esac
    sleep 0.1
  done
  tr -d ' \n' <<<"$json"
}
# stats_counter SOCKET NAME KEY: counter KEY of the entry named NAME; fails, saying so on stderr,
# when no answer has it (then a caller's `x=$(stats_counter ...)` stops a `set -e` test with that
# line rather than silently).
stats_counter() {
  local v= _
  for _ in 1 2 3; do
    v=$(stats_json "$1" | grep -o "\"name\":\"$2\"[^}]*" | grep -o "\"$3\":[0-9]*" | cut -d: -f2 || true)
    [ -n "$v" ] && { echo "$v"; return 0; }
    sleep 0.2
  done
  echo "FAIL: the stats socket $1 gave no $3 for $2" >&2
  return 1
}
