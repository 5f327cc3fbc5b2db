"""Alembic's environment: the URL comes from `infra.migrate` (config attribute "url") or,
when Alembic is driven another way, from the settings.

Upgrades of one database never run side by side (two instances starting together in
development, where `ringback serve` migrates itself): each upgrade is one transaction that first
takes a lock, so the next one waits, then finds the database at head and has nothing to do.
"""

from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine, event, text

# infra imports no other package of ours: the migrations are written out by hand, and the
# test that compares them with the models (tests/integration/test_db_migrations.py) imports every
# module that owns tables before comparing.
from infra.db import Base, make_engine
from infra.settings import Settings

# The PostgreSQL advisory lock every ringback takes to migrate: b"ringback" read as a big-endian
# bigint. Advisory locks are per database, so other databases on the server are not affected.
MIGRATION_LOCK_KEY = 0x72696E676261636B


def run_migrations_online() -> None:
    url = context.config.attributes.get("url") or Settings().database
    engine = _migration_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                compare_type=True,
                # SQLite cannot ALTER most things: batch mode copies the table instead.
                render_as_batch=connection.dialect.name == "sqlite",
                # One transaction for the whole upgrade, on SQLite too (see _migration_engine).
                transactional_ddl=True,
            )
            with context.begin_transaction():
                _wait_for_other_upgrades(connection)
                context.run_migrations()
    finally:
        engine.dispose()


def _wait_for_other_upgrades(connection: Connection) -> None:
    """Block until no other upgrade of this database runs; before Alembic reads (or creates)
    `alembic_version`, which is where concurrent upgrades used to collide."""
    if connection.dialect.name == "postgresql":
        # Transaction-level: released by the commit or rollback that ends the upgrade.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # SQLite: the BEGIN IMMEDIATE of _migration_engine already holds the database's write lock.


def _migration_engine(url: str) -> Engine:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        # SQLite's single writer is not enough on its own: pysqlite opens a transaction only
        # before a data change and runs DDL outside any, so two upgrades could both read an
        # empty alembic_version and both create the tables (seen in tests). With the driver's
        # own transaction handling off, each upgrade starts with BEGIN IMMEDIATE and holds the
        # write lock throughout; another upgrade waits for it (up to the busy timeout of
        # infra.db), then finds the database at head.
        event.listen(engine, "connect", _driver_autocommit)
        event.listen(engine, "begin", _begin_immediate)
    return engine


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


if context.is_offline_mode():
    raise SystemExit("ringback migrations run online only (against a live database)")
run_migrations_online()
