"""reports keep the heatmap as a transparent layer too (the web app's overlay)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('reports', sa.Column('heatmap_layer_png', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column('reports', 'heatmap_layer_png')
