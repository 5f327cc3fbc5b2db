"""The composition root: builds every service from the settings and wires the FastAPI app.

`ringback serve` runs this app: the API, the APScheduler ticks (dispatch, lease reaper, outbox
delivery) and the SIP engine share one process and one event loop.
"""

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api import callback_tasks, health, jobs, openapi, outbox_status, warning_report, webhooks
from api.call_command import account_from, engine_config_from, speech_from
from api.callback_report import router as callback_report_router
from api.errors import install_error_handlers
from api.hold_tips import router as hold_tips_router
from api.page_headers import PageHeadersMiddleware
from api.pages import install_pages
from api.passwords import Passwords
from api.people import People
from api.prompts import router as prompts_router
from api.request_id import RequestIdMiddleware
from api.state import SoundServices
from audio.isolated import IsolatedDecoder
from audio.prompts import PromptCache
from campaigns.audio_clips import ClipPrompts
from campaigns.calendar import BusinessCalendar
from campaigns.callback_sources import CallbackSourcePolicy, CallbackSources
from campaigns.calling_window import CallingWindow
from campaigns.crm_check import CrmCheck
from campaigns.dispatcher import Dispatcher, DispatchLimits, Recovered
from campaigns.escalation import EscalationPolicy, OverdueTick
from campaigns.hold_sounds import HoldSounds
from campaigns.hold_stats import HoldStats
from campaigns.hold_tips import HoldTips
from campaigns.intake import Intake, event_handlers
from campaigns.job_gauges import JobGauges
from campaigns.outbox import OutboxDelivery, OutboxSummary, pending_summary
from campaigns.prerender import Prerender
from campaigns.prompt_recordings import PromptRecordings
from campaigns.purpose import CallPurpose, parse_retry_delays
from campaigns.retention import RetentionPolicy, RetentionPurge
from campaigns.survey_policy import SurveyPolicy
from campaigns.surveys import SURVEY_FLOW, Surveys
from campaigns.warnings import WarningPolicy, Warnings
from infra.db import DatabaseThreads, make_engine, make_sessions, transaction, utcnow
from infra.metrics import Metrics
from infra.migrate import check_up_to_date
from infra.settings import Settings
from infra.tasks import TaskSupervisor
from ivr.catalog import FlowCatalog, FlowOptions, default_entries
from ivr.results import FlowResult
from ivr.survey import survey_flow
from telephony.backend import CallProgress, CallReport, FlowCall, TelephonyBackend
from telephony.inbound_policy import InboundAnswer, InboundPolicy
from telephony.sip.ua import SipUserAgent
from telephony.sip_backend import SipBackend, language_of

log = logging.getLogger(__name__)

TickJob = Callable[[], Coroutine[Any, Any, None]]

OUTBOX_INTERVAL_S = 1.0
OUTBOX_BATCH = 50
DRAIN_TIMEOUT_S = 10.0
METRICS_INTERVAL_S = 5.0
PRERENDER_INTERVAL_S = 5.0
OVERDUE_INTERVAL_S = 30.0
# The scheduler counts as stalled when the dispatch tick has not run for this many intervals.
STALLED_TICKS = 5
MIN_STALL_S = 10.0


class Heartbeat:
    """When the dispatch tick last ran, on the event loop's clock: `/healthz` reports a stalled
    scheduler."""

    def __init__(self, interval_s: float) -> None:
        self._limit_s = max(MIN_STALL_S, STALLED_TICKS * interval_s)
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()

    def beat(self) -> None:
        self._last = self._loop.time()

    def ticking(self) -> bool:
        return self._loop.time() - self._last < self._limit_s


class _TimedProgress:
    """A call's progress, passed on, with its setup time observed: from the call going out
    (its dial slot) to its answer."""

    def __init__(self, progress: CallProgress, observe: Callable[[float], None]) -> None:
        self._progress = progress
        self._observe = observe
        self._out_at: float | None = None

    async def dial_slot(self) -> None:
        await self._progress.dial_slot()
        self._out_at = time.monotonic()

    async def answered(self, dialog: Mapping[str, Any]) -> None:
        if self._out_at is not None:
            self._observe(time.monotonic() - self._out_at)
        await self._progress.answered(dialog)

    @property
    def withdrawn(self) -> asyncio.Event:
        return self._progress.withdrawn

    def recorded(self, result: FlowResult, value: int | None) -> None:
        self._progress.recorded(result, value)


class TimedBackend:
    """A backend whose answered calls' setup times go to `observe` (a histogram)."""

    def __init__(self, backend: TelephonyBackend, observe: Callable[[float], None]) -> None:
        self._backend = backend
        self._observe = observe

    async def prepare(self, call: FlowCall) -> None:
        await self._backend.prepare(call)

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        return await self._backend.run(call, _TimedProgress(progress, self._observe))

    async def end_orphan(self, dialog: Mapping[str, Any]) -> bool:
        return await self._backend.end_orphan(dialog)


