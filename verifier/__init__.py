"""provenance-verifier: where did this image come from?"""

__version__ = "0.1.0"
