"""Rendering ahead: the prompts of jobs due soon are rendered before they are due (both
databases), and a job whose values cannot be spoken gives up at once with the reason."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.events import BalanceLowData
from campaigns.models import Job, JobStatus, OutboxEvent
from campaigns.prerender import Prerender
from campaigns.warnings import WarningPolicy, Warnings
from infra.db import transaction
from ivr.catalog import FlowCatalog, FlowOptions
from telephony.backend import FlowCall
from telephony.memory import MemoryBackend
from tests.integration.test_survey_jobs import (
    Clock,
    completed,
    make_surveys,
    moscow,
    new_job,
)


class CatalogBackend(MemoryBackend):
    """Builds each call's session from the real flow catalog, as the SIP backend does, without
    synthesising: a call whose values do not fit its flow is refused the same way."""

    def __init__(self) -> None:
        super().__init__()
        self.catalog = FlowCatalog(FlowOptions(company="Acme", default_locale="en"))

    async def prepare(self, call: FlowCall) -> None:
        self.catalog.session(call.flow, call.locale, call.values)
        await super().prepare(call)


def balance_low(client: str, balance: str = "350.50") -> BalanceLowData:
    return BalanceLowData.model_validate({
        "client_id": client, "phone": f"+7999000000{client[-1]}",
        "balance": balance, "currency": "RUB", "timezone": "Europe/Moscow", "locale": "ru",
    }, context={"default_region": "RU"})


def setup(sessions: sessionmaker[Session], clock: Clock) -> tuple[Warnings, Prerender,
                                                                    CatalogBackend]:
    surveys = make_surveys(clock)
    warnings = Warnings(WarningPolicy(window=surveys.window), surveys.calendar, clock)
    purposes = {surveys.kind: surveys,
                **{purpose.kind: purpose for purpose in warnings.purposes.values()}}
    backend = CatalogBackend()
    prerender = Prerender(sessions, purposes, backend, clock=clock,
                          run_blocking=asyncio.to_thread, horizon=timedelta(minutes=15))
    return warnings, prerender, backend


async def test_jobs_due_soon_are_rendered_once_with_their_own_values(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    warnings, prerender, backend = setup(sessions, clock)
    with transaction(sessions) as session:
        warning = warnings.on_balance_low(session, balance_low("c-1"), "evt-1", clock.at)
    later = new_job(sessions, make_surveys(clock), completed(clock.at + timedelta(hours=2),
                                                             client="c-2",
                                                             phone="+79990000002"))
    assert await prerender.tick() == 1
    [call] = backend.prepared
    assert (call.job_id, call.flow, call.locale) == (warning.id, "balance_warning", "ru")
    assert call.values["balance"] == "350.50" and call.values["currency"] == "RUB"
    assert await prerender.tick() == 0  # rendered once
    with transaction(sessions) as session:
        assert session.get_one(Job, warning.id).prepared_at == clock.at
        assert session.get_one(Job, later.id).prepared_at is None  # not due soon: not yet
    clock.at += timedelta(hours=2, minutes=20)  # the survey is due 30 min after that call
    assert await prerender.tick() == 1
    assert backend.prepared[-1].job_id == later.id


async def test_a_job_that_cannot_be_spoken_gives_up_at_once(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(moscow("2026-11-24T12:00"))
    warnings, prerender, _ = setup(sessions, clock)
    with transaction(sessions) as session:
        job = warnings.on_balance_low(session, balance_low("c-1"), "evt-1", clock.at)
        session.flush()
        session.get_one(Job, job.id).context = {**job.context, "currency": "RUBLES"}
    assert await prerender.tick() == 0
    with transaction(sessions) as session:
        stored = session.get_one(Job, job.id)
        assert stored.status == JobStatus.UNANSWERED
        assert (stored.final_reason or "").startswith("cannot be spoken")
        failed = session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "warning.failed")).one()
        assert failed.payload["data"]["reason"].startswith("cannot be spoken")
