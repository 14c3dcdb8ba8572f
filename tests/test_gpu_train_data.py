"""`scripts/gpu_train_data.py`: the train photos travel to a lent GPU in shards that fit a device
call, the test split never goes, and a missing or damaged shard stops the recipe."""

from __future__ import annotations

import csv
import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script() -> SimpleNamespace:
    """The script's functions, loaded as the other script tests do (`runpy`)."""
    return SimpleNamespace(**runpy.run_path(str(REPO / "scripts" / "gpu_train_data.py")))
KIB = 1024


def _shared(root: Path, rows: list[tuple[str, str, int]]) -> Path:
    photos = root / "shared" / "datasets" / "photos"
    for rel, _, size in rows:
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        (photos / rel).write_bytes(bytes([len(rel) % 251]) * size)
    with (photos / "index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "split"])
        w.writerows([(rel, rel.split("/")[0], split) for rel, split, _ in rows])
    return root / "shared"


ROWS = [(f"src{i % 3}/p{i:02d}.jpg", "test" if i % 4 == 0 else "train", (5 + i % 7) * KIB) for i in range(40)]


def _build(tmp_path: Path, mod, call_kib: int = 64, beside_kib: int = 20) -> tuple[Path, list[Path]]:
    shared = _shared(tmp_path, ROWS)
    beside = tmp_path / "effnet"
    beside.mkdir()
    (beside / "w.bin").write_bytes(b"\0" * beside_kib * KIB)
    out = tmp_path / "carry" / ".gpuT"
    out.parent.mkdir()
    made = mod.build(shared, out, call_mib=call_kib / 1024, tree=8 * KIB, beside=[beside], margin_mib=0)
    return out, made


def test_shards_hold_every_train_photo_and_no_test_photo(tmp_path: Path) -> None:
    mod = _script()
    _out, made = _build(tmp_path, mod)
    assert len(made) > 2  # the sizes force several calls
    capacity = (64 - 8) * KIB
    files: dict[str, str] = {}
    for k, root in enumerate(made):
        photos = [p for p in (root / "photos").rglob("*.jpg")]
        used = sum(p.stat().st_size for p in photos)
        assert used <= capacity - (20 * KIB if k == 0 else 0)  # the first leaves room for the folder beside it
        files.update(json.loads((root / "photos" / "shard.json").read_text())["files"])
    train = sorted(rel for rel, split, _ in ROWS if split == "train")
    assert sorted(files) == train
    with (made[0] / "photos" / "index.csv").open() as fh:
        index = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in index) == train and {r["split"] for r in index} == {"train"}


def test_merge_restores_the_photos_and_checks_them(tmp_path: Path) -> None:
    mod = _script()
    out, _made = _build(tmp_path, mod)
    src = tmp_path / "shared" / "datasets" / "photos"
    into = tmp_path / "merged"
    assert mod.merge(out, into) == sum(1 for _, split, _ in ROWS if split == "train")
    for rel, split, _ in ROWS:
        assert (into / rel).is_file() == (split == "train")
        if split == "train":
            assert (into / rel).read_bytes() == (src / rel).read_bytes()


def test_merge_refuses_a_missing_or_damaged_shard(tmp_path: Path) -> None:
    mod = _script()
    out, made = _build(tmp_path, mod)
    gone = made[1]
    held = tmp_path / "held"
    gone.rename(held)
    with pytest.raises(SystemExit, match="carry the missing"):
        mod.merge(out, tmp_path / "m1")
    held.rename(gone)
    victim = next((made[2] / "photos").rglob("*.jpg"))
    victim.write_bytes(b"x" + victim.read_bytes()[1:])
    with pytest.raises(SystemExit, match="damaged"):
        mod.merge(out, tmp_path / "m2")


def test_an_index_path_outside_the_photos_folder_is_refused(tmp_path: Path) -> None:
    mod = _script()
    shared = _shared(tmp_path, [("a/x.jpg", "train", KIB)])
    index = shared / "datasets" / "photos" / "index.csv"
    index.write_text(index.read_text() + "../../secret.txt,a,train\n")
    with pytest.raises(ValueError, match="leaves the photos folder"):
        mod.train_rows(shared / "datasets" / "photos")


def test_no_room_beside_the_tree_is_an_error(tmp_path: Path) -> None:
    mod = _script()
    assert mod.plan_shards([3, 3, 3], capacity=6, first_capacity=3) == [[0], [1, 2]]
    with pytest.raises(ValueError):
        mod.plan_shards([3], capacity=0, first_capacity=0)
    with pytest.raises(ValueError):
        mod.plan_shards([9], capacity=6, first_capacity=6)


