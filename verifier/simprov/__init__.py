"""SImProv (Black et al., Pattern Recognition 2023) as a library: the networks (`nn`), one
model catalog (`catalog`: ids, weights, calibration), the stage-1 embedding, alignment F_A,
query/candidate pairs, stage-2 re-ranking, stage-3 change detection, the baseline pixel
check, augmentations and metrics.

Imports torch, OpenCV, numpy and Pillow only: never storage, the API, matching or training,
so the service, the trainers and the benchmarks all run the same code.
"""
