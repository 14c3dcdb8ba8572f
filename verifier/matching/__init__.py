"""Matching: from a query image to the registered original it derives from.

Search (stage-1 embedding + FAISS over the registry), the per-original views stages 2-3
need, and the `Matcher` that runs the SImProv stages and returns a typed `Evidence`. Uses
`simprov` for the networks and `storage` for vectors and originals; knows nothing of
reports, C2PA or HTTP.
"""
