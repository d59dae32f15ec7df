"""Schema comes from Alembic only, and matches the ORM models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from central.store.db import Database, alembic_config, open_database
from central.store.models import Base

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migration_from_empty_creates_every_table_at_head(db_url: str) -> None:
    db = open_database(db_url)
    try:
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with db.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == HEAD
    finally:
        db.close()


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_opening_twice_is_a_no_op(db_url: str) -> None:
    first = open_database(db_url)
    first.close()
    second = open_database(db_url)
    try:
        assert second.ping()
    finally:
        second.close()
