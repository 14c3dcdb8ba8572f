"""Probe (not product code): does the query show the scene going on past the matched original's frame?

A copy laid into something else (a meme's canvas, a collage's tiles, a screenshot's interface, a printed page, a
photographed screen) meets what surrounds it at a step: the original's border is an edge in the query. A second
photograph of a registered scene panned or zoomed out (the false-match class) goes on past the original's frame
with no edge where that frame's border falls, as an outpainted copy would. For every side of the original's
frame warped into the query, at points where the query holds content on both sides and, just inside, the
original's own pixels (a local correlation with the warped original), the probe compares the query's gradient
across the border line with its gradient across parallel lines a few pixels off it.

    python scripts/probe_continuation.py --results famN.json --families families.csv --u2p u2p.json --out cont.json
    python scripts/probe_continuation.py --results fm7.json --u2p u2p.json --out cont_fm7.json
"""
import argparse
import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from verifier.evaluation.queries import Query, benign_variants
from verifier.simprov.pairs import View, align_pair

STEP = 2.0  # px between samples along a side
MARGIN = 8  # px a sample keeps from the query's own border
NCC_HALF = 6  # 13x13 patches
NCC_AT = 8  # px inside the border
MIN_STD = 4.0  # grey levels, after the plane
MIN_NCC = 0.6
MIN_KEPT = 15  # points on a side
MIN_KEPT_SHARE = 0.25  # of the points seen on it


def _ix(v: float) -> int:
    return int(np.floor(v + 0.5))


