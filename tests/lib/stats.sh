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
# stats_counter SOCKET NAME KEY: counter KEY of the entry named NAME.
stats_counter() {
  stats_json "$1" | grep -o "\"name\":\"$2\"[^}]*" | grep -o "\"$3\":[0-9]*" | cut -d: -f2
}
