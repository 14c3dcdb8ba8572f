"""Bulk jobs on Ray: registering an archive (`verifier ingest`). The decode, C2PA validation
and embedding run on Ray workers (all cores of this machine by default, or a cluster); the
registry's database part runs in the driver, batch by batch, with the same checks and
refusals as the API. Ray is an optional dependency (the `scale` extra)."""
