"""The `train` photos for the GPU training recipe (issue 17), in shards that each fit one device call.

A lent device machine cannot read ../shared and a call carries at most 64 MiB of working tree, of
which the repository is about 32; the 3,093 `train` photos are about 108 MiB. So this copies them,
byte for byte (the GPU recipe trains on the same files as the CPU one), into ignored folders
`OUT1`, `OUT2`, ... of at most `--call-mib` minus the tree each, the first also leaving room for the
folders named by `--beside` (the ImageNet weights package, `.effnet`). Each shard holds
`photos/<path>` as in the shared index; every shard has `photos/shard.json` (its files and their
sha256), and the first also the whole `photos/index.csv` (train rows only). On the device, once
every shard has arrived (carried ignored folders stay while the machine is warm),

    python3 scripts/gpu_train_data.py --merge .gpuT --into /tmp/gpu-photos

moves them into one photos folder and checks every file against the shards' lists: a missing or
damaged shard stops the recipe before it trains on part of the data.

    python scripts/gpu_train_data.py --shared ../shared --out .gpuT --beside .effnet
    (prints the device calls; `scripts/gpu_train.sh`'s header has the whole recipe)

Only `train` rows are ever copied: the `test` split is for benchmarks (a test checks it).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from verifier.fsutil import file_sha256

MIB = 1 << 20
INDEX_FIELDS = ("path", "source", "split")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def tree_bytes(repo: Path) -> int:
    """What a device call sends besides the carried folders: tracked files and untracked ones git
    does not ignore (the device tool's rule)."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    return sum((repo / name).stat().st_size for name in out.decode().split("\0") if name and (repo / name).is_file())


def train_rows(photos: Path) -> list[dict[str, str]]:
    with (photos / "index.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"]
    for r in rows:  # the index is outside input too: no path may leave the photos folder
        p = Path(r["path"])
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"index.csv: {r['path']!r} leaves the photos folder")
    return sorted(rows, key=lambda r: r["path"])


def plan_shards(sizes: list[int], capacity: int, first_capacity: int) -> list[list[int]]:
    """Indices of `sizes` in order, cut into shards of at most `capacity` bytes (the first at
    most `first_capacity`)."""
    if capacity <= 0 or first_capacity <= 0:
        raise ValueError("no room for photos beside the tree in one call")
    shards: list[list[int]] = [[]]
    room = first_capacity
    for i, n in enumerate(sizes):
        if n > capacity:
            raise ValueError(f"a photo of {n} bytes does not fit a shard of {capacity}")
        if n > room:
            shards.append([])
            room = capacity
        shards[-1].append(i)
        room -= n
    return shards


def build(shared: Path, out: Path, call_mib: float, tree: int, beside: list[Path], margin_mib: float) -> list[Path]:
    src = shared / "datasets" / "photos"
    rows = train_rows(src)
    sizes = [(src / r["path"]).stat().st_size for r in rows]
    capacity = int((call_mib - margin_mib) * MIB) - tree
    first = capacity - sum(_size(b) for b in beside)
    shards = plan_shards(sizes, capacity, first)
    made = []
    for k, members in enumerate(shards, 1):
        root = out.with_name(f"{out.name}{k}")
        if root.exists():
            shutil.rmtree(root)
        listing = {}
        for i in members:
            rel = rows[i]["path"]
            dst = root / "photos" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dst)
            listing[rel] = file_sha256(dst)
        meta = {"shard": k, "shards": len(shards), "files": listing}
        (root / "photos" / "shard.json").write_text(json.dumps(meta, indent=0, sort_keys=True) + "\n")
        if k == 1:
            with (root / "photos" / "index.csv").open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=INDEX_FIELDS, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        made.append(root)
    return made


def ignore(repo: Path, folders: list[Path]) -> None:
    """List the shards inside the repository in .git/info/exclude: an ignored folder travels only
    when a call names it; an unignored one would travel with every call, and overflow it."""
    exclude = repo / ".git" / "info" / "exclude"
    if not exclude.parent.is_dir():
        return
    have = set(exclude.read_text().splitlines()) if exclude.is_file() else set()
    lines = []
    for f in folders:
        try:
            rel = f.resolve().relative_to(repo)
        except ValueError:
            continue  # outside the repository: nothing travels by accident
        if f"/{rel.as_posix()}/" not in have:
            lines.append(f"/{rel.as_posix()}/")
    if lines:
        with exclude.open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))


