"""Fold BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm after a conv is an affine map per channel, so it can live in the
conv's weights and bias: one pass over the activations less per layer (on 2 CPU cores the
backbone spent ~14 % of its time in batch_norm). Outputs agree with the unfused network to
float rounding; training code never sees a fused network.
"""

from __future__ import annotations

import copy
from itertools import pairwise

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` in which every BatchNorm2d registered right after a Conv2d
    in the same parent (the order every network here applies them) is folded into it and
    replaced by Identity. Tests compare the outputs with the unfused network's."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return model
