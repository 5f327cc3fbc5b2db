"""`ringback user ...`, run as the operator runs it: the real command on a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from api.passwords import Passwords
from api.people import People
from campaigns.models import AuditEntry
from infra.db import make_engine, make_sessions

RINGBACK = Path(sys.executable).with_name("ringback")
PASSWORD = "correct horse battery"


def run_cli(args: list[str], data_dir: Path, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGBACK_DATA_DIR": str(data_dir)}
    env.pop("RINGBACK_DATABASE_URL", None)
    return subprocess.run(
        [str(RINGBACK), *args], env=env, capture_output=True, text=True, timeout=60,
        cwd=data_dir.parent, check=False, input=stdin if stdin is not None else "",
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    assert run_cli(["db", "upgrade"], data_dir).returncode == 0
    return data_dir


@pytest.fixture
def engine(data_dir: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{data_dir / 'ringback.db'}")
    yield engine
    engine.dispose()


def test_create_list_disable_reset(data_dir: Path, engine: Engine) -> None:
    done = run_cli(["user", "create", "--role", "support", "--username", "anna",
                    "--display-name", "Анна", "--locale", "ru", "--password-stdin"],
                   data_dir, PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["username"] == "anna" and created["role"] == "support"
    assert created["display_name"] == "Анна" and created["locale"] == "ru"
    assert PASSWORD not in done.stdout + done.stderr
    people = People(make_sessions(engine), Passwords(PasswordHasher()))
    assert people.sign_in("anna", PASSWORD, "127.0.0.1").session_token is not None

    listed = run_cli(["user", "list"], data_dir)
    assert [json.loads(line)["username"] for line in listed.stdout.splitlines()] == ["anna"]
    assert "password" not in listed.stdout

    reset = run_cli(["user", "reset-password", "anna"], data_dir)
    assert reset.returncode == 0, reset.stderr
    new = json.loads(reset.stdout)["password"]
    assert people.sign_in("anna", PASSWORD, "127.0.0.1").session_token is None
    assert people.sign_in("anna", new, "127.0.0.1").session_token is not None

    chosen = run_cli(["user", "reset-password", "anna", "--password-stdin"], data_dir,
                     "another good secret\n")
    assert chosen.returncode == 0 and "password" not in json.loads(chosen.stdout)
    assert people.sign_in("anna", "another good secret", "127.0.0.1").session_token

    disabled = run_cli(["user", "disable", "anna"], data_dir)
    assert disabled.returncode == 0 and json.loads(disabled.stdout)["disabled_at"] is not None
    assert people.sign_in("anna", "another good secret", "127.0.0.1").session_token is None

    with make_sessions(engine)() as session:
        cli_actions = [entry.action for entry in session.scalars(
            select(AuditEntry).where(AuditEntry.actor == "cli").order_by(AuditEntry.id))]
    assert cli_actions == ["user.create", "user.reset_password", "user.reset_password",
                           "user.disable"]


@pytest.mark.parametrize(("args", "stdin", "code"), [
    (["user", "create", "--role", "support", "--username", "bob", "--password-stdin"],
     "short\n", "weak-password"),
    (["user", "create", "--role", "support", "--username", "bob"], "", "password-required"),
    (["user", "create", "--role", "support", "--username", "b b", "--password-stdin"],
     PASSWORD + "\n", "invalid-user"),
    (["user", "disable", "nobody"], "", "unknown-user"),
    (["user", "reset-password", "nobody"], "", "unknown-user"),
])
def test_mistakes_are_one_json_line_and_exit_2(
    data_dir: Path, args: list[str], stdin: str, code: str
) -> None:
    done = run_cli(args, data_dir, stdin)
    assert done.returncode == 2 and done.stdout == ""
    assert json.loads(done.stderr.splitlines()[-1])["error"]["code"] == code
    assert "short" not in done.stderr


def test_a_taken_username_is_refused(data_dir: Path) -> None:
    args = ["user", "create", "--role", "marketing", "--username", "mark", "--password-stdin"]
    assert run_cli(args, data_dir, PASSWORD + "\n").returncode == 0
    again = run_cli(args, data_dir, PASSWORD + "\n")
    assert again.returncode == 2 and '"username-taken"' in again.stderr


def test_the_password_is_never_an_argument() -> None:
    done = subprocess.run([str(RINGBACK), "user", "create", "--role", "admin", "--username",
                           "root", "--password", PASSWORD], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
