"""Edit families for the generalisation benchmark: shapes, masks, determinism, the split."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from verifier.cli.demo import generated_photo
from verifier.simprov.augment import Sample
from verifier.simprov.edits import (
    FAMILIES,
    HELD_OUT_FAMILIES,
    TRAIN_FAMILIES,
    finish,
    make_edit,
    variant,
)

PHOTOS = [generated_photo(i, (320, 224)) for i in range(5)]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_makes_an_image_and_a_mask_in_its_frame(name: str) -> None:
    family = FAMILIES[name]
    for seed in range(3):
        raw = make_edit(name, PHOTOS[0], PHOTOS[1:4], random.Random(seed), finished=False)
        assert raw.image.mode == "RGB" and raw.mask.mode == "L" and raw.mask.size == raw.image.size
        share = float((np.asarray(raw.mask) > 127).mean())
        if family.kind == "benign":
            assert share == 0.0  # appearance only
        else:
            assert 0.001 < share < 0.95, (name, share)  # something changed, not everything
        assert not np.array_equal(np.asarray(raw.image.resize(PHOTOS[0].size)), np.asarray(PHOTOS[0]))
        assert family.description


@pytest.mark.parametrize("name", ["paste_large", "caption", "collage", "cutout"])
def test_families_are_deterministic_per_seed(name: str) -> None:
    a = make_edit(name, PHOTOS[0], PHOTOS[1:4], random.Random(5))
    b = make_edit(name, PHOTOS[0], PHOTOS[1:4], random.Random(5))
    c = make_edit(name, PHOTOS[0], PHOTOS[1:4], random.Random(6))
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.ops == b.ops
    assert a.ops != c.ops or not np.array_equal(np.asarray(a.mask), np.asarray(c.mask))


def test_paste_large_covers_a_large_share_and_the_mask_tells_where() -> None:
    img = PHOTOS[0]
    for seed in range(4):
        s = make_edit("paste_large", img, PHOTOS[1:2], random.Random(seed), finished=False)
        m = np.asarray(s.mask) > 127
        assert 0.15 < m.mean() < 0.75
        changed = np.abs(np.asarray(s.image, np.int16) - np.asarray(img, np.int16)).sum(-1) > 24
        assert changed[m].mean() > 0.5  # the pasted element is inside the mask ...
        assert changed[~m].mean() < 0.03  # ... and outside it the original is untouched (but a feathered rim)


def test_transplant_leaves_the_original_a_minority() -> None:
    s = make_edit("transplant", PHOTOS[0], PHOTOS[1:2], random.Random(2), finished=False)
    assert (np.asarray(s.mask) > 127).mean() > 0.5  # most of the query is not from the original


def test_reframe_crops_to_the_named_frame_and_zooms_back() -> None:
    from verifier.simprov.edits import REFRAMES

    img = generated_photo(9, (600, 400))
    seen = set()
    for seed in range(16):
        s = make_edit("reframe", img, [], random.Random(seed), finished=False)
        frame, _, turn = s.ops[0].removeprefix("reframe:").partition("+turn")
        x, y, cw, ch = (int(v) for v in s.ops[1].removeprefix("box").split(","))
        seen.add((frame, bool(turn)))
        assert 0.2 * 600 * 400 * 0.97 <= cw * ch <= 0.6 * 600 * 400 * 1.03 or frame == "story"  # a story crop is capped
        out = s.image.rotate(-int(turn), expand=True) if turn else s.image  # undo the turn
        w, h = out.size
        assert abs(w / h - cw / ch) < 0.02 and abs(cw / ch - (REFRAMES[frame] or 600 / 400)) < 0.02 and max(w, h) == 600
        # the content is that piece of the original, zoomed
        back = np.asarray(out.resize((cw, ch), Image.BICUBIC), np.float32)
        piece = np.asarray(img.crop((x, y, x + cw, y + ch)), np.float32)
        assert np.abs(back - piece).mean() < 6, (s.ops, np.abs(back - piece).mean())
    assert {f for f, _ in seen} == set(REFRAMES) and any(t for _, t in seen)


def test_recolour_changes_colour_only_inside_its_mask() -> None:
    """A recoloured region: inside the mask the colour moved and the lightness kept its structure;
    outside, the photo is untouched (but a feathered rim). A grey region is tinted."""
    img = generated_photo(4, (400, 300))
    for seed, photo in enumerate([img] * 5 + [ImageOps.grayscale(img).convert("RGB")]):
        s = make_edit("recolour", photo, [], random.Random(seed), finished=False)
        assert s.ops[0].endswith("+tint") == (photo is not img), s.ops
        m = np.asarray(s.mask) > 127
        assert 0.03 < m.mean() < 0.4, (s.ops, m.mean())
        a, b = np.asarray(photo, np.float32), np.asarray(s.image, np.float32)
        assert np.abs(a - b).sum(-1)[m].mean() > 30, s.ops  # the colour moved
        rim = np.asarray(Image.fromarray(m).filter(ImageFilter.MaxFilter(9))) > 0
        assert np.abs(a - b).sum(-1)[~rim].max() <= 3, s.ops
        inner = np.asarray(Image.fromarray(m).filter(ImageFilter.MinFilter(9))) > 0  # past the feathered edge
        va, vb = a.max(-1)[inner], b.max(-1)[inner]  # HSV value: what a hue turn or a tint keeps
        assert np.abs(va - vb).mean() < 2, s.ops  # texture kept, not a flat fill


def test_pad_holds_the_whole_photo_unchanged_on_a_platform_frame() -> None:
    """A padded repost: the canvas has the named frame's shape, the photo lies whole in the box
    the tags name (scaled, not cropped), and the fill is the photo blurred or a plain colour."""
    from verifier.simprov.edits import PADS

    seen = set()
    for size in [(600, 400), (300, 450), (400, 400)]:
        img = generated_photo(11, size)
        for seed in range(12):
            s = make_edit("pad", img, [], random.Random(seed), finished=False)
            frame, _, fill = s.ops[0].removeprefix("pad:").partition("+")
            seen.add((frame, fill))
            w, h = s.image.size
            assert abs(w / h - PADS[frame]) < 0.01 and abs(np.log(PADS[frame] * size[1] / size[0])) >= np.log(1.15)
            x, y, pw, ph = (int(v) for v in s.ops[1].removeprefix("box").split(","))
            assert abs(pw / ph - size[0] / size[1]) < 0.02 and 0.74 <= pw / size[0] <= 1.0
            assert 0 <= x and x + pw <= w and 0 <= y and y + ph <= h and pw * ph < w * h  # something is padded
            inner = np.asarray(s.image.crop((x, y, x + pw, y + ph)), np.float32)
            photo = np.asarray(img.resize((pw, ph), Image.BICUBIC), np.float32)
            assert np.abs(inner - photo).mean() < 1.0, s.ops  # the photo itself, whole
            outside = np.ones((h, w), bool)
            outside[y:y + ph, x:x + pw] = False
            rest = np.asarray(s.image, np.float32)[outside]
            if fill == "plain":
                assert rest.std(0).max() < 1.0 and rest.mean() in (0.0, 255.0)
            else:
                assert rest.std(0).max() > 1.0  # the blurred photo, not a flat colour
    assert {f for f, _ in seen} == set(PADS) and {f for _, f in seen} == {"blur", "dark", "plain"}


def test_annotate_draws_only_its_marks() -> None:
    """Marks drawn over the photo: the mask is the strokes, thin (a small share of the frame),
    and outside them the photo is untouched."""
    img = generated_photo(12, (480, 320))
    kinds = set()
    for seed in range(30):
        s = make_edit("annotate", img, [], random.Random(seed), finished=False)
        kinds |= set(s.ops[0].removeprefix("annotate:").split("+"))
        m = np.asarray(s.mask) > 127
        assert 0.002 < m.mean() < 0.15, (s.ops, m.mean())
        diff = np.abs(np.asarray(s.image, np.int16) - np.asarray(img, np.int16)).sum(-1)
        assert diff[~m].max() == 0, s.ops
        assert (diff[m] > 0).mean() > 0.5, s.ops  # the strokes show (a mark may cross one of the same colour)
    assert kinds == {"circle", "arrow", "box", "scribble"}


def test_paste_small_adds_small_cut_outs_and_nothing_else() -> None:
    """1-2 small cut-outs from a donor: the mask is a few percent of the frame, and outside it
    (past the feathered rim) the photo is untouched."""
    img = generated_photo(13, (480, 320))
    donor = generated_photo(14, (400, 400))
    for seed in range(10):
        s = make_edit("paste_small", img, [donor], random.Random(seed), finished=False)
        m = np.asarray(s.mask) > 127
        assert 0.005 < m.mean() < 0.17, (s.ops, m.mean())
        rim = np.asarray(Image.fromarray(m).filter(ImageFilter.MaxFilter(9))) > 0
        diff = np.abs(np.asarray(s.image, np.int16) - np.asarray(img, np.int16)).sum(-1)
        assert diff[~rim].max() == 0, s.ops
        assert (diff[m] > 24).mean() > 0.3, s.ops  # the pasted content shows


def test_tilt_turns_the_whole_photo_and_crops_or_fills_the_corners() -> None:
    """A tilted copy: the crop finish keeps only the photo (no corner fill, its own shape,
    smaller); the fills keep it whole (a larger frame whose corners are the fill)."""
    img = generated_photo(15, (480, 320))
    seen = set()
    for seed in range(20):
        s = make_edit("tilt", img, [], random.Random(seed), finished=False)
        finish = s.ops[0].removeprefix("tilt:")
        deg = float(s.ops[1].removeprefix("deg"))
        assert 3 <= abs(deg) <= 20
        seen.add(finish)
        w, h = s.image.size
        arr = np.asarray(s.image, np.int16)
        if finish == "crop":
            assert w < 480 and h < 320 and abs(w / h - 1.5) < 0.03
            back = np.asarray(s.image.resize((96, 64)).rotate(-deg, Image.BICUBIC), np.int16)[20:44, 30:66]
            ref = np.asarray(img.crop(((480 - w) // 2, (320 - h) // 2, (480 + w) // 2, (320 + h) // 2)).resize((96, 64)), np.int16)[20:44, 30:66]
            assert np.abs(back - ref).mean() < 20, (s.ops, np.abs(back - ref).mean())  # the photo, turned
        else:
            assert w > 480 and h > 320
            corner = arr[:3, :3].reshape(-1, 3).mean(0)
            if finish in ("black", "white"):
                assert np.abs(corner - (0 if finish == "black" else 255)).max() < 2, (s.ops, corner)
    assert seen == {"crop", "black", "white", "blur"}


def test_finish_keeps_mask_and_image_together() -> None:
    rng = random.Random(0)
    for _ in range(20):
        s = finish(Sample(PHOTOS[0], Image.new("L", PHOTOS[0].size, 255), []), rng)
        assert s.mask.size == s.image.size and s.ops[-1].startswith("jpeg")


def test_leave_family_out_split() -> None:
    assert set(TRAIN_FAMILIES) | set(HELD_OUT_FAMILIES) == set(FAMILIES)
    assert not set(TRAIN_FAMILIES) & set(HELD_OUT_FAMILIES) and TRAIN_FAMILIES and HELD_OUT_FAMILIES
    # the shipped PSEN, re-orderer and ChangeNet were trained on exactly these, in this order (the pair builder
    # draws a family by index): a family added later is held out unless the models are retrained with it
    assert TRAIN_FAMILIES == ("paste_large", "background_swap", "multi_source", "caption", "copy_move_small", "collage")


def test_families_need_their_donors() -> None:
    with pytest.raises(ValueError):
        make_edit("multi_source", PHOTOS[0], PHOTOS[1:2], random.Random(0))


def test_families_benchmark_uses_test_photos_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """bench-data --families on a made-up ../shared: every query derives from a registered
    test photo, donors are held-out photos, no train photo is touched, MICC masks come from
    the pixel difference."""
    import csv

    from verifier.evaluation.families import build_families
    from verifier.evaluation.queries import read_queries

    shared = tmp_path / "shared"
    photos = shared / "datasets" / "photos"
    (photos / "img").mkdir(parents=True)
    with (photos / "index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "split"])
        for i in range(12):
            generated_photo(i, (160, 112)).save(photos / "img" / f"{i}.jpg")
            w.writerow([f"img/{i}.jpg", "generated", "train" if i < 4 else "test"])
    micc = shared / "datasets" / "micc-f220" / "images"
    micc.mkdir(parents=True)
    original = generated_photo(50, (160, 112))
    original.save(micc / "A_scale.jpg", quality=95)
    forged = original.copy()
    forged.paste((255, 0, 0), (10, 10, 40, 40))
    forged.save(micc / "Atamp1.jpg", quality=95)
    (micc.parent / "pairs.csv").write_text("edited,original\nimages/Atamp1.jpg,images/A_scale.jpg\n")

    out = tmp_path / "bench"
    counts = build_families(shared, out, n_per_family=1, n_distinct=3)
    assert counts["micc-f220"] == 1 and counts["distinct"] == 3
    queries = read_queries(out / "families.csv")
    assert {q.family for q in queries if q.kind != "distinct"} == set(FAMILIES) | {"micc-f220"}
    registered = {p.resolve() for p in (out / "registry").iterdir()}
    train = {(photos / "img" / f"{i}.jpg").resolve() for i in range(4)}
    distinct = {(out / q.name).resolve() for q in queries if q.kind == "distinct"}
    assert len(distinct) == 3 and not distinct & registered and not distinct & train
    for q in queries:
        if q.original is not None:
            assert q.original in registered and q.original not in train
    # retouch names its variant (which operations) for per-variant verdicts; the others none
    assert {q.variant for q in queries if q.family == "retouch"} <= {"inpaint", "liquify", "inpaint+liquify"}
    assert all(q.variant for q in queries if q.family == "retouch")
    assert all(q.variant.startswith(("story", "square", "portrait", "own")) for q in queries if q.family == "reframe")
    assert {q.variant for q in queries if q.family == "recolour"} <= {"segment", "segment+tint", "ellipse", "ellipse+tint"}
    assert all(q.variant.startswith(("story", "square", "portrait", "wide")) for q in queries if q.family == "pad")
    assert all(q.variant for q in queries if q.family == "annotate")
    assert {q.variant for q in queries if q.family == "tilt"} <= {"crop", "black", "white", "blur"}
    assert {q.variant for q in queries if q.family == "stack"} <= {"2", "3"}
    assert all(q.variant.startswith(("grabcut", "lasso")) for q in queries if q.family == "cutout")
    assert {q.variant for q in queries if q.family == "resize_part"} <= {"grow", "shrink"}
    assert {q.variant for q in queries if q.family == "mirror_half"} <= {"left", "right", "top", "bottom"}
    assert all(q.variant.startswith(("light+", "dark+")) for q in queries if q.family == "screenshot")
    assert all(q.variant.startswith(("grey+", "cmyk+")) for q in queries if q.family == "newsprint")
    assert {q.variant for q in queries if q.family == "distort"} <= {"spherize", "pinch", "twirl"}
    assert {q.variant for q in queries if q.family == "inset"} <= {"framed", "bare"}
    assert {q.variant for q in queries if q.family == "double_exposure"} <= {"disc", "ramp"}
    assert {q.variant for q in queries if q.family == "popart"} <= {"2x2", "1x2", "2x1", "3x3"}
    assert {q.variant for q in queries if q.family == "glitch"} <= {"plain", "scanlines"}
    assert not any(q.variant for q in queries
                   if q.family not in (None, "retouch", "reframe", "recolour", "pad", "annotate", "tilt", "stack", "cutout",
                                       "resize_part", "mirror_half", "screenshot", "newsprint", "distort",
                                       "inset", "double_exposure", "popart", "glitch"))
    micc_q = next(q for q in queries if q.family == "micc-f220")
    mask = np.asarray(micc_q.mask) > 127
    assert mask[15:35, 15:35].all() and mask.mean() < 0.1


def test_bench_cli_refuses_malformed_input_cleanly(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A bad QUERIES.csv, a broken MICC pairs.csv or a negative --families: exit 2 with a
    message, no traceback, and no results file or folder left behind."""
    from verifier.cli import main

    bad = tmp_path / "q.csv"
    bad.write_text("query,original,kind,mask,family\nx.jpg,,weird,,fam\n")
    out = tmp_path / "r.json"
    assert main(["bench", "--queries", str(bad), "--baselines", "", "--out", str(out)]) == 2
    assert "kind 'weird'" in capsys.readouterr().err and not out.exists()
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff" * 5000)
    assert main(["bench", "--queries", str(garbage), "--baselines", "", "--out", str(out)]) == 2
    assert not out.exists()

    shared = tmp_path / "shared"
    photos = shared / "datasets" / "photos"
    (photos / "img").mkdir(parents=True)
    (photos / "index.csv").write_text("path,source,split\n" + "".join(f"img/{i}.jpg,g,test\n" for i in range(6)))
    for i in range(6):
        generated_photo(i, (96, 64)).save(photos / "img" / f"{i}.jpg")
    micc = shared / "datasets" / "micc-f220"
    (micc / "images").mkdir(parents=True)
    for pairs in ("edited;original\nx;y\n", "edited,original\n../../../../etc/passwd,images/none.jpg\n"):
        (micc / "pairs.csv").write_text(pairs)
        assert main(["bench-data", "--shared", str(shared), "--out", str(tmp_path / f"b{len(pairs)}"),
                     "--n-per-kind", "1", "--n-identical", "1", "--n-distinct", "3", "--families", "1"]) == 2
        assert "pairs.csv" in capsys.readouterr().err
        assert not (tmp_path / f"b{len(pairs)}").exists()  # refused before anything was written
    assert main(["bench-data", "--shared", str(shared), "--out", str(tmp_path / "d"), "--n-per-kind", "1",
                 "--n-identical", "1", "--n-distinct", "2", "--families", "1"]) == 2
    assert "held-out photos" in capsys.readouterr().err and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit) as exc:
        main(["bench-data", "--shared", str(shared), "--out", str(tmp_path / "c"), "--families", "-3"])
    assert exc.value.code == 2