def test_merge_again_checks_what_was_merged(tmp_path: Path) -> None:
    """A rerun on the device merges again: the files already moved are checked, not trusted."""
    mod = _script()
    out, _made = _build(tmp_path, mod)
    into = tmp_path / "merged"
    n = mod.merge(out, into)
    assert mod.merge(out, into) == n
    victim = next(into.rglob("*.jpg"))
    victim.write_bytes(b"")
    with pytest.raises(SystemExit, match="damaged"):
        mod.merge(out, into)


SHARED = REPO.parent / "shared"


# The service's packages that the lent GPU machine does not have (its package list: the device library's
# KINDS.md; it has torch, torchvision, numpy, Pillow, OpenCV, SciPy, scikit-image, safetensors, tqdm); the
# recipe carries only the ImageNet weights package, so training must not import any of these.
NOT_ON_DEVICE = ("alembic", "c2pa", "cryptography", "fastapi", "faiss", "joserfc", "multipart", "pgserver", "pi_heif",
                 "pillow_heif", "psycopg", "psycopg2", "pydantic", "pydantic_core", "pydantic_settings",
                 "python_multipart", "sqlalchemy", "starlette", "uvicorn")


def _without_service_wheels(tmp_path: Path) -> Path:
    """A folder whose `sitecustomize` makes every Python started with it on PYTHONPATH fail to import
    `NOT_ON_DEVICE`, as on the lent machine: the recipe, tried here, cannot lean on the service's wheels."""
    folder = tmp_path / "device-site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"_MISSING = {set(NOT_ON_DEVICE)!r}\n"
        "class _NotOnDevice:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in _MISSING:\n"
        "            raise ModuleNotFoundError(f'{name}: not on the GPU machine')\n"
        "sys.meta_path.insert(0, _NotOnDevice())\n")
    return folder


@pytest.mark.skipif(not (SHARED / "datasets" / "photos" / "index.csv").is_file(), reason="needs ../shared")
def test_the_gpu_recipe_runs_every_step_on_a_cpu(tmp_path: Path) -> None:
    """`scripts/gpu_train.sh` end to end at toy sizes on the CPU, from shards of the real train
    photos, with the service's packages that the GPU machine lacks made unimportable: every
    step's weights and training record come back, so the device call (which can be tried only
    when a GPU is lent) does not fail on a renamed flag, a missing file or a missing package."""
    import os
    import subprocess
    import sys

    mod = _script()
    made = mod.build(SHARED, tmp_path / ".gpuT", call_mib=64, tree=32 << 20, beside=[], margin_mib=1.5)
    assert len(made) >= 4
    out = tmp_path / "out"
    env = {**os.environ, "DEVICE": "cpu", "LIMIT": "12", "WORKERS": "1", "EMBED_LIMIT": "16", "EMBED_BATCH": "8",
           "EMBED_EPOCHS": "1", "PSEN_EPOCHS": "1", "CHANGE_EPOCHS": "1", "OUT": str(out), "SHARDS": str(tmp_path / ".gpuT"),
           "PHOTOS": str(tmp_path / "photos"), "PAIRS": str(tmp_path / "pairs.npz"), "PYTHON": sys.executable,
           "PYTHONPATH": str(_without_service_wheels(tmp_path))}
    blocked = subprocess.run([sys.executable, "-c", "import pydantic"], env=env, capture_output=True, text=True, check=False)
    assert blocked.returncode != 0 and "not on the GPU machine" in blocked.stderr  # the stand-in for the device holds
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_train.sh")], cwd=REPO, env=env, capture_output=True, check=False,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for model in ("simprov-embed-lite0-256", "simprov-psen-112", "simprov-change-112"):
        assert (out / f"{model}.safetensors").stat().st_size > 1 << 20
        record = json.loads((out / f"{model}.train.json").read_text())
        assert "--seed 0" in record["command"] and record["device"].startswith("cpu")
    log = (out / "train.log").read_text()
    n_train = len(mod.train_rows(SHARED / "datasets" / "photos"))
    assert f"{n_train} train photos in {tmp_path / 'photos'}, every one checked" in log
    assert "--families --filters --pieces" in log


def test_merge_refuses_a_damaged_shard_list(tmp_path: Path) -> None:
    """A shard list that is not what `build` wrote (truncated, garbage, wrong types) stops the
    merge with a clear message, before any photo is trusted."""
    mod = _script()
    out, made = _build(tmp_path, mod)
    listing = made[0] / "photos" / "shard.json"
    for garbage in ("{\"shard\": 1, \"shards\": 3, \"fil", "\x00\xff" * 100, "[]", '{"shard": "x", "shards": 2, "files": {}}',
                    '{"shard": 1, "shards": 2, "files": []}'):
        listing.write_text(garbage)
        with pytest.raises(SystemExit, match="unreadable"):
            mod.merge(out, tmp_path / "m")
