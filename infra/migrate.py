"""Database migrations (Alembic), configured in code: there is no alembic.ini.

The scripts live in `infra/migrations`; `env.py` there takes the URL handed over by these
functions, or `Settings().database` when Alembic is driven some other way.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url

from infra.db import make_engine
from infra.errors import DatabaseNotMigrated

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
UPGRADE_HINT = "run `ringback db upgrade`"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an option: options go through ConfigParser interpolation,
    # which would choke on the %-escapes of a URL-encoded password.
    config.attributes["url"] = url
    return config


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema (creating a SQLite file if needed)."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def current_revision(url: str) -> str | None:
    """The revision the database is at; None for an empty (or missing SQLite) database."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():
        return None  # do not create the file just to look at it
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision this version of ringback knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def check_up_to_date(url: str) -> None:
    """Raise DatabaseNotMigrated unless the database is at the newest revision."""
    current, head = current_revision(url), head_revision()
    if current == head:
        return
    where = make_url(url).render_as_string(hide_password=True)
    if current is None:
        raise DatabaseNotMigrated(f"the database {where} has no schema yet: {UPGRADE_HINT}")
    scripts = ScriptDirectory.from_config(alembic_config())
    if current not in {script.revision for script in scripts.walk_revisions()}:
        raise DatabaseNotMigrated(
            f"the database {where} is at revision {current}, which this version of ringback "
            f"does not know (it expects {head}): was it migrated by a newer version?"
        )
    raise DatabaseNotMigrated(
        f"the database {where} is at revision {current}, this version of ringback needs "
        f"{head}: {UPGRADE_HINT}"
    )
