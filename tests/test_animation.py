"""Animations searched beyond their first frame: a meme GIF or a slideshow whose news photo is a later
frame. Only when the first frame matches nothing, the pictures shown longest after it (frames that
differ by a progress bar are one picture), within a bound on the frames decoded."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from manifests.signing import ManifestDefinition, SignerCredentials, sign_image
from tests.conftest import auth
from tests.helpers import encode
from verifier import images
from verifier.images import frame_count, later_frames, load_image
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov.embedding import Embedder

LIMIT = 80_000_000  # the service's default upload pixel limit


def photo(name: str, side: int = 320) -> Image.Image:
    skdata = pytest.importorskip("skimage.data")
    img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    img.thumbnail((side, side))
    return img


def animation(frames: list[Image.Image], fmt: str = "GIF", size: tuple[int, int] = (320, 320),
              durations: list[int] | int = 200) -> bytes:
    """The frames on one canvas, 200 ms each unless told, looping."""
    canvas = [Image.new("RGB", size, (255, 255, 255)) for _ in frames]
    for c, f in zip(canvas, frames, strict=True):
        c.paste(f, ((size[0] - f.width) // 2, (size[1] - f.height) // 2))
    buf = io.BytesIO()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    canvas[0].save(buf, fmt, save_all=True, append_images=canvas[1:], duration=durations, loop=0, **kw)
    return buf.getvalue()


def claiming_gif(side: int) -> bytes:
    """Two 8 x 8 frames whose second frame's descriptor claims `side` x `side` px (a GIF allows up
    to 65535 over a few bytes; Pillow grows the canvas to hold it)."""
    small = [Image.new("P", (8, 8), i) for i in range(2)]
    for f in small:
        f.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buf = io.BytesIO()
    small[0].save(buf, "GIF", save_all=True, append_images=small[1:], duration=100)
    data = bytearray(buf.getvalue())
    at = data.rindex(b"\x2c\x00\x00\x00\x00\x08\x00\x08\x00")  # the second frame's descriptor: at 0,0, 8 x 8
    data[at + 5 : at + 9] = side.to_bytes(2, "little") * 2
    return bytes(data)


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b.resize(a.size), np.float32)).mean())


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_the_pictures_shown_longest_come_back_decoded_and_in_order(fmt: str) -> None:
    names = ["chelsea", "coffee", "astronaut", "rocket", "camera", "immunohistochemistry"]
    data = animation([photo(n) for n in names], fmt, durations=[200, 100, 300, 300, 100, 300])
    assert frame_count(data) == 6
    got = later_frames(data, 6, max_frames=4, max_side=1024, max_pixels=LIMIT)
    assert [i for i, _ in got] == [2, 3, 5]  # the three shown 300 ms
    first = load_image(data, max_bytes=len(data), max_pixels=10**7)[1]
    for index, frame in got:
        assert frame.mode == "RGB" and frame.size == first.size
        reference = animation([photo(names[index])], "PNG")
        assert _mean_diff(frame, Image.open(io.BytesIO(reference)).convert("RGB")) < 6  # that frame, not another
    assert later_frames(data, 6, max_frames=1, max_side=1024, max_pixels=LIMIT) == []
    assert later_frames(encode(photo("coffee"), "PNG"), 1, max_frames=4, max_side=1024, max_pixels=LIMIT) == []


def test_a_picture_shown_again_counts_once_and_its_time_adds_up() -> None:
    a, b, c = photo("chelsea"), photo("coffee"), photo("rocket")
    # b is shown twice for 300 ms, c once for 500: b is the longest shown after the first frame's picture
    data = animation([a, b, c, b, a], durations=[100, 300, 500, 300, 100])
    assert [i for i, _ in later_frames(data, 5, max_frames=2, max_side=1024, max_pixels=LIMIT)] == [1]
    assert [i for i, _ in later_frames(data, 5, max_frames=4, max_side=1024, max_pixels=LIMIT)] == [1, 2]  # a again is the first picture


def test_repeated_frames_are_taken_once_and_large_frames_come_at_working_size() -> None:
    a, b = photo("chelsea"), photo("coffee")
    nearly = [a.copy() for _ in range(2)]
    for i, f in enumerate(nearly):  # a blinking cursor: the same picture (a GIF writer merges exact repeats)
        f.paste((255, 0, 0), (10 + i, 10, 14 + i, 14))
    data = animation([a, *nearly, b], size=(320, 320))
    assert frame_count(data) == 4
    assert [i for i, _ in later_frames(data, 4, max_frames=4, max_side=1024, max_pixels=LIMIT)] == [3]  # frames 1-2 repeat frame 0
    big = animation([photo("chelsea", 1500), photo("coffee", 1500)], "WEBP", size=(1500, 1200))
    (index, frame), = later_frames(big, 2, max_frames=4, max_side=512, max_pixels=LIMIT)
    assert index == 1 and max(frame.size) == 512


def test_a_gif_is_only_decoded_as_far_as_the_budget_reaches(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [Image.new("RGB", (64, 64), (i * 40 % 256, i * 90 % 256, i * 20 % 256)) for i in range(60)]
    data = animation(frames, size=(64, 64))
    monkeypatch.setattr(images, "ANIMATION_DECODE_PIXELS", 64 * 64 * 10)  # ten frames' pixels
    got = later_frames(data, frame_count(data), max_frames=4, max_side=None, max_pixels=LIMIT)
    assert got and max(i for i, _ in got) <= 9  # not frame 59


def test_many_frames_and_a_truncated_animation_stay_bounded() -> None:
    frames = [Image.new("RGB", (32, 32), (i % 256, i * 7 % 256, i // 256 * 20)) for i in range(3000)]
    frames[2500] = Image.fromarray(((np.indices((32, 32)).sum(0) // 4 % 2) * 255).astype(np.uint8)).convert("RGB")
    buf = io.BytesIO()
    shown = [20] * 3000
    shown[2500] = 5000  # a picture held on: found although thousands of pictures came before it
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=shown)
    data = buf.getvalue()
    started = time.perf_counter()
    n = frame_count(data)
    got = later_frames(data, n, max_frames=16, max_side=1024, max_pixels=LIMIT)
    assert n == 3000 and len(got) == 15 and 2500 in [i for i, _ in got] and time.perf_counter() - started < 10
    cut = animation([photo(n) for n in ("chelsea", "coffee", "astronaut")])
    cut = cut[: len(cut) * 2 // 3]  # the last frame's data is gone
    load_image(cut, max_bytes=len(cut), max_pixels=10**7)  # the first frame is whole
    assert len(later_frames(cut, frame_count(cut), max_frames=3, max_side=1024, max_pixels=LIMIT)) <= 2  # no exception


def test_a_later_frame_claiming_a_huge_extent_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GIF frame's descriptor may claim up to 65535 x 65535 px over a few bytes, and Pillow grows the
    canvas to hold it: the frame is refused by the upload's pixel limit before its pixels are allocated."""
    data = claiming_gif(4000)  # 16 MP: within the decode budget, over this limit
    decoded: list[tuple[int, int]] = []
    real = images._frame_rgb

    def spy(img: Image.Image, icc: bytes | None, max_side: int | None) -> Image.Image:
        decoded.append(img.size)
        return real(img, icc, max_side)

    monkeypatch.setattr(images, "_frame_rgb", spy)
    assert later_frames(data, 2, max_frames=4, max_side=1024, max_pixels=10**7) == []
    assert decoded == [(8, 8)]  # the first frame only
    later_frames(data, 2, max_frames=4, max_side=1024, max_pixels=10**8)
    assert decoded[-1] == (4000, 4000)  # under a higher limit it is read (and found truncated)


