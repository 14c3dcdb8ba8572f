"""FAISS vector index over registry originals (SImProv stage 1 search).

`ExactIndex` is exact inner-product search, right for small registries and for the
baseline; the IVF1024,PQ16 index of the paper arrives with the stage-1 work.
"""

from index.exact import ExactIndex, SearchHit

__all__ = ["ExactIndex", "SearchHit"]
