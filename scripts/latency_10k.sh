#!/usr/bin/env bash
# Whole-verification latency with a 10k-image registry (BENCHMARKS.md): the dev registry
# (3,870) plus 6,130 quarter crops of train photos as distractors, 300 sampled dev queries.
set -euo pipefail
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
OUT=${OUT:-/tmp/devbench}
SEED=${SEED:-0}

verifier bench-data --shared "$SHARED" --out "$OUT" --seed "$SEED" --distractors 6130
verifier bench --queries "$OUT/queries.csv" --registry-extra "$OUT/registry" --registry-extra "$OUT/distractors" \
  --sample 300 --baselines "" --seed "$SEED" --out "$OUT/results-10k.json"
