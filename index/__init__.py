"""FAISS index of image embeddings (exact search, then IVF1024,PQ16 once the registry is large).

Filled by the SImProv stage-1 work; nothing here yet.
"""
