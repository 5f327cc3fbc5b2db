"""`/api/v1/reports/callbacks`: the callback compliance report and the CSAT trend over a period
(campaigns/callback_report.py says what each number counts)."""

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_role
from api.errors import TOKEN_ERRORS, ApiError, error_responses
from api.tokens import ApiToken
from campaigns.calendar import BusinessCalendar
from campaigns.callback_report import (
    MAX_DAYS,
    CallbackReport,
    CsatStats,
    InvalidPeriod,
    TaskStats,
    callback_report,
)
from campaigns.events import IsoDateTime
from infra.db import transaction, utcnow

router = APIRouter(prefix="/api/v1", tags=["reports"])

REPORT_ERRORS = error_responses({
    **TOKEN_ERRORS,
    422: "`invalid-request`: a parameter is missing, not valid or not known (the message "
         f"names it), `from` is not before `to`, or the period is longer than {MAX_DAYS} days",
})


def report_calendar(request: Request) -> BusinessCalendar:
    """The business calendar of the settings (working minutes, weeks)."""
    from api.app import build_calendar  # api.app includes this router

    return build_calendar(request.app.state.settings)


def report_time() -> datetime:
    """Now: the report time for the tasks still open past their deadline."""
    return utcnow()


Calendar = Annotated[BusinessCalendar, Depends(report_calendar)]
ReportTime = Annotated[datetime, Depends(report_time)]


class CallbackReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: IsoDateTime = Field(alias="from", description="tasks created at or after this")
    to: IsoDateTime = Field(description="tasks created before this")


class SourceCountsOut(BaseModel):
    """Tasks by why they were created."""

    low_score: int
    manager_requested: int
    missed_call: int
    callback_requested: int


class TaskStatsOut(BaseModel):
    tasks: int = Field(description="callback tasks created in [from, to)")
    by_source: SourceCountsOut
    resolved: int = Field(description="status resolved")
    on_time: int = Field(description="resolved at or before the deadline")
    due: int = Field(description="resolved, or still open or claimed past the deadline")
    on_time_share: float | None = Field(description="on_time / due; null when due is 0")
    overdue: int = Field(description="marked overdue, or still open or claimed past the "
                                     "deadline at the report time")
    median_minutes_to_resolve: int | None = Field(
        description="working minutes from creation to resolution, median by nearest rank; "
                    "null when none was resolved")
    p90_minutes_to_resolve: int | None = Field(
        description="the 90th percentile of the same, by nearest rank")


class AgentTaskStatsOut(TaskStatsOut):
    agent: str = Field(description="the assignee's username, or `unassigned`")


class WeekTaskStatsOut(TaskStatsOut):
    week: str = Field(description="ISO week in the business calendar's zone, like 2025-W10")
    week_start: date = Field(description="its Monday")


class ScoreCountsOut(BaseModel):
    score_1: int = Field(serialization_alias="1")
    score_2: int = Field(serialization_alias="2")
    score_3: int = Field(serialization_alias="3")
    score_4: int = Field(serialization_alias="4")
    score_5: int = Field(serialization_alias="5")


class CsatOut(BaseModel):
    responses: int = Field(description="survey answers with a score")
    average: float | None = Field(description="the mean score; null without an answer")
    distribution: ScoreCountsOut = Field(description="answers per score")


class AgentCsatOut(CsatOut):
    agent: str = Field(description="the surveyed call's agent_id, or `unknown`")


class WeekCsatOut(CsatOut):
    week: str
    week_start: date


class CsatTrendOut(BaseModel):
    total: CsatOut
    by_week: list[WeekCsatOut]
    by_agent: list[AgentCsatOut]


class CallbackReportOut(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    generated_at: datetime = Field(description="the report time (for the overdue counts)")
    total: TaskStatsOut
    by_agent: list[AgentTaskStatsOut] = Field(description="agents with a task, by name")
    by_week: list[WeekTaskStatsOut] = Field(description="every week the period touches")
    csat: CsatTrendOut = Field(description="survey scores answered in [from, to)")


def task_stats(stats: TaskStats) -> dict[str, object]:
    return {
        "tasks": stats.tasks, "by_source": SourceCountsOut(**stats.by_source),
        "resolved": stats.resolved, "on_time": stats.on_time, "due": stats.due,
        "on_time_share": stats.on_time_share, "overdue": stats.overdue,
        "median_minutes_to_resolve": stats.median_minutes,
        "p90_minutes_to_resolve": stats.p90_minutes,
    }


def csat_stats(stats: CsatStats) -> dict[str, object]:
    scores = ScoreCountsOut(**{f"score_{s}": n for s, n in stats.distribution.items()})
    return {"responses": stats.responses, "average": stats.average, "distribution": scores}


def report_out(report: CallbackReport) -> CallbackReportOut:
    weeks = {week.label: week.start for week in report.weeks}
    return CallbackReportOut(
        from_=report.start, to=report.end, generated_at=report.generated_at,
        total=TaskStatsOut.model_validate(task_stats(report.totals)),
        by_agent=[AgentTaskStatsOut.model_validate({"agent": agent, **task_stats(stats)})
                  for agent, stats in report.by_agent.items()],
        by_week=[WeekTaskStatsOut.model_validate({"week": label, "week_start": weeks[label],
                                                  **task_stats(stats)})
                 for label, stats in report.by_week.items()],
        csat=CsatTrendOut(
            total=CsatOut.model_validate(csat_stats(report.csat)),
            by_week=[WeekCsatOut.model_validate({"week": label, "week_start": weeks[label],
                                                 **csat_stats(stats)})
                     for label, stats in report.csat_by_week.items()],
            by_agent=[AgentCsatOut.model_validate({"agent": agent, **csat_stats(stats)})
                      for agent, stats in report.csat_by_agent.items()]),
    )


@router.get(
    "/reports/callbacks",
    response_model=CallbackReportOut,
    summary="Callback compliance report",
    description=(
        "Over the callback tasks created in [`from`, `to`) (at most 366 days): tasks by "
        "source, resolved, the share resolved before the deadline, the median and 90th "
        "percentile time to resolve in working minutes, the overdue count; in all, per agent "
        "and per ISO week of the business calendar. With it, the CSAT trend of the survey "
        "answers in the period: the average score and the count of each score, per week and "
        "per agent. Needs a support or admin token."
    ),
    responses=REPORT_ERRORS,
)
def report_callbacks(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("support", "admin"))],
    query: Annotated[CallbackReportQuery, Query()],
    calendar: Calendar,
    now: ReportTime,
) -> CallbackReportOut:
    try:
        with transaction(request.app.state.sessions) as session:
            report = callback_report(session, calendar, query.from_, query.to, now)
    except InvalidPeriod as exc:
        raise ApiError(422, "invalid-request", f"query.to: {exc}") from None
    return report_out(report)