@dataclass
class Services:
    engine: Engine
    sessions: sessionmaker[Session]
    database: DatabaseThreads
    intake: Intake
    dispatcher: Dispatcher
    prerender: Prerender
    delivery: OutboxDelivery
    http: httpx.AsyncClient
    ua: SipUserAgent | None
    metrics: Metrics
    tasks: TaskSupervisor
    heartbeat: Heartbeat
    job_gauges: JobGauges
    overdue: OverdueTick
    supervisor: OutboxDelivery | None  # when RINGBACK_SUPERVISOR_URL is set

    async def escalate(self) -> None:
        await self.overdue.tick()
        if self.supervisor is not None:
            await self.supervisor.deliver_due(OUTBOX_BATCH)

    async def dispatch(self) -> None:
        self.heartbeat.beat()
        self.metrics.calls_started.inc(await self.dispatcher.tick())

    async def render_ahead(self) -> None:
        await self.prerender.tick()

    async def reap(self) -> None:
        self._count_orphans(await self.dispatcher.reap())

    async def recover(self) -> None:
        """On start: the calls a dead predecessor (same instance name) left up."""
        recovered = await self.dispatcher.recover()
        self._count_orphans(recovered)
        if recovered.settled:
            log.warning("start-up: %d call(s) of a dead predecessor settled, %d hung up",
                        recovered.settled, recovered.hung_up)

    def _count_orphans(self, recovered: Recovered) -> None:
        self.metrics.orphans_settled.inc(recovered.settled)
        self.metrics.orphans_hung_up.inc(recovered.hung_up)

    async def deliver(self) -> None:
        await self.delivery.deliver_due(OUTBOX_BATCH)

    def observed(self, name: str, tick: Callable[[], Awaitable[None]]) -> TickJob:
        """A periodic tick whose failure (the database away, say) is logged in one line and
        counted, and the next tick tries again; its duration goes to `ringback_tick_seconds`."""

        async def run() -> None:
            started = time.perf_counter()
            try:
                await tick()
            except Exception as exc:
                self.tasks.report(name, exc)
            self.metrics.ticks.labels(name).observe(time.perf_counter() - started)

        return run

    async def refresh_gauges(self) -> None:
        await self.job_gauges.refresh()  # off the writer, within its cost budget
        outbox = await self.database.read(self._outbox_summary)
        self.metrics.outbox_pending.set(outbox.pending)
        oldest = outbox.oldest_pending_at
        self.metrics.outbox_lag.set(0 if oldest is None else (utcnow() - oldest).total_seconds())
        self.metrics.channels_busy.set(self.dispatcher.busy_channels)
        if self.ua is not None and self.ua.registration is not None:
            self.metrics.sip_registration(self.ua.registration.current())

    def _outbox_summary(self) -> OutboxSummary:
        with transaction(self.sessions) as session:
            return pending_summary(session)


@dataclass(frozen=True)
class HoldParts:
    """What the hold lines are made of: the prompt cache, clips, tips, play counts, sounds."""

    prompts: PromptCache
    clips: ClipPrompts
    tips: HoldTips
    stats: HoldStats
    sounds: HoldSounds


def build_hold_parts(settings: Settings, sessions: sessionmaker[Session],
                     clock: Callable[[], datetime]) -> HoldParts:
    """The hold services as the app and `ringback hold ...` both build them."""
    prompts = PromptCache(settings.prompt_cache_dir, speech_from(settings))
    clips = ClipPrompts(sessions, prompts)
    return HoldParts(prompts, clips, HoldTips(sessions, clock), HoldStats(sessions, clock),
                     HoldSounds(prompts, clips))


def build_calendar(settings: Settings) -> BusinessCalendar:
    return BusinessCalendar.from_settings(
        timezone=settings.calendar_timezone,
        hours=settings.calendar_hours,
        country=settings.calendar_country,
        extra_holidays=settings.calendar_extra_holidays,
        extra_working_days=settings.calendar_extra_working_days,
    )


def build_policy(settings: Settings) -> SurveyPolicy:
    return SurveyPolicy(
        delay=timedelta(seconds=settings.survey_delay_s),
        min_call=timedelta(seconds=settings.survey_min_call_s),
        period=timedelta(days=settings.survey_period_days),
        max_lateness=timedelta(seconds=settings.survey_max_lateness_s),
        max_attempts=settings.survey_max_attempts,
        retry_delay=timedelta(seconds=settings.survey_retry_delay_s),
        low_score_threshold=settings.low_score_threshold,
        callback_working_minutes=settings.low_score_callback_working_minutes,
        default_timezone=settings.default_timezone,
        default_locale=settings.default_locale,
    )


