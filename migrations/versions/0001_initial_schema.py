"""initial schema: publishers, api keys, originals, ingest audit

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingest_audit',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('publisher_id', sa.UUID(), nullable=True),
    sa.Column('api_key_id', sa.UUID(), nullable=True),
    sa.Column('original_id', sa.UUID(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_ingest_audit_original_id'), 'ingest_audit', ['original_id'], unique=False)
    op.create_index(op.f('ix_ingest_audit_publisher_id'), 'ingest_audit', ['publisher_id'], unique=False)
    op.create_table('publishers',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('publisher_id', sa.UUID(), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(scope = 'publisher') = (publisher_id IS NOT NULL)", name='ck_api_keys_publisher_scope'),
    sa.CheckConstraint("scope IN ('publisher', 'verifier')", name='ck_api_keys_scope'),
    sa.ForeignKeyConstraint(['publisher_id'], ['publishers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_index(op.f('ix_api_keys_publisher_id'), 'api_keys', ['publisher_id'], unique=False)
    op.create_table('originals',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('publisher_id', sa.UUID(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('mime', sa.String(length=100), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('blob_key', sa.String(length=200), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('caption', sa.Text(), nullable=True),
    sa.Column('source_url', sa.Text(), nullable=True),
    sa.Column('manifest_store', sa.LargeBinary(), nullable=True),
    sa.Column('manifest_json', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('validation_state', sa.String(length=16), nullable=True),
    sa.Column('status_codes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('active_manifest_label', sa.Text(), nullable=True),
    sa.Column('signer', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['publisher_id'], ['publishers.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('publisher_id', 'sha256', name='uq_originals_publisher_sha256')
    )
    op.create_index(op.f('ix_originals_publisher_id'), 'originals', ['publisher_id'], unique=False)
    op.create_index(op.f('ix_originals_sha256'), 'originals', ['sha256'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_originals_sha256'), table_name='originals')
    op.drop_index(op.f('ix_originals_publisher_id'), table_name='originals')
    op.drop_table('originals')
    op.drop_index(op.f('ix_api_keys_publisher_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('publishers')
    op.drop_index(op.f('ix_ingest_audit_publisher_id'), table_name='ingest_audit')
    op.drop_index(op.f('ix_ingest_audit_original_id'), table_name='ingest_audit')
    op.drop_table('ingest_audit')
