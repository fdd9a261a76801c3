#!/usr/bin/env bash
# Where a gateway's CPU goes under load: py-spy samples it while wrk loads it through the
# shared harness's fake upstreams (the layout of run.sh: the gateway on CPU 1, wrk and the
# upstreams on CPU 0). Writes a flame graph (SVG) and py-spy's raw samples per mode, of the
# samples that hold the GIL (--gil): CPU spent in Python and in C called from it, not the
# time a thread waits for the GIL or for I/O.
#
#   bash bench/gateway/profile.sh                       # archipel, json and stream, 20 s each
#   TARGET=passthrough MODES=stream bash bench/gateway/profile.sh
#   OUT=/tmp/gwprof/x DURATION=30 CONC=32 bash bench/gateway/profile.sh
#
# py-spy is a profiling tool, not a project dependency: `.venv/bin/pip install py-spy`
# (or PY_SPY=/path/to/py-spy). Needs root (ptrace) like the rest of the harness.
# Loopback only; every process started here is stopped by its PID. Not run by CI.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS="${HARNESS:-$(cd "$REPO/.." && pwd)/shared/bench/gateway}"
UPY="${UPSTREAM_PYTHON:-/tmp/venvs/upstream/bin/python}"
PY_SPY="${PY_SPY:-$REPO/.venv/bin/py-spy}"
TARGET="${TARGET:-archipel}"
MODES="${MODES:-json stream}"
DURATION="${DURATION:-20}"
CONC="${CONC:-32}"
RATE="${RATE:-250}"
OUT="${OUT:-/tmp/gwprof/$TARGET-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
[ -x "$PY_SPY" ] || { echo "no py-spy at $PY_SPY: .venv/bin/pip install py-spy" >&2; exit 1; }

case "$TARGET" in
  archipel) PORT=4300; AUTH=sk-bench-1234
    START=("$REPO/.venv/bin/archipel" gateway --config "$REPO/bench/gateway/archipel.yaml") ;;
  passthrough) PORT=4310; AUTH=""
    START=("$REPO/.venv/bin/python" "$REPO/bench/gateway/passthrough.py" --port 4310
           --upstream http://127.0.0.1:9001/v1 --upstream http://127.0.0.1:9002/v1) ;;
  *) echo "TARGET is archipel or passthrough" >&2; exit 2 ;;
esac

PIDS=()
cleanup() {
  local p; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
wait_url() {
  local i; for i in $(seq 100); do curl -fsS -m 1 -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "$1 not ready" >&2; return 1
}

for port in 9001 9002; do
  taskset -c 0 "$UPY" "$HARNESS/fake_upstream.py" --port "$port" >>"$OUT/upstreams.log" 2>&1 &
  PIDS+=("$!")
  wait_url "http://127.0.0.1:$port/health"
done
taskset -c 1 "${START[@]}" >"$OUT/$TARGET.log" 2>&1 &
G=$!; PIDS+=("$G")
wait_url "http://127.0.0.1:$PORT/healthz"

for mode in $MODES; do
  stream=0; [ "$mode" = stream ] && stream=1
  # warm up, then sample for the whole of a load of the same length
  MODEL=fake-model STREAM=$stream AUTH="$AUTH" taskset -c 0 \
    wrk -t1 -c"$CONC" -d3s -s "$HARNESS/chat.lua" "http://127.0.0.1:$PORT/v1/chat/completions" >/dev/null
  "$PY_SPY" record --pid "$G" --rate "$RATE" --duration "$DURATION" --nonblocking --gil \
    --format flamegraph --output "$OUT/$TARGET-$mode.svg" >"$OUT/py-spy-$mode.log" 2>&1 &
  SPY=$!
  "$PY_SPY" record --pid "$G" --rate "$RATE" --duration "$DURATION" --nonblocking --gil \
    --format raw --output "$OUT/$TARGET-$mode.txt" >"$OUT/py-spy-raw-$mode.log" 2>&1 &
  RAW=$!
  sleep 0.5
  MODEL=fake-model STREAM=$stream AUTH="$AUTH" taskset -c 0 \
    wrk -t1 -c"$CONC" -d"${DURATION}s" -s "$HARNESS/chat.lua" \
    "http://127.0.0.1:$PORT/v1/chat/completions" | grep WRKJSON | tee "$OUT/wrk-$mode.txt"
  wait "$SPY" "$RAW" || true
done
echo "flame graphs and raw samples in $OUT"
