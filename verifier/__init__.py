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
# NumPy's OpenBLAS (stage 1's fused region scores, the re-scoring of a shortlist) is a fourth pool,
# whose workers spin for 2**28 cycles after every call by default: on 2 cores the torch passes that
# follow ran ~50 ms slower while they did. 2**4: they sleep at once (verify p50 265-270 -> 232 ms at
# 10,000 originals; BENCHMARKS.md, "OpenBLAS workers that sleep"). Read when OpenBLAS loads, so
# only where this package is imported before NumPy; an operator's value is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
