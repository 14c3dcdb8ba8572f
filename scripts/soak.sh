#!/usr/bin/env bash
# The soak of issue 12 (not in CI): 8 clients, 5 minutes, hostile and ordinary requests.
set -euo pipefail
cd "$(dirname "$0")/.."
python scripts/soak.py --duration "${DURATION:-300}" --clients "${CLIENTS:-8}" --out "${OUT:-soak.json}"
