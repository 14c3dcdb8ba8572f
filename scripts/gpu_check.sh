#!/usr/bin/env bash
# Issue 15's GPU figures, on a lent device machine (run from the repo root):
#   run(command="bash scripts/gpu_check.sh", carry=[...wheels of opencv-python-headless and safetensors if absent])
# Writes $OUT/gpu.json (or ./gpu.json). Under 6 minutes on one H200.
set -euo pipefail
out="${OUT:-.}/gpu.json"
python -c "import cv2" 2>/dev/null || pip install --no-index --find-links wheels opencv-python-headless 2>/dev/null || true
python -c "import safetensors" 2>/dev/null || pip install --no-index --find-links wheels safetensors 2>/dev/null || true
PYTHONPATH=. timeout 330 python scripts/gpu_check.py --device "${DEVICE:-cuda}" --out "$out"