def merge(prefix: Path, into: Path) -> int:
    """Move every `<prefix>N/photos` into `into` and check it; the number of photos."""
    roots = sorted(prefix.parent.glob(f"{prefix.name}[0-9]*"), key=lambda p: int(p.name[len(prefix.name):] or 0))
    try:
        metas = [json.loads((r / "photos" / "shard.json").read_text()) for r in roots if (r / "photos" / "shard.json").is_file()]
        want = metas[0]["shards"] if metas else 0
        have = sorted(int(m["shard"]) for m in metas)
        if not all(isinstance(m["files"], dict) for m in metas):
            raise TypeError("files is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:  # a shard list damaged on the way: stop, train on nothing
        raise SystemExit(f"a shard's list is unreadable ({exc}): make the shards again") from None
    if not metas:
        raise SystemExit(f"no shards {prefix}N/photos/shard.json")
    if have != list(range(1, want + 1)):
        raise SystemExit(f"shards {have} of {want}: carry the missing ones first")
    into.mkdir(parents=True, exist_ok=True)
    for r in roots:
        for p in (r / "photos").rglob("*"):
            if p.is_file() and p.name != "shard.json":
                dst = into / p.relative_to(r / "photos")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(p), dst)
    expected = {rel: sha for m in metas for rel, sha in m["files"].items()}
    rows = train_rows(into)
    if sorted(r["path"] for r in rows) != sorted(expected):
        raise SystemExit("index.csv and the shards' files differ")
    bad = [rel for rel, sha in expected.items() if not (into / rel).is_file() or file_sha256(into / rel) != sha]
    if bad:
        raise SystemExit(f"{len(bad)} photos missing or damaged, e.g. {bad[:3]}")
    return len(expected)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, help="shard prefix: OUT1, OUT2, ... (listed in .git/info/exclude)")
    ap.add_argument("--beside", type=Path, action="append", default=[], help="a folder carried with the first shard")
    ap.add_argument("--call-mib", type=float, default=64.0, help="what one device call may carry in all")
    ap.add_argument("--margin-mib", type=float, default=1.5)
    ap.add_argument("--tree-mib", type=float, help="the working tree's size (default: measured with git)")
    ap.add_argument("--merge", type=Path, help="on the device: the shard prefix to merge")
    ap.add_argument("--into", type=Path, help="with --merge: the photos folder to build")
    args = ap.parse_args(argv)
    if args.merge is not None:
        if args.into is None:
            ap.error("--merge needs --into")
        print(f"{merge(args.merge, args.into)} train photos in {args.into}, every one checked")
        return 0
    if args.out is None:
        ap.error("--out is required (or --merge)")
    repo = Path(__file__).resolve().parents[1]
    tree = int(args.tree_mib * MIB) if args.tree_mib is not None else tree_bytes(repo)
    try:
        made = build(args.shared, args.out, args.call_mib, tree, args.beside, args.margin_mib)
    except ValueError as exc:
        print(f"gpu_train_data: {exc}", file=sys.stderr)
        return 2
    ignore(repo, made)
    print(f"tree {tree / MIB:.1f} MiB; {len(made)} shards:")
    for k, root in enumerate(made):
        carry = [str(b) for b in args.beside] + [root.name] if k == 0 else [root.name]
        then = "true"
        if k == 0 and args.beside:
            then = "mkdir -p /tmp/site && " + " && ".join(f"cp -r {b}/* /tmp/site/" for b in args.beside)
        if k == len(made) - 1:
            then = (then + " && " if then != "true" else "") + "PYTHONPATH=/tmp/site bash scripts/gpu_train.sh"
        print(f"  call {k + 1}: carry {json.dumps(carry)}  ({_size(root) / MIB:.1f} MiB of photos)  command: {then}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
