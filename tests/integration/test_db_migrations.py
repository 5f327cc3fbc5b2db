"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import api.tokens
import api.users  # noqa: F401  (registers its tables on Base)
import campaigns.hold_models
import campaigns.models  # noqa: F401
import infra.health_table  # noqa: F401
from infra.db import Base, make_engine
from infra.errors import DatabaseNotMigrated
from infra.migrate import check_up_to_date, current_revision, head_revision, upgrade

RINGBACK = Path(sys.executable).with_name("ringback")


def test_upgrade_from_empty_matches_the_models(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert {"api_tokens", "jobs", "outbox"} <= tables
    assert diffs == []


def test_check_up_to_date_before_and_after_upgrade(database_url: str) -> None:
    assert current_revision(database_url) is None
    with pytest.raises(DatabaseNotMigrated, match="ringback db upgrade"):
        check_up_to_date(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    check_up_to_date(database_url)
    upgrade(database_url)  # again: nothing to do
    assert current_revision(database_url) == head_revision()


def test_a_revision_this_version_does_not_know_is_reported(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        engine.dispose()
    with pytest.raises(DatabaseNotMigrated, match="newer version"):
        check_up_to_date(database_url)


def test_checking_a_missing_sqlite_file_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "ringback.db"
    with pytest.raises(DatabaseNotMigrated):
        check_up_to_date(f"sqlite:///{path}")
    assert not path.parent.exists()


def run_cli(args: list[str], data_dir: Path) -> tuple[int, str, str]:
    env = {**os.environ, "RINGBACK_DATA_DIR": str(data_dir)}
    env.pop("RINGBACK_DATABASE_URL", None)
    done = subprocess.run(
        [str(RINGBACK), *args], env=env, capture_output=True, text=True, timeout=60,
        cwd=data_dir.parent, check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_cli_db_upgrade_and_current_on_sqlite(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # does not exist yet: upgrade creates it
    code, out, err = run_cli(["db", "current"], data_dir)
    assert code == 0, err
    assert json.loads(out) == {"revision": None, "head": head_revision(), "up_to_date": False}

    code, out, err = run_cli(["db", "upgrade"], data_dir)
    assert code == 0, err
    assert json.loads(out) == {"revision": head_revision()}
    assert (data_dir / "ringback.db").is_file()

    code, out, err = run_cli(["db", "current"], data_dir)
    assert code == 0, err
    assert json.loads(out)["up_to_date"] is True