def test_retouch_changes_only_what_its_mask_marks() -> None:
    """Removal by inpainting and liquify warps: nothing from another photo; outside the mask
    the pixels stay (up to the sub-pixel edge of a warp), inside it most of them change."""
    img = PHOTOS[2]
    seen = set()
    for seed in range(8):
        s = make_edit("retouch", img, [], random.Random(seed), finished=False)
        seen.update(op for op in s.ops[0].removeprefix("retouch:").split("+"))
        m = np.asarray(s.mask) > 127
        diff = np.abs(np.asarray(s.image, np.int16) - np.asarray(img, np.int16)).sum(-1)
        assert s.image.size == img.size and 0.005 < m.mean() < 0.6
        assert (diff[~m] > 8).mean() < 0.03 and (diff[m] > 8).mean() > 0.2, (seed, s.ops)
        assert diff[m].mean() > 5 * diff[~m].mean(), (seed, s.ops)
    assert seen == {"inpaint", "liquify"}
    assert variant(make_edit("retouch", img, [], random.Random(0))) in {"inpaint", "liquify", "inpaint+liquify"}
    assert variant(make_edit("paste_large", img, PHOTOS[:1], random.Random(0))) == ""


def test_stack_adds_up_its_steps_and_changes_nothing_else() -> None:
    from verifier.simprov.edits import STACK_STEPS

    img = PHOTOS[0]
    orig = np.asarray(img, np.float32)
    seen_cast = seen_plain = False
    for seed in range(12):
        s = make_edit("stack", img, PHOTOS[1:4], random.Random(seed), finished=False)
        n, steps = int(variant(s)), [t for t in s.ops[1:] if t != "cast"]
        assert n == len(steps) and 2 <= n <= 3 and len(set(steps)) == n and set(steps) <= set(STACK_STEPS)
        m = np.asarray(s.mask) > 127
        out = np.asarray(s.image, np.float32)
        assert s.image.size == img.size and 0.001 < m.mean() < 0.95
        if "cast" in s.ops:  # outside the mask each channel is the original times one gain
            seen_cast = True
            keep = ~m & (orig.min(-1) > 20) & (out.max(-1) < 235)
            gain = np.median(out[keep] / orig[keep], axis=0)
            assert np.all((gain > 0.75) & (gain < 1.25))
            base = np.clip(orig * gain, 0, 255)
        else:
            seen_plain = True
            base = orig
        changed = np.abs(out - base).max(-1) > 24
        assert changed[~m].mean() < 0.03  # outside the union only a feathered rim differs
    assert seen_cast and seen_plain


