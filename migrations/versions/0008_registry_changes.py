"""registry change sequence (triggers), followed by every API process

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Triggers, not application code, write it: whatever adds a vector or deletes an original (an
API process, the CLI, a bulk job, a manual SQL fix) is seen by every replica. NOTIFY wakes
followers at once; they also poll, so a missed notification only delays.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

CHANNEL = "verifier_registry"


def upgrade() -> None:
    op.create_table('registry_changes',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('original_id', sa.UUID(), nullable=True),
    sa.Column('embedding_id', sa.BigInteger(), nullable=True),
    sa.Column('model_id', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute(f"""
        CREATE FUNCTION verifier_embedding_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO registry_changes (action, original_id, embedding_id, model_id)
            VALUES ('add', NEW.original_id, NEW.id, NEW.model_id);
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$;
        CREATE FUNCTION verifier_original_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO registry_changes (action, original_id) VALUES ('delete', OLD.id);
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER embeddings_added AFTER INSERT ON embeddings
            FOR EACH ROW EXECUTE FUNCTION verifier_embedding_added();
        CREATE TRIGGER originals_deleted AFTER DELETE ON originals
            FOR EACH ROW EXECUTE FUNCTION verifier_original_deleted();
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER IF EXISTS originals_deleted ON originals;
        DROP TRIGGER IF EXISTS embeddings_added ON embeddings;
        DROP FUNCTION IF EXISTS verifier_original_deleted();
        DROP FUNCTION IF EXISTS verifier_embedding_added();
    """)
    op.drop_table('registry_changes')
