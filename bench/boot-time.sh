#!/usr/bin/env bash
# Benchmark: how long ddtk's VMs take from `start` until their agent answers, the driver domain
# alone, a client alone, and the whole default topology side by side. Medians of N rounds.
# usage: bench/boot-time.sh [--rounds N] [--ddtk PATH] [--out FILE.json]
# Writes the JSON result (benchmark, unit, higher_is_better, results, ratios) and prints a table.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
ddtk_bin=$src/build/host/ddtk
out=$src/build/bench/boot-time.json
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --ddtk) ddtk_bin=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--rounds N] [--ddtk PATH] [--out FILE.json]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "boot-time: run as root (libvirt's system instance)" >&2; exit 1; }
"$src/scripts/start-libvirt"

instance="bench$$"
conf=$(mktemp)
trap '"$ddtk_bin" -c "$conf" down --purge >/dev/null 2>&1; rm -f "$conf"' EXIT
printf '[ddtk]\ninstance = %s\nclients = a b\n' "$instance" > "$conf"
ddtk() { "$ddtk_bin" -c "$conf" "$@"; }

now() { date +%s.%N; }
samples_dd=() samples_client=() samples_topology=()
for i in $(seq 1 "$rounds"); do
  for vm in dd a; do
    t0=$(now); ddtk start "$vm" >/dev/null; t1=$(now); ddtk stop "$vm"
    s=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
    if [ "$vm" = dd ]; then samples_dd+=("$s"); else samples_client+=("$s"); fi
  done
  t0=$(now); ddtk up >/dev/null; t1=$(now); ddtk down
  samples_topology+=("$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")")
  echo "round $i: dd ${samples_dd[-1]} s, client ${samples_client[-1]} s, topology ${samples_topology[-1]} s" >&2
done

mkdir -p "$(dirname "$out")"
python3 - "$out" "$(ddtk status | head -n 1)" "${samples_dd[*]}" "${samples_client[*]}" "${samples_topology[*]}" <<'PY'
import json, statistics, sys
out, status, dd, client, topo = sys.argv[1:]
def res(samples):
    xs = [float(x) for x in samples.split()]
    return {"median": round(statistics.median(xs), 2), "min": round(min(xs), 2),
            "max": round(max(xs), 2), "samples": xs}
results = {"dd": res(dd), "client": res(client), "topology (dd + 2 clients)": res(topo)}
doc = {
    "benchmark": "boot-time",
    "description": "seconds from `ddtk start` until the guest agent answers; " + status,
    "unit": "s",
    "higher_is_better": False,
    "results": results,
    "ratios": {
        "client / dd": round(results["client"]["median"] / results["dd"]["median"], 2),
        "topology / (dd + client)": round(results["topology (dd + 2 clients)"]["median"] /
                                          (results["dd"]["median"] + results["client"]["median"]), 2),
    },
}
json.dump(doc, open(out, "w"), indent=2)
PY
echo "wrote $out" >&2
"$src/bench/report" "$out"