def test_later_families_are_held_out_and_last() -> None:
    # a family added later goes last, so the earlier families' queries stay the same
    later = ["stack", "cutout", "resize_part", "mirror_half", "clone", "screenshot", "newsprint", "distort", "inset",
             "double_exposure", "popart", "glitch"]
    assert list(FAMILIES)[-len(later):] == later and set(later) <= set(HELD_OUT_FAMILIES)


def _changed_outside(out: Image.Image, img: Image.Image, mask: Image.Image) -> float:
    """Share of the pixels outside `mask` that differ visibly (a feathered rim may)."""
    changed = np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16)).max(-1) > 24
    return float(changed[~(np.asarray(mask) > 127)].mean())


def test_distort_bends_only_what_its_mask_marks() -> None:
    """Spherize, pinch or twirl over a disc: the size kept, nothing outside the mask moved, the
    content inside it displaced (not recoloured: the colours are the photo's own)."""
    img = PHOTOS[0]
    orig = np.asarray(img, np.int16)
    seen = set()
    for seed in range(16):
        s = make_edit("distort", img, [], random.Random(seed), finished=False)
        tag = variant(s)
        seen.add(tag)
        m = np.asarray(s.mask) > 127
        out = np.asarray(s.image, np.int16)
        assert s.image.size == img.size
        assert 0.03 < m.mean() < 0.65, (tag, m.mean())
        changed = np.abs(out - orig).max(-1) > 24
        assert changed[~m].mean() < 0.01  # outside: the same pixels (what moved under 1 px aside)
        assert changed[m].mean() > 0.02, (seed, tag)
        # a warp moves colours, it does not make new ones: the mean colour inside stays close
        assert np.abs(out[m].mean(0) - orig[m].mean(0)).max() < 25
    assert seen == {"spherize", "pinch", "twirl"}


