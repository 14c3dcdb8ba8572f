"""FAISS vector index over registry originals (SImProv stage 1 search).

`VectorIndex` does exact inner-product search for small registries and IVF1024,PQ16
(128-bit codes, as in the paper) from 50,000 vectors on, persisted with atomic replace.
`LocalFeatureIndex` holds every original's SIFT descriptors for partial-duplicate votes.
"""

from index.local_index import LocalFeatureIndex
from index.vector_index import (
    IVF_THRESHOLD,
    SearchHit,
    VectorIndex,
    build_ivfpq,
    from_factory,
    lists_on_disk,
)

__all__ = ["IVF_THRESHOLD", "LocalFeatureIndex", "SearchHit", "VectorIndex", "build_ivfpq", "from_factory", "lists_on_disk"]
