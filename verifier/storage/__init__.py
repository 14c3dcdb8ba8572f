"""Storage: all SQL and files. The ORM schema, the database lifecycle (embedded or external
PostgreSQL), the blob store, and one store per table family (originals, embeddings,
reports, accounts). Nothing here knows about models, C2PA or HTTP."""

from verifier.storage.database import Database
from verifier.storage.models import (
    ApiKey,
    AuditEvent,
    Base,
    Embedding,
    Original,
    Publisher,
    Report,
)

__all__ = ["ApiKey", "AuditEvent", "Base", "Database", "Embedding", "Original", "Publisher", "Report"]