def test_inset_shows_the_whole_photo_in_a_quad_of_the_scene() -> None:
    """Outside the mask is the photo (seen at an angle); the mask is the donor scene and the
    border: the scene's pixels there, the photo filling 12-40 % of the frame."""
    img, donor = PHOTOS[0], PHOTOS[3]
    scene = np.asarray(donor.resize(img.size, Image.BICUBIC), np.int16)
    seen = set()
    for seed in range(10):
        s = make_edit("inset", img, [donor], random.Random(seed), finished=False)
        seen.add(variant(s))
        m = np.asarray(s.mask) > 127
        out = np.asarray(s.image, np.int16)
        assert s.image.size == img.size and 0.08 < (~m).mean() < 0.45, (seed, (~m).mean())
        from_scene = np.abs(out - scene).max(-1) <= 24
        assert from_scene[m].mean() > 0.7  # the scene (a framed photo's border and the quad's rim aside)
        assert from_scene[~m].mean() < 0.5  # the photo is there, not the scene
    assert seen == {"framed", "bare"}


def test_resize_part_grows_or_shrinks_a_part_in_place() -> None:
    img = PHOTOS[0]
    seen = set()
    for seed in range(12):
        s = make_edit("resize_part", img, [], random.Random(seed), finished=False)
        tag, k = s.ops[0].split(":")[1], float(s.ops[1][1:])
        seen.add(tag)
        assert s.image.size == img.size
        assert (1.4 <= k <= 2.5) if tag == "grow" else (0.4 <= k <= 0.7)
        m = np.asarray(s.mask) > 127
        assert 0.01 < m.mean() < 0.5, (s.ops, m.mean())
        assert _changed_outside(s.image, img, s.mask) < 0.01
    assert seen == {"grow", "shrink"}


