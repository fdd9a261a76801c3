#!/usr/bin/env bash
# Gateway overhead benchmark: Archipel's gateway against the same fake upstream
# as the bare upstream ("direct") and, when installed, LiteLLM and Portkey.
# Uses the shared harness in place (nothing copied): $HARNESS/bench.py pins the
# gateway to CPU 1 and wrk + fake upstreams to CPU 0. Not run by CI.
#
#   bash bench/gateway/run.sh                 # c=1,32 x json,stream, 2 reps; direct, the bare
#                                             # pass-through (passthrough.py), nginx, archipel,
#                                             # LiteLLM, Portkey
#   REPS=3 DURATION=20 CONC=1,32,128 OUT=/tmp/gwbench/x bash bench/gateway/run.sh
#   TARGETS=direct,archipel bash bench/gateway/run.sh
#   TARGETS=direct,archipel,archipel-redis bash bench/gateway/run.sh   # shared rate limits
#   TARGETS=direct,archipel,archipel-lease bash bench/gateway/run.sh   # shared, leased
#   TARGETS=direct,archipel,archipel-2w bash bench/gateway/run.sh      # --workers 2
#   TARGETS=direct,nginx,passthrough,archipel bash bench/gateway/run.sh # nginx, the floor
#   EXTRA_TARGETS=/path/more-targets.json TARGETS=direct,archipel,mine bash bench/gateway/run.sh
#   (extra args go to bench.py, e.g. --warmup 2)
#
# Needs wrk and, for the nginx target, nginx (both installed with apt if missing) and the
# harness's upstream venv
# (bash $HARNESS/setup.sh also installs LiteLLM and Portkey under /tmp).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS="${HARNESS:-$(cd "$REPO/.." && pwd)/shared/bench/gateway}"
OUT="${OUT:-/tmp/gwbench/archipel-$(date -u +%Y%m%d-%H%M%S)}"
REPS="${REPS:-2}"
DURATION="${DURATION:-15}"
C1_DURATION="${C1_DURATION:-8}"
CONC="${CONC:-1,32}"
MODES="${MODES:-json,stream}"
[ -f "$HARNESS/bench.py" ] || { echo "no harness at $HARNESS (set HARNESS=)" >&2; exit 1; }

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
UPSTREAM_PYTHON="${UPSTREAM_PYTHON:-/tmp/venvs/upstream/bin/python}"
if [ ! -x "$UPSTREAM_PYTHON" ]; then
  python3 -m venv /tmp/venvs/upstream && /tmp/venvs/upstream/bin/pip install -q uvloop aiohttp
fi
export UPSTREAM_PYTHON

if [ -z "${TARGETS:-}" ]; then
  TARGETS=direct,passthrough,nginx,archipel
  [ -x "${LITELLM_VENV:-/tmp/venvs/litellm}/bin/litellm" ] && TARGETS="$TARGETS,litellm"
  [ -f "${PORTKEY_DIR:-/tmp/gwbench/portkey}/node_modules/@portkey-ai/gateway/build/start-server.js" ] \
    && TARGETS="$TARGETS,portkey"
fi

case ",$TARGETS," in
  *,nginx,*) command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light; } ;;
esac

mkdir -p "$OUT"
# nginx as a reverse proxy on the same upstreams, one worker (nginx), its files under $OUT/nginx
mkdir -p "$OUT/nginx"
sed -e "s#@OUT@#$OUT#g" "$REPO/bench/gateway/nginx.conf" > "$OUT/nginx.conf"
# the same gateway config on asyncio's loop, another port and usage file (archipel-asyncio)
{ sed -e 's/port: 4300/port: 4302/' -e 's#archipel-usage.jsonl#archipel-asyncio-usage.jsonl#' \
    "$REPO/bench/gateway/archipel.yaml"; echo "event_loop: asyncio"; } > "$OUT/archipel-asyncio.yaml"
# the same gateway with its rate limits shared through Redis at 127.0.0.1:6379 (archipel-redis)
{ sed -e 's/port: 4300/port: 4303/' -e 's#archipel-usage.jsonl#archipel-redis-usage.jsonl#' \
    "$REPO/bench/gateway/archipel.yaml"
  echo "rate_limits: {backend: redis, redis_url: redis://127.0.0.1:6379/0, prefix: archipel-bench}"
} > "$OUT/archipel-redis.yaml"
# the same, its Redis-shared limits leased 50 request units at a time (archipel-lease)
{ sed -e 's/port: 4300/port: 4305/' -e 's#archipel-usage.jsonl#archipel-lease-usage.jsonl#' \
    "$REPO/bench/gateway/archipel.yaml"
  echo "rate_limits: {backend: redis, redis_url: redis://127.0.0.1:6379/0, prefix: archipel-bench-lease, lease: 50}"
} > "$OUT/archipel-lease.yaml"
# the same gateway with two worker processes (archipel-2w), on both cores
sed -e 's/port: 4300/port: 4304/' -e 's#archipel-usage.jsonl#archipel-2w-usage.jsonl#' \
  "$REPO/bench/gateway/archipel.yaml" > "$OUT/archipel-2w.yaml"
# the harness's targets plus ours (and EXTRA_TARGETS), with the paths filled in
python3 - "$REPO" "$OUT" "$HARNESS/targets.json" "$REPO/bench/gateway/targets.json" \
  ${EXTRA_TARGETS:-} <<'PY'
import json, sys
repo, out, shared, *more = sys.argv[1:]
merged = json.load(open(shared))
for path in more:
    text = open(path).read().replace("@REPO@", repo).replace("@OUT@", out)
    merged.update({k: v for k, v in json.loads(text).items() if not k.startswith("_")})
json.dump(merged, open(f"{out}/targets.json", "w"), indent=1)
PY

echo "targets: $TARGETS  results -> $OUT"
python3 "$HARNESS/bench.py" --targets "$TARGETS" --targets-file "$OUT/targets.json" \
  --conc "$CONC" --modes "$MODES" --duration "$DURATION" --c1-duration "$C1_DURATION" \
  --reps "$REPS" --out "$OUT" "$@"
