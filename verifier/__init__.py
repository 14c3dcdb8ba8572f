"""provenance-verifier: where did this image come from?"""

import os

__version__ = "0.1.0"

# Set before torch, faiss or OpenCV load (they are only imported by this package's modules). Each
# of torch and faiss ships its own OpenMP runtime, whose idle worker threads spin by default, and
# OpenCV keeps a third pool: on a few cores a verification that alternates between them (SIFT,
# FAISS, small convolutions) spends its time waiting for cores the other runtimes' spinning
# threads hold. Sleeping workers made stage 2 ~25 ms faster on 2 cores and let the steps that
# `VERIFIER_PARALLEL_STAGES` runs at once gain (BENCHMARKS.md, "Independent steps at once"). An
# OMP_WAIT_POLICY given by the operator is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