def test_mirror_half_replaces_one_side_by_the_other_mirrored() -> None:
    img = PHOTOS[0]
    src = np.asarray(img)
    sides = set()
    for seed in range(16):
        s = make_edit("mirror_half", img, [], random.Random(seed), finished=False)
        side = s.ops[0].split(":")[1]
        sides.add(side)
        out, m = np.asarray(s.image), np.asarray(s.mask) > 127
        assert np.array_equal(out[~m], src[~m])  # the kept side is untouched
        assert 0.3 < m.mean() <= 0.5
        if side in ("left", "right"):
            cols = np.flatnonzero(m[0])
            keep = cols[0] if side == "left" else cols[-1] + 1
            for c in cols[:5]:  # column keep + d is column keep - 1 - d (or its mirror for the right side)
                twin = 2 * keep - 1 - c
                assert np.array_equal(out[:, c], src[:, twin])
    assert {"left", "right"} <= sides


def test_clone_repeats_a_part_and_changes_nothing_else() -> None:
    img = PHOTOS[0]
    for seed in range(8):
        s = make_edit("clone", img, [], random.Random(seed), finished=False)
        n = int(s.ops[0][len("clone"):])
        assert 2 <= n <= 4
        m = np.asarray(s.mask) > 127
        assert 0.02 < m.mean() < 0.6, (s.ops, m.mean())
        assert _changed_outside(s.image, img, s.mask) < 0.01


