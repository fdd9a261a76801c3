#!/usr/bin/env bash
# Python bytecodes per request of archipel gateway and of the bare pass-through, per function,
# side by side: where the gateway's extra work goes, in a unit the machine's load does not
# move (see bytecodes.py). Each target runs under the counter on CPU 1, loaded by wrk at low
# concurrency through the shared harness's fake upstreams on CPU 0 (own ports: it can run
# beside run.sh). Prints the functions that differ most and the totals; the raw counts stay
# in $OUT.
#
#   bash bench/gateway/bytecodes.sh                    # json and stream, c=2, 20 s each
#   MODES=stream TOP=60 bash bench/gateway/bytecodes.sh
#   SRC_BEFORE=/path/to/an/older/src bash bench/gateway/bytecodes.sh   # and another version
# Loopback only; every process started here is stopped by its PID. Not run by CI.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS="${HARNESS:-$(cd "$REPO/.." && pwd)/shared/bench/gateway}"
UPY="${UPSTREAM_PYTHON:-/tmp/venvs/upstream/bin/python}"
PY="$REPO/.venv/bin/python"
MODES="${MODES:-json stream}"
CONC="${CONC:-2}"
DURATION="${DURATION:-20}"
TOP="${TOP:-40}"
OUT="${OUT:-/tmp/gwbytecodes/$(date -u +%Y%m%d-%H%M%S)}"
PORT=4390; UP1=9081; UP2=9082
mkdir -p "$OUT"

PIDS=()
cleanup() {
  local p; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT INT TERM
wait_url() {
  local i; for i in $(seq 300); do curl -fsS -m 1 -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "$1 not ready" >&2; return 1
}
load() {  # mode seconds -> the wrk summary line
  local stream=0; [ "$1" = stream ] && stream=1
  MODEL=fake-model STREAM=$stream AUTH=sk-bench-1234 taskset -c 0 wrk -t1 -c"$CONC" -d"$2s" \
    --timeout 30s -s "$HARNESS/chat.lua" "http://127.0.0.1:$PORT/v1/chat/completions" | grep WRKJSON || true
}

for port in $UP1 $UP2; do
  taskset -c 0 "$UPY" "$HARNESS/fake_upstream.py" --port "$port" >>"$OUT/upstreams.log" 2>&1 &
  PIDS+=("$!"); wait_url "http://127.0.0.1:$port/health"
done
sed -e "s/port: 4300/port: $PORT/" -e "s#127.0.0.1:9001#127.0.0.1:$UP1#" \
  -e "s#127.0.0.1:9002#127.0.0.1:$UP2#" -e "s#/tmp/gwbench/archipel-usage.jsonl#$OUT/usage.jsonl#" \
  "$REPO/bench/gateway/archipel.yaml" > "$OUT/archipel.yaml"

names=(passthrough archipel); [ -n "${SRC_BEFORE:-}" ] && names+=(archipel-before)
for mode in $MODES; do
  for name in "${names[@]}"; do
    case $name in
      passthrough) cmd=("$REPO/bench/gateway/passthrough.py" --port $PORT
                        --upstream "http://127.0.0.1:$UP1/v1" --upstream "http://127.0.0.1:$UP2/v1") ;;
      *) cmd=(archipel gateway --config "$OUT/archipel.yaml") ;;
    esac
    src=""; [ "$name" = archipel-before ] && src="$SRC_BEFORE"
    PYTHONPATH="$src" taskset -c 1 "$PY" "$REPO/bench/gateway/bytecodes.py" "$OUT/$name-$mode.tsv" \
      "${cmd[@]}" >"$OUT/$name-$mode.log" 2>&1 &
    G=$!; PIDS+=("$G")
    wait_url "http://127.0.0.1:$PORT/healthz"
    load "$mode" 2 >/dev/null                                  # warm-up, not counted
    kill -USR1 "$G"
    load "$mode" "$DURATION" | sed 's/.*"requests":\([0-9]*\).*/\1/' > "$OUT/$name-$mode.requests"
    kill -USR2 "$G"; sleep 1
    kill -TERM "$G"; wait "$G" 2>/dev/null || true
    unset 'PIDS[${#PIDS[@]}-1]'
  done
  echo "== $mode (bytecodes per request; requests still in flight when wrk stops add up to $CONC)"
  python3 - "$OUT" "$mode" "$TOP" "${names[@]}" <<'PY'
import collections, re, sys
out, mode, top, *names = sys.argv[1:]
def load(name):
    req = int(open(f"{out}/{name}-{mode}.requests").read() or 0)
    counts = collections.Counter()
    for line in open(f"{out}/{name}-{mode}.tsv"):
        n, where, fn = line.rstrip("\n").split("\t")
        # by file and function, not line: so that two versions of a file compare
        where = re.sub(r"^.*?(site-packages/|src/|lib/python3\.\d+/|bench/gateway/)", "", where)
        counts[f"{where.rsplit(':', 1)[0]} {fn}"] += int(n)
    return req, counts
data = {n: load(n) for n in names}
per = {n: {k: v / max(r, 1) for k, v in c.items()} for n, (r, c) in data.items()}
a, b = per["archipel"], per["passthrough"]
print(f"{'archipel':>9} {'passthr.':>9} {'extra':>8}" + (f" {'before':>8}" if "archipel-before" in per else ""))
for k in sorted(set(a) | set(b), key=lambda k: b.get(k, 0) - a.get(k, 0))[: int(top)]:
    row = f"{a.get(k, 0):9.1f} {b.get(k, 0):9.1f} {a.get(k, 0) - b.get(k, 0):8.1f}"
    if "archipel-before" in per:
        row += f" {per['archipel-before'].get(k, 0):8.1f}"
    print(row, " ", k[:100])
for n, (r, c) in data.items():
    print(f"total {n}: {sum(c.values()) / max(r, 1):,.0f} bytecodes per request ({r} requests)")
PY
done
echo "raw counts in $OUT"
