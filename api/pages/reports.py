"""The callback compliance page, `/reports/callbacks?from=YYYY-MM-DD&to=YYYY-MM-DD`: the
numbers of `GET /api/v1/reports/callbacks` as charts and tables, in the viewer's language.

The dates are days of the business calendar's zone, both included: the period is `[from
00:00, the day after to 00:00)`. Without them: the last 4 weeks, this ISO week and the three
before it, up to today. A bad date, `to` before `from` or more than 366 days is a 422 page."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import Request
from starlette.responses import Response

from api.pages.charts import bar_chart
from api.pages.render import render
from api.pages.security import PageError
from api.pages.texts import texts
from api.people import SignedIn
from campaigns.calendar import BusinessCalendar
from campaigns.callback_report import (
    MAX_DAYS,
    SCORES,
    SOURCES,
    CsatStats,
    InvalidPeriod,
    TaskStats,
    callback_report,
)
from infra.db import transaction

DEFAULT_WEEKS = 4


@dataclass(frozen=True)
class Row:
    """One line of a table, formatted for the page."""

    name: str
    tasks: int
    resolved: int
    on_time_share: str
    median: str
    p90: str
    overdue: int


@dataclass(frozen=True)
class CsatRow:
    name: str
    responses: int
    average: str
    scores: list[int]


def period(calendar: BusinessCalendar, now: datetime, start: str, end: str
           ) -> tuple[date, date]:
    """The first and last day shown; PageError 422 for bad dates or a bad range."""
    today = now.astimezone(calendar.zone).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = (date.fromisoformat(start) if start
                 else last - timedelta(days=last.weekday() + 7 * (DEFAULT_WEEKS - 1)))
    except ValueError:
        raise PageError(422, "report_bad_period_title", "report_bad_period") from None
    if first > last or (last - first).days + 1 > MAX_DAYS:
        raise PageError(422, "report_bad_period_title", "report_bad_period")
    return first, last


def callback_report_page(request: Request, viewer: SignedIn, calendar: BusinessCalendar,
                         now: datetime, start: str, end: str) -> Response:
    first, last = period(calendar, now, start, end)
    begin = datetime.combine(first, time(), tzinfo=calendar.zone)
    finish = datetime.combine(last + timedelta(days=1), time(), tzinfo=calendar.zone)
    try:
        with transaction(request.app.state.sessions) as session:
            report = callback_report(session, calendar, begin, finish, now)
    except InvalidPeriod:
        raise PageError(422, "report_bad_period_title", "report_bad_period") from None
    words = texts(viewer.person.locale)
    weeks = list(report.by_week.items())
    csat_weeks = list(report.csat_by_week.items())
    charts = {
        "tasks": bar_chart([(w, s.tasks) for w, s in weeks], words["chart_tasks_per_week"]),
        "on_time": bar_chart([(w, s.on_time_share) for w, s in weeks],
                             words["chart_on_time_per_week"], max_value=1.0,
                             value_format=_percent),
        "overdue": bar_chart([(w, s.overdue) for w, s in weeks],
                             words["chart_overdue_per_week"]),
        "median": bar_chart([(a, s.median_minutes) for a, s in report.by_agent.items()],
                            words["chart_median_per_agent"]),
        "csat": bar_chart([(w, s.average) for w, s in csat_weeks],
                          words["chart_csat_per_week"], max_value=5.0, value_format=_score),
        "scores": bar_chart([(str(s), n) for s, n in report.csat.distribution.items()],
                            words["chart_csat_distribution"]),
    }
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context: Mapping[str, Any] = {
        "first": first.isoformat(), "last": last.isoformat(), "zone": calendar.zone.key,
        "charts": charts, "total": _row(words["report_all"], report.totals, words),
        "sources": [(words[f"source_{s}"], report.totals.by_source[s]) for s in SOURCES],
        "weeks": [_row(w, s, words) for w, s in weeks],
        "agents": [_row(_agent(a, words), s, words) for a, s in report.by_agent.items()],
        "scores": SCORES,
        "csat_total": _csat_row(words["report_all"], report.csat),
        "csat_weeks": [_csat_row(w, s) for w, s in csat_weeks],
        "csat_agents": [_csat_row(_agent(a, words), s)
                        for a, s in report.csat_by_agent.items()],
    }
    return render("callback_report.html", viewer.person.locale, viewer=viewer,
                  csrf=viewer.csrf_token, here=here, **context)


def _percent(value: float | int) -> str:
    return f"{value:.0%}"


def _score(value: float | int) -> str:
    return f"{value:.2f}"


def _agent(name: str, words: Mapping[str, str]) -> str:
    return words.get(f"agent_{name}", name) if name in ("unassigned", "unknown") else name


def _minutes(value: int | None, words: Mapping[str, str]) -> str:
    return "-" if value is None else words["report_minutes"].format(n=value)


def _row(name: str, stats: TaskStats, words: Mapping[str, str]) -> Row:
    share = stats.on_time_share
    return Row(name=name, tasks=stats.tasks, resolved=stats.resolved,
               on_time_share="-" if share is None else _percent(share),
               median=_minutes(stats.median_minutes, words),
               p90=_minutes(stats.p90_minutes, words), overdue=stats.overdue)


def _csat_row(name: str, stats: CsatStats) -> CsatRow:
    average = stats.average
    return CsatRow(name=name, responses=stats.responses,
                   average="-" if average is None else _score(average),
                   scores=[stats.distribution[s] for s in SCORES])