def _subject_photo(size: tuple[int, int] = (360, 270)) -> Image.Image:
    """A red disc (the subject) on a textured blue backdrop: a photo GrabCut can cut."""
    rng = np.random.default_rng(0)
    arr = np.zeros((size[1], size[0], 3), np.float32)
    arr[...] = (40, 70, 170)
    arr += rng.normal(0, 12, arr.shape)
    yy, xx = np.mgrid[: size[1], : size[0]]
    disc = (xx - size[0] / 2) ** 2 + (yy - size[1] / 2) ** 2 < (0.22 * size[1]) ** 2
    arr[disc] = (200, 30, 30) + rng.normal(0, 12, (int(disc.sum()), 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_cutout_places_the_cut_subject_into_the_donor_scene() -> None:
    """The query is the donor's frame; outside the cut (past its rim) it is the donor
    untouched; inside, the original's subject (red) shows; mirror, turn and colour match vary."""
    img = _subject_photo()
    donor = Image.fromarray(np.random.default_rng(1).integers(60, 200, (300, 400, 3), dtype=np.uint8))
    seen = set()
    for seed in range(12):
        s = make_edit("cutout", img, [donor], random.Random(seed), finished=False)
        tags = variant(s).split("+")
        seen |= set(tags)
        assert s.image.size == donor.size and tags[0] == "grabcut", s.ops
        m = np.asarray(s.mask) > 127  # everything not from the original
        assert 0.6 < m.mean() < 0.95, (s.ops, m.mean())
        kept = ~(np.asarray(Image.fromarray(m).filter(ImageFilter.MaxFilter(7))) > 0)  # the cut, past its rim
        rim = np.asarray(Image.fromarray(~m).filter(ImageFilter.MaxFilter(9))) > 0
        out = np.asarray(s.image, np.int16)
        assert np.abs(out - np.asarray(donor, np.int16))[~rim].max() == 0, s.ops
        if "match" not in tags:  # the subject's own colour, not the backdrop's nor the donor's
            r, g, b = out[kept].mean(0)
            assert r > 150 and r > 2.5 * max(g, b), (s.ops, r, g, b)
    assert {"mirror", "turn", "match"} <= seen


def test_cutout_falls_back_to_a_lasso_without_a_subject() -> None:
    flat = Image.fromarray(np.random.default_rng(2).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    s = make_edit("cutout", flat, PHOTOS[1:2], random.Random(0), finished=False)
    assert variant(s).split("+")[0] == "lasso" and 0.5 < (np.asarray(s.mask) > 127).mean() < 0.95


def test_a_screenshot_shows_the_photo_unchanged_in_a_phone_screen() -> None:
    """The photo is pasted at the screen's width (less a margin), cropped as a platform crops it; the rest is UI."""
    wide = generated_photo(9, (480, 200))  # wider than 1.91:1: the app crops its sides
    seen = set()
    for seed in range(8):
        for img in (PHOTOS[0], wide):
            s = make_edit("screenshot", img, PHOTOS[1:2], random.Random(seed), finished=False)
            sw, sh = s.image.size
            assert 540 <= sw <= 720 and 2.1 < sh / sw < 2.25
            tag = s.ops[0]
            assert tag.startswith("screenshot:") and ("1.91:1" in tag) == (img is wide)
            seen.add(tag.split(":")[1].split("+")[0])
            # the photo is there: the best placement of its resized copy across the screen's width matches closely
            arr = np.asarray(s.image, np.int16)
            best = np.inf
            for margin in {0, round(12 * sw / 540), round(24 * sw / 540)}:
                pw = sw - 2 * margin
                src = img if img is not wide else img.crop(((480 - 382) // 2, 0, (480 - 382) // 2 + 382, 200))
                ph = round(src.height * pw / src.width)
                ref = np.asarray(src.resize((pw, ph), Image.BICUBIC), np.int16)
                col = arr[:, margin:margin + pw]
                rows = [y for y in range(sh - ph) if abs(col[y + ph // 2, pw // 2] - ref[ph // 2, pw // 2]).max() < 3]
                for y in rows[:200]:
                    inner = np.abs(col[y + 20:y + ph - 20, 20:pw - 20] - ref[20:-20, 20:-20]).mean()
                    best = min(best, inner)
            assert best < 2.0, (seed, tag, best)
    assert seen == {"light", "dark"}


def test_newsprint_halftones_the_photo_on_a_page() -> None:
    """Dots, not continuous tone: a print's photo is ink or paper at each dot, which a blur turns back into the photo."""
    from verifier.simprov.edits import _halftone

    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.float32), (60, 1))[..., None]
    dots = _halftone(ramp, 4.0, (np.pi / 4,))[..., 0]
    assert set(np.unique(dots)) <= {0.0, 255.0}  # two levels only
    ink = (dots == 0).reshape(60, 4, 50).mean(axis=(0, 2))  # the share of ink falls along the ramp
    assert ink[0] > 0.7 and ink[-1] < 0.3 and np.all(np.diff(ink) < 0.05)
    seen = set()
    for seed in range(10):
        s = make_edit("newsprint", PHOTOS[0], [], random.Random(seed), finished=False)
        assert 500 <= s.image.width <= 1000 and s.ops[0].startswith("newsprint:")
        seen.add(s.ops[0].split(":")[1])
    assert {t.split("+")[0] for t in seen} == {"grey", "cmyk"} and {t.split("+")[1] for t in seen} == {"scanned", "photographed"}


def test_double_exposure_blends_the_donor_in_only_where_its_mask_says() -> None:
    """Outside the mask the photo's own pixels; inside it, drawn towards the donor (in the
    normal blend, closer to the donor than the photo is); both regions and all three blends."""
    img, donor = PHOTOS[0], PHOTOS[3]
    orig = np.asarray(img, np.int16)
    don = np.asarray(donor.resize(img.size, Image.BICUBIC), np.int16)
    seen: set[tuple[str, str]] = set()
    for seed in range(24):
        s = make_edit("double_exposure", img, [donor], random.Random(seed), finished=False)
        region, mode = variant(s), s.ops[1]
        seen.add((region, mode))
        m = np.asarray(s.mask) > 127
        out = np.asarray(s.image, np.int16)
        assert s.image.size == img.size and 0.02 < m.mean() < 0.95, (seed, region, mode, m.mean())
        assert np.abs(out - orig).max(-1)[~m].max() <= 24
        if mode == "normal":
            assert np.abs(out - don)[m].mean() < np.abs(orig - don)[m].mean()
    assert {r for r, _ in seen} == {"disc", "ramp"} and {m for _, m in seen} == {"normal", "screen", "multiply"}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def test_popart_shows_the_whole_photo_in_every_tile() -> None:
    """Each tile of the grid is the photo (or its mirror image) at the tile's size, its tones
    kept in order (posterized and colourised from dark to bright), the mask empty."""
    img = PHOTOS[0]
    w, h = img.size
    grids = set()
    for seed in range(12):
        s = make_edit("popart", img, [], random.Random(seed), finished=False)
        cols, rows = map(int, variant(s).split("x"))
        grids.add((cols, rows))
        assert s.image.size == img.size and not np.asarray(s.mask).any()
        lum = np.asarray(s.image.convert("L"), np.float64)
        best = 0.0
        for g in range(round(0.03 * min(w, h)) + 1):  # the gutter is not told: the one that fits
            tw, th = (w - g * (cols + 1)) // cols, (h - g * (rows + 1)) // rows
            ref = np.asarray(img.resize((tw, th), Image.LANCZOS).convert("L"), np.float64)
            worst = min(
                max(_corr(tile, ref), _corr(tile, ref[:, ::-1]))
                for r in range(rows) for c in range(cols)
                for tile in [lum[g + r * (th + g): g + r * (th + g) + th, g + c * (tw + g): g + c * (tw + g) + tw]]
            )
            best = max(best, worst)
        assert best > 0.8, (seed, cols, rows, best)
    assert (2, 2) in grids and len(grids) >= 2


def test_glitch_shifts_rows_and_splits_the_colour_channels() -> None:
    """Every row of the result is a row of the photo moved sideways (wrapping round), its red
    and blue channels moved by the same amount the opposite ways; scanlines only darken."""
    img = PHOTOS[0]
    src = np.asarray(img, np.float64)
    w = img.width
    for seed in range(6):
        s = make_edit("glitch", img, [], random.Random(seed), finished=False)
        out = np.asarray(s.image, np.float64)
        assert s.image.size == img.size and not np.asarray(s.mask).any()
        moved = 0
        for y in range(img.height):
            g = out[y, :, 1]
            ref = src[y, :, 1]
            # overlapping bands add their shifts: any shift, found by circular cross-correlation
            shift = int(np.argmax(np.fft.ifft(np.fft.fft(g - g.mean()) * np.conj(np.fft.fft(ref - ref.mean()))).real))
            assert _corr(g, np.roll(src[y, :, 1], shift)) > 0.99, (seed, y)
            red = [_corr(out[y, :, 0], np.roll(src[y, :, 0], shift + d)) for d in range(-w // 30 - 1, w // 30 + 2)]
            blue = [_corr(out[y, :, 2], np.roll(src[y, :, 2], shift - d)) for d in range(-w // 30 - 1, w // 30 + 2)]
            assert int(np.argmax(red)) == int(np.argmax(blue)) and max(red) > 0.99
            moved += shift != 0
        assert moved > 0  # some band was displaced