def build_retention(settings: Settings) -> RetentionPolicy | None:
    """None when RINGBACK_RETENTION_DAYS is unset: everything is kept."""
    if settings.retention_days is None:
        return None
    return RetentionPolicy(settings.retention_days, timedelta(days=settings.survey_period_days))


async def inbound_answer(settings: Settings, prompts: PromptCache) -> InboundAnswer:
    """How `serve` answers inbound calls until the inbound line exists."""
    message = None
    if settings.inbound_message is not None:
        locale = settings.inbound_message_locale or settings.default_locale
        message = await prompts.from_text(settings.inbound_message, language_of(locale))
    return InboundAnswer(settings.inbound_status, settings.inbound_retry_after_s, message,
                         settings.inbound_max_message_calls)


def build_flows(settings: Settings) -> FlowCatalog:
    overrides: dict[str, dict[str, str]] = {}
    for texts in (settings.survey_texts, settings.warning_texts):
        for locale, prompts in texts.items():
            overrides.setdefault(locale, {}).update(prompts)
    options = FlowOptions(company=settings.company_name, default_locale=settings.default_locale,
                          company_spoken=settings.company_name_spoken, overrides=overrides)
    return FlowCatalog(options, default_entries(survey_no_input_s=settings.survey_no_input_s,
                                                warning_no_input_s=settings.warning_no_input_s))


def build_crm_check(settings: Settings, http: httpx.AsyncClient) -> CrmCheck | None:
    """The pre-dial check with the CRM, when RINGBACK_CRM_CHECK_URL is set."""
    if settings.crm_check_url is None:
        return None
    return CrmCheck(settings.crm_check_url, settings.crm_outbound_secret.get_secret_value(), http,
                    timeout_s=settings.crm_check_timeout_s,
                    on_unavailable=settings.crm_check_on_unavailable,
                    postpone_s=settings.crm_check_postpone_s)


