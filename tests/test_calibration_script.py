"""The calibration scripts, the records behind stage 3's constants, still run and print their
tables (a few pairs each: smoke tests, not the calibrations)."""

from __future__ import annotations

import runpy
import sys

import pytest

from tests.conftest import REPO, shared_path


def _run(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """`scripts/<script>` run on the shared photos (skipped without them) with `args`: its printed lines."""
    photos = shared_path("datasets", "photos", "index.csv").parent
    monkeypatch.setattr(sys, "argv", [script, "--shared", str(photos.parents[1]), *args])
    runpy.run_path(str(REPO / "scripts" / script), run_name="__main__")
    return capsys.readouterr().out.splitlines()


def test_colour_map_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _run("calibrate_colour_map.py", ["--n", "2", "--seed", "3", "--gains", "2"], monkeypatch, capsys)
    assert lines[0].startswith("| correction | T (levels) | benign_graded manipulated")
    rows = [line for line in lines if line.startswith("| ")][1:]
    assert rows[0].startswith("| none (ChangeNet alone) |")
    shipped = [r for r in rows if r.startswith("| affine original->query (shipped) | 2 |")]
    assert len(shipped) == 1 and len(rows) == 1 + 5  # none + five corrections at one bar
    cells = [c.strip() for c in shipped[0].strip("|").split("|")][2:]
    assert len(cells) == 5 and all(c.endswith((" / 2", " / 1", " / 0")) for c in cells), cells


def test_localise_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/calibrate_localise.py`, the record behind the pixel map's frame and noise factor:
    one row per frame and factor plus the two baselines, an IoU in [0, 1] per family."""
    out = _run("calibrate_localise.py", ["--n", "8", "--seed", "3", "--factors", "6"], monkeypatch, capsys)
    lines = [line for line in out if line.startswith("| ")]
    assert lines[0].startswith("| ungated IoU | copy_move_small | paste_large")
    names = [line.split("|")[1].strip() for line in lines[1:]]
    assert names == ["112-px square, noise factor 6", "working frame, noise factor 6", "per-pixel SSD + F_A, 112-px square",
                     "per-pixel SSD + F_A, working frame", "n"]
    values = [float(c) for line in lines[1:-1] for c in line.strip("|").split("|")[1:]]
    assert len(values) == 4 * 7 and all(0.0 <= v <= 1.0 for v in values), values
    assert lines[-1].split("|")[2].strip() == "3"  # copy_move_small: 3 of every 8 edits


def test_footprint_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/calibrate_footprint.py`, the record behind stage 3's FOOTPRINT_SHARE: the whole frame
    and each share, a count per kind out of the pairs that aligned."""
    out = _run("calibrate_footprint.py", ["--n", "4", "--seed", "3", "--shares", "0.9"], monkeypatch, capsys)
    lines = [line for line in out if line.startswith("| ")]
    assert lines[0].startswith("| footprint share | tight crop called manipulated | benign copy")
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["0 (whole frame)", "0.9", "pairs made (aligned above)"]
    counts = [c.strip().split(" / ") for line in lines[1:3] for c in line.strip("|").split("|")[1:]]
    assert len(counts) == 8 and all(0 <= int(a) <= int(b) <= 1 for a, b in counts), counts
    assert lines[-1].split("|")[2:6] == [" 1 "] * 4  # one pair of each kind


def test_recolour_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/calibrate_recolour.py`, the record behind stage 3's RECOLOUR_SHARE and CHROMA_LEVEL:
    ChangeNet alone, then each level and share, a count per kind out of the pairs that aligned."""
    out = _run("calibrate_recolour.py", ["--n", "6", "--seed", "3", "--levels", "8", "--shares", "0.02", "--rests", "0.09"],
               monkeypatch, capsys)
    lines = [line for line in out if line.startswith("| ")]
    assert lines[0].startswith("| chroma level | rest departing at most | least share | recoloured called manipulated | graded copy")
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["(ChangeNet alone)", "8", "pairs made (aligned above)"]
    counts = [c.strip().split(" / ") for line in lines[1:3] for c in line.strip("|").split("|")[3:]]
    assert len(counts) == 12 and all(0 <= int(a) <= int(b) <= 1 for a, b in counts), counts
    alone, measured = ([int(c.strip().split(" / ")[0]) for c in line.strip("|").split("|")[3:]] for line in lines[1:3])
    assert all(m >= a for a, m in zip(alone, measured, strict=True))  # the measure only adds "manipulated"
    assert lines[-1].split("|")[4:10] == [" 1 "] * 6  # one pair of each kind


def test_self_fill_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/calibrate_self_fill.py`, the record behind SELF_FILL_RESIDUAL and SELF_FILL_RATIO: one row
    per kind, then the grid of bars with a count per kind; a photo's own blur pad is explained at the
    shipped bars and a donor's is not (two pairs of each kind)."""
    out = _run("calibrate_self_fill.py", ["--n", "10", "--seed", "3"], monkeypatch, capsys)
    rows = {line.split("|")[1].strip(): line for line in out if line.startswith("| ")}
    for kind in ("blur pad", "blur pad + handle", "donor fill", "collage", "benign copy"):
        assert rows[kind].split("|")[2].strip().endswith("/ 2"), rows[kind]
    shipped = rows["10 / 0.3"].strip("|").split("|")
    pads, donors = (c.strip().split(" / ") for c in (shipped[1], shipped[3]))
    assert int(pads[0]) >= 1 and donors[0] == "0", shipped


def test_min_votes_calibration_set_reads_as_bench_queries(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/calibrate_min_votes.py`, the calibration set behind VERIFIER_LOCAL_MIN_VOTES: a
    registry of links to `train` photos, pieces of registered originals inside unregistered
    photos, and unregistered copies, in the format `verifier bench` reads."""
    from PIL import Image

    from verifier.evaluation.queries import read_queries

    out = tmp_path / "cal"
    _run("calibrate_min_votes.py", ["--out", str(out), "--registry", "6", "--pieces", "3", "--distinct", "2", "--seed", "3"],
         monkeypatch, capsys)
    queries = read_queries(out / "queries.csv")
    assert [q.kind for q in queries] == ["manip"] * 3 + ["distinct"] * 2
    assert [q.family for q in queries] == ["piece"] * 3 + [None] * 2
    registry = {p.resolve() for p in (out / "registry").iterdir()}
    assert len(registry) == 6 and all(q.original in registry for q in queries[:3])
    for q in queries:
        with Image.open(out / q.name) as im:
            assert im.format == "JPEG" and min(im.size) >= 16


def test_shown_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/calibrate_shown.py`, the record behind the alignment's SHOWN_STEP: a row with no cut,
    one per step, each kind's counts out of the pairs aligned; the module's step is left as it was."""
    from verifier.simprov import align

    before = align.SHOWN_STEP
    out = _run("calibrate_shown.py", ["--n", "8", "--seed", "3", "--steps", "0.5"], monkeypatch, capsys)
    assert align.SHOWN_STEP == before
    lines = [line for line in out if line.startswith("| ")]
    assert lines[0].startswith("| SHOWN_STEP | post: cut found / called manipulated")
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["no cut", "0.5", "pairs made (aligned above)"]
    no_cut = [c.strip() for c in lines[1].strip("|").split("|")][1:5]
    assert all(c.startswith("0 / ") for c in no_cut), no_cut  # no cut can be found with the step out of reach
    assert lines[3].split("|")[2].strip() == "2"  # a quarter of the pairs are posts


def test_mirror_fit_probe_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/probe_mirror_fit.py`, the record behind the aligner's mirrored try: one row per bin
    of plain inliers, every copy counted once, and every mirrored copy's mirrored fit the better."""
    out = _run("probe_mirror_fit.py", ["--n", "4", "--seed", "1"], monkeypatch, capsys)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out if line.startswith("| ")][1:]
    assert [r[0] for r in rows] == ["0-7", "8-15", "16-23", "24-31", "32-47", "48-63", "64-95", "96-127", "128+"]
    assert sum(int(r[1]) for r in rows) == 4 and sum(int(r[3]) for r in rows) == 4
    assert sum(int(r[4]) for r in rows) == 4  # the right (mirrored) fit wins for each mirrored copy
    assert out[-1].startswith("most plain inliers of a mirrored copy")
