"""Schema lifecycle through Alembic on a real PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from verifier.storage import Base, Database

TABLES = {"publishers", "api_keys", "originals", "ingest_audit"}


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert db.table_names() == set()
        db.upgrade()
        assert TABLES <= db.table_names()
        db.downgrade("base")
        assert db.table_names() <= {"alembic_version"}
        db.upgrade()
        assert TABLES <= db.table_names()
    finally:
        db.close()


def test_migrations_match_the_orm(database_url: str) -> None:
    """Autogenerate finds nothing to do: the ORM and the migrations agree."""
    db = Database(database_url)
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
    finally:
        db.close()


def test_soft_bindings_are_backfilled_from_stored_manifests(database_url: str) -> None:
    """0006 harvests the `c2pa.soft-binding` values of originals registered before it."""
    import json
    import uuid

    from sqlalchemy import text

    db = Database(database_url)
    try:
        db.upgrade("0005")
        pid, oid, label = uuid.uuid4(), uuid.uuid4(), "urn:c2pa:0c7d6f1e-0000-4000-8000-000000000001"
        manifest = {"active_manifest": label, "manifests": {label: {"assertions": [
            {"label": "c2pa.soft-binding", "data": {"alg": "com.adobe.trustmark.Q",
                                                   "blocks": [{"scope": {}, "value": "jzpcGeK3BE1hqfDD2A"}]}},
            {"label": "c2pa.soft-binding", "data": {"alg": "com.example.bad", "blocks": [{"value": "***"}]}}]}}}
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO publishers (id, name) VALUES (:id, 'Old Wire')"), {"id": pid})
            conn.execute(text(
                "INSERT INTO originals (id, publisher_id, sha256, mime, width, height, size_bytes, blob_key, "
                "manifest_json, active_manifest_label) VALUES (:id, :pid, :sha, 'image/jpeg', 1, 1, 1, 'k', "
                "CAST(:mj AS JSONB), :label)"), {"id": oid, "pid": pid, "sha": "0" * 64, "mj": json.dumps(manifest), "label": label})
        db.upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT alg, value, alg_status FROM soft_bindings WHERE original_id = :id"),
                                {"id": oid}).all()
        assert [tuple(r) for r in rows] == [("com.adobe.trustmark.Q", "jzpcGeK3BE1hqfDD2A==", "unchecked")]
    finally:
        db.close()
