"""Where the networks run: `VERIFIER_DEVICE` = auto (CUDA when present), cpu or cuda.

Every runtime wrapper (embedders, PSEN + re-orderer, ChangeNet) keeps its modules on one
device, moves its inputs there and brings results back as float32 NumPy. bf16 autocast is
used on CUDA for the stage-1 embedding only, where its effect was measured (min cosine to
fp32 0.997 on an H200, issue 15); the pairwise networks stay fp32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve(name: str) -> torch.device:
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("VERIFIER_DEVICE=cuda but torch sees no CUDA device (use auto or cpu)")
    return torch.device(name)


@contextlib.contextmanager
def inference(device: torch.device, *, bf16: bool = False) -> Iterator[None]:
    """inference_mode, plus bf16 autocast on CUDA when asked."""
    with torch.inference_mode():
        if bf16 and device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float32)
