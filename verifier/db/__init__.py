"""Persistence: the ORM schema and the database lifecycle (embedded or external PostgreSQL)."""

from verifier.db.database import Database
from verifier.db.models import ApiKey, AuditEvent, Base, Embedding, Original, Publisher, Report

__all__ = ["ApiKey", "AuditEvent", "Base", "Database", "Embedding", "Original", "Publisher", "Report"]
