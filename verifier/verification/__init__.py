"""Verification, the fact-checker's use case: image bytes -> C2PA -> matching -> report ->
signature -> stored. `VerificationPipeline.verify` is the one path the API, the CLI and the
benchmarks take."""
