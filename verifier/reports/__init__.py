"""Reports: the signed answer. Its schema (pydantic, from which the served JSON Schema is
generated), canonical JSON, Ed25519 signing keys and compact JWS, and the heatmap PNG.
Knows nothing of how the evidence was found."""
