"""soft bindings harvested from registered manifests (C2PA Soft Binding Resolution API)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('soft_bindings',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('original_id', sa.UUID(), nullable=False),
    sa.Column('alg', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('scope', sa.dialects.postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('alg_status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['original_id'], ['originals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_soft_bindings_alg_value', 'soft_bindings', ['alg', 'value'], unique=False)
    op.create_index(op.f('ix_soft_bindings_original_id'), 'soft_bindings', ['original_id'], unique=False)
    op.create_index(op.f('ix_originals_active_manifest_label'), 'originals', ['active_manifest_label'], unique=False)
    _backfill()


def _backfill() -> None:
    """Originals registered before this revision: their bindings from the stored reference
    JSON (the same assertions ingest now harvests; the algorithm list is checked at ingest
    only, so these are `unchecked`)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, manifest_json, active_manifest_label FROM originals WHERE manifest_json IS NOT NULL"))
    insert = sa.text("INSERT INTO soft_bindings (original_id, alg, value, scope, alg_status) "
                     "VALUES (:oid, :alg, :value, CAST(:scope AS JSONB), 'unchecked')")
    for oid, store, label in rows:
        manifest = ((store or {}).get("manifests") or {}).get(label) or {}
        for assertion in manifest.get("assertions") or []:
            if not str(assertion.get("label", "")).startswith("c2pa.soft-binding"):
                continue
            data: dict[str, Any] = assertion.get("data") or {}
            alg = data.get("alg")
            for block in data.get("blocks") or []:
                value = _canonical(block.get("value")) if isinstance(block, dict) else None
                if isinstance(alg, str) and 0 < len(alg) <= 255 and value:
                    conn.execute(insert, {"oid": oid, "alg": alg, "value": value,
                                          "scope": json.dumps(block.get("scope") or {})})


def _canonical(value: Any) -> str | None:
    """As manifests.softbinding.canonical_value (a migration keeps its own copy: it must not
    change when the application code does)."""
    if isinstance(value, list) and all(isinstance(x, int) and 0 <= x < 256 for x in value):
        raw = bytes(value)
    elif isinstance(value, str):
        text = "".join(value.split()).replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        return None
    return base64.b64encode(raw).decode() if 0 < len(raw) <= 65536 else None


def downgrade() -> None:
    op.drop_index(op.f('ix_originals_active_manifest_label'), table_name='originals')
    op.drop_index(op.f('ix_soft_bindings_original_id'), table_name='soft_bindings')
    op.drop_index('ix_soft_bindings_alg_value', table_name='soft_bindings')
    op.drop_table('soft_bindings')
