"""Stage-1 embedding: the loss, the trainer on a tiny generated set, and the shipped model."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from verifier.cli.demo import generated_photo
from verifier.simprov.embedding import TRAINED_MODEL_ID, TrainedEmbedder, get_embedder
from verifier.training.embed import TrainConfig, load, multi_positive_contrastive, train

SHIPPED = Path(__file__).resolve().parents[1] / "verifier" / "simprov" / "weights" / f"{TRAINED_MODEL_ID}.safetensors"


def test_loss_prefers_grouped_embeddings() -> None:
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    centres = F.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    grouped = F.normalize(centres[groups] + 0.01 * torch.randn(6, 8), dim=1)
    shuffled = grouped[torch.tensor([0, 2, 4, 1, 3, 5])]
    assert multi_positive_contrastive(grouped, groups, 0.1) < multi_positive_contrastive(shuffled, groups, 0.1)
    # every anchor's positives: the loss is finite even with singleton groups
    assert torch.isfinite(multi_positive_contrastive(grouped, torch.arange(6), 0.1))


def _tiny_dataset(root: Path, n: int = 12) -> Path:
    (root / "imgs").mkdir(parents=True)
    with (root / "index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "split"])
        for i in range(n):
            generated_photo(i, (160, 120)).save(root / "imgs" / f"{i}.jpg")
            w.writerow([f"imgs/{i}.jpg", "generated", "train"])
        generated_photo(999, (160, 120)).save(root / "imgs" / "test.jpg")
        w.writerow(["imgs/test.jpg", "generated", "test"])
    return root


@pytest.mark.parametrize("mode", ["cached", "online"])
def test_trainer_runs_saves_and_reloads(tmp_path: Path, mode: str) -> None:
    photos = _tiny_dataset(tmp_path / "photos")
    out = tmp_path / "w.safetensors"
    cfg = TrainConfig(photos=photos, out=out, mode=mode, size=96, views=3, epochs=2, batch_images=4, seed=0)
    result = train(cfg)
    assert out.exists() and result["n_train"] + result["n_val"] == 12  # the test photo is never used
    assert len(result["history"]) == 2 and all(np.isfinite(h["loss"]) for h in result["history"])
    model = load(out)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        z = model(x)
    assert z.shape == (2, 256)


@pytest.mark.skipif(not SHIPPED.exists(), reason="trained weights not shipped yet")
def test_shipped_model_shape_norm_determinism_and_robustness() -> None:
    embedder = get_embedder(TRAINED_MODEL_ID)
    assert isinstance(embedder, TrainedEmbedder) and embedder.dim == 256
    a, b = generated_photo(1), generated_photo(2)
    buf = io.BytesIO()
    a.resize((a.width // 2, a.height // 2)).save(buf, "JPEG", quality=40)
    copy = Image.open(io.BytesIO(buf.getvalue()))
    va, vb, vc = embedder.embed([a, b, copy])
    assert va.shape == (256,) and abs(np.linalg.norm(va) - 1) < 1e-5
    np.testing.assert_array_equal(embedder.embed([a])[0], embedder.embed([a])[0])
    assert float(va @ vc) > float(va @ vb)  # a re-encoded, resized copy is nearer than another photo


def test_training_starts_from_given_weights_without_the_imagenet_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--init`: resuming or fine-tuning needs only our safetensors file (issue 15)."""
    from verifier.simprov.nn import embednet

    photos = _tiny_dataset(tmp_path / "photos")
    first = tmp_path / "first.safetensors"
    before = train(TrainConfig(photos=photos, out=first, size=96, views=3, epochs=1, batch_images=4, seed=0))

    def no_imagenet(*args: object, **kw: object) -> None:
        raise AssertionError("the ImageNet package must not be touched when --init is given")

    real = embednet.efficientnet_lite0
    monkeypatch.setattr(embednet, "efficientnet_lite0", lambda pretrained=False: no_imagenet() if pretrained else real(pretrained=False))
    second = tmp_path / "second.safetensors"
    result = train(TrainConfig(photos=photos, out=second, size=96, views=3, epochs=1, batch_images=4, seed=0, init=first))
    assert result["config"]["init"] == str(first)
    # it started where the first run ended: the same validation before as the first run's after
    assert result["val_before"] == pytest.approx(before["val_after"], abs=1e-6)