def build_warning_policy(settings: Settings, calendar: BusinessCalendar) -> WarningPolicy:
    return WarningPolicy(
        window=CallingWindow.from_settings(
            calendar, settings.warning_calling_hours or settings.calling_window_hours),
        max_attempts=settings.warning_max_attempts,
        retry_delays=parse_retry_delays(settings.warning_retry_delays),
        period=timedelta(hours=settings.warning_period_hours),
        max_lateness=timedelta(seconds=settings.warning_max_lateness_s),
        manager_phone=settings.manager_phone,
        manager_callback_working_minutes=settings.manager_callback_working_minutes,
        default_timezone=settings.default_timezone,
        default_locale=settings.default_locale,
    )


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    backend: TelephonyBackend | None = None,
) -> FastAPI:
    """The app; `backend` replaces the SIP engine (tests of the edges only)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await _start(app, settings, clock, backend)
        # In the background: the API must not wait for BYEs to a trunk that may be down.
        services.tasks.spawn(services.observed("recovery", services.recover)(), "recovery",
                             "recovery")
        scheduler = _scheduler(settings, services)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await services.dispatcher.drain(DRAIN_TIMEOUT_S)
            await services.tasks.cancel_all()
            if services.ua is not None:
                await services.ua.stop()
            await services.http.aclose()
            services.database.close()
            app.state.sounds.decoder.close()
            services.engine.dispose()

    app = openapi.create_app(title="ringback", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(PageHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: sees every response, errors too
    for module in (health, webhooks, callback_tasks, outbox_status):
        app.include_router(module.router)
    app.include_router(jobs.router)
    app.include_router(warning_report.router)
    app.include_router(callback_report_router)
    app.include_router(hold_tips_router)
    app.include_router(prompts_router)
    install_pages(app)
    return app


async def _start(
    app: FastAPI,
    settings: Settings,
    clock: Callable[[], datetime],
    backend: TelephonyBackend | None,
) -> Services:
    url = settings.database
    check_up_to_date(url)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    database = DatabaseThreads(url)
    calendar = build_calendar(settings)
    window = CallingWindow.from_settings(calendar, settings.calling_window_hours)
    surveys = Surveys(build_policy(settings), window, calendar, clock)
    warnings = Warnings(build_warning_policy(settings, calendar), calendar, clock)
    purposes: dict[str, CallPurpose] = {surveys.kind: surveys}
    purposes.update({purpose.kind: purpose for purpose in warnings.purposes.values()})
    callbacks = CallbackSources(calendar, clock, CallbackSourcePolicy(
        settings.missed_call_callback_working_minutes))
    intake = Intake(sessions, event_handlers(surveys, warnings, callbacks),
                    default_region=settings.default_region)
    http = httpx.AsyncClient()
    delivery = OutboxDelivery(
        sessions, settings.crm_url, settings.crm_outbound_secret.get_secret_value(), http,
        max_backoff_s=settings.outbox_max_backoff_s, clock=clock, run_blocking=database.run,
    )
    supervisor = None if settings.supervisor_url is None else OutboxDelivery(
        sessions, settings.supervisor_url, settings.crm_outbound_secret.get_secret_value(), http,
        max_backoff_s=settings.outbox_max_backoff_s, clock=clock, run_blocking=database.run,
        supervisor=True,
    )
    overdue = OverdueTick(
        sessions, EscalationPolicy(timedelta(seconds=settings.escalation_second_after_s),
                                   supervisor=supervisor is not None),
        clock=clock, run_blocking=database.run,
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    tasks = TaskSupervisor(lambda kind: metrics.background_errors.labels(kind).inc())
    ua: SipUserAgent | None = None
    ready: Callable[[], bool] | None = None  # an injected backend is always ready
    hold = build_hold_parts(settings, sessions, clock)
    prompts, clips = hold.prompts, hold.clips
    flows = build_flows(settings)
    recordings = PromptRecordings(sessions, clock, flows, clips)
    if backend is None:
        ua = SipUserAgent(account_from(settings), engine_config_from(settings))
        # The API comes up at once; calls wait (the dispatcher asks `ready`) until registered.
        await ua.start(register_in_background=True)
        sip = SipBackend(ua, prompts, flows,
                         dial_template=settings.sip_dial_template,
                         ring_timeout_s=settings.ring_timeout_s,
                         max_hold_s=settings.max_hold_s,
                         recordings=recordings.for_locale)
        backend, ready = sip, sip.ready
        # Stopped by tasks.cancel_all() at shutdown, before the engine stops.
        inbound = await inbound_answer(settings, prompts)
        tasks.spawn(InboundPolicy(ua, inbound).run(), "inbound", "inbound-policy")
    for locale in sorted(survey_flow().locales):  # every language a survey may speak
        await backend.prepare(FlowCall("start-up", "", SURVEY_FLOW, locale))
    instance = settings.instance_name or f"{socket.gethostname()}:{settings.http_port}"
    dispatcher = Dispatcher(
        sessions, purposes, TimedBackend(backend, metrics.call_setup.observe),
        instance=instance,
        limits=DispatchLimits(settings.channel_limit, settings.calls_per_second,
                              timedelta(seconds=settings.lease_s),
                              timedelta(seconds=settings.dispatch_interval_s)),
        clock=clock,
        on_report=lambda report: metrics.calls_outcome.labels(report.outcome.value).inc(),
        run_blocking=database.run,
        tasks=tasks,
        ready=ready,
        crm_check=build_crm_check(settings, http),
    )
    prerender = Prerender(sessions, purposes, backend, clock=clock, run_blocking=database.run)
    heartbeat = Heartbeat(settings.dispatch_interval_s)
    checks: dict[str, Callable[[], bool]] = {"scheduler": heartbeat.ticking}
    if ua is not None and ua.registration is not None:
        checks["sip"] = ua.registration.current
    app.state.settings = settings
    app.state.instance = instance
    app.state.sessions = sessions
    app.state.clock = clock
    app.state.database = database
    app.state.intake = intake
    app.state.people = People(sessions, Passwords(), clock=clock)
    app.state.sounds = SoundServices(hold.tips, hold.stats, recordings, hold.sounds,
                                     IsolatedDecoder())
    app.state.metrics_registry = registry
    app.state.metrics = metrics
    app.state.health_checks = checks
    log.info("ringback serving on %s:%d with %s", settings.http_host, settings.http_port,
             url.split("://", 1)[0])
    return Services(engine, sessions, database, intake, dispatcher, prerender, delivery, http,
                    ua, metrics, tasks, heartbeat,
                    JobGauges(sessions, metrics.jobs, database.read), overdue, supervisor)


def _scheduler(settings: Settings, services: Services) -> AsyncIOScheduler:
    """APScheduler only runs the ticks; the jobs themselves live in the database."""
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                               "misfire_grace_time": 30})
    ticks = [
        ("dispatch", services.dispatch, settings.dispatch_interval_s),
        ("metrics", services.refresh_gauges, METRICS_INTERVAL_S),
        ("render-ahead", services.render_ahead, PRERENDER_INTERVAL_S),
        ("reap-leases", services.reap, max(1.0, settings.lease_s / 4)),
        ("outbox", services.deliver, OUTBOX_INTERVAL_S),
        ("overdue-tasks", services.escalate, OVERDUE_INTERVAL_S),
    ]
    for name, tick, seconds in ticks:
        scheduler.add_job(services.observed(name, tick), "interval", seconds=seconds, id=name)
    retention = build_retention(settings)
    if retention is not None:  # daily, and once at start
        purge = RetentionPurge(services.sessions, retention, run_blocking=services.database.run)
        scheduler.add_job(services.observed("retention", purge.tick), "interval", days=1,
                          id="retention", next_run_time=utcnow())
    return scheduler
