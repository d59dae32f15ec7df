"""Open central's database (SQLite or PostgreSQL) and bring its schema to the newest migration."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CENTRAL_DIR = Path(__file__).resolve().parent.parent
SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """A sync engine plus sessions. `write()` takes SQLite's write lock at BEGIN so writers queue."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._writer = engine.execution_options(gridwatch_immediate=True) if self.is_sqlite else engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any exception."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            log.warning("database not reachable: %s", exc)
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(engine: Engine) -> None:
    # pysqlite's own BEGIN handling defers the write lock; take control of BEGIN instead (SQLAlchemy
    # docs, "Serializable isolation / Savepoints / Transactional DDL") so a writer starts with
    # BEGIN IMMEDIATE and concurrent writers wait on busy_timeout instead of failing on upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("gridwatch_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config(str(CENTRAL_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(CENTRAL_DIR / "store" / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head; Alembic is the only thing that creates tables."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # two central processes starting together must not both migrate
            conn.execute(text("SELECT pg_advisory_xact_lock(7477327)"))
        command.upgrade(alembic_config(conn), "head")


def open_database(url: str, *, migrate_schema: bool = True, echo: bool = False) -> Database:
    """Engine for `sqlite:///path` or `postgresql+psycopg://…`, migrated to head."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_pragmas(engine)
    else:
        engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)
    if migrate_schema:
        migrate(engine)
    return Database(engine)
