"""The EfficientNet-Lite0 port: the packaged ImageNet weights load strictly and classify."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from verifier.simprov.nn.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    efficientnet_lite0,
)

skdata = pytest.importorskip("skimage.data")

# ImageNet class indices
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
ROCKET = {744, 657, 812}  # projectile, missile, space shuttle


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return efficientnet_lite0(pretrained=True)


def _top5(model: torch.nn.Module, name: str) -> set[int]:
    img = torch.from_numpy(getattr(skdata, name)()).permute(2, 0, 1).float()[None] / 255
    img = F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    x = (img - torch.tensor(LITE_MEAN)[:, None, None]) / torch.tensor(LITE_STD)[:, None, None]
    with torch.no_grad():
        return set(model(x)[0].topk(5).indices.tolist())


@pytest.mark.parametrize("name,classes", [("chelsea", CATS), ("coffee", COFFEE), ("rocket", ROCKET)])
def test_imagenet_top5(model: torch.nn.Module, name: str, classes: set[int]) -> None:
    assert _top5(model, name) & classes


def test_feature_map_shape(model: torch.nn.Module) -> None:
    with torch.no_grad():
        feats = model.forward_features(torch.zeros(2, 3, 224, 160))
    assert feats.shape == (2, 1280, 7, 5)
