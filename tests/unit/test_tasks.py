"""Background work never dies unobserved: a task's exception is logged and counted, and a
failure that repeats every tick is counted every time but logged once per interval."""

import asyncio
import logging

import pytest

from infra.tasks import TaskSupervisor


async def test_a_task_that_dies_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[str] = []
    tasks = TaskSupervisor(counted.append)

    async def broken() -> None:
        raise RuntimeError("boom")

    task = tasks.spawn(broken(), kind="store-answer", name="store-answer-job-1")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next pass of the loop
    assert counted == ["store-answer"]
    assert "store-answer-job-1" in caplog.text and "boom" in caplog.text


async def test_a_cancelled_task_is_not_a_failure() -> None:
    counted: list[str] = []
    tasks = TaskSupervisor(counted.append)
    tasks.spawn(asyncio.sleep(3600), kind="lease", name="lease-1")
    await tasks.cancel_all()
    await asyncio.sleep(0)
    assert counted == []


def test_a_repeating_failure_is_counted_each_time_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counted: list[str] = []
    tasks = TaskSupervisor(counted.append)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            tasks.report("dispatch", ConnectionError("database away\nSELECT ... +79991234567"))
        tasks.report("outbox", ConnectionError("database away"))
    assert counted == ["dispatch"] * 5 + ["outbox"]
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["dispatch failed: ConnectionError: database away",
                     "outbox failed: ConnectionError: database away"]
