"""registry trust: publishers' signing identities, declared derivatives, admin keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('publisher_signers',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('publisher_id', sa.UUID(), nullable=False),
    sa.Column('spki_sha256', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('issuer', sa.Text(), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('is_ca', sa.Boolean(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['publisher_id'], ['publishers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('spki_sha256')
    )
    op.create_index(op.f('ix_publisher_signers_publisher_id'), 'publisher_signers', ['publisher_id'], unique=False)
    op.add_column('originals', sa.Column('derived_from', sa.UUID(), nullable=True))
    op.create_index(op.f('ix_originals_derived_from'), 'originals', ['derived_from'], unique=False)
    op.create_foreign_key('fk_originals_derived_from', 'originals', 'originals', ['derived_from'], ['id'], ondelete='SET NULL')
    op.drop_constraint('ck_api_keys_scope', 'api_keys', type_='check')
    op.create_check_constraint('ck_api_keys_scope', 'api_keys', "scope IN ('publisher', 'verifier', 'admin')")


def downgrade() -> None:
    op.execute("DELETE FROM api_keys WHERE scope = 'admin'")
    op.drop_constraint('ck_api_keys_scope', 'api_keys', type_='check')
    op.create_check_constraint('ck_api_keys_scope', 'api_keys', "scope IN ('publisher', 'verifier')")
    op.drop_constraint('fk_originals_derived_from', 'originals', type_='foreignkey')
    op.drop_index(op.f('ix_originals_derived_from'), table_name='originals')
    op.drop_column('originals', 'derived_from')
    op.drop_index(op.f('ix_publisher_signers_publisher_id'), table_name='publisher_signers')
    op.drop_table('publisher_signers')
