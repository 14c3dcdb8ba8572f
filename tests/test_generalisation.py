"""The leave-family-out reading of a families benchmark (`verifier.evaluation.generalisation`)."""

from __future__ import annotations

import json

import pytest

from verifier.evaluation.bench import summarise as summarise_bench
from verifier.evaluation.generalisation import leave_family_out, summarise, wilson
from verifier.simprov.edits import HELD_OUT_FAMILIES, TRAIN_FAMILIES


def entry(hits: int, n: int = 60) -> dict:
    return {"n": n, "stage12": {"IR@1": round(hits / n, 4) if n else None}}


def results_families() -> dict[str, dict]:
    """Trained families near 0.99; three held-out ones clearly at, clearly under and near the margin."""
    fams = {name: entry(60 if i % 2 == 0 else 59) for i, name in enumerate(TRAIN_FAMILIES)}
    fams |= {f"{name}+benign": entry(57) for name in TRAIN_FAMILIES}
    at, under, near = HELD_OUT_FAMILIES[:3]
    fams |= {at: entry(60), under: entry(40), near: entry(56),
             f"{at}+benign": entry(57), f"{under}+benign": entry(30), f"{near}+benign": entry(54),
             "micc-f220": entry(110, 110), "micc-f220+benign": entry(108, 110)}
    return fams


def test_wilson_interval_matches_known_values() -> None:
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(60, 60) == pytest.approx((0.9398, 1.0), abs=1e-4)
    assert wilson(51, 60) == pytest.approx((0.7389, 0.9190), abs=1e-4)
    lo, hi = wilson(30, 60)
    assert lo < 0.5 < hi and hi - 0.5 == pytest.approx(0.5 - lo)


def test_each_held_out_family_is_read_against_the_trained_mean_with_its_interval() -> None:
    lfo = leave_family_out(results_families())
    at, under, near = HELD_OUT_FAMILIES[:3]
    g = lfo["groups"]["as_generated"]
    trained_mean = (len(TRAIN_FAMILIES) * 60 - len(TRAIN_FAMILIES) // 2) / (60 * len(TRAIN_FAMILIES))
    assert g["trained"] == {"families": len(TRAIN_FAMILIES), "mean": round(trained_mean, 4)}
    rows = g["families"]
    assert rows[at]["status"] == "met" and rows[under]["status"] == "not met" and rows[near]["status"] == "undecided"
    for name in (at, under, near):
        lo, hi = rows[name]["gap_ci95"]
        assert lo <= rows[name]["gap"] <= hi  # the point estimate lies inside its interval
    assert rows[under]["gap"] == pytest.approx(trained_mean - 40 / 60, abs=1e-4)
    assert rows[under]["ci95"] == [round(v, 4) for v in wilson(40, 60)]
    assert rows["micc-f220"]["side"] == "real" and "status" not in rows["micc-f220"]
    assert all(rows[name]["side"] == "trained" and "gap" not in rows[name] for name in TRAIN_FAMILIES)
    assert g["status"] == {"met": [at], "undecided": [near], "not met": [under]}
    # the transformed copies are read against the trained families' transformed copies, not the originals
    t = lfo["groups"]["after_transform"]
    assert t["trained"]["mean"] == pytest.approx(57 / 60, abs=1e-4)
    assert t["families"][f"{at}+benign"]["gap"] == 0.0 and t["families"][f"{at}+benign"]["status"] == "undecided"
    assert t["families"][f"{under}+benign"]["status"] == "not met"
    assert "micc-f220+benign" in t["families"] and "micc-f220" not in t["families"]


def test_the_margin_decides_and_the_draws_are_seeded() -> None:
    fams = results_families()
    near = HELD_OUT_FAMILIES[2]
    assert leave_family_out(fams, margin=0.3)["groups"]["as_generated"]["families"][near]["status"] == "met"
    assert leave_family_out(fams, margin=-0.2)["groups"]["as_generated"]["families"][near]["status"] == "not met"
    assert leave_family_out(fams, seed=3) == leave_family_out(fams, seed=3)
    assert leave_family_out(fams, seed=3) != leave_family_out(fams, seed=4)  # the intervals come from draws


def test_a_result_without_both_sides_or_stage_2_has_no_reading() -> None:
    held = HELD_OUT_FAMILIES[0]
    assert leave_family_out({held: entry(60)})["groups"] == {}
    assert leave_family_out({TRAIN_FAMILIES[0]: entry(60), held: entry(0, 0)})["groups"] == {}  # no query: left out
    with pytest.raises(ValueError, match="stage 1\\+2"):
        leave_family_out({TRAIN_FAMILIES[0]: {"n": 60, "stage12": None}, held: entry(60)})


def test_the_bench_summary_and_the_command_print_the_reading(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main

    fams = results_families()
    lfo = leave_family_out(fams)
    text = summarise(lfo)
    under = HELD_OUT_FAMILIES[1]
    assert "leave-family-out" in text and f"not met: {under}" in text
    results = {"n_registry": 10, "n_queries": 5, "model": {"stage1": "m"}, "kinds": {}, "families": {},
               "leave_family_out": lfo, "latency_ms": {}}
    assert text in summarise_bench(results)

    path = tmp_path / "fam.json"
    path.write_text(json.dumps({"families": fams}))
    out = tmp_path / "lfo.json"
    assert main(["bench-generalisation", str(path), "--out", str(out)]) == 0
    assert f"not met: {under}" in capsys.readouterr().out
    assert json.loads(out.read_text())["groups"]["as_generated"]["status"]["not met"] == [under]
    path.write_text(json.dumps({"kinds": {}}))
    assert main(["bench-generalisation", str(path)]) == 2
    assert "no per-family results" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["bench-generalisation", str(path)]) == 2


@pytest.mark.parametrize("entry", [
    "sixty", None, {"n": -3, "stage12": {"IR@1": 0.5}}, {"n": "60", "stage12": {"IR@1": 0.5}},
    {"n": 60, "stage12": {"IR@1": 5}}, {"n": 60, "stage12": {"IR@1": "high"}}, {"n": 60, "stage12": "x"},
])
def test_malformed_family_entries_are_value_errors(entry) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        leave_family_out({TRAIN_FAMILIES[0]: entry, HELD_OUT_FAMILIES[0]: {"n": 60, "stage12": {"IR@1": 1.0}}})
    with pytest.raises(ValueError):
        leave_family_out(["not", "a", "mapping"])  # type: ignore[arg-type]
