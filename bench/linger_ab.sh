#!/usr/bin/env bash
# The engine's linger, A/B in one run: bench/rest_load.py alternately with
# BOURSE_ENGINE_LINGER_MS=0 and 2, two rounds (bench/reports/linger/report.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for round in 1 2; do
  for linger in 0 2; do
    echo "=== round $round linger $linger"
    env DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bourse_bench}" \
      REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/5}" BOURSE_ALLOW_GENERATED_SECRETS=1 \
      BOURSE_DATA_DIR="$PWD/var/bench" LOG_LEVEL=WARNING BOURSE_ENGINE_LINGER_MS=$linger \
      .venv/bin/python bench/rest_load.py --compare "" --seconds 5 --sustain 10 --rate 100 --warmup 1 --connections 16 \
      | grep -E "POST|sustained|CPU per pl|open loop|alone"
  done
done
