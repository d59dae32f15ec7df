"""Central's alert store: ORM tables, Alembic migrations and `open_database`."""

from .db import Database, migrate, open_database

__all__ = ["Database", "migrate", "open_database"]