def _grey(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _detrended(a: np.ndarray) -> np.ndarray:
    """The patch less its best plane: a smooth ramp correlates with any other ramp."""
    n = a.shape[0]
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    m = np.stack([np.ones(n * n, np.float32), xx.ravel(), yy.ravel()], 1)
    coef, *_ = np.linalg.lstsq(m, a.ravel(), rcond=None)
    return a - (m @ coef).reshape(n, n)


def _ncc(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = _detrended(a), _detrended(b)
    if a.std() < MIN_STD or b.std() < MIN_STD:
        return None  # too flat to say whether it is the original's
    return float((a * b).mean() / (a.std() * b.std()))


def continuation(h: np.ndarray, cand: np.ndarray, query: np.ndarray, shown: tuple[int, int, int, int] | None = None) -> dict:
    hc, wc = cand.shape[:2]
    x0, y0, x1, y1 = shown if shown is not None else (0, 0, wc, hc)
    qh, qw = query.shape[:2]
    q = _grey(query)
    qs = cv2.GaussianBlur(q, (0, 0), 0.8)
    wcand = _grey(cv2.warpPerspective(cand, h, (qw, qh), flags=cv2.INTER_LINEAR))
    cover = cv2.warpPerspective(np.ones((hc, wc), np.uint8), h, (qw, qh), flags=cv2.INTER_NEAREST) > 0
    corners = cv2.perspectiveTransform(np.float32([[[x0, y0]], [[x1, y0]], [[x1, y1]], [[x0, y1]]]), h)[:, 0]
    centre = corners.mean(0)
    sides = []
    std = np.sqrt(np.maximum(cv2.blur(q * q, (7, 7)) - cv2.blur(q, (7, 7)) ** 2, 0))
    lab = cv2.blur(cv2.cvtColor(query, cv2.COLOR_RGB2LAB).astype(np.float32), (5, 5))

    def lab_at(p: np.ndarray) -> np.ndarray:
        return lab[_ix(p[1]), _ix(p[0])]

    def at(img: np.ndarray, p: np.ndarray) -> float:
        x, y = _ix(p[0]), _ix(p[1])
        return float(img[y, x])

    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        d = b - a
        length = float(np.hypot(*d))
        if length < 8:
            continue
        t = d / length
        n = np.array([t[1], -t[0]], np.float32)
        if np.dot(n, (a + b) / 2 - centre) < 0:
            n = -n  # outward
        line, ref, kept, seen, cross, along = [], [], 0, 0, [], []
        for s in np.arange(0, length, STEP):
            p = a + t * s
            far_in, far_out = p - n * 18, p + n * 9
            ok = all(MARGIN <= z[0] < qw - MARGIN and MARGIN <= z[1] < qh - MARGIN for z in (far_in, far_out))
            if not ok:
                continue
            seen += 1
            po = p + n * 6
            if std[_ix(po[1]), _ix(po[0])] < 3.0:
                continue  # a flat fill outside: nothing goes on there
            c = p - n * NCC_AT
            x, y = _ix(c[0]), _ix(c[1])
            r = _ncc(q[y - NCC_HALF:y + NCC_HALF + 1, x - NCC_HALF:x + NCC_HALF + 1],
                     wcand[y - NCC_HALF:y + NCC_HALF + 1, x - NCC_HALF:x + NCC_HALF + 1])
            if r is None or r < MIN_NCC or not cover[y, x]:
                continue
            if std[_ix(p[1]), _ix(p[0])] < 3.0:
                continue  # a flat gap on the line: a border, not a scene going on
            kept += 1
            cross.append(float(np.linalg.norm(lab_at(p + n * 6) - lab_at(p - n * 6))))
            along.append(float(np.linalg.norm(lab_at(p - n * 6) - lab_at(p - n * 18))))
            g = max(abs(at(qs, p + n * (o + 1)) - at(qs, p + n * (o - 1))) for o in (-1, 0, 1))
            gr = np.mean([abs(at(qs, p + n * (o + 1)) - at(qs, p + n * (o - 1))) for o in (-6, -5, 5, 6)])
            line.append(g)
            ref.append(gr)
        sides.append({"length": round(length, 1), "seen": seen, "kept": kept,
                      "line": round(float(np.mean(line)), 3) if line else None,
                      "ref": round(float(np.mean(ref)), 3) if ref else None,
                      "cross": round(float(np.median(cross)), 3) if cross else None,
                      "along": round(float(np.median(along)), 3) if along else None})
    used = [s for s in sides if s["kept"] >= MIN_KEPT and s["kept"] >= MIN_KEPT_SHARE * s["seen"]]
    ratio = min((s["line"] / max(s["ref"], 0.5) for s in used), default=None)
    return {"sides": sides, "kept_points": int(sum(s["kept"] for s in sides)), "min_ratio": None if ratio is None else round(ratio, 3),
            "pooled": None if not used else round(sum(s["line"] * s["kept"] for s in used) / max(0.5, sum(s["ref"] * s["kept"] for s in used)), 3),
            "colour": None if not used else round(sum(s["cross"] * s["kept"] for s in used) / max(0.5, sum(s["along"] * s["kept"] for s in used)), 3),
            "share": None if not used else round(sum(s["kept"] for s in used) / sum(s["seen"] for s in used), 3)}


def pair(qimg: Image.Image, cimg: Image.Image) -> dict:
    qv, cv = View.of(qimg, min_side=256), View.of(cimg)
    ap = align_pair(qv, cv)
    a = ap.alignment
    out = {"inliers": a.inliers}
    if not a.global_ok:
        return out
    out.update(continuation(a.homography, cv.image, qv.image, a.shown))
    out["shown_box"] = a.shown
    return out


def _rule(m: dict, shown: float | None) -> bool:
    """The rule read off the first run: the border line no sharper than its neighbours (0.7-1.3 of their
    gradient) where the query cuts part of the original off (shown under 0.9), as a pan does."""
    return m.get("pooled") is not None and 0.7 <= m["pooled"] <= 1.3 and shown is not None and shown < 0.9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, action="append", required=True, help="a `verifier bench` results JSON")
    ap.add_argument("--u2p", type=Path, required=True, help="JSON: registered original id -> its file")
    ap.add_argument("--families", type=Path, help="the families CSV: also probe every query matched right")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    u2p = json.loads(args.u2p.read_text())
    work = []
    for res in (json.loads(p.read_text()) for p in args.results):
        for r in res["queries"]:
            if r["kind"] == "distinct" and not r["correct"]:
                # the held-out photo itself: the bench's benign copy is not kept
                path = Path(r["query"].split("holdout/", 1)[1])
                work.append(("false", r, Image.open(path).convert("RGB"), Image.open(u2p[r["matched"]]).convert("RGB")))
        if args.families is None:
            continue
        base = args.families.parent
        orig = {row["query"]: row["original"] for row in csv.DictReader(args.families.open())}
        for r in res["queries"]:
            if r["kind"] == "distinct" or not r["correct"] or not r.get("added_content_fraction"):
                continue  # nothing outside the original: no border inside the query to look at
            name = r["query"].split("#")[0]
            data = (base / name).read_bytes()
            if "#benign" in r["query"]:  # the same transformed copy the bench made (drawn from the name)
                data = benign_variants([Query(name, data, "manip", None, None, r["family"].split("+")[0])], 1, 0)[0].data
            work.append(("true", r, Image.open(io.BytesIO(data)).convert("RGB"), Image.open(base / orig[name]).convert("RGB")))
    rows = []
    for label, r, qimg, cimg in work:
        m = pair(qimg, cimg)
        rows.append({"label": label, "query": r["query"], "family": r["family"], "verdict": r["verdict"],
                     "added": r.get("added_content_fraction"), "shown": r.get("original_shown"), **m,
                     "rule": _rule(m, r.get("original_shown"))})
        print(label, r["query"][-45:], m.get("inliers"), m.get("kept_points"), m.get("pooled"), rows[-1]["rule"], flush=True)
    for label in ("true", "false"):
        some = [r for r in rows if r["label"] == label]
        print(f"{label}: {len(some)} pairs, {sum(r.get('pooled') is not None for r in some)} with a border measured, "
              f"{sum(r['rule'] for r in some)} the rule calls another photograph")
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
