"""HTTP API (FastAPI). The edge: authenticates, parses, renders problem+json; no logic of its own."""

from verifier.api.app import create_app

__all__ = ["create_app"]