def test_device_setting_reaches_every_network() -> None:
    """VERIFIER_DEVICE: auto resolves to what torch sees, cuda without a GPU is a clear error,
    and each runtime wrapper moves its modules (CPU here; CUDA in scripts/gpu_check.sh)."""
    from verifier.simprov.change import ChangeDetector
    from verifier.simprov.device import resolve
    from verifier.simprov.rerank import Reranker

    assert resolve("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve("cuda")
    with pytest.raises(ValueError):
        resolve("tpu")
    cpu = torch.device("cpu")
    embedder = get_embedder("auto").to(cpu)
    assert embedder.device == cpu and embedder.embed([generated_photo(3)]).dtype == np.float32
    reranker, change = Reranker.packaged(), ChangeDetector.packaged()
    if reranker is not None and change is not None:
        assert reranker.to(cpu).device == cpu
        assert next(change.to(cpu).net.parameters()).device == cpu


def test_cpu_networks_run_channels_last_with_unchanged_outputs() -> None:
    """`device.place`: on a CPU every runtime wrapper keeps its convolution weights NHWC (the
    layout oneDNN runs fastest here), and the outputs equal the NCHW ones to float rounding."""
    from verifier.simprov.change import ChangeDetector
    from verifier.simprov.pairs import View, align_pair
    from verifier.simprov.regions import RegionEmbedder
    from verifier.simprov.rerank import Reranker

    def convs_nhwc(module: torch.nn.Module) -> bool:
        weights = [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
        # (a depthwise or 1x1 weight is both layouts at once; the 3x3 stem over RGB is not)
        return (bool(weights) and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
                and any(not w.is_contiguous() for w in weights))

    photo = generated_photo(5)
    embedder = get_embedder("auto")
    assert convs_nhwc(embedder._net)  # type: ignore[attr-defined]
    regions = RegionEmbedder()
    assert convs_nhwc(regions._features)
    nhwc = (embedder.embed([photo]), regions.embed_regions([photo]))
    embedder._net.to(memory_format=torch.contiguous_format)  # type: ignore[attr-defined]
    regions._features.to(memory_format=torch.contiguous_format)
    assert not convs_nhwc(embedder._net)  # type: ignore[attr-defined]
    np.testing.assert_allclose(nhwc[0], embedder.embed([photo]), atol=1e-4)
    np.testing.assert_allclose(nhwc[1], regions.embed_regions([photo]), atol=1e-4)

    reranker, change = Reranker.packaged(), ChangeDetector.packaged()
    if reranker is None or change is None:
        return
    assert convs_nhwc(reranker.psen) and convs_nhwc(change.net)
    query = View.of(photo)
    views = [View.of(photo.rotate(4)), View.of(generated_photo(6))]
    vectors = get_embedder("auto").embed([photo.rotate(4), generated_photo(6)])
    pair = align_pair(query, views[0])
    before = reranker.psen_scores(query, views, nhwc[0][0], vectors)[0], change.raw(pair)
    reranker.psen.to(memory_format=torch.contiguous_format)
    change.net.to(memory_format=torch.contiguous_format)
    after = reranker.psen_scores(query, views, nhwc[0][0], vectors)[0], change.raw(pair)
    np.testing.assert_allclose(before[0], after[0], atol=1e-5)
    assert before[1][0] == pytest.approx(after[1][0], abs=1e-5)
    np.testing.assert_allclose(before[1][1], after[1][1], atol=1e-5)


def test_a_large_batch_is_preprocessed_in_threads_with_the_same_vectors() -> None:
    """Issue 15: batch preprocessing runs in threads (it capped GPU embedding at ~200 images/s);
    the tensors and vectors are those of one image at a time."""
    import threading
    import time

    from verifier.simprov import embedding
    from verifier.simprov.regions import RegionEmbedder

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (90 + 13 * i, 160, 3), dtype=np.uint8)) for i in range(embedding.PARALLEL_FROM + 2)]
    threads: set[int] = set()
    lock, two = threading.Lock(), threading.Event()
    parallel, deadline = embedding.usable_cpus() > 1, time.monotonic() + 10

    def record(im: Image.Image) -> torch.Tensor:
        with lock:
            threads.add(threading.get_ident())
            if len(threads) > 1:
                two.set()
        if parallel:  # hold the first worker until a second one runs: a pool whose first worker is idle
            two.wait(max(0.0, deadline - time.monotonic()))  # again by the next submit starts no other (seen on a busy machine)
        return embedding.to_tensor(im, 64)

    got = embedding.each(record, images)
    if parallel:
        assert len(threads) > 1 and threading.get_ident() not in threads
    for t, im in zip(got, images, strict=True):
        assert torch.equal(t, embedding.to_tensor(im, 64))
    threads.clear()
    embedding.each(record, images[:2])
    assert threads == {threading.get_ident()}  # a small batch stays on the caller's thread

    model = get_embedder("auto")
    np.testing.assert_allclose(model.embed(images), np.concatenate([model.embed([im]) for im in images]), atol=1e-4)
    regions = RegionEmbedder()
    np.testing.assert_allclose(regions.embed_regions(images), np.concatenate([regions.embed_regions([im]) for im in images]),
                               atol=1e-4)
