#!/usr/bin/env bash
# The dev benchmark (BENCHMARKS.md): build queries from ../shared (test split + COVERAGE),
# then run `verifier bench` with its baselines. Outputs go to $OUT (default /tmp/devbench),
# never into the repository (../shared data stays outside it).
set -euo pipefail
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
OUT=${OUT:-/tmp/devbench}
SEED=${SEED:-0}

verifier bench-data --shared "$SHARED" --out "$OUT" --seed "$SEED"
verifier bench --queries "$OUT/queries.csv" --registry-extra "$OUT/registry" \
  --baselines phash,pdq,backbone --compare-exhaustive --seed "$SEED" --out "$OUT/results-dev.json"
