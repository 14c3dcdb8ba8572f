"""Leave-family-out reading of a families benchmark: is each held-out edit family within the
issue's margin (0.05) of the trained families, and how sure can 60 queries make us?

A family's stage 1+2 IR@1 from 60 queries is uncertain by about +-0.08 (a Wilson 95 % interval),
so a single figure "0.95 against 0.989" says little on its own. Each held-out family's gap to the
mean of the trained families gets a 95 % interval from draws of every family's rate (its Jeffreys
posterior, Beta(hits + 1/2, misses + 1/2): unlike redrawing hits at the observed rate, a family
with 60 of 60 still varies), and the margin is called **met** when the whole interval is at or
under it, **not met** when the whole interval is over it, and **undecided** otherwise.
Queries as generated and after a benign transform (`FAMILY+benign`) are read separately, each
against the trained families in the same state. Families of real data (MICC-F220) are listed
with their intervals but belong to neither side.

Works from the `families` block of a `verifier bench` result (n and stage 1+2 IR@1 per family),
so results written before this module can be read again (`verifier bench-generalisation`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from verifier.simprov.edits import HELD_OUT_FAMILIES, TRAIN_FAMILIES

MARGIN = 0.05
AFTER = "+benign"  # the suffix of a family's benign-transformed copies (evaluation.queries.benign_variants)
Z95 = 1.959964


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion: unlike p +- z*se it stays inside
    [0, 1] and is not empty at 0 or n hits."""
    if n <= 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _hits(entry: Any) -> tuple[int, int]:
    """(hits, n) of one family's entry; a malformed entry is a ValueError (a file read back may be anything)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("n"), int) or entry["n"] < 0:
        raise ValueError("a family entry needs its query count `n` (an integer >= 0)")
    n = entry["n"]
    if n == 0:
        return 0, 0
    stage12 = entry.get("stage12")
    rate = stage12.get("IR@1") if isinstance(stage12, dict) else None
    if rate is None:
        raise ValueError("a family without stage 1+2 IR@1 (was the benchmark run without stage 2?)")
    if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"a family's stage 1+2 IR@1 must lie in [0, 1], not {rate!r}")
    return round(float(rate) * n), n


def _base(name: str) -> str:
    return name.removesuffix(AFTER)


def leave_family_out(families: dict[str, Any], *, margin: float = MARGIN, resamples: int = 20000,
                     seed: int = 0) -> dict[str, Any]:
    """`families`: a bench result's `families` block. Returns, for "as generated" and "after a
    transform" (where present), the trained and held-out means (families weighted alike), the
    gap between them with its interval, and each
    family's IR@1, Wilson interval, and for a held-out family its gap to the trained mean, the
    gap's interval and the margin's status. A family with no query is left out."""
    if not isinstance(families, dict):
        raise ValueError("`families` must map each family's name to its entry")  # noqa: TRY004 (bad input)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"metric": "stage 1+2 IR@1", "margin": margin, "draws": resamples, "groups": {}}
    for group, transformed in (("as_generated", False), ("after_transform", True)):
        names = [f for f in families if f.endswith(AFTER) == transformed]
        trained = [f for f in names if _base(f) in TRAIN_FAMILIES]
        held = [f for f in names if _base(f) in HELD_OUT_FAMILIES]
        if not trained or not held:
            continue
        counts = {f: _hits(families[f]) for f in names}
        names = [f for f in names if counts[f][1] > 0]
        trained = [f for f in trained if counts[f][1] > 0]
        held = [f for f in held if counts[f][1] > 0]
        if not trained or not held:
            continue
        draws = {f: rng.beta(k + 0.5, n - k + 0.5, resamples) for f, (k, n) in counts.items()}
        trained_mean = float(np.mean([counts[f][0] / counts[f][1] for f in trained]))
        trained_draws = np.mean([draws[f] for f in trained], 0)
        held_mean = float(np.mean([counts[f][0] / counts[f][1] for f in held]))
        held_draws = np.mean([draws[f] for f in held], 0)
        per_family: dict[str, Any] = {}
        for f in names:
            k, n = counts[f]
            side = "trained" if f in trained else "held_out" if f in held else "real"
            row: dict[str, Any] = {"side": side, "n": n, "IR@1": round(k / n, 4),
                                   "ci95": [round(v, 4) for v in wilson(k, n)]}
            if side == "held_out":
                gap = trained_mean - k / n
                lo, hi = np.percentile(trained_draws - draws[f], [2.5, 97.5])
                row |= {"gap": round(gap, 4), "gap_ci95": [round(float(lo), 4), round(float(hi), 4)],
                        "status": "met" if hi <= margin else "not met" if lo > margin else "undecided"}
            per_family[f] = row
        lo, hi = np.percentile(trained_draws - held_draws, [2.5, 97.5])
        out["groups"][group] = {
            "trained": {"families": len(trained), "mean": round(trained_mean, 4)},
            "held_out": {"families": len(held), "mean": round(held_mean, 4),
                         "gap": round(trained_mean - held_mean, 4), "gap_ci95": [round(float(lo), 4), round(float(hi), 4)]},
            "status": {s: sorted(f for f, r in per_family.items() if r.get("status") == s)
                       for s in ("met", "undecided", "not met")},
            "families": dict(sorted(per_family.items(), key=lambda kv: (kv[1]["side"], kv[0]))),
        }
    return out


def summarise(lfo: dict[str, Any]) -> str:
    """The reading as text lines (what `verifier bench` prints after its own summary)."""
    lines = [f"leave-family-out ({lfo['metric']}, margin {lfo['margin']}, {lfo['draws']} draws):"]
    for group, g in lfo["groups"].items():
        t, h = g["trained"], g["held_out"]
        lines.append(f"  {group}: trained mean {t['mean']} ({t['families']} families), held out {h['mean']} "
                     f"({h['families']}); gap {h['gap']} {h['gap_ci95']}")
        for name, r in g["families"].items():
            extra = f"  gap {r['gap']} {r['gap_ci95']} {r['status']}" if "gap" in r else ""
            lines.append(f"    {name:<24} {r['side']:<8} n={r['n']:<4} IR@1={r['IR@1']} {r['ci95']}{extra}")
        lines.append("    " + "; ".join(f"{s}: {', '.join(fs) or '-'}" for s, fs in g["status"].items()))
    return "\n".join(lines)
