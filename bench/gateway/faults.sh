#!/usr/bin/env bash
# Fault runs for Archipel's gateway, with the shared harness's fault tools used in
# place (faulty_upstream.py, fault_load.py, faults_report.py; see its FAULTS.md).
# Model `fake-model` (bench/gateway/archipel.yaml), tenant `bench`, data class `health`:
#   A 127.0.0.1:9001 ovhcloud/gra (allowed)   healthy all along
#   B 127.0.0.1:9002 scaleway/fr-par (allowed) restarted in the fault mode
#   C 127.0.0.1:9003 aws/us-east-1 (NOT allowed: US site) healthy, must get no request
# Per run, from a clean start: start A, B, C (CPU 0) and the gateway (CPU 1), 6 warm-up
# requests, restart B in the fault mode, then fault_load.py ($CONC workers, $DUR s,
# client timeout $CTIMEOUT s). Afterwards faults_report.py prints the client-side table
# and faults_check.py checks the data class: C's arrival log and every usage record.
#
#   bash bench/gateway/faults.sh                      # ok http500 reset hang refuse http500:stream
#   MODES="hang" DUR=20 OUT=/tmp/gwfaults/x bash bench/gateway/faults.sh
#   WORKERS=2 bash bench/gateway/faults.sh            # archipel gateway --workers 2, on both cores
# Loopback only; every process started here is stopped by its PID. Not run by CI.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS="${HARNESS:-$(cd "$REPO/.." && pwd)/shared/bench/gateway}"
UPY="${UPSTREAM_PYTHON:-/tmp/venvs/upstream/bin/python}"
MODES="${MODES:-ok http500 reset hang refuse http500:stream}"
DUR="${DUR:-40}"
CONC="${CONC:-8}"
CTIMEOUT="${CTIMEOUT:-30}"
WARMUP="${WARMUP:-6}"
OUT="${OUT:-/tmp/gwfaults/archipel-$(date -u +%Y%m%d-%H%M%S)}"
PORT=4300
WORKERS="${WORKERS:-1}"
# one worker owns CPU 1; more share both cores with the upstreams and the load (as run.sh's
# archipel-2w does)
GW_CPUS=1; [ "$WORKERS" -gt 1 ] && GW_CPUS=0,1
mkdir -p "$OUT"
echo "results -> $OUT (workers: ${WORKERS:-1})"

PIDS=()
stop_pid() {
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() { for p in "${PIDS[@]:-}"; do stop_pid "$p"; done; PIDS=(); }
trap cleanup EXIT INT TERM

wait_port_free() {
  local i; for i in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 0; sleep 0.2; done
  echo "port $1 still busy" >&2; return 1
}
start_upstream() {  # port mode logfile -> echoes PID
  taskset -c 0 "$UPY" "$HARNESS/faulty_upstream.py" --port "$1" --fail-mode "$2" \
      ${3:+--log-file "$3"} >>"$OUT/upstreams.log" 2>&1 &
  echo $!
}

REQ='{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
for mm in $MODES; do
  mode="${mm%%:*}"; stream=""; [ "$mm" != "${mm#*:}" ] && stream="--stream"
  tag="archipel-${mode}${stream:+-stream}"
  echo "=== $tag"
  for p in 9001 9002 9003 $PORT; do wait_port_free $p; done
  sed -e "s#/tmp/gwbench/archipel-usage.jsonl#$OUT/usage-$tag.jsonl#" \
    "$REPO/bench/gateway/archipel.yaml" > "$OUT/archipel-$tag.yaml"
  rm -f "$OUT/usage-$tag.jsonl"
  A=$(start_upstream 9001 ok "$OUT/A-$tag.arrivals"); PIDS+=("$A")
  B=$(start_upstream 9002 ok ""); PIDS+=("$B")
  C=$(start_upstream 9003 ok "$OUT/C-$tag.arrivals"); PIDS+=("$C")
  taskset -c "$GW_CPUS" "$REPO/.venv/bin/archipel" gateway --config "$OUT/archipel-$tag.yaml" \
    --workers "$WORKERS" >"$OUT/gateway-$tag.log" 2>&1 &
  G=$!; PIDS+=("$G")
  ok=0; for i in $(seq 60); do
    if curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then ok=1; break; fi
    sleep 0.2; done
  [ $ok = 1 ] || { echo "gateway not ready" >&2; tail -20 "$OUT/gateway-$tag.log" >&2; exit 1; }
  for i in $(seq "$WARMUP"); do
    curl -sS -m 10 -o /dev/null -H "Authorization: Bearer sk-bench-1234" \
      -H 'Content-Type: application/json' -d "$REQ" "http://127.0.0.1:$PORT/v1/chat/completions" || true
  done
  # B goes bad: restart it in the fault mode
  stop_pid "$B"; wait_port_free 9002; PIDS=("$A" "$C" "$G")
  B=$(start_upstream 9002 "$mode" "$OUT/B-$tag.arrivals"); PIDS+=("$B")
  sleep 1
  taskset -c 0 "$UPY" "$HARNESS/fault_load.py" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
    --auth sk-bench-1234 --conc "$CONC" --duration "$DUR" --timeout "$CTIMEOUT" $stream \
    --label "$tag" --out "$OUT/req-$tag.jsonl" --summary "$OUT/summary.jsonl" \
    | sed 's/^FAULTJSON \(.\{300\}\).*/\1.../'
  curl -sS -m 2 "http://127.0.0.1:$PORT/metrics" > "$OUT/metrics-$tag.txt" || true
  cleanup   # the gateway writes its queued usage records on SIGTERM
done
trap - EXIT INT TERM
{
  "$UPY" "$HARNESS/faults_report.py" "$OUT"
  echo
  python3 "$REPO/bench/gateway/faults_check.py" "$OUT"
} | tee "$OUT/report.md"
