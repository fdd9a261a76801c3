#!/usr/bin/env bash
# Added time to first streamed byte: starts the harness's fake upstreams (CPU 0) and
# Archipel's gateway (CPU 1, bench/gateway/archipel.yaml), runs ttfb.py (CPU 0), stops
# both by PID. N=2000 by default. Not run by CI.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS="${HARNESS:-$(cd "$REPO/.." && pwd)/shared/bench/gateway}"
UPY="${UPSTREAM_PYTHON:-/tmp/venvs/upstream/bin/python}"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for port in 9001 9002; do
  taskset -c 0 "$UPY" "$HARNESS/fake_upstream.py" --port $port >/dev/null 2>&1 & PIDS+=($!)
done
taskset -c 1 "$REPO/.venv/bin/archipel" gateway --config "$REPO/bench/gateway/archipel.yaml" \
  >/dev/null 2>&1 & PIDS+=($!)
for i in $(seq 50); do curl -fsS -m 1 -o /dev/null http://127.0.0.1:4300/healthz 2>/dev/null && break; sleep 0.2; done
taskset -c 0 python3 "$REPO/bench/gateway/ttfb.py" --n "${N:-2000}" \
  direct=http://127.0.0.1:9001/v1/chat/completions \
  archipel=http://127.0.0.1:4300/v1/chat/completions@sk-bench-1234
