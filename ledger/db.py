"""Engine creation and schema management for the ledger.

SQLite needs two adjustments to behave like a ledger under concurrency: WAL (readers don't block
the writer) and ``BEGIN IMMEDIATE`` (a transaction takes the write lock up front, so two
reservations can never both read "room left" and both write). PostgreSQL gets the same guarantee
from row locks taken by conditional ``UPDATE``s.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class LedgerNotMigratedError(RuntimeError):
    """The database is behind the code's schema; run ``studio db upgrade`` (or enable auto-migrate)."""


def create_ledger_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=20,
            max_overflow=20,
        )
        _make_sqlite_transactional(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    # SQLite has one writer at a time and makes the others sleep and retry with growing back-off,
    # which leaves the lock idle under load. Within a process, queue writers on a plain lock
    # instead; across processes, BEGIN IMMEDIATE and busy_timeout still do the job.
    writer = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A lookup: a deferred BEGIN is one consistent WAL snapshot and waits for no writer.
            connection.exec_driver_sql("BEGIN")
            return
        writer.acquire()
        connection.info["studio_writer"] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(connection)
            raise

    def _release(connection: Connection) -> None:
        if connection.info.pop("studio_writer", False):
            writer.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)


READ_ONLY = "studio_read_only"
"""Execution option of ``reading(engine)``: sessions that only look never queue behind writers."""


def reading(engine: Engine) -> Engine:
    """``engine`` for lookups: on SQLite its sessions skip the writer lock and ``BEGIN IMMEDIATE``
    (which every session otherwise takes, since a begin cannot tell a read from a write), so
    status pages, lists and checks run beside a writer, across processes too. Same pool.

    Only for sessions that never write: a write in one would go around the writer queue and
    could fail with "database is locked" where a writer holds it.
    """
    return engine.execution_options(**{READ_ONLY: True})


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Refuse to run on an unmigrated database, or migrate it when configured to."""
    if current_revision(engine) == head_revision():
        return
    if auto_migrate:
        upgrade(engine)
        return
    raise LedgerNotMigratedError(
        f"ledger database {engine.url.render_as_string(hide_password=True)} is at revision "
        f"{current_revision(engine)!r}, code needs {head_revision()!r}: run `studio db upgrade` "
        "or set STUDIO_AUTO_MIGRATE=true"
    )


@functools.cache
def shared_engine(url: str, auto_migrate: bool) -> Engine:
    """One engine per database per process, schema checked once (for the API and the CLI)."""
    engine = create_ledger_engine(url)
    ensure_schema(engine, auto_migrate=auto_migrate)
    return engine
