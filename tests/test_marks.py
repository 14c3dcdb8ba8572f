"""Publishers' marks: a watermark shared by registered photos is not evidence of a match
(`simprov.marks`, `matching.marks`, /v1/publishers/{id}/marks, `verifier publishers add-mark`)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from manifests.signing import ManifestDefinition, SignerCredentials, sign_image
from tests.conftest import auth
from tests.helpers import encode, photo_like
from verifier.matching.marks import CACHE_GRACE_S, MAX_MARK_BYTES, MarkSet
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov import marks as M
from verifier.simprov.align import RATIO, closer_counts, closer_features, sift_features
from verifier.simprov.embedding import Embedder
from verifier.simprov.pairs import View
from verifier.storage.accounts import (
    Scope,
    create_publisher,
    issue_key,
    list_publishers,
)
from verifier.storage.marks import add_mark, marks_of, remove_mark

TEXT = "NEWSWIRE"


def mark_file(text: str = TEXT, size: int = 120) -> Image.Image:
    """A stock site's name as it overlays photos: white, 43 % opaque, a dark outline."""
    font = ImageFont.load_default(size=size)
    probe = ImageDraw.Draw(Image.new("RGBA", (8, 8)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font, stroke_width=2)
    img = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((4 - left, 4 - top), text, font=font, fill=(255, 255, 255, 110), stroke_width=2,
                             stroke_fill=(0, 0, 0, 90))
    return img


def stamped(photo: Image.Image, mark: Image.Image, height_share: float = 1 / 7) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """`photo` with `mark` across its middle (its height `height_share` of the photo's); the box it covers."""
    h = max(8, round(photo.height * height_share))
    w = round(mark.width * h / mark.height)
    small = mark.resize((w, h), Image.LANCZOS)
    x, y = (photo.width - w) // 2, (photo.height - h) // 2
    out = photo.convert("RGBA")
    out.alpha_composite(small, (x, y))
    return out.convert("RGB"), (x, y, x + w, y + h)


def real_photo(name: str) -> Image.Image:
    skdata = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def flat_photo(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A smooth photo: where a semi-opaque mark over it looks the same whatever lies under it."""
    return photo_like(seed, size).filter(ImageFilter.GaussianBlur(6))


@pytest.fixture(scope="module")
def model() -> M.MarkModel:
    return M.mark_model(mark_file())


def inliers(query: View, original: View) -> int:
    """RANSAC inliers of the query against the original, as stage 2's fits count them."""
    fq, fc = query.features, original.features
    if len(fq) < 8 or len(fc) < 8:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(fc.matching, fq.matching, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < RATIO * n.distance]
    if len(good) < 8:
        return 0
    src = fc.points[[m.queryIdx for m in good]]
    dst = fq.points[[m.trainIdx for m in good]]
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    return 0 if mask is None else int(mask.sum())


# -- what a mark takes out of a view ----------------------------------------------------------------


def test_the_mark_is_found_where_it_lies_and_nowhere_on_an_unmarked_photo(model: M.MarkModel) -> None:
    for seed in range(3):
        plain = flat_photo(seed)
        marked, (x0, y0, x1, y1) = stamped(plain, mark_file())
        f = sift_features(np.asarray(marked))
        on = M.on_mark(f, model, np.asarray(marked).shape)
        assert on.sum() >= 8, seed
        x, y = f.points[on].T
        inside = (x >= x0 - 4) & (x <= x1 + 4) & (y >= y0 - 4) & (y <= y1 + 4)
        assert inside.mean() >= 0.95, seed
        in_box = (f.points[:, 0] >= x0) & (f.points[:, 0] <= x1) & (f.points[:, 1] >= y0) & (f.points[:, 1] <= y1)
        assert on[in_box].mean() >= 0.6, seed  # most of what SIFT sees on the mark
        fp = sift_features(np.asarray(plain))
        assert M.on_mark(fp, model, np.asarray(plain).shape).sum() == 0, seed


def test_two_unrelated_photos_align_through_a_shared_mark_until_it_is_enrolled(model: M.MarkModel) -> None:
    """The failure the mark exists for: the fit is the mark's, and without it nothing is left."""
    a, _ = stamped(flat_photo(10), mark_file())
    b, _ = stamped(flat_photo(11), mark_file())
    va, vb = View.of(a), View.of(b)
    assert inliers(vb, va) >= 8  # an unrelated photo "matches" through the mark
    stripped = vb.stripped(lambda f, frame: M.without(f, M.on_mark(f, model, frame)))
    assert len(stripped.features) < len(vb.features)
    assert inliers(stripped, va) < 8


def test_a_copy_of_a_marked_photo_still_aligns_with_it(model: M.MarkModel) -> None:
    original, _ = stamped(real_photo("coffee"), mark_file())
    copy = original.resize((original.width * 3 // 4, original.height * 3 // 4), Image.BICUBIC)
    vo, vq = View.of(original), View.of(copy)
    stripped = vq.stripped(lambda f, frame: M.without(f, M.on_mark(f, model, frame)))
    assert len(stripped.features) < len(vq.features)  # the mark's keypoints are gone ...
    assert inliers(stripped, vo) >= 30  # ... and the photo's own still align


def test_the_closer_look_at_a_marked_query_loses_the_mark_too(model: M.MarkModel) -> None:
    """Stage 2's closer look (384 px) fits the query's own image again: the mark's keypoints are
    taken out there as well, or an unrelated photo would fit through the mark at the finer scale."""
    a, _ = stamped(flat_photo(10, (512, 384)), mark_file())
    b, _ = stamped(flat_photo(11, (512, 384)), mark_file())
    query = View.of(b, closer=True)
    look = query.closer()
    assert look is not None and look.mirrored is not None
    original = closer_features(a)
    assert closer_counts(look, [original], 8)[0] >= 8  # through the mark
    stripped = query.stripped(lambda f, frame: M.without(f, M.on_mark(f, model, frame)))
    kept = stripped.closer()
    assert kept is not None and kept.mirrored is not None and kept.shape == look.shape
    assert len(kept.features) < len(look.features) and len(kept.mirrored) < len(look.mirrored)
    assert closer_counts(kept, [original], 8)[0] == 0


def test_a_mirrored_copy_loses_the_mark_in_its_mirrored_features(model: M.MarkModel) -> None:
    marked, _ = stamped(flat_photo(4), mark_file())
    query = View.of(marked.transpose(Image.FLIP_LEFT_RIGHT))  # reads backwards; its mirrored SIFT reads it right
    stripped = query.stripped(lambda f, frame: M.without(f, M.on_mark(f, model, frame)))
    assert len(stripped.mirrored_features()) < len(query.mirrored_features()) - 8


def test_a_photo_enrolled_as_a_mark_cannot_hide_itself() -> None:
    """A 'mark' that would cover most of a query is ignored there (MAX_SHARE)."""
    photo = real_photo("astronaut").resize((256, 256), Image.BICUBIC)
    model = M.mark_model(photo.convert("RGBA"))
    f = sift_features(np.asarray(photo))
    assert M.on_mark(f, model, np.asarray(photo).shape).sum() == 0
    small = photo.resize((128, 128), Image.BICUBIC)  # or at another size
    assert M.on_mark(sift_features(np.asarray(small)), model, np.asarray(small).shape).sum() == 0


@pytest.mark.parametrize("exact_max", [10**9, 0])  # one matrix product; the IVF index
def test_one_index_over_many_marks_finds_what_each_mark_finds_alone(model: M.MarkModel, exact_max: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "EXACT_MAX", exact_max)
    words = ["AGENCY", "PHOTOS", "HERALD", "OBSERVER"]
    models = [model, *(M.mark_model(mark_file(w, 80)) for w in words)]
    index = M.MarkIndex(models)
    assert (index._ivf is not None) is (exact_max == 0)
    views = [stamped(flat_photo(20 + i), mark_file(w, 80))[0] for i, w in enumerate([TEXT, *words])]
    views += [flat_photo(30), real_photo("coffee").resize((256, 192))]  # unmarked
    hits = 0
    for img in views:
        for f in (sift_features(np.asarray(img)), sift_features(np.asarray(img.transpose(Image.FLIP_LEFT_RIGHT)))):
            shape = np.asarray(img).shape
            alone = {i: on for i, m in enumerate(models) if (on := M.on_mark(f, m, shape)).any()}
            got = index.on(f, shape)
            assert got.keys() == alone.keys()
            assert all((got[i] == alone[i]).all() for i in alone)
            hits += len(got)
    assert hits >= len(models)  # each stamped mark was found: the comparison is not of empty sets
    rebuilt = [index.model(i) for i in range(len(models))]  # what a rebuild is made of
    # the IVF index keeps float16 codes: the descriptors come back within float16's step of them, and no further
    atol = 1e-3 if index._ivf is not None else 0.0
    assert all(np.allclose(r.descriptors, m.descriptors, rtol=0, atol=atol) and np.array_equal(r.points, m.points)
               for r, m in zip(rebuilt, models, strict=True))
    if index._ivf is not None:  # and a rebuild from them (new centroids) stays as close
        again = M.MarkIndex(rebuilt)
        assert all(np.allclose(again.model(i).descriptors, m.descriptors, rtol=0, atol=atol) for i, m in enumerate(models))
    if index._ivf is not None:  # the index's copy of the descriptors is the only one it keeps
        assert all(len(m.descriptors) == 0 for m in index.marks)
    assert M.MarkIndex([]).on(sift_features(np.asarray(views[0])), np.asarray(views[0]).shape) == {}


def test_a_mark_without_opaque_pixels_or_far_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="opaque"):
        M.mark_model(Image.new("RGBA", (64, 32), (255, 255, 255, 0)))
    strip = mark_file("NEWSWIRE " * 8, 40)
    assert strip.width / strip.height > M.MAX_ASPECT
    with pytest.raises(ValueError, match="times as long"):
        M.mark_model(strip)


# -- enrolling: API and CLI -------------------------------------------------------------------------


@pytest.fixture
def admin_key(service: Service) -> str:
    with service.db.session() as session:
        _, key = issue_key(session, Scope.ADMIN, label="ops")
    return key


@pytest.fixture
def newswire(service: Service) -> tuple[uuid.UUID, str]:
    with service.db.session() as session:
        publisher, key = create_publisher(session, "Newswire")
        return publisher.id, key


def post_mark(client: TestClient, key: str, pid: uuid.UUID, data: bytes, name: str = "mark.png"):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/publishers/{pid}/marks", files={"file": (name, data, "image/png")},
                       data={"label": "centre name"}, headers=auth(key))


def test_admin_enrolls_lists_and_removes_a_mark(client: TestClient, service: Service, admin_key: str,
                                                newswire: tuple[uuid.UUID, str], publisher_key: str) -> None:
    pid, own_key = newswire
    data = encode(mark_file(), "PNG")
    r = post_mark(client, admin_key, pid, data)
    assert r.status_code == 201, r.text
    mark = r.json()
    assert mark["label"] == "centre name" and mark["width"] == mark_file().width
    again = post_mark(client, admin_key, pid, data)
    assert again.status_code == 201 and again.json()["id"] == mark["id"]  # the same file is the same mark
    assert [m["id"] for m in client.get(f"/v1/publishers/{pid}/marks", headers=auth(own_key)).json()] == [mark["id"]]
    assert [m.id for m in service.matcher.marks.current()] == [uuid.UUID(mark["id"])]  # counted at once
    r = client.get(f"/v1/publishers/{pid}/marks", headers=auth(publisher_key))  # another publisher's key
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    r = client.delete(f"/v1/publishers/{pid}/marks/{mark['id']}", headers=auth(admin_key))
    assert r.status_code == 204
    assert client.get(f"/v1/publishers/{pid}/marks", headers=auth(admin_key)).json() == []
    assert service.matcher.marks.current() == []
    r = client.delete(f"/v1/publishers/{pid}/marks/{mark['id']}", headers=auth(admin_key))
    assert r.status_code == 404


@pytest.mark.parametrize(("payload", "status"), [
    (b"not an image at all", 415),
    (encode(Image.new("RGBA", (64, 32), (0, 0, 0, 0)), "PNG"), 400),  # nothing opaque
    (encode(Image.new("RGBA", (64, 32), (90, 90, 90, 255)), "PNG"), 400),  # flat: no keypoints to recognise
    (encode(mark_file(), "PNG")[:300], 422),  # truncated
    (encode(mark_file("NEWSWIRE " * 8, 40), "PNG"), 400),  # over 30:1: a long strip to render and search
    (b"\x89PNG\r\n\x1a\n" + bytes(MAX_MARK_BYTES), 413),
])
def test_a_bad_mark_file_is_a_problem_and_writes_nothing(client: TestClient, admin_key: str,
                                                         newswire: tuple[uuid.UUID, str], payload: bytes, status: int) -> None:
    pid, _ = newswire
    r = post_mark(client, admin_key, pid, payload)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/publishers/{pid}/marks", headers=auth(admin_key)).json() == []


def test_only_an_admin_enrolls_and_only_for_a_publisher_that_exists(client: TestClient, admin_key: str,
                                                                     newswire: tuple[uuid.UUID, str]) -> None:
    pid, own_key = newswire
    data = encode(mark_file(), "PNG")
    assert post_mark(client, own_key, pid, data).status_code == 403  # a mark changes every verification
    assert post_mark(client, admin_key, uuid.uuid4(), data).status_code == 404
    assert client.get(f"/v1/publishers/{pid}/marks", headers=auth(admin_key)).json() == []


def test_a_publisher_holds_at_most_sixteen_marks(client: TestClient, admin_key: str, newswire: tuple[uuid.UUID, str]) -> None:
    pid, _ = newswire
    words = ["NEWSWIRE", "AGENCY", "PHOTOS", "PRESS", "WIRE", "STOCK", "IMAGES", "DAILY", "POST", "TIMES", "HERALD",
             "GAZETTE", "COURIER", "TRIBUNE", "CHRONICLE", "OBSERVER", "EXPRESS"]
    for i, word in enumerate(words):
        r = post_mark(client, admin_key, pid, encode(mark_file(word, 80), "PNG"), f"{i}.png")
        assert r.status_code == (201 if i < 16 else 409), (word, r.text)


def test_the_same_mark_enrolled_by_two_requests_at_once_is_one_mark(service: Service,
                                                                     newswire: tuple[uuid.UUID, str]) -> None:
    """The second insert waits on the unique index, then finds the row the first committed: not a 500."""
    pid, _ = newswire
    data = encode(mark_file(), "PNG")
    second: list[uuid.UUID] = []
    with service.db.session() as first:
        row = add_mark(first, pid, data, "first")  # inserted, not yet committed
        thread = threading.Thread(target=lambda: second.append(_enrol(service, pid, data)))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # blocked on the first request's uncommitted row
        first_id = row.id
    thread.join(timeout=30)
    assert second == [first_id]
    with service.db.session() as session:
        assert [m.id for m in marks_of(session, pid)] == [first_id]


def _enrol(service: Service, pid: uuid.UUID, data: bytes) -> uuid.UUID:
    with service.db.session() as session:
        return add_mark(session, pid, data, "second").id


def test_a_service_builds_the_enrolled_marks_when_it_opens(service: Service, settings: Settings, embedder: Embedder,
                                                           newswire: tuple[uuid.UUID, str]) -> None:
    pid, _ = newswire
    row = service.matcher.marks.enroll(pid, encode(mark_file(), "PNG"), "centre")
    other = Service.open(settings, embedder=embedder)
    try:
        assert other.matcher.marks is not None
        assert [m.id for m in other.matcher.marks._snapshot.marks] == [row.id]  # before any request asked for them
    finally:
        other.close()


def test_another_process_enrolment_is_seen_after_the_check_interval(service: Service, newswire: tuple[uuid.UUID, str]) -> None:
    pid, _ = newswire
    other = MarkSet(service.db, check_s=3600)
    assert other.current() == []
    service.matcher.marks.enroll(pid, encode(mark_file(), "PNG"), "centre")
    assert other.current() == []  # within its interval it keeps what it read
    other.check_s = 0
    assert [m.publisher for m in other.current()] == ["Newswire"]


def test_a_rebuilt_set_keeps_the_marks_it_had_when_the_index_holds_their_descriptors(
        service: Service, newswire: tuple[uuid.UUID, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "EXACT_MAX", 0)  # the IVF index from the first mark on
    pid, _ = newswire
    marks = service.matcher.marks
    assert marks is not None
    marks.enroll(pid, encode(mark_file(), "PNG"), "centre")
    marks.enroll(pid, encode(mark_file("PHOTO", 80), "PNG"), "other")  # the first one's model comes from the index
    view = View.of(stamped(flat_photo(3), mark_file())[0])
    found = {f.label: f.keypoints for f in marks.strip(view)[1]}
    assert found["centre"] == M.on_mark(view.features, M.mark_model(mark_file()), view.image.shape).sum() >= 8


def test_a_mark_model_is_built_once_and_read_back_from_the_cache(service: Service, settings: Settings,
                                                                 newswire: tuple[uuid.UUID, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pid, _ = newswire
    data = encode(mark_file(), "PNG")
    service.matcher.marks.enroll(pid, data, "centre")
    cached = sorted((settings.index_dir / "marks").glob(f"*-{M.MODEL_KEY}.npz"))
    assert len(cached) == 1
    built = M.mark_model(mark_file())

    def no_sift(image: Image.Image) -> M.MarkModel:
        raise AssertionError("built again")

    monkeypatch.setattr("verifier.matching.marks.mark_model", no_sift)
    fresh = MarkSet(service.db, cache_dir=settings.index_dir / "marks")
    assert [m.label for m in fresh.current()] == ["centre"]  # from the cache: no SIFT
    model = fresh._snapshot.index.model(0)
    assert np.array_equal(model.descriptors, built.descriptors) and np.array_equal(model.outline, built.outline)

    cached[0].write_bytes(b"PK\x03\x04 not an npz")  # a damaged cache file is built again, not fatal
    monkeypatch.undo()
    again = MarkSet(service.db, cache_dir=settings.index_dir / "marks")
    assert [m.label for m in again.current()] == ["centre"]
    assert M.model_from_bytes(cached[0].read_bytes()).points.shape == built.points.shape  # and written anew


def test_a_removed_mark_model_leaves_the_cache_once_it_is_old(service: Service, settings: Settings,
                                                               newswire: tuple[uuid.UUID, str]) -> None:
    pid, _ = newswire
    marks = service.matcher.marks
    keep = marks.enroll(pid, encode(mark_file(), "PNG"), "centre")
    gone = marks.enroll(pid, encode(mark_file("PHOTO", 80), "PNG"), "other")
    cache = settings.index_dir / "marks"
    foreign = cache / f"{'0' * 64}-m0-cv0.npz"  # made another way
    foreign.write_bytes(b"old")
    fresh = cache / f"{'1' * 64}-{M.MODEL_KEY}.npz"  # another process enrolling it now
    fresh.write_bytes(b"new")
    old = time.time() - 2 * CACHE_GRACE_S
    for path in cache.glob("*.npz"):
        if path != fresh:
            os.utime(path, (old, old))
    with service.db.session() as session:
        remove_mark(session, pid, gone.id)
    marks.invalidate()
    assert [m.id for m in marks.current()] == [keep.id]
    assert sorted(p.name for p in cache.glob("*.npz")) == sorted([f"{keep.sha256}-{M.MODEL_KEY}.npz", fresh.name])


def stamped_set(n_marked: int = 12, n_plain: int = 4) -> list[Image.Image]:
    """A publisher's photos: most carry its name across the middle, a few do not."""
    return ([stamped(photo_like(100 + i, (256, 192)), mark_file())[0] for i in range(n_marked)]
            + [photo_like(200 + i, (256, 192)) for i in range(n_plain)])


def test_the_overlay_a_publishers_photos_share_is_found_and_can_be_enrolled(model: M.MarkModel) -> None:
    views = [View.of(img) for img in stamped_set()]
    found = M.recurring_overlays([(v.image, v.features) for v in views])
    assert len(found) == 1
    x0, y0, x1, y1 = found[0].box
    _, (bx0, by0, bx1, by1) = stamped(photo_like(100, (256, 192)), mark_file())
    w, h = 256, 192
    assert x0 <= bx0 / w + 0.05 and x1 >= bx1 / w - 0.05 and y0 <= by0 / h + 0.02 and y1 >= by1 / h - 0.02
    assert (x1 - x0) * (y1 - y0) < 2 * (bx1 - bx0) * (by1 - by0) / (w * h)  # the mark, not the photo
    assert found[0].photos == list(range(12))  # the stamped ones only
    suggested = M.mark_model(found[0].image)  # the suggestion serves as a mark ...
    assert suggested.places >= 16
    query = View.of(stamped(flat_photo(7), mark_file())[0])
    alone = M.on_mark(query.features, model, query.image.shape).sum()
    assert M.on_mark(query.features, suggested, query.image.shape).sum() >= 0.8 * alone >= 8  # ... as the file does
    plain = [View.of(photo_like(300 + i, (256, 192))) for i in range(12)]
    assert M.recurring_overlays([(v.image, v.features) for v in plain]) == []  # nothing shared, nothing suggested
    assert M.recurring_overlays([(v.image, v.features) for v in views[:2]]) == []  # too few to say


def test_cli_finds_a_publishers_recurring_mark_to_enrol(cli_env: Path, signer: SignerCredentials, embedder: Embedder,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from verifier.cli import main
    from verifier.storage.signers import enroll, parse_certificate

    assert main(["publishers", "add", "Newswire"]) == 0
    capsys.readouterr()
    service = Service.open(Settings(), embedder=embedder)
    try:
        with service.db.session() as session:
            publisher = next(p for p in list_publishers(session) if p.name == "Newswire")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        for img in stamped_set():
            service.registry.register(sign_image(encode(img), "image/jpeg", signer), publisher.id)
    finally:
        service.close()
    out = cli_env / "suggested"
    assert main(["publishers", "find-marks", "Newswire", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 1 and lines[0]["photos"] == 12 and Path(lines[0]["file"]).is_file()
    assert main(["publishers", "add-mark", "Newswire", lines[0]["file"], "--label", "found"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["label"] == "found"


@pytest.mark.parametrize("argv", [["--sample", "0"], ["--sample", "-5"], ["--sample", "lots"], ["--sample", "10**9"]])
def test_cli_find_marks_refuses_a_bad_sample(cli_env: Path, argv: list[str]) -> None:
    from verifier.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["publishers", "find-marks", "Newswire", "--out", str(cli_env / "o"), *argv])
    assert exc.value.code == 2 and not (cli_env / "o").exists()


def test_cli_find_marks_refuses_an_out_that_is_a_file(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from verifier.cli import main

    target = cli_env / "taken"
    target.write_bytes(b"a file")
    assert main(["publishers", "find-marks", "Newswire", "--out", str(target)]) == 2  # before the service opens
    assert "not a folder" in capsys.readouterr().err and target.read_bytes() == b"a file"


@pytest.mark.parametrize("payload", [b"", b"not an npz", b"PK\x03\x04garbage"])
def test_a_stored_model_that_is_not_one_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not a stored mark model"):
        M.model_from_bytes(payload)
    good = M.mark_model(mark_file())
    assert M.model_from_bytes(M.model_bytes(good)).descriptors.shape == good.descriptors.shape
    import io as _io
    buf = _io.BytesIO()
    np.savez(buf, descriptors=np.zeros((3, 64), np.float32), points=np.zeros((3, 2), np.float32),
             outline=np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="wrong shapes"):
        M.model_from_bytes(buf.getvalue())


def test_a_verification_never_waits_for_a_new_mark_to_be_built(service: Service, newswire: tuple[uuid.UUID, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process enrolled a mark: the first request to notice starts the build and goes on
    with the set it has; the set is swapped in once built."""
    pid, _ = newswire
    other = MarkSet(service.db, check_s=0)
    service.matcher.marks.enroll(pid, encode(mark_file(), "PNG"), "centre")
    release, started = threading.Event(), threading.Event()
    build = MarkSet._build

    def slow_build(self: MarkSet, ids: frozenset[uuid.UUID]) -> None:
        started.set()
        assert release.wait(30)
        build(self, ids)

    monkeypatch.setattr(MarkSet, "_build", slow_build)
    view = View.of(stamped(flat_photo(3), mark_file())[0])
    _, found = other.strip(view)
    assert found == [] and started.wait(5)  # answered with the set it had, the build under way
    assert other.strip(view)[1] == []  # a second request neither waits nor starts another build
    release.set()
    for _ in range(100):
        if other._snapshot.marks:
            break
        time.sleep(0.05)
    assert [f.publisher for f in other.strip(view)[1]] == ["Newswire"]


# -- verification ------------------------------------------------------------------------------------


def test_the_report_names_the_mark_and_a_marked_original_is_still_found(
        client: TestClient, admin_key: str, newswire: tuple[uuid.UUID, str], publisher_key: str, verifier_key: str,
        signer: SignerCredentials) -> None:
    pid, _ = newswire
    original, _ = stamped(real_photo("astronaut"), mark_file())
    data = sign_image(encode(original, "JPEG", quality=92), "image/jpeg", signer, ManifestDefinition(title="marked.jpg"))
    r = client.post("/v1/originals", files={"file": ("marked.jpg", data, "image/jpeg")}, headers=auth(publisher_key))
    assert r.status_code == 201, r.text
    original_id = r.json()["id"]
    assert post_mark(client, admin_key, pid, encode(mark_file(), "PNG")).status_code == 201  # Newswire's mark

    def verify(img: Image.Image) -> dict:
        r = client.post("/v1/verify", files={"file": ("q.jpg", encode(img, "JPEG", quality=85), "image/jpeg")},
                        headers=auth(verifier_key))
        assert r.status_code == 200, r.text
        return r.json()["report"]

    copy = verify(original.resize((400, 400), Image.BICUBIC))
    assert copy["match"] is not None and copy["match"]["original_id"] == original_id
    found = copy["search"]["publisher_marks"]
    assert [m["publisher"]["name"] for m in found] == ["Newswire"] and found[0]["keypoints"] > 0
    assert verify(real_photo("chelsea"))["search"]["publisher_marks"] == []


def test_cli_enrolls_lists_and_removes_a_mark(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from verifier.cli import main

    assert main(["publishers", "add", "Newswire"]) == 0
    capsys.readouterr()
    mark = cli_env / "mark.png"
    mark.write_bytes(encode(mark_file(), "PNG"))
    assert main(["publishers", "add-mark", "Newswire", str(mark), "--label", "centre name"]) == 0
    enrolled = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert enrolled["label"] == "centre name"
    assert main(["publishers", "marks", "Newswire"]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.strip().splitlines()] == [enrolled["id"]]
    blank = cli_env / "blank.png"
    blank.write_bytes(encode(Image.new("RGBA", (64, 32), (90, 90, 90, 255)), "PNG"))
    assert main(["publishers", "add-mark", "Newswire", str(blank)]) == 2  # refused before the service opens
    assert "places" in capsys.readouterr().err
    assert main(["publishers", "add-mark", "Nobody", str(mark)]) == 2
    assert main(["publishers", "remove-mark", "Newswire", enrolled["id"]]) == 0
    capsys.readouterr()
    assert main(["publishers", "marks", "Newswire"]) == 0
    assert capsys.readouterr().out.strip() == ""


def _register_stamped(client: TestClient, key: str, signer: SignerCredentials) -> uuid.UUID:
    for k, img in enumerate(stamped_set()):
        data = sign_image(encode(img), "image/jpeg", signer, ManifestDefinition(title=f"p{k}.jpg"))
        r = client.post("/v1/originals", files={"file": (f"p{k}.jpg", data, "image/jpeg")}, headers=auth(key))
        assert r.status_code == 201, r.text
    return uuid.UUID(client.get("/v1/me", headers=auth(key)).json()["publisher"]["id"])


def suggestions(client: TestClient, key: str, pid: uuid.UUID, query: str = "") -> dict:  # type: ignore[type-arg]
    """Ask for the publisher's suggested marks and poll the job until it has an answer."""
    r = client.post(f"/v1/publishers/{pid}/marks/suggestions{query}", headers=auth(key))
    assert r.status_code == 202, r.text
    url = r.headers["location"]
    assert url == f"/v1/publishers/{pid}/marks/suggestions/{r.json()['id']}"
    deadline = time.monotonic() + 120
    job = r.json()
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        r = client.get(url, headers=auth(key))
        assert r.status_code == 200, r.text
        job = r.json()
        assert ("retry-after" in r.headers) == (job["state"] in ("queued", "running"))
    return job


def test_a_publisher_sees_the_overlay_its_photos_share_and_an_admin_enrols_it(
        client: TestClient, publisher_key: str, signer: SignerCredentials, admin_key: str, other_publisher_key: str) -> None:
    import base64
    import io

    pid = _register_stamped(client, publisher_key, signer)
    job = suggestions(client, publisher_key, pid)
    assert job["state"] == "done" and job["sample"] == 300 and job["looked_at"] == 16 and job["problem"] is None
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    (s,) = job["suggestions"]
    assert s["photos"] == 12 and s["looked_at"] == 16 and s["frame"] in ("share", "height from 0.5,0.5")
    assert len(s["examples"]) == 5 and s["keypoints"] >= 12
    overlay = Image.open(io.BytesIO(base64.b64decode(s["png_base64"])))
    assert overlay.format == "PNG" and overlay.width > overlay.height  # the name's strip, not a photo
    again = suggestions(client, admin_key, pid)
    assert again["id"] != job["id"] and again["suggestions"] == job["suggestions"]  # a new request once one is done
    few = suggestions(client, admin_key, pid, "?sample=3")
    assert few["sample"] == 3 and few["looked_at"] == 3  # only the newest three are looked at
    assert [x["looked_at"] for x in few["suggestions"]] in ([], [3])
    enrolled = post_mark(client, admin_key, pid, base64.b64decode(s["png_base64"]))  # the suggestion enrols as it is
    assert enrolled.status_code == 201, enrolled.text


@pytest.mark.parametrize(("query", "status"), [("?sample=2", 422), ("?sample=501", 422), ("?sample=lots", 422),
                                                ("?sample=" + "9" * 40, 422), ("?sample=3.5", 422)])
def test_suggestions_refuse_a_bad_sample_as_a_problem(client: TestClient, service: Service, admin_key: str,
                                                      newswire: tuple[uuid.UUID, str], query: str, status: int) -> None:
    from verifier.storage.models import Job

    pid, _ = newswire
    r = client.post(f"/v1/publishers/{pid}/marks/suggestions{query}", headers=auth(admin_key))
    assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json")
    with service.db.session() as session:
        assert session.query(Job).count() == 0  # nothing queued


def test_suggestions_are_for_the_publisher_itself_or_an_admin(client: TestClient, admin_key: str, publisher_key: str,
                                                              newswire: tuple[uuid.UUID, str]) -> None:
    pid, own_key = newswire
    job = suggestions(client, own_key, pid)
    assert job["state"] == "done" and job["suggestions"] == [] and job["looked_at"] == 0  # no photos yet
    url = f"/v1/publishers/{pid}/marks/suggestions"
    for r in (client.post(url, headers=auth(publisher_key)), client.get(f"{url}/{job['id']}", headers=auth(publisher_key))):
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")  # another publisher
    assert client.get(f"{url}/{job['id']}", headers=auth(admin_key)).json() == job
    me = client.get("/v1/me", headers=auth(publisher_key)).json()["publisher"]["id"]
    assert client.get(f"/v1/publishers/{me}/marks/suggestions/{job['id']}",  # its own path, another's job
                      headers=auth(publisher_key)).status_code == 404
    assert client.get(f"{url}/{uuid.uuid4()}", headers=auth(admin_key)).status_code == 404
    assert client.get(f"{url}/not-a-uuid", headers=auth(admin_key)).status_code == 422
    assert client.post(f"/v1/publishers/{uuid.uuid4()}/marks/suggestions", headers=auth(admin_key)).status_code == 404
    assert client.post(url).status_code == 401 and client.get(f"{url}/{job['id']}").status_code == 401
    r = client.post("/v1/publishers/not-a-uuid/marks/suggestions", headers=auth(admin_key))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


def test_asking_twice_while_one_waits_returns_that_one_and_a_full_queue_is_503(
        service: Service, admin_key: str, newswire: tuple[uuid.UUID, str]) -> None:
    from verifier.api.app import create_app

    service.settings.run_jobs = False  # a replica that only queues: the jobs wait
    service.settings.jobs_pending = 2
    pid, own_key = newswire
    with service.db.session() as session:
        other, _ = create_publisher(session, "Wire Two")
        third, _ = create_publisher(session, "Wire Three")
        other_id, third_id = other.id, third.id
    with TestClient(create_app(service=service)) as client:
        first = client.post(f"/v1/publishers/{pid}/marks/suggestions?sample=50", headers=auth(own_key))
        second = client.post(f"/v1/publishers/{pid}/marks/suggestions?sample=80", headers=auth(admin_key))
        assert first.status_code == second.status_code == 202
        assert second.json()["id"] == first.json()["id"] and second.json()["sample"] == 50
        assert second.json()["state"] == "queued" and second.json()["suggestions"] is None
        assert client.post(f"/v1/publishers/{other_id}/marks/suggestions", headers=auth(admin_key)).status_code == 202
        full = client.post(f"/v1/publishers/{third_id}/marks/suggestions", headers=auth(admin_key))
        assert full.status_code == 503 and full.headers["retry-after"] == "10"
        assert full.headers["content-type"].startswith("application/problem+json")
        polled = client.get(first.headers["location"], headers=auth(own_key))
        assert polled.json()["state"] == "queued" and polled.headers["retry-after"] == "2"
        health = client.get("/healthz").json()["jobs"]
        assert health["queued"] == 2 and health["running"] == 0 and health["runs_here"] is False
        assert health["oldest_queued_s"] >= 0
    service.settings.run_jobs = True
    service.start_jobs()  # a process that runs jobs takes the waiting ones
    with TestClient(create_app(service=service)) as client:
        deadline = time.monotonic() + 60
        while client.get(first.headers["location"], headers=auth(own_key)).json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get("/healthz").json()["jobs"]["runs_here"] is True


def _regions_by_brute_force(pos: np.ndarray, alld: np.ndarray, owner: np.ndarray, n: int) -> set[int]:
    """The recurring keypoints as the finder defines them, pair by pair (what `_recurring_regions` computes fast)."""
    need = max(3, int(np.ceil(M.FIND_MIN_SHARE * n)))
    out = set()
    for k in range(len(pos)):
        d = np.sqrt(((alld - alld[k]) ** 2).sum(1))
        near = (d < M.FIND_DISTANCE) & (np.abs(pos - pos[k]).max(1) <= M.FIND_PLACE) & (owner != owner[k])
        if len(set(owner[near].tolist())) + 1 >= need:
            out.add(k)
    return out


def test_the_fast_recurrence_count_is_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    n, per = 40, 60
    owner = np.repeat(np.arange(n), per)
    pos = rng.uniform(0, 1, (n * per, 2)).astype(np.float32)
    alld = rng.normal(size=(n * per, 128)).astype(np.float32)
    alld /= np.linalg.norm(alld, axis=1, keepdims=True)
    mark = rng.normal(size=(14, 128)).astype(np.float32)
    mark /= np.linalg.norm(mark, axis=1, keepdims=True)
    for p in range(0, n, 2):  # half the photos carry 14 keypoints of one overlay, jittered in place and descriptor
        rows = p * per + np.arange(14)
        pos[rows] = np.stack([0.3 + 0.03 * np.arange(14), np.full(14, 0.8)], 1) + rng.uniform(-0.008, 0.008, (14, 2))
        alld[rows] = mark + rng.normal(scale=0.01, size=mark.shape)
    regions = M._recurring_regions(pos, alld, (alld * alld).sum(1), owner, n)
    assert {k for r in regions for k in r} == _regions_by_brute_force(pos, alld, owner, n) != set()
    assert len(regions) == 1 and set(owner[regions[0]].tolist()) == set(range(0, n, 2))


def test_a_mark_sized_to_the_width_is_found_on_portrait_and_landscape_photos(monkeypatch: pytest.MonkeyPatch) -> None:
    """A credit line laid out for the photo's width, lower left, on photos of three shapes: it lies at one place
    only in widths from that corner. Without the width frames the finder joins its three placements (one per shape)
    into one blurred region whose picture recognises almost nothing of the mark on new photos."""
    def stamp_wide(photo: Image.Image) -> Image.Image:
        w = round(photo.width * 0.6)
        small = mark_file().resize((w, round(mark_file().height * w / mark_file().width)), Image.LANCZOS)
        out = photo.convert("RGBA")
        out.alpha_composite(small, (round(photo.width * 0.05), photo.height - round(photo.width * 0.05) - small.height))
        return out.convert("RGB")

    shapes = [(256, 192), (192, 256), (256, 144)]
    views = [View.of(stamp_wide(photo_like(400 + i, shapes[i % 3]))) for i in range(15)]
    queries = [View.of(stamp_wide(photo_like(900 + i, shapes[i % 3]))) for i in range(9)]

    def recognised(mark: Image.Image) -> int:  # the mark's keypoints found on the new stamped photos
        model = M.mark_model(mark)
        return sum(int(M.on_mark(q.features, model, q.image.shape).sum()) for q in queries)

    found = M.recurring_overlays([(v.image, v.features) for v in views])
    assert len(found) == 1 and found[0].frame == ("width", 0.0, 1.0) and found[0].photos == list(range(15))
    x0, y0, x1, y1 = found[0].box
    assert -0.01 <= x0 and x1 <= 0.7 and -0.3 <= y0 < y1 <= 0.01  # up from the lower left corner, in widths
    own = recognised(mark_file())
    assert recognised(found[0].image) >= 0.4 * own >= 50
    monkeypatch.setattr(M, "FIND_FRAMES", tuple(f for f in M.FIND_FRAMES if f[0] != "width"))
    without = M.recurring_overlays([(v.image, v.features) for v in views])
    assert without and all(recognised(r.image) < 0.1 * own for r in without)


def test_an_original_deleted_while_the_finder_reads_is_left_out(client: TestClient, service: Service,
                                                                publisher_key: str, signer: SignerCredentials) -> None:
    from verifier.errors import NotFound
    from verifier.matching.marks import suggest_marks

    pid = _register_stamped(client, publisher_key, signer)
    rows, _ = service.originals.list(publisher_id=pid, limit=16, offset=0)
    gone = {rows[0].id, rows[5].id}

    def view(i: uuid.UUID) -> View:
        if i in gone:
            raise NotFound(f"no original {i}")
        return service.matcher.view(i)

    (s,), looked_at = suggest_marks(service.originals, view, pid, 16)
    assert s.looked_at == looked_at == 14 and not gone & set(s.originals) and len(s.originals) >= 10


def test_a_suggestions_job_that_fails_says_why_as_a_problem(client: TestClient, service: Service, admin_key: str,
                                                            newswire: tuple[uuid.UUID, str]) -> None:
    from verifier.matching.marks import SUGGESTIONS_JOB
    from verifier.storage import jobs

    pid, own_key = newswire
    with service.db.session() as session:  # params no request can send (the API checks `sample` first)
        job, _ = jobs.submit(session, SUGGESTIONS_JOB, pid, {"sample": "lots"})
        job_id = job.id
    service.jobs.submitted()
    url = f"/v1/publishers/{pid}/marks/suggestions/{job_id}"
    deadline = time.monotonic() + 30
    while (out := client.get(url, headers=auth(own_key)).json())["state"] != "failed":
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    assert out["suggestions"] is None and out["looked_at"] is None and out["sample"] == 0
    assert out["problem"]["status"] == 400 and "whole number" in out["problem"]["detail"]


def test_the_suggestions_job_is_documented_in_the_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/v1/publishers/{publisher_id}/marks/suggestions"]["post"]
    assert "Location" in post["responses"]["202"]["headers"] and "problem" in str(post["responses"]["403"])
    get = paths["/v1/publishers/{publisher_id}/marks/suggestions/{job_id}"]["get"]
    assert "Retry-After" in get["responses"]["200"]["headers"]
    assert "get" not in paths["/v1/publishers/{publisher_id}/marks/suggestions"]  # the synchronous answer is gone
