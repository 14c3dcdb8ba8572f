"""Evaluation: the benchmarks behind BENCHMARKS.md (`verifier bench*`). They drive the
service's own parts (registry ingest, `VerificationPipeline.verify`) so that their figures
describe the product. Run from the CLI only; the service never imports it."""
