"""Where batch ingest spends its time: `bench-ingest`'s batch run under cProfile.

The decoding and C2PA validation threads are not profiled (cProfile sees the calling thread),
but their wall time shows as the wait in `register_batch`; everything after them (embedding,
checks, rows, index, view cache) runs on the calling thread. Writes the 40 heaviest calls by
cumulative time. On Python 3.12 cProfile sees every thread's calls (sys.monitoring).

`--views after` is an experiment, not a mode of the product: the views are not made in the
decoding threads beside the embedding but one by one after the commit (as before batch ingest
made them in threads), to see whether 16 busy Python threads slow the GPU thread's launches
(the first H200 profile: 12 ms per conv2d call while the views were made).

    python scripts/gpu_ingest_profile.py --photos .gpu/shared/datasets/photos --n 200 --batch 64 --out prof.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
from pathlib import Path

from manifests.signing import generate_test_ca, issue_signer
from verifier.evaluation.ingest import _prepare, _run_batch, _test_photos
from verifier.simprov.embedding import get_embedder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--views", choices=("threads", "after"), default="threads")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rng = random.Random(0)
    photos = rng.sample(_test_photos(args.photos), args.n)
    cas = [generate_test_ca("Bench A Root"), generate_test_ca("Bench B Root")]
    signers = (issue_signer(cas[0], "Bench A Desk"), issue_signer(cas[1], "Bench B Desk"))
    originals, _ = _prepare(photos, 0, signers, rng)
    embedder = get_embedder("auto")
    if args.views == "after":
        from verifier.matching.indexer import SearchIndexer

        SearchIndexer.prepare_view = lambda self, image: None  # type: ignore[method-assign,assignment,return-value]
    profile = cProfile.Profile()
    profile.enable()
    result = _run_batch(originals, [c.cert_pem for c in cas], args.batch, embedder)
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
    args.out.write_text(f"{result}\n{text.getvalue()}")
    print(result)


if __name__ == "__main__":
    main()
