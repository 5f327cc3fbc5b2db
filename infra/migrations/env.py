"""Alembic's environment: the URL comes from `infra.migrate` (config attribute "url") or,
when Alembic is driven another way, from the settings."""

from alembic import context

# infra imports no other package of ours: the migrations are written out by hand, and the
# test that compares them with the models (tests/integration/test_db_migrations.py) imports every
# module that owns tables before comparing.
from infra.db import Base, make_engine
from infra.settings import Settings


def run_migrations_online() -> None:
    url = context.config.attributes.get("url") or Settings().database
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                compare_type=True,
                # SQLite cannot ALTER most things: batch mode copies the table instead.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("ringback migrations run online only (against a live database)")
run_migrations_online()
