#!/usr/bin/env bash
# The generalisation benchmark (BENCHMARKS.md): queries per edit family (verifier.simprov.edits)
# from test photos, MICC-F220's real copy-move forgeries, and the held-out photos as distinct,
# on the dev registry (+ MICC-F220's photos). Its own OUT: the MICC photos join its registry.
set -euo pipefail
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
OUT=${OUT:-/tmp/fambench}
SEED=${SEED:-0}
N=${N:-60}

verifier bench-data --shared "$SHARED" --out "$OUT" --seed "$SEED" --n-per-kind 0 --n-identical 0 --families "$N"
verifier bench --queries "$OUT/families.csv" --registry-extra "$OUT/registry" \
  --baselines phash,pdq,backbone --seed "$SEED" --out "$OUT/results-families.json"
