"""reports: the overlay heatmap's sources, so that the PNG is rendered on first request

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('reports', sa.Column('heatmap_query_jpeg', sa.LargeBinary(), nullable=True))
    op.add_column('reports', sa.Column('heatmap_heat_png', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # Render what was never requested, so that no heatmap is lost going back.
    import io

    import cv2
    import numpy as np
    from PIL import Image

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, heatmap_query_jpeg, heatmap_heat_png FROM reports "
                                "WHERE heatmap_png IS NULL AND heatmap_query_jpeg IS NOT NULL"))
    for rid, jpeg, grey in rows:
        base = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32)
        h = np.asarray(Image.open(io.BytesIO(grey)), np.float32) / 255.0
        colour = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1].astype(np.float32)
        out = np.clip(base * (1 - 0.55 * h[..., None]) + colour * 0.55 * h[..., None], 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "PNG")
        conn.execute(sa.text("UPDATE reports SET heatmap_png = :png WHERE id = :id"), {"png": buf.getvalue(), "id": rid})
    op.drop_column('reports', 'heatmap_heat_png')
    op.drop_column('reports', 'heatmap_query_jpeg')
