#!/usr/bin/env bash
# Reproduce the README's backtest table on a freshly simulated fleet:
#   simulate history -> promtool backfill -> a throwaway Prometheus -> gpu-risk backtest.
# Usage: deploy/backtest-simulated.sh SEED [OUT_DIR]   (needs prometheus + promtool on PATH)
# Knobs (environment): DAYS (4), RACKS (4), NODES (4), GPUS (4), STEP (5m), PORT (19090),
# FAULT_RATE (15 faults per 100 GPU-days: ~100x a real fleet, so every kind shows up).
set -euo pipefail
seed=${1:?usage: $0 SEED [OUT_DIR]}
out=${2:-backtest-out/seed-$seed}
days=${DAYS:-4}
racks=${RACKS:-4}
nodes=${NODES:-4}
gpus=${GPUS:-4}
step=${STEP:-5m}
rate=${FAULT_RATE:-15}
port=${PORT:-19090}
start=2026-10-01T00:00:00Z
bin=${GPU_RISK:-gpu-risk}

for tool in prometheus promtool "$bin"; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install prometheus; make install)" >&2; exit 2; }
done
rm -rf "$out" && mkdir -p "$out"
echo "simulating $days days of $((racks * nodes * gpus)) GPUs (seed $seed)..." >&2
"$bin" simulate history --out "$out/sim" --days "$days" --seed "$seed" \
  --racks "$racks" --nodes "$nodes" --gpus "$gpus" --start "$start" --fault-rate "$rate" >&2
promtool tsdb create-blocks-from openmetrics --max-block-duration=24h \
  "$out/sim/metrics.om" "$out/tsdb" >/dev/null
rm -f "$out/sim/metrics.om"   # large; the TSDB holds it now
printf 'global: {}\n' >"$out/prometheus.yml"
prometheus --config.file="$out/prometheus.yml" --storage.tsdb.path="$out/tsdb" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" \
  >"$out/prometheus.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
# The first day is history to fit on; the backtest replays the rest.
day0="2026-10-01 00:00:00 UTC"
first=$(date -u -d "$day0 + 1 day" +%Y-%m-%dT%H:%M:%SZ)
last=$(date -u -d "$day0 + $days days - 5 minutes" +%Y-%m-%dT%H:%M:%SZ)
"$bin" backtest --prometheus-url "http://127.0.0.1:$port" --topology "$out/sim/topology.yaml" \
  --faults "$out/sim/faults.json" --start "$first" --end "$last" --step "$step" \
  --report "$out/report"
