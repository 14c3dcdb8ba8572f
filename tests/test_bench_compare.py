"""Two bench results compared query for query (`verifier.evaluation.compare`)."""

from __future__ import annotations

import json

import pytest

from verifier.evaluation.compare import compare_runs, mcnemar_exact, summarise
from verifier.evaluation.environment import differences, environment


def record(name: str, correct: bool, family: str | None = "fam", kind: str = "manip", verdict: str | None = None) -> dict:
    return {"query": name, "kind": kind, "family": family, "correct": correct,
            "verdict": verdict or ("match_manipulated" if correct else "no_match"), "matched": "o" if correct else None}


def test_mcnemar_exact_by_hand() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # all five discordant queries one way
    assert mcnemar_exact(2, 5) == pytest.approx(2 * (1 + 7 + 21) / 128)
    assert mcnemar_exact(5, 2) == mcnemar_exact(2, 5)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(20, 2) < 0.001


def test_runs_are_compared_query_for_query_per_group() -> None:
    a = {"queries": [record(f"q{i}", i < 8) for i in range(10)]
         + [record("d0", True, family=None, kind="distinct"), record("only-a", True)]}
    # B gains q8, q9 and loses q0; an unregistered photo's verdict changes, still right
    b = {"queries": [record(f"q{i}", i != 0) for i in range(10)]
         + [record("d0", True, family=None, kind="distinct", verdict="refused"), record("only-b", False)]}
    c = compare_runs(a, b)
    assert (c["compared"], c["only_in_a"], c["only_in_b"]) == (11, 1, 1)
    fam = c["groups"]["fam"]
    assert (fam["n"], fam["a"], fam["b"], fam["gained"], fam["lost"]) == (10, 0.8, 0.9, 2, 1)
    assert fam["p_mcnemar"] == pytest.approx(mcnemar_exact(2, 1), abs=1e-4) and fam["answer_changed"] == 3
    assert c["groups"]["distinct"] == {"n": 1, "a": 1.0, "b": 1.0, "gained": 0, "lost": 0, "answer_changed": 1,
                                       "p_mcnemar": 1.0}
    assert list(c["groups"])[-1] == "all" and c["groups"]["all"]["n"] == 11
    assert {x["query"] for x in c["changed"]} == {"q0", "q8", "q9", "d0"}
    assert len(compare_runs(a, b, listed=2)["changed"]) == 2
    text = summarise(c)
    assert "q0 [fam]: match_manipulated (right) -> no_match (wrong)" in text


def test_results_that_cannot_be_compared_are_refused(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main

    with pytest.raises(ValueError, match="per-query"):
        compare_runs({"queries": []}, {"queries": [record("q", True)]})
    with pytest.raises(ValueError, match="share no query"):
        compare_runs({"queries": [record("x", True)]}, {"queries": [record("y", True)]})
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({"queries": [record("q1", False), record("q2", True)]}))
    b.write_text(json.dumps({"queries": [record("q1", True), record("q2", True)]}))
    assert main(["bench-compare", str(a), str(b), "--out", str(out)]) == 0
    assert "q1 [fam]: no_match (wrong) -> match_manipulated (right)" in capsys.readouterr().out
    assert json.loads(out.read_text())["groups"]["fam"]["gained"] == 1
    b.write_text("{broken")
    assert main(["bench-compare", str(a), str(b)]) == 2
    b.write_text(json.dumps({"kinds": {}}))
    assert main(["bench-compare", str(a), str(b)]) == 2
    assert "per-query" in capsys.readouterr().err


@pytest.mark.parametrize("body", [
    "[1, 2, 3]", '"text"', "null", '{"queries": "all of them"}', '{"queries": [1, 2]}',
    '{"queries": [{"query": 7, "kind": "manip"}]}', '{"queries": [{"query": "q"}]}', "\u0000\u00ff" * 50,
])
def test_garbage_results_are_refused_cleanly_and_write_nothing(tmp_path, capsys, body: str) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"queries": [record("q", True)]}))
    bad = tmp_path / "bad.json"
    bad.write_text(body, errors="surrogateescape")
    out = tmp_path / "out.json"
    for argv in (["bench-compare", str(good), str(bad)], ["bench-compare", str(bad), str(good)],
                 ["bench-generalisation", str(bad)]):
        assert main([*argv, "--out", str(out)]) == 2
        assert capsys.readouterr().err.startswith("verifier bench-")  # a message, not a traceback
        assert not out.exists()


def test_an_oversized_or_missing_results_file_is_refused(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import verifier.cli.bench as bench_cli
    from verifier.cli import main

    monkeypatch.setattr(bench_cli, "MAX_RESULTS_BYTES", 64)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"queries": [record(f"q{i}", True) for i in range(10)]}))
    assert main(["bench-compare", str(big), str(big)]) == 2
    assert "MiB" in capsys.readouterr().err
    assert main(["bench-generalisation", str(tmp_path / "none.json")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_runs_on_other_library_releases_are_said_to_differ() -> None:
    """A release of OpenCV or Pillow alone can move answers: the comparison names it, and stays
    silent when only the commit (what is being compared) differs."""
    here = environment()
    assert here["libraries"]["numpy"] and "opencv-python-headless" in here["libraries"]
    other = {**here, "commit": {"head": "0" * 40, "dirty": False},
             "libraries": {**here["libraries"], "opencv-python-headless": "4.9.0.80"}}
    other["libraries"].pop("pillow")
    assert differences(here, {**here, "commit": None}) == {}
    assert differences(here, other) == {"opencv-python-headless": [here["libraries"]["opencv-python-headless"], "4.9.0.80"],
                                        "pillow": [here["libraries"]["pillow"], None]}
    assert differences(None, None) == {} and differences(here, None) == {"environment": ["recorded", "not recorded"]}
    # a hand-edited or hostile results file: wrong types read as "not recorded" or are passed over, never a crash
    assert differences("3.11", here) == {"environment": ["not recorded", "recorded"]}
    assert differences({**here, "libraries": ["numpy"]}, {**here, "libraries": 7}) == {}
    a = {"environment": here, "queries": [record("q", True)]}
    b = {"environment": other, "queries": [record("q", True)]}
    c = compare_runs(a, b)
    assert set(c["environment_differs"]) == {"opencv-python-headless", "pillow"}
    assert "NOTE: the runs' environments differ (opencv-python-headless " in summarise(c)
    assert compare_runs(a, a)["environment_differs"] == {} and "NOTE" not in summarise(compare_runs(a, a))
    assert "NOTE" not in summarise(compare_runs({"queries": a["queries"]}, {"queries": a["queries"]}))


def test_the_commit_is_the_code_checkouts_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code installed into a virtual environment that lies inside some checkout (a wheel in
    .venv/lib/...) records no commit, not the enclosing checkout's HEAD."""
    import verifier.evaluation.environment as env

    if env.environment()["commit"] is None:
        pytest.skip("not run from a git checkout")
    assert len(env.environment()["commit"]["head"]) == 40
    monkeypatch.setattr(env, "_REPO", env._REPO / "tests")  # inside the checkout, not its top
    assert env.environment()["commit"] is None
