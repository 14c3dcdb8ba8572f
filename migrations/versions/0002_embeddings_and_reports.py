"""embeddings and signed reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reports',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('input_sha256', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=32), nullable=False),
    sa.Column('matched_original_id', sa.UUID(), nullable=True),
    sa.Column('api_key_id', sa.UUID(), nullable=True),
    sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.Column('heatmap_png', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_reports_input_sha256'), 'reports', ['input_sha256'], unique=False)
    op.create_index(op.f('ix_reports_matched_original_id'), 'reports', ['matched_original_id'], unique=False)
    op.create_table('embeddings',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('original_id', sa.UUID(), nullable=False),
    sa.Column('model_id', sa.String(length=100), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['original_id'], ['originals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('original_id', 'model_id', name='uq_embeddings_original_model')
    )
    op.create_index(op.f('ix_embeddings_model_id'), 'embeddings', ['model_id'], unique=False)
    op.create_index(op.f('ix_embeddings_original_id'), 'embeddings', ['original_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_embeddings_original_id'), table_name='embeddings')
    op.drop_index(op.f('ix_embeddings_model_id'), table_name='embeddings')
    op.drop_table('embeddings')
    op.drop_index(op.f('ix_reports_matched_original_id'), table_name='reports')
    op.drop_index(op.f('ix_reports_input_sha256'), table_name='reports')
    op.drop_table('reports')