# -- through the service ---------------------------------------------------------------------


@pytest.fixture
def registered(client: TestClient, publisher_key: str, signer: SignerCredentials) -> dict[str, str]:
    data = sign_image(encode(photo("astronaut", 512), "JPEG", quality=92), "image/jpeg", signer,
                      ManifestDefinition(title="astronaut.jpg"))
    r = client.post("/v1/originals", files={"file": ("astronaut.jpg", data, "image/jpeg")}, headers=auth(publisher_key))
    assert r.status_code == 201, r.text
    return {"id": r.json()["id"], "label": r.json()["c2pa"]["active_manifest_label"]}


def _verify(client: TestClient, key: str, data: bytes, name: str = "q.gif", mime: str = "image/gif") -> dict:
    r = client.post("/v1/verify", files={"file": (name, data, mime)}, headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()["report"]


def test_the_news_photo_in_a_later_frame_is_found_and_named(client: TestClient, verifier_key: str,
                                                              registered: dict[str, str]) -> None:
    gif = animation([photo("chelsea"), photo("coffee"), photo("astronaut"), photo("rocket")])
    report = _verify(client, verifier_key, gif)
    assert report["match"] is not None and report["match"]["original_id"] == registered["id"]
    assert report["search"]["frame"] == 2 and report["input"]["frames"] == 4
    first = _verify(client, verifier_key, animation([photo("astronaut"), photo("coffee")]))
    assert first["match"]["original_id"] == registered["id"] and first["search"]["frame"] == 0
    still = _verify(client, verifier_key, encode(photo("astronaut"), "JPEG"), "q.jpg", "image/jpeg")
    assert still["input"]["frames"] == 1 and still["search"]["frame"] == 0
    none = _verify(client, verifier_key, animation([photo("chelsea"), photo("coffee")]))
    assert none["match"] is None and none["search"]["frame"] == 0 and none["input"]["frames"] == 2


def test_damaged_and_hostile_animations_get_a_report_or_a_problem_never_a_crash(
        client: TestClient, verifier_key: str, registered: dict[str, str]) -> None:
    gif = animation([photo("chelsea"), photo("coffee"), photo("astronaut")])
    cut = gif[: len(gif) * 2 // 3]  # the later frames' data gone: the first frame is still a picture
    report = _verify(client, verifier_key, cut)
    assert report["input"]["frames"] >= 1 and report["search"]["frame"] in (0, 1)
    report = _verify(client, verifier_key, claiming_gif(65535))  # a later frame claiming 4.3 gigapixels
    assert report["match"] is None and report["search"]["frame"] == 0
    r = client.post("/v1/verify", files={"file": ("q.gif", gif[:40], "image/gif")}, headers=auth(verifier_key))
    assert r.status_code in (400, 415, 422) and r.headers["content-type"].startswith("application/problem+json")


def test_byContent_resolves_an_animation_by_a_later_frame(client: TestClient, verifier_key: str,
                                                           registered: dict[str, str]) -> None:
    gif = animation([photo("chelsea"), photo("astronaut")])
    r = client.post("/sbr/v1/matches/byContent", content=gif, headers={**auth(verifier_key), "Content-Type": "image/gif"})
    assert r.status_code == 200, r.text
    assert r.json()["matches"][0]["manifestId"] == registered["label"]


def test_the_setting_limits_the_search_to_the_first_frame(registered: dict[str, str], verifier_key: str,
                                                          settings: Settings, embedder: Embedder) -> None:
    from verifier.api.app import create_app

    gif = animation([photo("chelsea"), photo("astronaut")])
    for frames, matched in ((1, False), (2, True)):  # opened after the registration: it loads the registry
        svc = Service.open(settings.model_copy(update={"animation_frames": frames}), embedder=embedder)
        try:
            with TestClient(create_app(service=svc)) as c:
                report = _verify(c, verifier_key, gif)
        finally:
            svc.close()
        assert (report["match"] is not None) == matched and report["search"]["frame"] == (1 if matched else 0)
