#!/usr/bin/env bash
# This tree against a baseline commit, alternately in one run: bench/rest_load.py on each,
# ROUNDS times (default 2; the tree measured first alternates by round), the baseline `git worktree`d into var/ab-baseline (same
# virtualenv; this tree's bench/rest_load.py measures both). Usage: bench/tree_ab.sh BASELINE_COMMIT [rest_load.py arguments...]
# Each tree has its own database (BENCH_DATABASE_URL, default .../bourse_bench, for this tree; the same
# name + "_baseline" for the baseline, created here if missing), so trees whose migrations differ
# are compared too. GCPROBE=1: every process of both trees runs bench/gcprobe (the garbage collector's share of its
# CPU); each run's REST processes' lines are printed after it.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=${1:?usage: bench/tree_ab.sh BASELINE_COMMIT [rest_load.py arguments...]}
shift
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--compare "" --seconds 8 --sustain 20 --rate 500 --warmup 2 --connections 16)
base="$PWD/var/ab-baseline"
git worktree remove --force "$base" 2>/dev/null || rm -rf "$base"
git worktree add --detach "$base" "$baseline" >/dev/null
ln -s "$PWD/.venv" "$base/.venv"
cp bench/rest_load.py bench/benchdb.py "$base/bench/"  # both trees measured by the same benchmark
trap 'git worktree remove --force "$base"' EXIT
url="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bourse_bench}"
base_url="${url}_baseline"
.venv/bin/python - "$url" "${base_url##*/}" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg

url, name = sys.argv[1], sys.argv[2]
with psycopg.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")), autocommit=True) as connection:
    if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        connection.execute(f'CREATE DATABASE "{name}"')
PY
for round in $(seq 1 "${ROUNDS:-2}"); do
  # Which tree runs first alternates by round: the machine's load rises through a round, and
  # the tree run first in every round won four rounds of five against one of equal cost (2026-12-07).
  trees=("$PWD" "$base")
  [ $((round % 2)) -eq 0 ] && trees=("$base" "$PWD")
  for tree in "${trees[@]}"; do
    echo "=== round $round: $( [ "$tree" = "$PWD" ] && echo "this tree $(git rev-parse --short HEAD)" || echo "baseline $baseline")"
    gcdir="$PWD/var/gc/round$round-$( [ "$tree" = "$PWD" ] && echo this || echo baseline)"
    rm -rf "$gcdir"
    probe=()
    [ -n "${GCPROBE:-}" ] && probe=(PYTHONPATH="$PWD/bench/gcprobe" GCPROBE_DIR="$gcdir")
    db="$url"
    [ "$tree" = "$base" ] && db="$base_url"
    (cd "$tree" && env "${probe[@]}" DATABASE_URL="$db" \
      REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/5}" BOURSE_ALLOW_GENERATED_SECRETS=1 \
      BOURSE_DATA_DIR="$PWD/var/bench" LOG_LEVEL=WARNING \
      .venv/bin/python bench/rest_load.py "${args[@]}" \
      | grep -E "GET /api|POST /api|ratio|sustained|CPU per|open loop|alone|settlement")
    [ -n "${GCPROBE:-}" ] && grep -h "daphne" "$gcdir"/* 2>/dev/null | grep -v types | cut -d'|' -f2-6 || true
  done
done
