"""Concurrent upgrades of one fresh database serialise (PostgreSQL: an advisory lock; SQLite:
its write lock, taken up front): both succeed, the second finds nothing to do. Without that one
of them failed on a duplicate `alembic_version` or on a table the other had just created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.migrate import current_revision, head_revision
from lab.ringback import RingbackService

RINGBACK = Path(sys.executable).with_name("ringback")
ROUNDS = 6  # each on a new database; the race was lost in most rounds on PostgreSQL


def start_upgrade(url: str, workdir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RINGBACK_DATABASE_URL": url, "RINGBACK_DATA_DIR": str(workdir)}
    return subprocess.Popen(
        [str(RINGBACK), "db", "upgrade"], env=env, cwd=workdir, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def upgrade_twice_at_once(url: str, workdir: Path) -> list[tuple[int, str]]:
    """Exit status and output of two `ringback db upgrade` started together."""
    workdir.mkdir(parents=True)
    processes = [start_upgrade(url, workdir) for _ in range(2)]
    try:
        return [finish(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:  # only after a timeout: never leave one behind
                process.kill()
                process.wait()


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out + err


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_upgrades_at_once_both_succeed(database_url: str, tmp_path: Path, round_: int) -> None:
    results = upgrade_twice_at_once(database_url, tmp_path / "work")
    assert [code for code, _ in results] == [0, 0], results
    assert current_revision(database_url) == head_revision()


@pytest.mark.peers
def test_two_services_starting_at_once_on_a_fresh_database_both_become_healthy(
    postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"RINGBACK_DATABASE_URL": postgres_url, "RINGBACK_ENVIRONMENT": "development"}
    services = [RingbackService(tmp_path / f"ringback-{n}", env) for n in range(2)]
    try:
        for svc in services:
            svc.process.start()  # both at once: neither waits for the other to be healthy
        for svc in services:
            svc.process.wait_ready(svc.healthy, timeout=60, what="/healthz")
        assert [svc.healthy() for svc in services] == [True, True]
        assert current_revision(postgres_url) == head_revision()
    finally:
        for svc in services:
            svc.close()
            rep = getattr(request.node, "rep_call", None)
            if rep is None or rep.failed:
                print(f"\n===== {svc.workdir.name} log =====\n{svc.log_text()[-4000:]}")
