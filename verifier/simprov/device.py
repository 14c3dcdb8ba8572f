"""Where the networks run: `VERIFIER_DEVICE` = auto (CUDA when present), cpu or cuda.

Every runtime wrapper (embedders, PSEN + re-orderer, ChangeNet) keeps its modules on one
device, moves its inputs there and brings results back as float32 NumPy. bf16 autocast is
used on CUDA for the stage-1 embedding only, where its effect was measured (min cosine to
fp32 0.997 on an H200, issue 15); the pairwise networks stay fp32. On a CPU the weights are
kept channels-last (`place`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def usable_cpus() -> int:
    """Cores this process may run on: its affinity (which a container's CPU set narrows), not the
    host's count; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


def place(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`module` on `device`, in eval mode; on a CPU with its 4-D weights channels-last (NHWC),
    which oneDNN's convolutions run much faster than NCHW for these nets (2 cores, batch 1:
    EfficientNet-Lite0 at 256 px 20 -> 14.6 ms, 9 region crops at 128 px 39 -> 23 ms, PSEN on
    3 pairs 33 -> 17 ms, ChangeNet 8.8 -> 6.5 ms; outputs equal to 2e-5). Inputs need no
    conversion: a convolution follows its weight's layout. On CUDA the layout is left as it was
    (not measured there)."""
    module = module.to(device).eval()
    if device.type == "cpu":
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float32)
