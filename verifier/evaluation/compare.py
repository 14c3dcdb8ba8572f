"""Two `verifier bench` results on the same queries, compared query for query.

A change to the pipeline is judged by the queries it answers differently, not by two family
figures side by side: two runs of 60 queries at 0.867 and 0.833 may be one query lost, or five
gained and six lost. Per group (an edit family, else the query kind) this counts the queries each
run answered correctly (the right original; for an unregistered photo, no match), those the
second run gained and lost, and the exact McNemar p-value of gained against lost (a two-sided
binomial test at 1/2 on the discordant queries), which is the test for a paired change.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from verifier.evaluation.environment import differences

ALL = "all"


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact p-value that gained and lost differ only by chance."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _group(record: dict[str, Any]) -> str:
    return record.get("family") or record["kind"]


def _records(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A result's per-query records by query name; a malformed list is a ValueError, not a crash."""
    records = result.get("queries") or []
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("query"), str)
                                                and isinstance(r.get("family") or r.get("kind"), str) for r in records):
        raise ValueError("`queries` must be a list of per-query records, each with its query name and kind")
    return {r["query"]: r for r in records}


def compare_runs(a: dict[str, Any], b: dict[str, Any], *, listed: int = 40) -> dict[str, Any]:
    """`a`, `b`: bench results (their `queries` records). Queries in only one run are counted,
    not compared; the first `listed` queries answered differently are named."""
    qa, qb = _records(a), _records(b)
    if not qa or not qb:
        raise ValueError("both results need their per-query records (`queries`)")
    common = sorted(set(qa) & set(qb))
    if not common:
        raise ValueError("the two results share no query: not runs of the same query list")
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    changed: list[dict[str, Any]] = []
    for name in common:
        ra, rb = qa[name], qb[name]
        ok_a, ok_b = bool(ra.get("correct")), bool(rb.get("correct"))
        answer_changed = (ra.get("verdict"), ra.get("matched")) != (rb.get("verdict"), rb.get("matched"))
        for group in (_group(ra), ALL):
            t = tally[group]
            t["n"] += 1
            t["a_correct"] += ok_a
            t["b_correct"] += ok_b
            t["gained"] += ok_b and not ok_a
            t["lost"] += ok_a and not ok_b
            t["answer_changed"] += answer_changed
        if answer_changed and len(changed) < listed:
            changed.append({"query": name, "group": _group(ra), "a": [ra.get("verdict"), ok_a],
                            "b": [rb.get("verdict"), ok_b]})
    groups = {}
    for group, t in sorted(tally.items(), key=lambda kv: (kv[0] == ALL, kv[0])):
        n = t["n"]
        groups[group] = {"n": n, "a": round(t["a_correct"] / n, 4), "b": round(t["b_correct"] / n, 4),
                         "gained": t["gained"], "lost": t["lost"], "answer_changed": t["answer_changed"],
                         "p_mcnemar": round(mcnemar_exact(t["gained"], t["lost"]), 4)}
    return {"compared": len(common), "only_in_a": len(set(qa) - set(qb)), "only_in_b": len(set(qb) - set(qa)),
            "environment_differs": differences(a.get("environment"), b.get("environment")),
            "groups": groups, "changed": changed}


def summarise(comparison: dict[str, Any]) -> str:
    head = (f"{comparison['compared']} queries in both runs (only in A {comparison['only_in_a']}, only in B "
            f"{comparison['only_in_b']}); correct = the right original, or no match for an unregistered photo")
    lines = [head]
    differs = comparison.get("environment_differs") or {}
    if differs:  # a library's release alone can move answers: say so before the answers
        told = "; ".join(f"{k} {v[0]} -> {v[1]}" for k, v in differs.items())
        lines.append(f"  NOTE: the runs' environments differ ({told}); answers may differ for that alone")
    lines.append(f"  {'group':<26} {'n':>5} {'A':>7} {'B':>7} {'gained':>7} {'lost':>5} {'p':>7}  answers changed")
    for group, g in comparison["groups"].items():
        lines.append(f"  {group:<26} {g['n']:>5} {g['a']:>7} {g['b']:>7} {g['gained']:>7} {g['lost']:>5} "
                     f"{g['p_mcnemar']:>7}  {g['answer_changed']}")
    for c in comparison["changed"]:
        lines.append(f"    {c['query']} [{c['group']}]: {c['a'][0]} ({'right' if c['a'][1] else 'wrong'}) -> "
                     f"{c['b'][0]} ({'right' if c['b'][1] else 'wrong'})")
    return "\n".join(lines)
