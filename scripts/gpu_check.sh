#!/usr/bin/env bash
# Issue 15's GPU figures on a lent device machine (BENCHMARKS.md, "GPU").
#
# Here, once:  python scripts/gpu_prepare.py --shared ../shared --out .gpu
#              and the service's wheels for Python 3.12 in ignored folders (the device README says how;
#              the device already has torch, numpy, Pillow, opencv, safetensors, tqdm, psutil).
# There:       install the wheels into a folder on PYTHONPATH, then  bash scripts/gpu_check.sh
#
# Writes $OUT/gpu.json (the networks alone), $OUT/ingest.json (batch ingest through
# Registry.register_batch), $OUT/bench.json (verification through the pipeline, as the API
# runs it) and $OUT/ingest_profile.txt (where batch ingest's time goes). Under 9 minutes on one
# H200. DEVICE=cpu N_INGEST=40 SAMPLE=20 REPS=5 BATCH=8 tries it on a CPU.
set -uo pipefail
out="${OUT:-.}"
data="${GPU_DATA:-.gpu}"
export VERIFIER_DEVICE="${DEVICE:-cuda}" PYTHONUNBUFFERED=1 PYTHONPATH=".:${PYTHONPATH:-}"
py="${PYTHON:-python3}"
status=0
quiet() { tr '\r' '\n' | grep -v -E '(it|img|query|batch)/s\]$|s/(it|img|query|batch)\]$'; }

echo "== networks alone"
timeout 110 "$py" scripts/gpu_check.py --device "$VERIFIER_DEVICE" --out "$out/gpu.json" --reps "${REPS:-50}" || status=1

echo "== batch ingest (C2PA validation, signer and duplicate checks, embedding, rows, index)"
timeout 170 "$py" -m verifier.cli bench-ingest --photos "$data/shared/datasets/photos" --n "${N_INGEST:-450}" \
  --copies 0 --batch "${BATCH:-64}" --seed 0 --out "$out/ingest.json" 2>&1 | quiet || status=1

echo "== verification through the pipeline"
timeout 220 "$py" -m verifier.cli bench --queries "$data/dev/queries.csv" --registry-extra "$data/dev/registry" \
  --baselines '' --seed 0 --sample "${SAMPLE:-0}" --out "$out/bench.json" 2>&1 | quiet || status=1
echo "== batch ingest under cProfile"
timeout 60 "$py" scripts/gpu_ingest_profile.py --photos "$data/shared/datasets/photos" --n "${N_PROFILE:-256}" \
  --batch "${BATCH:-64}" --out "$out/ingest_profile.txt" 2>&1 | quiet || status=1
exit $status
